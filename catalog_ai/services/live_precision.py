"""Live precision: how right a model version has been on the shop's own uploads, from what people
checked, with 95 % intervals.

Two figures per version, both from people's verdicts, never from the training photos:

- **precision of auto-accept**: the share of resolved audits (:mod:`catalog_ai.services.audits`)
  a person confirmed. Audits are a uniform random sample of the version's auto-accepts, so this
  is an unbiased estimate; its interval is Wilson's score interval.
- **leaf accuracy** (a suggestion counts as right when the person kept it as it stood: an
  ``accept`` review or a confirmed audit; accepting only an ancestor, moving it, a new category
  or a rejection count as wrong). People's verdicts are not a random sample of uploads: reviews
  see only what the model did *not* auto-accept (the hard photos), least confident first, and
  audits see a few percent of the easy ones. The estimate is therefore **stratified**, with
  inverse-probability weights: strata are *auto-accepted* (size: the version's tally of
  auto-accepts, sample: its resolved audits) and *sent to review*, cut into confidence bands
  (size: the version's suggestions in the band that were not auto-accepted, sample: those
  reviewed). Each checked product stands for ``N_h / n_h`` products of its stratum ``h``; the
  estimate is ``sum_h N_h p_h / sum_h N_h``, its variance ``sum_h (N_h/N)^2 p_h (1-p_h) / n_h``,
  and the interval Wilson's at the effective sample size ``p (1-p) / variance`` (Kish).
  The bands make a backlog harmless: the queue is reviewed least confident first, so the
  confident end of the review stratum is reviewed last, and its reviewed few stand for all of
  it. A band none of whose products was reviewed yet borrows the nearest reviewed band *below*
  it (less confident, so the estimate errs pessimistic); the auto-accepted stratum with no
  resolved audit leaves leaf accuracy unknown (None) rather than quietly describing only the
  hard photos.

A version that auto-accepted before audits existed (no tally) has its auto-accepts counted in the
review bands they fall in, unreviewed: they borrow a less confident band (pessimistic again).

An open audit whose product a person decided otherwise (after a later model sent it to review)
counts with that person's label, so that dropping it cannot bias the sample.
:func:`weighted_examples` gives the same weights to ``calibrate --from-reviews``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from catalog_ai.db import (
    Category,
    ModelVersion,
    Product,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
)
from catalog_ai.db.models.audit import Audit, AuditTally, AuditVerdict
from catalog_ai.db.queries import model_version_by_name

__all__ = [
    "BANDS",
    "Checked",
    "LivePrecision",
    "Proportion",
    "Stratum",
    "checked_products",
    "live_precision",
    "stratified_estimate",
    "stratum_weights",
    "weighted_examples",
    "weighted_review_photos",
    "wilson_interval",
]

#: Lower edges of the confidence bands the review stratum is cut into.
BANDS: tuple[float, ...] = (0.0, 0.5, 0.7, 0.85, 0.95)
AUTO = "auto-accepted"


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion (95 % by default); (0, 1) when ``n`` is 0.

    Unlike the normal interval it stays inside [0, 1] and is not empty at 0 or n successes,
    which is where a good auto-accept lives (e.g. 0 errors in 30 audits: 0.886-1.0)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Proportion:
    estimate: float
    low: float
    high: float
    n: int  # people's verdicts it rests on
    successes: float  # weighted for a stratified estimate

    def to_dict(self) -> dict[str, float | int]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "successes": self.successes,
        }


@dataclass(frozen=True)
class Stratum:
    name: str
    size: int  # products of the stratum (N_h)
    n: int  # of them checked by a person (n_h)
    successes: int  # checked and right
    donor: str | None = None  # an unreviewed band: the band whose reviews stand for it

    @property
    def weight(self) -> float:
        """How many products of the stratum each checked one stands for."""
        return self.size / self.n if self.n else 0.0


def stratified_estimate(strata: Sequence[Stratum]) -> Proportion | None:
    """``sum_h N_h p_h / N`` over the strata with products, Wilson at Kish's effective n; None
    when a stratum with products has no checked product (its share cannot be estimated)."""
    live = [s for s in strata if s.size > 0]
    total = sum(s.size for s in live)
    if not live or any(s.n == 0 for s in live):
        return None
    p = sum(s.size * s.successes / s.n for s in live) / total
    variance = sum(
        (s.size / total) ** 2 * (s.successes / s.n) * (1 - s.successes / s.n) / s.n for s in live
    )
    n = sum(s.n for s in live)
    n_eff = p * (1 - p) / variance if variance > 0 else float(n)
    low, high = wilson_interval(p * n_eff, n_eff)
    return Proportion(p, low, high, n, p * n)


@dataclass(frozen=True)
class Checked:
    """A product of a version whose suggestion a person checked."""

    product_id: int
    stratum: str  # AUTO, or "review <band edge>"
    correct: bool
    true_path: str | None  # the person's category (None: rejected)
    weight: float = 1.0


@dataclass
class LivePrecision:
    version: str
    auto_accept: Proportion | None  # precision of auto-accept, from audits
    leaf_accuracy: Proportion | None  # stratified over auto-accepted and sent to review
    auto_accepted: int = 0
    audited: int = 0
    audits_resolved: int = 0
    sent_to_review: int = 0
    reviewed: int = 0
    strata: list[Stratum] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "auto_accept_precision": self.auto_accept.to_dict() if self.auto_accept else None,
            "leaf_accuracy": self.leaf_accuracy.to_dict() if self.leaf_accuracy else None,
            "auto_accepted": self.auto_accepted,
            "audited": self.audited,
            "audits_resolved": self.audits_resolved,
            "sent_to_review": self.sent_to_review,
            "reviewed": self.reviewed,
        }


def _band(confidence: float) -> str:
    edge = max(e for e in BANDS if confidence >= e) if confidence >= 0 else 0.0
    return f"review {edge:.2f}"


def _band_sizes(session: Session, version_id: int, auto_accepted: int) -> dict[str, int]:
    """Per band, the version's suggestions that went to review: all its suggestions in the band,
    less the auto-accepted ones, taken from the most confident band down (auto-accept needs a
    confidence at or above the version's threshold, so they sit at the top)."""
    band = case(
        *[(Suggestion.confidence >= e, f"review {e:.2f}") for e in reversed(BANDS[1:])],
        else_=f"review {BANDS[0]:.2f}",
    )
    counts: dict[str, int] = dict(
        session.execute(
            select(band, func.count())
            .where(Suggestion.model_version_id == version_id)
            .group_by(band)
        ).all()
    )
    sizes = {f"review {e:.2f}": int(counts.get(f"review {e:.2f}", 0)) for e in BANDS}
    left = auto_accepted
    for e in reversed(BANDS):
        key = f"review {e:.2f}"
        taken = min(left, sizes[key])
        sizes[key] -= taken
        left -= taken
    return sizes


def checked_products(session: Session, version_id: int) -> tuple[list[Checked], int]:
    """The version's products a person checked (resolved or settled audits, then reviews of its
    suggestions that were no audit), unweighted; and how many audits are still open."""
    audited_category = aliased(Category)
    out: list[Checked] = []
    still_open = 0
    audits = session.execute(
        select(Audit, Suggestion.path, Product.status, Product.label_source, audited_category.path)
        .join(Product, Product.id == Audit.product_id)
        .outerjoin(Suggestion, Suggestion.id == Audit.suggestion_id)
        .outerjoin(audited_category, audited_category.id == Product.category_id)
        .where(Audit.model_version_id == version_id)
        .order_by(Audit.id)
    ).all()
    for audit, suggested, status, source, current in audits:
        if audit.verdict is not None:
            correct = audit.verdict == AuditVerdict.CORRECT
            out.append(Checked(audit.product_id, AUTO, correct, audit.true_path))
        elif source is not None and source != "model" and status == ProductStatus.ACCEPTED:
            out.append(Checked(audit.product_id, AUTO, current == suggested, current))
        elif status == ProductStatus.REJECTED:
            out.append(Checked(audit.product_id, AUTO, False, None))
        else:
            still_open += 1
    audit_reviews = select(Audit.review_id).where(Audit.review_id.is_not(None))
    latest = (
        select(func.max(Review.id))
        .join(Suggestion, Suggestion.id == Review.suggestion_id)
        .where(Suggestion.model_version_id == version_id, Review.id.not_in(audit_reviews))
        .group_by(Review.product_id)
    )
    reviews = session.execute(
        select(Review.product_id, Review.action, Suggestion.confidence, Category.path)
        .join(Suggestion, Suggestion.id == Review.suggestion_id)
        .outerjoin(Category, Category.id == Review.category_id)
        .where(Review.id.in_(latest))
        .order_by(Review.id)
    ).all()
    for product_id, action, confidence, path in reviews:
        correct = action == ReviewAction.ACCEPT
        out.append(Checked(product_id, _band(confidence), correct, path))
    return out, still_open


def _strata(session: Session, version_id: int, checked: Sequence[Checked]) -> list[Stratum]:
    tally = session.get(AuditTally, version_id)
    auto_accepted = tally.auto_accepted if tally is not None else 0
    n: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    for c in checked:
        n[c.stratum] += 1
        hits[c.stratum] += int(c.correct)
    strata = [Stratum(AUTO, auto_accepted, n[AUTO], hits[AUTO])]
    sizes = _band_sizes(session, version_id, auto_accepted)
    keys = [f"review {e:.2f}" for e in BANDS]
    for i, key in enumerate(keys):
        size = sizes[key]
        # Reviews outnumbering the band (a tally that predates audits): the band is what was seen.
        size = max(size, n[key])
        if size and not n[key]:
            # No review in this band yet: the nearest reviewed band below stands for it (then
            # above), so the estimate errs on the pessimistic side.
            donor = next(
                (k for k in [*reversed(keys[:i]), *keys[i + 1 :]] if n[k]),
                None,
            )
            if donor is not None:
                strata.append(Stratum(key, size, n[donor], hits[donor], donor=donor))
                continue
        strata.append(Stratum(key, size, n[key], hits[key]))
    return strata


def stratum_weights(strata: Sequence[Stratum]) -> dict[str, float]:
    """Per stratum name, how many products each checked product of it stands for: ``N_h / n_h``,
    a donor band also standing for the unreviewed bands that borrow it."""
    size: dict[str, int] = defaultdict(int)
    n: dict[str, int] = {}
    for s in strata:
        size[s.donor or s.name] += s.size
        if s.donor is None:
            n[s.name] = s.n
    return {name: size[name] / n[name] for name in n if n[name]}


def live_precision(session: Session, version: str) -> LivePrecision:
    """The live figures of ``version`` (see the module docstring)."""
    mv = model_version_by_name(session, version)
    checked, still_open = checked_products(session, mv.id)
    strata = _strata(session, mv.id, checked)
    audits = [c for c in checked if c.stratum == AUTO]
    hits = sum(c.correct for c in audits)
    precision = None
    if audits:
        low, high = wilson_interval(hits, len(audits))
        precision = Proportion(hits / len(audits), low, high, len(audits), hits)
    tally = session.get(AuditTally, mv.id)
    reviewed = [c for c in checked if c.stratum != AUTO]
    return LivePrecision(
        version=mv.version,
        auto_accept=precision,
        leaf_accuracy=stratified_estimate(strata),
        auto_accepted=tally.auto_accepted if tally else 0,
        audited=tally.audited if tally else len(audits) + still_open,
        audits_resolved=len(audits),
        sent_to_review=sum(s.size for s in strata if s.name != AUTO),
        reviewed=len(reviewed),
        strata=strata,
    )


def weighted_examples(session: Session) -> list[tuple[int, str, float]]:
    """``(product_id, category path, weight)`` of every product a person checked with a
    category (reviews and audits, every version), weighted by ``N_h / n_h`` of its version's
    stratum: a sample of uploads as they come, not of the hard photos people are shown."""
    out: list[tuple[int, str, float]] = []
    seen: set[int] = set()
    versions = session.scalars(select(ModelVersion.id).order_by(ModelVersion.id.desc()))
    for version_id in versions:  # newest first: a product checked twice counts once, newest
        checked, _ = checked_products(session, version_id)
        weights = stratum_weights(_strata(session, version_id, checked))
        for c in checked:
            if c.true_path is None or c.product_id in seen:
                continue
            seen.add(c.product_id)
            out.append((c.product_id, c.true_path, weights.get(c.stratum, 1.0)))
    return out


def weighted_review_photos(session: Session) -> tuple[list[Path], list[str], list[float]]:
    """``calibrate --from-reviews``'s sample: the first photo (a media file), the category and
    the stratum weight of each product of :func:`weighted_examples`, in product order."""
    from catalog_ai.db import ProductImage
    from catalog_ai.db.queries import first_photo_ids
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.settings import get_settings

    rows = sorted(weighted_examples(session))
    if not rows:
        return [], [], []
    first = first_photo_ids()
    stored: dict[int, str] = dict(
        session.execute(
            select(first.c.product_id, ProductImage.stored_path)
            .join(ProductImage, ProductImage.id == first.c.image_id)
            .where(first.c.product_id.in_([pid for pid, _, _ in rows]))
        ).all()
    )
    media = MediaStore(get_settings().media_dir)
    kept = [(pid, path, w) for pid, path, w in rows if pid in stored]
    return (
        [media.path(stored[pid]) for pid, _, _ in kept],
        [path for _, path, _ in kept],
        [w for _, _, w in kept],
    )

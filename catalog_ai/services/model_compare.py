"""Champion and challenger: two model versions on the same recent products people labelled,
products neither of them trained on, with paired bootstrap intervals.

**Which products.** Accepted products whose label a person gave (imports, reviews, audits,
few-shot), with a photo, labelled *after* both versions were made: a version's cut-off is its
bundle's ``created_at`` (a catalogue training reads its examples before it writes the bundle; a
derived version's prototype memory holds the reviews up to its derivation), so a product
labelled later cannot be among its training photos or examples. The products a
``--promote-if-better`` training held out (recorded with its :class:`PromotionRecord`) count as
not trained on by that version too. The most recent ``n_recent`` are used: the uploads the shop
makes now. A version trained from a folder cannot be checked this way against photos of that
folder imported into the catalogue later; compare such versions on products reviewed after both
were made (the reviewed uploads are new photos).

**How.** Each version's bundle (its files, as registered) classifies every product through the
real :class:`~catalog_ai.inference.predictor.Predictor`, all its photos fused as a worker would.
A version is *right* on a product when its most probable leaf is the person's category (or lies
below it, for a product labelled at an inner node): leaf accuracy. Auto-accept precision and
coverage follow the version's own auto-accept rule on the same products.

**Weights.** The products people labelled lean to the hard photos (reviews see what was not
auto-accepted): each product counts with the stratum weight of
:func:`catalog_ai.services.live_precision.weighted_examples` (1 for imports and few-shot
examples), so the figures describe uploads as they come. The paired bootstrap resamples
products (``bootstrap`` times, seeded), the same resample for both versions, and gives
percentile 95 % intervals of each figure and of the difference ``b - a``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, ModelVersion, Product, ProductImage, ProductStatus
from catalog_ai.db.models.audit import PromotionRecord
from catalog_ai.db.queries import model_version_by_name
from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.decision import Decision

__all__ = [
    "CompareError",
    "Comparison",
    "EvalProduct",
    "Figure",
    "compare_decisions",
    "compare_versions",
    "cutoff",
    "eval_products",
]


class CompareError(CatalogAIError):
    """Two versions cannot be compared (no products neither trained on)."""


@dataclass(frozen=True)
class EvalProduct:
    product_id: int
    true_path: str
    photos: tuple[str, ...]  # stored paths in the media store, in the shop's order
    weight: float = 1.0


@dataclass(frozen=True)
class Figure:
    estimate: float | None
    low: float | None
    high: float | None


@dataclass
class Comparison:
    a: str
    b: str
    n: int  # products both versions decided on
    failed: int  # products one of them could not decide on (left out of every figure)
    leaf_accuracy_a: Figure
    leaf_accuracy_b: Figure
    difference: Figure  # leaf accuracy b - a
    auto_accept_precision_a: Figure
    auto_accept_precision_b: Figure
    coverage_a: Figure
    coverage_b: Figure
    bootstrap: int
    labelled_after: str  # the later cut-off, ISO
    product_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def cutoff(row: ModelVersion) -> datetime:
    """When ``row``'s training data and memory were fixed: its bundle's ``created_at`` (to the
    microsecond; a bundle written before that was kept to the second: then the next second),
    else when it was registered."""
    from catalog_ai.model.bundle import BundleError, ModelBundle

    try:
        text = ModelBundle.load(row.bundle_path).created_at
        made = datetime.fromisoformat(text) if text else None
        if made is not None and "." not in text:
            made += timedelta(seconds=1)
    except (BundleError, ValueError, OSError):
        made = None
    when = made or row.created_at
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _held_out(session: Session, row: ModelVersion) -> set[int]:
    record = session.scalar(
        select(PromotionRecord)
        .where(PromotionRecord.model_version_id == row.id)
        .order_by(PromotionRecord.id.desc())
        .limit(1)
    )
    return set((record.comparison or {}).get("held_out_products", [])) if record else set()


def eval_products(
    session: Session,
    versions: Sequence[ModelVersion],
    *,
    n_recent: int | None = 500,
    products: Sequence[int] | None = None,
) -> list[EvalProduct]:
    """The most recent person-labelled products none of ``versions`` trained on (see the module
    docstring), newest first; ``products`` narrows them to those ids."""
    from catalog_ai.services.live_precision import weighted_examples

    cuts = [cutoff(v) for v in versions]
    held = [_held_out(session, v) for v in versions]
    query = (
        select(Product.id, Category.path, Product.status_changed_at)
        .join(Category, Category.id == Product.category_id)
        .where(
            Product.status == ProductStatus.ACCEPTED,
            Product.labelled_by_person,
            or_(Product.status_changed_at >= min(cuts), Product.id.in_(set().union(*held))),
        )
        .order_by(Product.status_changed_at.desc(), Product.id.desc())
    )
    if products is not None:
        query = query.where(Product.id.in_(set(products)))
    chosen: list[tuple[int, str]] = []
    for pid, path, when in session.execute(query):
        stamp = when if when.tzinfo else when.replace(tzinfo=UTC)
        if all(stamp >= c or pid in h for c, h in zip(cuts, held, strict=True)):
            chosen.append((pid, path))
            if n_recent is not None and len(chosen) >= n_recent:
                break
    if not chosen:
        return []
    photos: dict[int, list[str]] = {}
    for pid, stored in session.execute(
        select(ProductImage.product_id, ProductImage.stored_path)
        .where(ProductImage.product_id.in_([pid for pid, _ in chosen]))
        .order_by(ProductImage.product_id, ProductImage.position, ProductImage.id)
    ):
        photos.setdefault(pid, []).append(stored)
    weights = {pid: w for pid, _, w in weighted_examples(session)}
    return [
        EvalProduct(pid, path, tuple(photos[pid]), weights.get(pid, 1.0))
        for pid, path in chosen
        if pid in photos
    ]


def _decide(predictor: Predictor, items: Sequence[EvalProduct]) -> list[Decision | None]:
    """Each product's decision, all its photos fused (None: its photos could not be used)."""
    media = MediaStore(get_settings().media_dir)
    out: list[Decision | None] = []
    for item in items:
        try:
            squares = [predictor.prepare(media.path(p)) for p in item.photos]
            analysis = predictor.analyse(squares)
            out.append(predictor.decide_product(analysis, range(len(squares))))
        except Exception:  # a photo gone from the store, or one the network fails on
            out.append(None)
    return out


def _right(path: str, truth: str) -> bool:
    return bool(path) and (path == truth or path.startswith(truth + SEPARATOR))


def _figure(values: np.ndarray, point: float | None) -> Figure:
    finite = values[np.isfinite(values)]
    if point is None or not finite.size:
        return Figure(point, None, None)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Figure(point, float(low), float(high))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def compare_decisions(
    a: str,
    b: str,
    truths: Sequence[str],
    decisions_a: Sequence[Decision | None],
    decisions_b: Sequence[Decision | None],
    *,
    weights: Sequence[float] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Comparison:
    """The figures and paired bootstrap intervals from both versions' decisions on the same
    products (the arithmetic of :func:`compare_versions`, without models)."""
    w_all = np.ones(len(truths)) if weights is None else np.asarray(weights, dtype=float)
    keep = [i for i in range(len(truths)) if decisions_a[i] and decisions_b[i]]
    w = w_all[keep]
    cols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, decisions in (("a", decisions_a), ("b", decisions_b)):
        leaf, auto, chosen = [], [], []
        for i in keep:
            d = decisions[i]
            assert d is not None  # kept: both decided
            leaf.append(_right(d.leaf_path, truths[i]))
            auto.append(bool(d.auto_accept))
            chosen.append(_right(d.path, truths[i]))
        cols[name] = (
            np.asarray(leaf, dtype=np.float64),
            np.asarray(auto, dtype=np.float64),
            np.asarray(chosen, dtype=np.float64),
        )
    n = len(keep)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(bootstrap, n)) if n and bootstrap else np.zeros((0, n), int)
    wi = w[idx]

    def mean(x: np.ndarray) -> tuple[float | None, np.ndarray]:
        point = float((w * x).sum() / w.sum()) if n else None
        return point, _ratio((wi * x[idx]).sum(1), wi.sum(1))

    def precision(aa: np.ndarray, ok: np.ndarray) -> tuple[float | None, np.ndarray]:
        den = float((w * aa).sum())
        point = float((w * aa * ok).sum() / den) if den > 0 else None
        return point, _ratio((wi * (aa * ok)[idx]).sum(1), (wi * aa[idx]).sum(1))

    acc_a, boot_a = mean(cols["a"][0])
    acc_b, boot_b = mean(cols["b"][0])
    diff = None if acc_a is None or acc_b is None else acc_b - acc_a
    cov_a, boot_cov_a = mean(cols["a"][1])
    cov_b, boot_cov_b = mean(cols["b"][1])
    pre_a, boot_pre_a = precision(cols["a"][1], cols["a"][2])
    pre_b, boot_pre_b = precision(cols["b"][1], cols["b"][2])
    return Comparison(
        a=a,
        b=b,
        n=n,
        failed=len(truths) - n,
        leaf_accuracy_a=_figure(boot_a, acc_a),
        leaf_accuracy_b=_figure(boot_b, acc_b),
        difference=_figure(boot_b - boot_a, diff),
        auto_accept_precision_a=_figure(boot_pre_a, pre_a),
        auto_accept_precision_b=_figure(boot_pre_b, pre_b),
        coverage_a=_figure(boot_cov_a, cov_a),
        coverage_b=_figure(boot_cov_b, cov_b),
        bootstrap=bootstrap,
        labelled_after="",
    )


def compare_versions(
    session: Session,
    a: str,
    b: str,
    *,
    n_recent: int | None = 500,
    bootstrap: int = 1000,
    seed: int = 0,
    products: Sequence[int] | None = None,
) -> Comparison:
    """Versions ``a`` and ``b`` on the most recent ``n_recent`` person-labelled products neither
    trained on (``products``: only these ids); figures for ``b - a`` (see the module docstring).
    Raises :class:`CompareError` when there is no such product."""
    from catalog_ai.inference.predictor import Predictor

    rows = [model_version_by_name(session, a), model_version_by_name(session, b)]
    items = eval_products(session, rows, n_recent=n_recent, products=products)
    if not items:
        raise CompareError(
            f"no product labelled by a person after both {a} and {b} were made: review more "
            "uploads (or let audits come in), then compare again"
        )
    decisions = [_decide(Predictor.load(row.bundle_path), items) for row in rows]
    result = compare_decisions(
        a,
        b,
        [i.true_path for i in items],
        decisions[0],
        decisions[1],
        weights=[i.weight for i in items],
        bootstrap=bootstrap,
        seed=seed,
    )
    result.labelled_after = max(cutoff(r) for r in rows).isoformat(timespec="seconds")
    result.product_ids = [i.product_id for i in items]
    return result

"""Promote if better: a newly trained version becomes active only when it beats the active one.

**The rule** (:func:`promotion_rule`), on the products neither version trained on
(:mod:`catalog_ai.services.model_compare`; ``train --from-catalog --promote-if-better`` holds
the most recent ones out of its training for this), with ``d`` the candidate's leaf accuracy
minus the active version's and ``[low, high]`` its paired-bootstrap 95 % interval:

1. at least ``min_products`` (30) products to compare on, else it is kept inactive: a handful of
   products cannot tell two models apart;
2. ``d >= margin`` (default 0.01: one point): a tie, or a win smaller than the margin, keeps the
   active version (a switch re-classifies every product no person labelled, and is not worth a
   difference nobody would notice);
3. ``low > 0``: the win is not chance;
4. where the candidate auto-accepts on these products, its auto-accept precision there is not
   below its own target (the bundle's ``auto_accept_target``, 98 % by default) by more than
   ``margin``: a store manager trusts auto-accept first. It is compared with the promise, not
   with the active version's figure on the same products: those are its own reviews and audits,
   so its auto-accepts there are the ones a person already confirmed, right by construction
   (1.000 in ``benchmarks/review_loop.py``, which kept three challengers 3-4 points better);
5. the candidate does not switch auto-accept off: when the active version auto-accepts some of
   these products and the candidate none (a fresh training has auto-accept off until it is
   calibrated on independent photos), it is kept inactive with that reason: calibrate it first
   (``catalog-ai calibrate --from-reviews``, which derives a new version) and compare again.

Promoted: it is activated with :func:`catalog_ai.services.models.activate_model` (re-
classification and embedding enqueued after the commit). Otherwise it stays registered and
inactive, and the reason is recorded (:class:`PromotionRecord`, shown by ``models list``, the
Models page and the API); ``catalog-ai models activate`` can still switch by hand. With no
active version there is nothing to beat: the candidate is activated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db.models.audit import PromotionRecord
from catalog_ai.db.queries import model_version_by_name
from catalog_ai.services.model_compare import (
    CompareError,
    Comparison,
    compare_versions,
    eval_products,
)
from catalog_ai.services.models import activate_model, active_model

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher

__all__ = [
    "MIN_PRODUCTS",
    "PromotionDecision",
    "holdout_for_training",
    "latest_promotion",
    "promote_if_better",
    "promotion_rule",
]

MIN_PRODUCTS = 30


@dataclass
class PromotionDecision:
    candidate: str
    against: str | None  # the active version it was compared with
    promoted: bool
    reason: str
    comparison: Comparison | None = None


def _pts(x: float) -> str:
    return f"{100 * x:+.1f} points"


def promotion_rule(
    comparison: Comparison,
    *,
    margin: float,
    min_products: int = MIN_PRODUCTS,
    target_precision: float = 0.98,
) -> tuple[bool, str]:
    """Whether ``comparison.b`` (the candidate) should replace ``comparison.a``, and why, in
    words a store manager reads (see the module docstring for the rule); ``target_precision``:
    the candidate's auto-accept target."""
    d = comparison.difference
    if comparison.n < min_products:
        return False, (
            f"only {comparison.n} products neither version trained on (at least {min_products} "
            "are needed to tell two models apart); kept inactive"
        )
    if d.estimate is None or d.low is None or d.high is None:
        return False, "no difference could be measured; kept inactive"
    span = f"leaf accuracy {_pts(d.estimate)} (95 % interval {_pts(d.low)} to {_pts(d.high)}) "
    span += f"on {comparison.n} products"
    if d.estimate < margin:
        return False, f"{span}: less than the {100 * margin:.1f}-point margin; kept inactive"
    if d.low <= 0:
        return False, f"{span}: the interval reaches zero, the win may be chance; kept inactive"
    pb = comparison.auto_accept_precision_b.estimate
    if pb is not None and pb < target_precision - margin:
        return False, (
            f"{span}, but its auto-accept precision there is {pb:.3f}, below its "
            f"{target_precision:.2f} target by more than the margin; kept inactive"
        )
    ca, cb = comparison.coverage_a.estimate, comparison.coverage_b.estimate
    if ca and not cb:
        return False, (
            f"{span}, but it auto-accepts none of them where the active version auto-accepts "
            f"{100 * ca:.0f} %: its auto-accept is off until calibrated on independent photos "
            "(catalog-ai calibrate --from-reviews); kept inactive"
        )
    return True, f"{span}: wins by at least the {100 * margin:.1f}-point margin; activated"


def _target_precision(bundle_path: str) -> float:
    from catalog_ai.model.bundle import ModelBundle

    return float(ModelBundle.load(bundle_path).thresholds.auto_accept_target)


def holdout_for_training(session: Session, n_recent: int) -> list[tuple[int, tuple[str, ...]]]:
    """``(product id, stored photo paths)`` of the ``n_recent`` most recent person-labelled
    products the active version did not train on: a training that is to be compared with the
    active version leaves them out, so both can be judged on them."""
    active = active_model(session)
    if active is None or n_recent <= 0:
        return []
    return [(p.product_id, p.photos) for p in eval_products(session, [active], n_recent=n_recent)]


def latest_promotion(session: Session, version_id: int) -> PromotionRecord | None:
    return session.scalar(
        select(PromotionRecord)
        .where(PromotionRecord.model_version_id == version_id)
        .order_by(PromotionRecord.id.desc())
        .limit(1)
    )


def promote_if_better(
    session: Session,
    candidate: str,
    *,
    margin: float = 0.01,
    dispatcher: Dispatcher | None = None,
    held_out: Sequence[int] = (),
    n_recent: int | None = 500,
    bootstrap: int = 1000,
    seed: int = 0,
    min_products: int = MIN_PRODUCTS,
) -> PromotionDecision:
    """Compare the registered ``candidate`` with the active version and activate it only by
    the rule; record the decision either way. ``held_out``: products the candidate's training
    left out (they count as not trained on by it)."""
    row = model_version_by_name(session, candidate)
    active = active_model(session)
    record = PromotionRecord(
        model_version_id=row.id,
        against_id=None if active is None else active.id,
        promoted=False,
        margin=float(margin),
        reason="comparing",
        comparison={"held_out_products": sorted(set(held_out))},
    )
    session.add(record)
    session.flush()
    comparison = None
    if active is None:
        promoted, reason = True, "no version was active: nothing to beat; activated"
    elif active.id == row.id:
        promoted, reason = False, "it is the active version already"
    else:
        try:
            comparison = compare_versions(
                session,
                active.version,
                candidate,
                n_recent=n_recent,
                bootstrap=bootstrap,
                seed=seed,
            )
        except CompareError as exc:
            promoted, reason = False, f"{exc}; kept inactive"
        else:
            promoted, reason = promotion_rule(
                comparison,
                margin=margin,
                min_products=min_products,
                target_precision=_target_precision(row.bundle_path),
            )
    if promoted:
        activate_model(session, candidate, dispatcher=dispatcher)
    record.promoted = promoted
    record.reason = reason
    record.comparison = {
        **(comparison.to_dict() if comparison is not None else {}),
        "held_out_products": sorted(set(held_out)),
    }
    session.flush()
    return PromotionDecision(
        candidate=candidate,
        against=None if active is None else active.version,
        promoted=promoted,
        reason=reason,
        comparison=comparison,
    )

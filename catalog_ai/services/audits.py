"""Audits: a uniform random share of auto-accepted products checked by a person.

Without audits nobody ever looks at what a model auto-accepts, so the precision of auto-accept
is only the figure the model's calibration photos promised. Each product a model auto-accepts
is drawn for audit with probability ``CATALOG_AI_AUDIT_RATE`` (default 0.03), independently of
its photo and confidence, when :func:`catalog_ai.services.classify.record` accepts it. Nothing is
taken back: the product stays accepted with the model's label (the shop already has it) and an
open :class:`Audit` puts it in the review queue's ``audit`` filter. The verdict
(:func:`resolve_audit`) is a person's decision like any review: confirmed or corrected, the
product's label becomes the person's (``label_source="review"``, never re-classified by a model
again), a :class:`Review` is recorded (``accept`` or ``correct``, note ``audit``), its photo
becomes an example of its category and ``product.accepted`` is emitted, as for any verdict.

Because the draw ignores the photo, the resolved audits are a simple random sample of the
version's auto-accepts: their share of ``correct`` estimates its precision without bias
(:mod:`catalog_ai.services.live_precision`), and :class:`AuditTally` keeps how many products the
version auto-accepted, the stratum each audit stands for (1 / rate of them).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Select, func, select, update
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
    conflict_insert,
    utc_now,
)
from catalog_ai.db.models.audit import Audit, AuditTally, AuditVerdict
from catalog_ai.db.queries import first_photo_paths
from catalog_ai.errors import CatalogAIError
from catalog_ai.services.review_queue import card_fields
from catalog_ai.services.versions import record_review_revision
from catalog_ai.services.webhook_payloads import emit_reviewed
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher

__all__ = [
    "AUDIT_NOTE",
    "AuditConflict",
    "AuditError",
    "AuditItem",
    "open_audit_count",
    "open_audits",
    "resolve_audit",
    "sample_audits",
]

#: The note on the Review an audit verdict records: how reviews of audits are told apart.
AUDIT_NOTE = "audit"


class AuditError(CatalogAIError):
    """An audit verdict cannot be recorded (no reviewer, no open audit, unknown category)."""


class AuditConflict(AuditError):
    """Someone already decided this product's label."""


@dataclass(frozen=True)
class AuditItem:
    audit_id: int
    product_id: int
    title: str
    image_path: str | None
    suggestion_id: int | None
    model_version: str
    path: str  # the category the model auto-accepted
    confidence: float
    levels: list
    source: str
    open_set: bool
    is_audit: bool = True


def sample_audits(
    session: Session,
    product_ids: Sequence[int],
    *,
    model_version_id: int,
    rate: float | None = None,
    rng: random.Random | None = None,
) -> list[int]:
    """Draw audits among ``product_ids``, products ``model_version_id`` has just auto-accepted
    (each once: :func:`~catalog_ai.services.classify.record` lists only new suggestions).

    One draw per product, in the order given: audited when ``rng.random() < rate`` (so rate 0
    audits none and rate 1 all). ``rate`` defaults to ``CATALOG_AI_AUDIT_RATE``; ``rng`` to
    the operating system's randomness (:class:`random.SystemRandom`), so nobody can predict or
    steer which products are checked; tests pass a seeded ``random.Random``. The version's
    tally grows by every product given and by those drawn. Returns the audited product ids."""
    if not product_ids:
        return []
    rate = get_settings().audit_rate if rate is None else rate
    if not 0.0 <= rate <= 1.0:
        raise AuditError(f"the audit rate {rate} is not a share in [0, 1]; give e.g. 0.03")
    draw = rng or random.SystemRandom()
    drawn = [pid for pid in product_ids if draw.random() < rate]
    if drawn:
        suggestions = session.execute(
            select(Suggestion.product_id, Suggestion.id).where(
                Suggestion.product_id.in_(drawn), Suggestion.model_version_id == model_version_id
            )
        ).all()
        rows = [
            {
                "product_id": pid,
                "suggestion_id": sid,
                "model_version_id": model_version_id,
                "rate": float(rate),
            }
            for pid, sid in sorted(suggestions)
        ]
        if rows:
            session.execute(
                conflict_insert(session, Audit.__table__)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["suggestion_id"])
            )
    table = AuditTally.__table__
    stmt = conflict_insert(session, table).values(
        model_version_id=model_version_id, auto_accepted=len(product_ids), audited=len(drawn)
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["model_version_id"],
            set_={
                "auto_accepted": table.c.auto_accepted + stmt.excluded.auto_accepted,
                "audited": table.c.audited + stmt.excluded.audited,
            },
        )
    )
    return drawn


def _open_query() -> Select[Audit, Product, Suggestion, str]:
    """Open audits of products still carrying the model's label (a product a person decided
    meanwhile is settled by that decision: see live_precision)."""
    return (
        select(Audit, Product, Suggestion, ModelVersion.version)
        .join(Product, Product.id == Audit.product_id)
        .join(Suggestion, Suggestion.id == Audit.suggestion_id)
        .join(ModelVersion, ModelVersion.id == Audit.model_version_id)
        .where(
            Audit.resolved_at.is_(None),
            Product.status == ProductStatus.ACCEPTED,
            Product.label_source == LabelSource.MODEL,
        )
    )


def open_audits(session: Session, *, limit: int = 20, offset: int = 0) -> list[AuditItem]:
    """Open audits, oldest first (the order they were drawn in: any order that ignores the
    photo keeps the resolved ones a uniform sample)."""
    rows = session.execute(_open_query().order_by(Audit.id).limit(limit).offset(offset)).all()
    photos = first_photo_paths(session, [p.id for _, p, _, _ in rows])
    return [
        AuditItem(audit_id=a.id, **card_fields(p, s, version, photos.get(p.id)))
        for a, p, s, version in rows
    ]


def open_audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(_open_query().subquery())) or 0


def resolve_audit(
    session: Session,
    product_id: int,
    *,
    reviewer: str,
    category_path: str | None = None,
    note: str | None = None,
    dispatcher: Dispatcher | None = None,
) -> Audit:
    """Record a person's verdict on the product's open audit: ``category_path`` None (or the
    auto-accepted path) confirms it (``correct``), another existing category corrects it
    (``incorrect``, and the product moves there). Either way the label becomes the person's."""
    if not reviewer or not reviewer.strip():
        raise AuditError("sign in first: every audit verdict records who made it")
    reviewer = reviewer.strip()
    audit = session.scalar(
        select(Audit)
        .where(Audit.product_id == product_id, Audit.resolved_at.is_(None))
        .order_by(Audit.id.desc())
        .limit(1)
        .with_for_update()
    )
    if audit is None:
        raise AuditError(f"product {product_id} has no open audit")
    suggestion = session.get(Suggestion, audit.suggestion_id) if audit.suggestion_id else None
    audited_path = suggestion.path if suggestion is not None else ""
    path = (category_path or "").strip() or audited_path
    category = session.scalar(select(Category).where(Category.path == path))
    if category is None:
        raise AuditError(f"category {path!r} is not in the catalog; pick one from the tree")
    # Only while the model's label stands: a person who decided meanwhile wins.
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(Product)
            .where(
                Product.id == product_id,
                Product.status == ProductStatus.ACCEPTED,
                Product.label_source == LabelSource.MODEL,
            )
            .values(
                category_id=category.id,
                label_source=LabelSource.REVIEW,
                error=None,
                # When a person gave the label: model_compare's "not trained on" cut-off.
                status_changed_at=func.now(),
            )
            .execution_options(synchronize_session="fetch")
        ),
    )
    if result.rowcount != 1:
        raise AuditConflict(
            f"product {product_id} is no longer labelled by the model (a person decided it "
            "meanwhile); reload the queue"
        )
    correct = path == audited_path
    review = Review(
        product_id=product_id,
        suggestion=suggestion,
        reviewer=reviewer,
        action=ReviewAction.ACCEPT if correct else ReviewAction.CORRECT,
        category=category,
        note=AUDIT_NOTE if not note else f"{AUDIT_NOTE}: {note}",
    )
    session.add(review)
    session.flush()
    # As for any verdict: the photo teaches the active model, the shop hears of the label.
    record_review_revision(session, review)
    emit_reviewed(session, review, dispatcher=dispatcher)
    audit.resolved_at = utc_now()
    audit.verdict = AuditVerdict.CORRECT if correct else AuditVerdict.INCORRECT
    audit.reviewer = reviewer
    audit.category_id = category.id
    audit.true_path = path
    audit.review_id = review.id
    session.flush()
    return audit

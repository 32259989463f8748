"""Classifying products with the active model: claim, run the model, record.

A worker handles a chunk of products in three steps, so no transaction stays open while the
network runs::

    with unit_of_work() as s:                   # -> processing
        work = claim(s, ids, model_version_id=mv.id)
    outcomes = run_model(predictor, work, media=media)  # no session open (classify_run)
    with unit_of_work() as s:                   # -> suggested / accepted / failed
        record(s, outcomes, model_version_id=mv.id)

Every step is idempotent, because a queue delivers a message at least once, not exactly once:
``claim`` skips products that already have a suggestion of this model version or are finished,
and ``record`` inserts with ``ON CONFLICT DO NOTHING`` on (product, model version), so a
redelivered chunk never creates a second suggestion. The database is the truth and the queue a
hint: :func:`catalog_ai.services.requeue.requeue_stale` puts back what a lost message or a dead
worker left behind. Which products a version may classify is one rule, in
:mod:`catalog_ai.services.classifiable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from catalog_ai.db import (
    Category,
    Embedding,
    LabelSource,
    Product,
    ProductStatus,
    Suggestion,
    conflict_insert,
)
from catalog_ai.services.audits import sample_audits
from catalog_ai.services.classifiable import (
    MODEL_LABELLED,
    WAITING,
    classifiable,
    still_classifiable,
)
from catalog_ai.services.classify_run import (
    Outcome,
    TransientStorageError,
    Work,
    WorkPhoto,
    run_model,
)

if TYPE_CHECKING:
    import numpy as np

    from catalog_ai.model.decision import Decision

__all__ = [
    "Outcome",
    "RecordSummary",
    "TransientStorageError",
    "Work",
    "WorkPhoto",
    "claim",
    "fail_unfinished",
    "record",
    "run_model",
    "unfinished_before",
]


@dataclass
class RecordSummary:
    suggested: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already recorded, or finished meanwhile
    # (product id, embedding) of each new suggestion: for the near-duplicate check, which runs
    # after this transaction has committed (services.near_duplicates.flag_near_duplicates),
    # never under its row locks.
    new_embeddings: list[tuple[int, np.ndarray]] = field(default_factory=list)


def claim(
    session: Session, product_ids: Sequence[int], *, model_version_id: int, max_attempts: int = 5
) -> list[Work]:
    """Mark the products of ``product_ids`` that still need this model ``processing``; each
    :class:`Work` holds every photo of its product, ordered by position, then id.

    Skips products that have a suggestion of this version already, are finished, or are being
    claimed by another worker this instant (PostgreSQL ``SKIP LOCKED``). A product without a photo,
    or one claimed ``max_attempts`` times already (its photo kills the worker), becomes ``failed``.
    """
    if not product_ids:
        return []
    query: Select[Product] = (
        select(Product)
        .where(Product.id.in_(set(product_ids)), classifiable(model_version_id))
        .order_by(Product.id)
        .options(selectinload(Product.images))
        .with_for_update(of=Product, skip_locked=True)
    )
    work = []
    for product in session.scalars(query):
        if product.status in MODEL_LABELLED:
            # Its last classification finished: attempts count the claims of this round only,
            # or a product re-classified by five models in turn would be failed as a killer.
            product.attempts = 0
        if not product.images:
            _fail(product, "no photo is stored for this product; ingest the photo again")
        elif product.attempts >= max_attempts:
            _fail(
                product,
                f"classification started {product.attempts} times without finishing (the worker "
                "stopped, or the photo could not be read, each time); check the worker logs, then "
                f"run: catalog-ai retry {product.id}",
            )
        else:
            product.status = ProductStatus.PROCESSING
            product.attempts += 1
            # Every photo, in the order the shop shows them: the decision fuses them all.
            photos = sorted(product.images, key=lambda image: (image.position, image.id))
            work.append(Work(product.id, tuple(WorkPhoto(i.id, i.stored_path) for i in photos)))
    session.flush()
    return work


def unfinished_before(session: Session, product_ids: Sequence[int]) -> set[int]:
    """The products of ``product_ids`` that were claimed before without the claim finishing
    (the worker died or gave up on their chunk): a caller classifies each of them alone, so
    that a photo that kills its worker only counts attempts against itself."""
    if not product_ids:
        return set()
    return set(
        session.scalars(
            select(Product.id).where(
                Product.id.in_(set(product_ids)),
                Product.status.in_(WAITING),
                Product.attempts > 0,
            )
        )
    )


def record(
    session: Session,
    outcomes: Sequence[Outcome],
    *,
    model_version_id: int,
    memory_revision: int | None = None,
) -> RecordSummary:
    """Store suggestions, an embedding per photo each decision used, and each product's status.

    ``accepted`` (category = the decision's path, ``label_source="model"``) when the decision may
    be auto-accepted (and drawn for audit at ``CATALOG_AI_AUDIT_RATE``), else ``suggested``;
    ``failed`` with the reasons when none of its photos could be used. Products finished
    meanwhile (by a redelivered twin of this task, or by a reviewer) are left alone, and the
    unique (product, model version) key makes a second suggestion impossible even when two
    workers race. ``memory_revision``: the revision of the
    version's prototype memory the decisions used, stored on each suggestion (to reproduce it).
    """
    summary = RecordSummary()
    if not outcomes:
        return summary
    # Row locks in id order: a redelivered twin recording the same chunk waits here, then sees
    # the products finished; two overlapping chunks cannot deadlock.
    products = {
        p.id: p
        for p in session.scalars(
            select(Product)
            .where(Product.id.in_({o.product_id for o in outcomes}))
            .order_by(Product.id)
            .with_for_update()
        )
    }
    live = [
        o
        for o in outcomes
        if o.product_id in products and still_classifiable(products[o.product_id])
    ]
    live_ids = {o.product_id for o in live}
    summary.skipped = [o.product_id for o in outcomes if o.product_id not in live_ids]

    decisions: dict[int, Decision] = {
        o.product_id: o.decision for o in live if o.error is None and o.decision is not None
    }
    decided = [o for o in live if o.product_id in decisions]
    paths = {d.path for d in decisions.values() if d.path}
    category_ids = (
        dict(
            session.execute(
                select(Category.path, Category.id).where(Category.path.in_(paths))
            ).all()
        )
        if paths
        else {}
    )
    inserted: set[int] = set()
    if decided:
        rows = [
            _suggestion_row(o, decisions[o.product_id], model_version_id, category_ids)
            | {"memory_revision": memory_revision}
            for o in decided
        ]
        stmt = (
            conflict_insert(session, Suggestion.__table__)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["product_id", "model_version_id"])
            .returning(Suggestion.__table__.c.product_id)
        )
        inserted = set(session.scalars(stmt))
        # One embedding per photo the decision used: search works per photo, and the photos
        # with an embedding of this version are the record of which photos the decision used.
        vectors = [
            Embedding.row(vector, image_id=image_id, model_version_id=model_version_id)
            for o in decided
            if o.product_id in inserted
            for image_id, vector in o.vectors().items()
        ]
        if vectors:
            session.execute(
                conflict_insert(session, Embedding.__table__)
                .values(vectors)
                .on_conflict_do_nothing(index_elements=["image_id", "model_version_id"])
            )

    for outcome in live:
        product = products[outcome.product_id]
        if outcome.error is not None or outcome.decision is None:
            if product.status in WAITING:  # never undo what a twin of this task recorded
                _fail(product, outcome.error or "the model returned no decision")
                summary.failed.append(product.id)
            else:
                summary.skipped.append(product.id)
            continue
        if product.id not in inserted:
            summary.skipped.append(product.id)
            continue
        decision = outcome.decision
        category_id = category_ids.get(decision.path)
        product.error = None
        if decision.auto_accept and category_id is not None:
            product.status = ProductStatus.ACCEPTED
            product.category_id = category_id
            product.label_source = LabelSource.MODEL
            summary.accepted.append(product.id)
        else:
            product.status = ProductStatus.SUGGESTED
            # An earlier model's label, and this one is unsure: back to a plain suggestion.
            if product.label_source == LabelSource.MODEL:
                product.category_id = None
                product.label_source = None
            summary.suggested.append(product.id)
    session.flush()
    # A random few percent of the auto-accepts also go to a person, as audits: the product keeps
    # its label; the verdicts measure the precision of auto-accept (services.audits).
    sample_audits(session, summary.accepted, model_version_id=model_version_id)
    summary.new_embeddings = [
        (o.product_id, o.embedding)
        for o in decided
        if o.product_id in inserted and o.embedding is not None
    ]
    return summary


def _suggestion_row(
    outcome: Outcome, decision: Decision, model_version_id: int, category_ids: dict[str, int]
) -> dict[str, Any]:
    return {
        "product_id": outcome.product_id,
        "model_version_id": model_version_id,
        "category_id": category_ids.get(decision.path),
        "path": decision.path,
        "levels": decision.to_dict()["levels"],
        "confidence": float(decision.confidence),
        "source": decision.source,
        "open_set": bool(decision.open_set),
    }


def _fail(product: Product, reason: str) -> None:
    product.status = ProductStatus.FAILED
    product.error = reason


def fail_unfinished(session: Session, product_ids: Sequence[int], reason: str) -> list[int]:
    """Mark the products of ``product_ids`` still ``pending`` or ``processing`` as ``failed``
    with ``reason`` (a runner that gave up on them), so they show up for a retry instead of
    waiting forever. Returns the ids marked."""
    if not product_ids:
        return []
    products = list(
        session.scalars(
            select(Product)
            .where(Product.id.in_(set(product_ids)), Product.status.in_(WAITING))
            .order_by(Product.id)
            .with_for_update()
        )
    )
    for product in products:
        _fail(product, reason)
    session.flush()
    return [p.id for p in products]

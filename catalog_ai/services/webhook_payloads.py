"""What each webhook event says (its ``data``), and the emission points' one-line helpers.

- ``suggestion.created``: the product (id, external id) and the decision exactly as the
  ``suggestions`` row holds it: path, per-depth top-k ``levels``, confidence, source, open-set
  flag, model version, prototype-memory revision, created_at.
- ``product.accepted``: the product, its final category (path, id and the shop's external id:
  the Google product category id or Shopify GID when the tree came from there), the label
  source, who decided (``"model"`` or the reviewer's name), and the model version whose
  suggestion it was, if any.
- ``product.failed``: the product and why it could not be classified.
- ``model.activated``: the version, its backbone, metrics and when it was activated.

A rejection by a reviewer is not one of the four events the issue lists, so it sends nothing.
Each helper asks first whether anyone subscribes (one small query), so a catalogue without
webhooks pays nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, ModelVersion, Product, Suggestion
from catalog_ai.services.webhooks import emit_many, subscribed_types

if TYPE_CHECKING:
    from catalog_ai.db import Review
    from catalog_ai.dispatch import Dispatcher

__all__ = [
    "emit_classified",
    "emit_model_activated",
    "emit_reviewed",
    "model_activated",
    "product_accepted",
    "product_failed",
    "suggestion_created",
]


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def suggestion_created(suggestion: Suggestion, product: Product, model_version: str) -> dict:
    return {
        "product_id": product.id,
        "external_id": product.external_id,
        "suggestion": {
            "id": suggestion.id,
            "path": suggestion.path,
            "levels": suggestion.levels,
            "confidence": suggestion.confidence,
            "source": str(suggestion.source),
            "open_set": bool(suggestion.open_set),
            "category_id": suggestion.category_id,
            "model_version": model_version,
            "memory_revision": suggestion.memory_revision,
            "created_at": _when(suggestion.created_at),
        },
    }


def product_accepted(
    product: Product,
    category: Category,
    *,
    reviewer: str | None,
    model_version: str | None,
) -> dict:
    return {
        "product_id": product.id,
        "external_id": product.external_id,
        "category": {
            "id": category.id,
            "path": category.path,
            "external_id": category.external_id,
        },
        "label_source": None if product.label_source is None else str(product.label_source),
        "decided_by": reviewer or "model",
        "reviewer": reviewer,
        "model_version": model_version,
    }


def product_failed(product: Product) -> dict:
    return {"product_id": product.id, "external_id": product.external_id, "error": product.error}


def model_activated(row: ModelVersion) -> dict:
    return {
        "version": row.version,
        "backbone": row.backbone,
        "metrics": row.metrics,
        "activated_at": _when(row.activated_at),
    }


def emit_classified(
    session: Session,
    *,
    suggested: Sequence[int],
    accepted: Sequence[int],
    failed: Sequence[int],
    model_version_id: int,
    dispatcher: Dispatcher | None,
) -> int:
    """The events of one recorded chunk: ``suggestion.created`` for each new suggestion of
    ``model_version_id`` (suggested and auto-accepted products), ``product.accepted`` for the
    auto-accepted ones, ``product.failed`` for the failed ones. Returns how many were emitted."""
    hooks = subscribed_types(session)
    want_suggestion = "suggestion.created" in hooks and (suggested or accepted)
    want_accepted = "product.accepted" in hooks and accepted
    want_failed = "product.failed" in hooks and failed
    if not (want_suggestion or want_accepted or want_failed):
        return 0
    version = session.scalar(
        select(ModelVersion.version).where(ModelVersion.id == model_version_id)
    )
    events: list[tuple[str, dict]] = []
    if want_suggestion:
        rows = session.execute(
            select(Suggestion, Product)
            .join(Product, Product.id == Suggestion.product_id)
            .where(
                Suggestion.product_id.in_({*suggested, *accepted}),
                Suggestion.model_version_id == model_version_id,
            )
            .order_by(Suggestion.product_id)
        ).all()
        events += [("suggestion.created", suggestion_created(s, p, version or "")) for s, p in rows]
    if want_accepted:
        accepted_rows = session.execute(
            select(Product, Category)
            .join(Category, Category.id == Product.category_id)
            .where(Product.id.in_(set(accepted)))
            .order_by(Product.id)
        ).all()
        events += [
            ("product.accepted", product_accepted(p, c, reviewer=None, model_version=version))
            for p, c in accepted_rows
        ]
    if want_failed:
        products = session.scalars(
            select(Product).where(Product.id.in_(set(failed))).order_by(Product.id)
        )
        events += [("product.failed", product_failed(p)) for p in products]
    emit_many(session, events, dispatcher=dispatcher, subscribers=hooks)
    return len(events)


def emit_reviewed(session: Session, review: Review, *, dispatcher: Dispatcher | None) -> None:
    """``product.accepted`` for a reviewer's verdict that gave the product a category."""
    if review.category_id is None or "product.accepted" not in (hooks := subscribed_types(session)):
        return
    product = session.get(Product, review.product_id)
    category = session.get(Category, review.category_id)
    if product is None or category is None:
        return
    session.refresh(product)  # the verdict was an UPDATE statement: read what it wrote
    version = None
    if review.suggestion_id is not None:
        version = session.scalar(
            select(ModelVersion.version)
            .join(Suggestion, Suggestion.model_version_id == ModelVersion.id)
            .where(Suggestion.id == review.suggestion_id)
        )
    data = product_accepted(product, category, reviewer=review.reviewer, model_version=version)
    emit_many(session, [("product.accepted", data)], dispatcher=dispatcher, subscribers=hooks)


def emit_model_activated(
    session: Session, row: ModelVersion, *, dispatcher: Dispatcher | None
) -> None:
    """``model.activated`` for a version just made active."""
    emit_many(session, [("model.activated", model_activated(row))], dispatcher=dispatcher)

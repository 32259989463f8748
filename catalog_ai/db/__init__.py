"""The catalog database: SQLAlchemy models and sessions; migrations in :mod:`catalog_ai.db.migrate`
(imported on its own: it loads Alembic)."""

from __future__ import annotations

from catalog_ai.db.base import NAMING_CONVENTION, Base
from catalog_ai.db.insert import conflict_insert
from catalog_ai.db.models import (
    HUMAN_SOURCES,
    ApiKey,
    ApiScope,
    Category,
    DeliveryStatus,
    Embedding,
    IdempotencyKey,
    LabelSource,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    PrototypeRevision,
    Review,
    ReviewAction,
    Suggestion,
    SuggestionSource,
    TaxonomyVersion,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)
from catalog_ai.db.session import (
    dispose_engines,
    get_engine,
    session_factory,
    unit_of_work,
)
from catalog_ai.db.types import UTCDateTime, utc_now

__all__ = [
    "HUMAN_SOURCES",
    "NAMING_CONVENTION",
    "ApiKey",
    "ApiScope",
    "Base",
    "Category",
    "DeliveryStatus",
    "Embedding",
    "IdempotencyKey",
    "LabelSource",
    "ModelVersion",
    "Product",
    "ProductImage",
    "ProductStatus",
    "PrototypeRevision",
    "Review",
    "ReviewAction",
    "Suggestion",
    "SuggestionSource",
    "TaxonomyVersion",
    "UTCDateTime",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "conflict_insert",
    "dispose_engines",
    "get_engine",
    "session_factory",
    "unit_of_work",
    "utc_now",
]

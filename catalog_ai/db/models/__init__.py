"""The catalog's tables, one small module each."""

from __future__ import annotations

from catalog_ai.db.models.api_key import ApiKey, ApiScope, IdempotencyKey
from catalog_ai.db.models.audit import Audit, AuditTally, AuditVerdict, PromotionRecord
from catalog_ai.db.models.category import Category
from catalog_ai.db.models.embedding import Embedding
from catalog_ai.db.models.model_version import ModelVersion
from catalog_ai.db.models.product import HUMAN_SOURCES, LabelSource, Product, ProductStatus
from catalog_ai.db.models.product_image import ProductImage
from catalog_ai.db.models.prototype_revision import PrototypeRevision
from catalog_ai.db.models.review import Review, ReviewAction
from catalog_ai.db.models.sign_in_throttle import SignInThrottle
from catalog_ai.db.models.suggestion import Suggestion, SuggestionSource
from catalog_ai.db.models.summary import (
    BranchFigure,
    ProductStatusCount,
    ProductStatusDelta,
    SummaryRefresh,
)
from catalog_ai.db.models.taxonomy_version import TaxonomyVersion
from catalog_ai.db.models.webhook import (
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)

__all__ = [
    "HUMAN_SOURCES",
    "ApiKey",
    "ApiScope",
    "Audit",
    "AuditTally",
    "AuditVerdict",
    "BranchFigure",
    "Category",
    "DeliveryStatus",
    "Embedding",
    "IdempotencyKey",
    "LabelSource",
    "ModelVersion",
    "Product",
    "ProductImage",
    "ProductStatus",
    "ProductStatusCount",
    "ProductStatusDelta",
    "PromotionRecord",
    "PrototypeRevision",
    "Review",
    "ReviewAction",
    "SignInThrottle",
    "Suggestion",
    "SuggestionSource",
    "SummaryRefresh",
    "TaxonomyVersion",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
]

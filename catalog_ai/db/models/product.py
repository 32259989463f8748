"""A product to classify, its life cycle (``ProductStatus``) and who gave its category
(``LabelSource``)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Float, ForeignKey, Index, String, Text, and_, func, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from catalog_ai.db.base import Base
from catalog_ai.db.types import str_enum, utc_now

if TYPE_CHECKING:
    from catalog_ai.db.models.category import Category
    from catalog_ai.db.models.product_image import ProductImage
    from catalog_ai.db.models.review import Review
    from catalog_ai.db.models.suggestion import Suggestion

__all__ = ["HUMAN_SOURCES", "LabelSource", "Product", "ProductStatus"]


class ProductStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker
    PROCESSING = "processing"  # a worker has it
    SUGGESTED = "suggested"  # has a suggestion, waiting for review
    ACCEPTED = "accepted"  # has its final category
    REJECTED = "rejected"  # a reviewer said it belongs nowhere
    FAILED = "failed"  # could not be classified; ``error`` says why


class LabelSource(enum.StrEnum):
    """Who decided a product's category (``Product.label_source``).

    The one rule every part of the system follows: a category a person decided
    (:attr:`is_human`) is never changed by a model, is what training from the catalog learns
    from, and counts as labelled in every progress figure; a model's category is a guess that
    the next model may replace and that training uses only when asked to.
    """

    IMPORT = "import"  # a labelled photo imported by staff (catalog import-folder)
    REVIEW = "review"  # a reviewer's verdict (accept, correct, new category, reject)
    FEWSHOT = "fewshot"  # an example photo a person gave with `fewshot add`
    MODEL = "model"  # auto-accepted from a model's confident suggestion

    @property
    def is_human(self) -> bool:
        """Whether a person decided this label (see the class docstring)."""
        return self in HUMAN_SOURCES


#: The label sources that are a person's decision. The only place this is decided.
HUMAN_SOURCES: frozenset[LabelSource] = frozenset(
    {LabelSource.IMPORT, LabelSource.REVIEW, LabelSource.FEWSHOT}
)


_SUGGESTED = "status = 'suggested'"


def _queue_index(name: str, *columns: str, where: str = _SUGGESTED, **kw: Any) -> Index:
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where), **kw)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        # The stale-work sweep: "pending/processing for longer than N minutes".
        Index(None, "status", "status_changed_at"),
        # A page of products of one status in id order (the API's keyset pages): SQLite
        # otherwise read the status index and sorted 62,000 rows at 100,000 products.
        Index(None, "status", "id"),
        # The review queue, least confident first, and one index per filter: only waiting
        # products are in them, so a page is the front of one index (a branch: its range)
        # whatever the catalogue's size (services.review_queue, migration 0008_scale).
        _queue_index("ix_products_review_queue", "suggestion_confidence", "id", "suggestion_path"),
        _queue_index(
            "ix_products_queue_path",
            "suggestion_path",
            "suggestion_confidence",
            "id",
            postgresql_ops={"suggestion_path": "varchar_pattern_ops"},
        ),
        _queue_index(
            "ix_products_queue_source", "suggestion_source", "suggestion_confidence", "id"
        ),
        _queue_index(
            "ix_products_queue_model", "suggestion_model_version_id", "suggestion_confidence", "id"
        ),
        _queue_index(
            "ix_products_queue_open_set",
            "suggestion_confidence",
            "id",
            where=f"{_SUGGESTED} AND suggestion_open_set",
        ),
    )
    # Fetch server-set timestamps (updated_at) at flush, so they stay readable after the session.
    # SQLAlchemy types it as an instance variable, so it cannot be annotated ClassVar.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(512), default="", server_default="")
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[ProductStatus] = mapped_column(
        str_enum(ProductStatus, "product_status"),
        default=ProductStatus.PENDING,
        server_default=ProductStatus.PENDING.value,
    )
    error: Mapped[str | None] = mapped_column(Text)  # why it failed
    # The final, accepted category.
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="RESTRICT"), index=True
    )
    # Who gave ``category_id`` (or the rejection); None while only suggested.
    label_source: Mapped[LabelSource | None] = mapped_column(str_enum(LabelSource, "label_source"))
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    status_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # A near-duplicate found on upload: the catalog product that looks the same, and how close.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), index=True
    )
    duplicate_score: Mapped[float | None] = mapped_column(Float)
    # sha256 of a file refused at ingest (it has no photo row): ingesting the same bad bytes
    # again reports this product instead of adding another failed one.
    rejected_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # What a shop feed says beside the photos (vendor, type, tags, handle): kept, not used by
    # the model.
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The product's current suggestion: the newest one (a re-classification supersedes older
    # ones), and a copy of its confidence for the review queue's indexes. Kept by a database trigger
    # on suggestion inserts (migration 0008_scale), whoever writes them; without it every queue
    # read would find each product's newest suggestion by aggregating the suggestions table.
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("suggestions.id", ondelete="SET NULL", use_alter=True), index=True
    )
    suggestion_confidence: Mapped[float | None] = mapped_column(Float)
    # ... and of what the queue filters by (the suggestion's path, source, open-set flag and
    # model version; no foreign key: the suggestion's own row holds that one).
    suggestion_path: Mapped[str | None] = mapped_column(String(1024))
    suggestion_source: Mapped[str | None] = mapped_column(String(16))
    suggestion_open_set: Mapped[bool | None]
    suggestion_model_version_id: Mapped[int | None]

    category: Mapped[Category | None] = relationship()
    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ProductImage.id",
    )
    suggestions: Mapped[list[Suggestion]] = relationship(
        back_populates="product",
        foreign_keys="Suggestion.product_id",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Suggestion.id",
    )
    current_suggestion: Mapped[Suggestion | None] = relationship(
        foreign_keys=[suggestion_id], post_update=True, viewonly=True
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Review.id",
    )

    @hybrid_property
    def labelled_by_person(self) -> bool:
        """A person decided this product's label (:attr:`LabelSource.is_human`). The same rule
        works in queries as SQL, false (never NULL) for a product without a label."""
        return self.label_source is not None and LabelSource(self.label_source).is_human

    @labelled_by_person.inplace.expression
    @classmethod
    def _labelled_by_person_expression(cls) -> ColumnElement[bool]:
        # IS NOT NULL first: NOT (NULL IN (...)) is NULL, which a WHERE would treat as false.
        return and_(cls.label_source.is_not(None), cls.label_source.in_(sorted(HUMAN_SOURCES)))

    @validates("status")
    def _stamp_status_change(self, key: str, value: ProductStatus) -> ProductStatus:
        # Every status change restarts the clock the stale-work sweep looks at.
        self.status_changed_at = utc_now()
        return value

    def __repr__(self) -> str:
        return f"Product(id={self.id!r}, status={self.status!r}, title={self.title!r})"

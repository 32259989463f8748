"""Initial schema: taxonomy, categories, products and photos, models, suggestions, reviews.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22

Generated with ``alembic revision --autogenerate`` and tidied by hand. Constraint names follow
``catalog_ai.db.base.NAMING_CONVENTION``; ``op.f()`` marks them as final.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enums' values as of this revision (never import them from the models).
PRODUCT_STATUS = ("pending", "processing", "suggested", "accepted", "rejected", "failed")
SUGGESTION_SOURCE = ("head", "prototype", "abstain")
REVIEW_ACTION = ("accept", "accept_partial", "correct", "new_category", "reject")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc_timestamp(name: str, *, nullable: bool = False, now: bool = True) -> sa.Column:
    default = sa.func.now() if now else None  # CURRENT_TIMESTAMP on SQLite, now() on PostgreSQL
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=name)


def upgrade() -> None:
    op.create_table(
        "taxonomy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        _utc_timestamp("created_at"),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("n_categories", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taxonomy_versions")),
    )
    op.create_index(op.f("ix_taxonomy_versions_fingerprint"), "taxonomy_versions", ["fingerprint"])

    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("taxonomy_version", sa.Integer(), nullable=False),
        _utc_timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["categories.id"],
            name=op.f("fk_categories_parent_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["taxonomy_version"],
            ["taxonomy_versions.id"],
            name=op.f("fk_categories_taxonomy_version_taxonomy_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("external_id", name=op.f("uq_categories_external_id")),
        sa.UniqueConstraint("path", name=op.f("uq_categories_path")),
    )
    op.create_index(op.f("ix_categories_parent_id"), "categories", ["parent_id"])
    op.create_index(op.f("ix_categories_taxonomy_version"), "categories", ["taxonomy_version"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("backbone", sa.String(length=128), nullable=False),
        sa.Column("bundle_path", sa.String(length=1024), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("taxonomy_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _utc_timestamp("created_at"),
        _utc_timestamp("activated_at", nullable=True, now=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_model_versions_version")),
    )
    # At most one active model: a partial unique index over the rows WHERE is_active.
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["is_active"],
        unique=True,
        sqlite_where=sa.text("is_active"),
        postgresql_where=sa.text("is_active"),
    )

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=512), server_default="", nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("label_source", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _utc_timestamp("created_at"),
        _utc_timestamp("updated_at"),
        _utc_timestamp("status_changed_at"),
        _one_of("status", PRODUCT_STATUS, op.f("ck_products_product_status")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_products_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("external_id", name=op.f("uq_products_external_id")),
    )
    op.create_index(op.f("ix_products_category_id"), "products", ["category_id"])
    # The stale-work sweep.
    op.create_index(
        op.f("ix_products_status_status_changed_at"), "products", ["status", "status_changed_at"]
    )

    op.create_table(
        "product_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("stored_path", sa.String(length=1024), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        _utc_timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_images_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_images")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_product_images_content_hash")),
    )
    op.create_index(op.f("ix_product_images_product_id"), "product_images", ["product_id"])

    op.create_table(
        "embeddings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        _utc_timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["product_images.id"],
            name=op.f("fk_embeddings_image_id_product_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_embeddings_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint(
            "image_id", "model_version_id", name=op.f("uq_embeddings_image_id_model_version_id")
        ),
    )
    op.create_index(op.f("ix_embeddings_model_version_id"), "embeddings", ["model_version_id"])

    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("levels", _json(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("open_set", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _utc_timestamp("created_at"),
        _one_of("source", SUGGESTION_SOURCE, op.f("ck_suggestions_suggestion_source")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_suggestions_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_suggestions_model_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_suggestions_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestions")),
        # One suggestion per product and model: a redelivered task cannot add a second one.
        sa.UniqueConstraint(
            "product_id",
            "model_version_id",
            name=op.f("uq_suggestions_product_id_model_version_id"),
        ),
    )
    op.create_index(op.f("ix_suggestions_category_id"), "suggestions", ["category_id"])
    op.create_index(op.f("ix_suggestions_confidence"), "suggestions", ["confidence"])
    op.create_index(op.f("ix_suggestions_model_version_id"), "suggestions", ["model_version_id"])

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("suggestion_id", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _utc_timestamp("created_at"),
        _one_of("action", REVIEW_ACTION, op.f("ck_reviews_review_action")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.id"],
            name=op.f("fk_reviews_category_id_categories"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_reviews_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["suggestion_id"],
            ["suggestions.id"],
            name=op.f("fk_reviews_suggestion_id_suggestions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_category_id"), "reviews", ["category_id"])
    op.create_index(op.f("ix_reviews_product_id"), "reviews", ["product_id"])
    op.create_index(op.f("ix_reviews_suggestion_id"), "reviews", ["suggestion_id"])


def downgrade() -> None:
    # Children before parents; a table's indexes and constraints go with it.
    for table in (
        "reviews",
        "suggestions",
        "embeddings",
        "product_images",
        "products",
        "model_versions",
        "categories",
        "taxonomy_versions",
    ):
        op.drop_table(table)

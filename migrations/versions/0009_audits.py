"""Audits of auto-accepted products (a uniform sample a person checks), the per-version tally
of auto-accepts they are drawn from, and the promote-if-better decisions.

New tables only: ``products`` is not rebuilt, so its status triggers (0008) stay as they are.

Revision ID: 0009_audits
Revises: 0008_scale
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_audits"
down_revision: str | None = "0008_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("suggestion_id", sa.Integer(), nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        _created_at(),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("reviewer", sa.String(length=255), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("true_path", sa.String(length=1024), nullable=True),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("verdict IN ('correct', 'incorrect')",
                           name=op.f("ck_audits_audit_verdict")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE",
                                name=op.f("fk_audits_product_id_products")),
        sa.ForeignKeyConstraint(["suggestion_id"], ["suggestions.id"], ondelete="SET NULL",
                                name=op.f("fk_audits_suggestion_id_suggestions")),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_audits_model_version_id_model_versions")),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"], ondelete="SET NULL",
                                name=op.f("fk_audits_category_id_categories")),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"], ondelete="SET NULL",
                                name=op.f("fk_audits_review_id_reviews")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
        sa.UniqueConstraint("suggestion_id", name=op.f("uq_audits_suggestion_id")),
    )
    with op.batch_alter_table("audits") as batch:
        batch.create_index(op.f("ix_audits_product_id"), ["product_id"])
        batch.create_index(op.f("ix_audits_model_version_id"), ["model_version_id"])
        batch.create_index(op.f("ix_audits_category_id"), ["category_id"])
        batch.create_index(op.f("ix_audits_review_id"), ["review_id"])
        batch.create_index(op.f("ix_audits_resolved_at_id"), ["resolved_at", "id"])
    op.create_table(
        "audit_tallies",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("auto_accepted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("audited", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_audit_tallies_model_version_id_model_versions")),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_audit_tallies")),
    )
    op.create_table(
        "promotion_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("against_id", sa.Integer(), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("comparison", _json(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], ondelete="CASCADE",
            name=op.f("fk_promotion_decisions_model_version_id_model_versions")),
        sa.ForeignKeyConstraint(
            ["against_id"], ["model_versions.id"], ondelete="SET NULL",
            name=op.f("fk_promotion_decisions_against_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_decisions")),
    )
    with op.batch_alter_table("promotion_decisions") as batch:
        batch.create_index(op.f("ix_promotion_decisions_model_version_id"), ["model_version_id"])
        batch.create_index(op.f("ix_promotion_decisions_against_id"), ["against_id"])


def downgrade() -> None:
    op.drop_table("promotion_decisions")
    op.drop_table("audit_tallies")
    op.drop_table("audits")

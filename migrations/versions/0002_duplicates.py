"""Near-duplicate flags on products.

Revision ID: 0002_duplicates
Revises: 0001_initial
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_duplicates"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_score", sa.Float(), nullable=True))
        batch.create_index(op.f("ix_products_duplicate_of_id"), ["duplicate_of_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_products_duplicate_of_id_products"), "products", ["duplicate_of_id"], ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f("fk_products_duplicate_of_id_products"), type_="foreignkey")
        batch.drop_index(op.f("ix_products_duplicate_of_id"))
        batch.drop_column("duplicate_score")
        batch.drop_column("duplicate_of_id")

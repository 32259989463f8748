"""The content hash of a file refused at ingest, so the same bad bytes give the same product.

Revision ID: 0005_ingest
Revises: 0004_auth
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ingest"
down_revision: str | None = "0004_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("rejected_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f("uq_products_rejected_hash"), ["rejected_hash"])


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f("uq_products_rejected_hash"), type_="unique")
        batch.drop_column("rejected_hash")

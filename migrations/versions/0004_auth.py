"""Failed sign-ins per name and per client address (dashboard lockout).

Revision ID: 0004_auth
Revises: 0003_provenance
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_auth"
down_revision: str | None = "0003_provenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )
    op.create_index(op.f("ix_sign_in_throttles_locked_until"), "sign_in_throttles", ["locked_until"])
    op.create_index(op.f("ix_sign_in_throttles_updated_at"), "sign_in_throttles", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_throttles_updated_at"), table_name="sign_in_throttles")
    op.drop_index(op.f("ix_sign_in_throttles_locked_until"), table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")

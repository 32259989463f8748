"""Label provenance as a closed set: ``products.label_source`` in (import, review, fewshot, model).

Revision ID: 0003_provenance
Revises: 0002_duplicates
Create Date: 2026-12-01

Model-accepted labels were stored as ``auto``; they become ``model``, the name the rest of the
system uses for them (``LabelSource.MODEL``), and a CHECK constraint keeps any other value out.
A value outside the four known ones is refused before anything changes: nobody can tell
whether a person or a model gave it, and guessing either way is worse than asking.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog_ai.errors import DatabaseError

revision: str = "0003_provenance"
down_revision: str | None = "0002_duplicates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the values as of this revision (never import them from the models).
LABEL_SOURCE = ("import", "review", "fewshot", "model")
BEFORE = ("import", "review", "fewshot", "auto")
CHECK = "ck_products_label_source"


def _rename(old: str, new: str) -> None:
    op.execute(
        sa.text("UPDATE products SET label_source = :new WHERE label_source = :old").bindparams(
            old=old, new=new
        )
    )


def upgrade() -> None:
    unknown = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT label_source, COUNT(*) FROM products WHERE label_source IS NOT NULL "
                "AND label_source NOT IN :known GROUP BY label_source ORDER BY label_source"
            ).bindparams(sa.bindparam("known", BEFORE, expanding=True))
        )
        .all()
    )
    if unknown:
        found = ", ".join(f"{value!r} ({n} products)" for value, n in unknown)
        raise DatabaseError(
            f"products.label_source holds values that are not a known label source: {found}; "
            f"set each to one of {', '.join(BEFORE)} (auto = accepted from a model) or NULL, "
            "then migrate again"
        )
    _rename("auto", "model")
    listed = ", ".join(f"'{value}'" for value in LABEL_SOURCE)
    with op.batch_alter_table("products") as batch:
        batch.create_check_constraint(op.f(CHECK), f"label_source IN ({listed})")


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f(CHECK), type_="check")
    _rename("model", "auto")

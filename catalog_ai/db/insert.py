"""``INSERT ... ON CONFLICT`` for the databases the catalog runs on.

Classification and embedding insert rows that a redelivered task or a racing worker may have
stored already; ``on_conflict_do_nothing`` makes the second insert harmless. SQLAlchemy spells
that per dialect, so this picks the dialect's ``insert``.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog_ai.errors import CatalogAIError

__all__ = ["conflict_insert"]


def conflict_insert(session: Session, table):
    """The ``insert(table)`` of the session's dialect, which has ``on_conflict_do_nothing``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise CatalogAIError(
        f"the {dialect} database is not supported by the classifier (it needs INSERT ... ON "
        "CONFLICT); use SQLite or PostgreSQL"
    )

"""``INSERT ... ON CONFLICT`` for the databases the catalog runs on.

Classification and embedding insert rows that a redelivered task or a racing worker may have
stored already; ``on_conflict_do_nothing`` makes the second insert harmless. SQLAlchemy spells
that per dialect, so this picks the dialect's ``insert``.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import FromClause, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from catalog_ai.errors import CatalogAIError

__all__ = ["conflict_insert"]


def conflict_insert(session: Session, table: FromClause) -> Any:
    """The ``insert(table)`` of the session's dialect, which has ``on_conflict_do_nothing``."""
    dialect = session.get_bind().dialect.name
    target = cast("Table", table)  # an ORM model's __table__ is typed as a FromClause
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise CatalogAIError(
        f"the {dialect} database is not supported (the catalog needs INSERT ... ON CONFLICT); "
        "use SQLite or PostgreSQL"
    )

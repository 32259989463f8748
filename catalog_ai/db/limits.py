"""The lengths of the catalog's category columns, in code points (as PostgreSQL's VARCHAR(n)).

One source of truth for two readers: :mod:`catalog_ai.db.models.category` builds its VARCHAR
columns from these numbers, and :mod:`catalog_ai.taxonomy` refuses names, paths and ids that would
not fit (PostgreSQL refuses longer values, SQLite stores them: checking keeps an embedded catalog
movable to PostgreSQL). It imports nothing, so the domain may read it without pulling in
SQLAlchemy.
"""

from __future__ import annotations

__all__ = ["MAX_ID_CHARS", "MAX_NAME_CHARS", "MAX_PATH_CHARS"]

MAX_NAME_CHARS = 255  # categories.name
MAX_PATH_CHARS = 1024  # categories.path, the names joined with " > "
MAX_ID_CHARS = 64  # categories.external_id (a Google or CSV id)

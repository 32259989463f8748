"""Schema migrations (Alembic), driven from code: ``upgrade()``, ``downgrade()``, ``check()``.

The Alembic scripts live in the source tree's ``migrations/`` folder, next to the package; the
``alembic`` command line reads the same folder through ``alembic.ini``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util.exc import CommandError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from catalog_ai.db.base import Base
from catalog_ai.db.session import new_engine, resolve_url, safe_url
from catalog_ai.errors import DatabaseError

__all__ = [
    "MIGRATIONS_DIR",
    "check",
    "compare_options",
    "current_revision",
    "downgrade",
    "ensure_schema_current",
    "head_revision",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


#: Indexes the migrations create that the models do not declare: PostgreSQL-only (the trigram
#: index of migration ``0008_scale``, made only where the ``pg_trgm`` extension exists).
DATABASE_ONLY_INDEXES = frozenset({"ix_products_title_trgm"})


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, _: Any) -> bool:
    return not (type_ == "index" and reflected and name in DATABASE_ONLY_INDEXES)


def compare_options() -> dict[str, Any]:
    """Options shared by ``migrations/env.py`` (autogenerate) and :func:`check`."""
    return {"compare_type": True, "include_object": _include_object}


def _script_location() -> Path:
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise DatabaseError(
            f"the migration scripts are missing: expected {MIGRATIONS_DIR / 'env.py'}. "
            "catalog_ai must be installed from its source tree in editable mode "
            "(pip install -e /path/to/catalog_ai, as scripts/bootstrap.sh does)"
        )
    return MIGRATIONS_DIR


def _config(url: str | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    # Passed as an attribute, not as sqlalchemy.url: configparser would mangle "%" in passwords.
    cfg.attributes["catalog_ai.url"] = resolve_url(url)
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(url=""))


@contextmanager
def _errors(url: str) -> Iterator[None]:
    """Alembic and driver failures become DatabaseErrors that name the database."""
    try:
        yield
    except DatabaseError:
        raise
    except CommandError as exc:
        raise DatabaseError(f"migrating the database at {safe_url(url)!r} failed: {exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_connect_error(exc):
            raise DatabaseError(
                f"cannot connect to the database at {safe_url(url)!r}: {str(exc.orig).strip()}; "
                "is the server running and the URL right (CATALOG_AI_DATABASE_URL)?"
            ) from exc
        raise DatabaseError(
            f"database error at {safe_url(url)!r}: {str(exc.orig).strip()}"
        ) from exc


def _is_connect_error(exc: DBAPIError) -> bool:
    # SQLAlchemy does not mark failed connection attempts: use the SQLSTATE where the server sent
    # one (3D000 no such database, 28xxx authentication), else the drivers' usual wording.
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or ""
    if code == "3D000" or code.startswith("28"):
        return True
    text = str(exc.orig).lower()
    markers = (
        "connection refused",
        "could not connect",
        "connection failed",
        "unable to open database",
        "could not translate host name",
        "name or service not known",
    )
    return any(marker in text for marker in markers)


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` (default: the configured one) up to ``revision``."""
    url = resolve_url(url)
    with _errors(url):
        command.upgrade(_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base``: drop every table)."""
    url = resolve_url(url)
    with _errors(url):
        command.downgrade(_config(url), revision)


def head_revision() -> str:
    """The revision the code expects (the newest migration script)."""
    try:
        head = _script().get_current_head()
    except CommandError as exc:  # several heads: two branches need a merge revision
        raise DatabaseError(
            f"the migration scripts in {MIGRATIONS_DIR} are inconsistent: {exc}"
        ) from exc
    if head is None:
        raise DatabaseError(f"no migration scripts found in {MIGRATIONS_DIR / 'versions'}")
    return head


def _revision_of(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at; ``None`` for a database never migrated."""
    url = resolve_url(url)
    engine = new_engine(url, poolclass=NullPool)
    try:
        with _errors(url):
            return _revision_of(engine)
    finally:
        engine.dispose()


def _is_known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False


def ensure_schema_current(engine: Engine) -> None:
    """Raise :class:`DatabaseError` unless the database is migrated to the code's head revision."""
    url = engine.url
    with _errors(url.render_as_string(hide_password=False)):
        current = _revision_of(engine)
    head = head_revision()
    if current == head:
        return
    if current is not None and not _is_known(current):
        raise DatabaseError(
            f"database at {safe_url(url)} is at revision {current}, which this version of "
            f"catalog_ai does not know (code expects {head}): a newer catalog_ai migrated it; "
            "upgrade catalog_ai"
        )
    shown = current if current is not None else "none (not migrated)"
    raise DatabaseError(
        f"database at {safe_url(url)} is at revision {shown}, code expects {head}: "
        "run `catalog-ai db upgrade`"
    )


def check(url: str | None = None) -> None:
    """Raise :class:`DatabaseError` if the migrated schema differs from the models."""
    url = resolve_url(url)
    engine = new_engine(url, poolclass=NullPool)
    try:
        with _errors(url), engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=compare_options())
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    if diffs:
        listed = "; ".join(repr(diff) for diff in diffs)
        raise DatabaseError(
            f"the schema of the database at {safe_url(url)} differs from the models: {listed}. "
            "Run `catalog-ai db upgrade`; if it is already at head, a migration is missing "
            "(alembic revision --autogenerate)"
        )

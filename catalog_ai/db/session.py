"""Engines, sessions and the one place that commits: :func:`unit_of_work`.

Sessions are opened at the edge (CLI command, worker task, dashboard action)::

    with unit_of_work() as session:
        classify_product(session=session, product_id=42)

Services take ``session`` and never commit; leaving the block commits, an exception rolls back.
A service that must act once its rows are visible to others (enqueue a task for them) registers
the action with :func:`on_commit`: it runs after the commit and is dropped on a rollback.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from catalog_ai.errors import DatabaseError
from catalog_ai.settings import get_settings

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "dispose_engines",
    "get_engine",
    "new_engine",
    "on_commit",
    "resolve_url",
    "safe_url",
    "session_factory",
    "unit_of_work",
]

# Several worker processes share one SQLite file in the embedded set-up: wait for the lock
# instead of failing at once with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000

_URL_FIX = (
    "set CATALOG_AI_DATABASE_URL to a SQLAlchemy URL such as sqlite:////abs/path/catalog.db "
    "or postgresql+psycopg://user:password@host:5432/dbname"
)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def safe_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: hide whatever sits between "user:" and "@"
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def resolve_url(url: str | None) -> str:
    """``url``, or the configured ``CATALOG_AI_DATABASE_URL`` when it is ``None``."""
    return url if url is not None else get_settings().database_url


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers (the dashboard) never block the writer (a worker), and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster
        cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FOREIGN KEYs unless told
    finally:
        cursor.close()


def _plan_each_statement(dbapi_connection: Any, connection_record: Any) -> None:
    # psycopg prepares a statement on the server after 5 runs, and PostgreSQL may then keep one
    # generic plan for it, blind to its parameters: a branch's ``LIKE 'A > B > %'`` can no longer
    # use the path index's range, nor a small filter its partial index. At 100,000 products the
    # review queue's count for a small branch took 100 ms with the generic plan, 0.3 ms with a
    # plan made for its values (docs/BENCHMARKS.md, issue 16). Planning costs well under 1 ms.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if str(url.query.get("uri", "")).lower() in {"1", "true"}:
        return None
    return Path(database).expanduser()


def new_engine(url: str, **kwargs: Any) -> Engine:
    """A new, uncached engine configured like :func:`get_engine`'s (``kwargs`` go to SQLAlchemy).

    Migrations use this with ``poolclass=NullPool`` so that their connection settings (SQLite
    foreign keys switched off while tables are rebuilt) never leak into the shared pool.
    """
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"cannot parse the database URL {safe_url(url)!r} ({exc}); {_URL_FIX}"
        ) from None

    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        path = _sqlite_file(parsed)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the directory {str(path.parent)!r} for the SQLite database "
                    f"{safe_url(parsed)!r}: {exc.strerror}; choose a writable location"
                ) from None
    else:
        kwargs.setdefault("pool_pre_ping", True)  # survive server restarts and idle timeouts

    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DatabaseError(
            f"cannot use the database URL {safe_url(parsed)!r}: the driver is not available "
            f"({exc}). Install it, or use a driver catalog_ai ships with: "
            "sqlite:///path or postgresql+psycopg://..."
        ) from None
    except ArgumentError as exc:
        raise DatabaseError(
            f"cannot use the database URL {safe_url(parsed)!r} ({exc}); {_URL_FIX}"
        ) from None
    if engine.dialect.is_async:
        engine.dispose()
        raise DatabaseError(
            f"the database URL {safe_url(parsed)!r} names an asyncio driver; catalog_ai uses "
            "synchronous drivers: use sqlite:///... or postgresql+psycopg://..."
        )
    if sqlite:
        event.listen(engine, "connect", _set_sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _plan_each_statement)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: ``CATALOG_AI_DATABASE_URL``), created once."""
    url = resolve_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = new_engine(url)
        return engine


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """The ``sessionmaker`` bound to :func:`get_engine` for ``url``."""
    url = resolve_url(url)
    engine = get_engine(url)
    with _lock:
        factory = _factories.get(url)
        if factory is None or factory.kw.get("bind") is not engine:
            # expire_on_commit=False: objects stay readable after the unit of work ends.
            factory = _factories[url] = sessionmaker(bind=engine, expire_on_commit=False)
        return factory


def dispose_engines(*, close: bool = True) -> None:
    """Close every pooled connection and forget all engines (tests, forked workers).

    In a process just forked from one that had connections, pass ``close=False``: the pooled
    connections then are only forgotten, never closed, because closing them would also end the
    parent's sessions on the shared sockets.
    """
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
        _factories.clear()
    for engine in engines:
        engine.dispose(close=close)


def _is_missing_table(exc: DBAPIError) -> bool:
    orig = exc.orig
    # PostgreSQL: SQLSTATE 42P01 undefined_table (psycopg 3 .sqlstate, psycopg2 .pgcode).
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == "42P01":
        return True
    return "no such table" in str(orig).lower()


def _missing_schema_error(url: str | URL, exc: DBAPIError) -> DatabaseError:
    return DatabaseError(
        f"the database at {safe_url(url)!r} has no catalog tables ({str(exc.orig).strip()}): "
        "run `catalog-ai db upgrade`"
    )


@contextmanager
def unit_of_work(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back when it raises."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
        callback_error = session.info.pop(_ON_COMMIT_ERROR, None)
        if callback_error is not None:
            raise callback_error
    except DBAPIError as exc:
        session.rollback()
        if _is_missing_table(exc):
            bind = session.get_bind()  # an Engine or a Connection: both know their engine
            raise _missing_schema_error(bind.engine.url, exc) from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- on_commit ------------------------------------------------------------------------------------

_ON_COMMIT = "catalog_ai.on_commit"
_ON_COMMIT_ERROR = "catalog_ai.on_commit_error"


def on_commit(session: Session, fn: Callable[[], object]) -> None:
    """Run ``fn()`` once ``session``'s transaction has committed (saleor's ``on_commit``).

    A task enqueued before the commit can reach a worker before the rows it names are visible;
    one enqueued after a rollback names rows that never existed. Callbacks run in registration
    order after the outermost commit; a rollback drops them (a savepoint's rollback drops the
    ones registered inside it). If one raises, the others still run and :func:`unit_of_work`
    raises the first error after the commit: the data is committed by then.
    """
    if not session.in_transaction():
        session.begin()  # so that the callback belongs to a transaction a rollback can end
    owner = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_ON_COMMIT, []).append((owner, fn))


def _inside(owner: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while owner is not None:
        if owner is ended:
            return True
        owner = owner.parent
    return False


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    # Raising inside SQLAlchemy's commit would leave the session half-closed: keep the first
    # error for unit_of_work to raise once the commit is complete.
    for _, fn in session.info.pop(_ON_COMMIT, []):
        try:
            fn()
        except Exception as exc:
            session.info.setdefault(_ON_COMMIT_ERROR, exc)


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_savepoint_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested and _ON_COMMIT in session.info:
        session.info[_ON_COMMIT] = [
            (owner, fn)
            for owner, fn in session.info[_ON_COMMIT]
            if not _inside(owner, previous_transaction)
        ]


@event.listens_for(Session, "after_transaction_end")
def _drop_on_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without after_commit having taken the callbacks:
    # rolled back or closed uncommitted.
    if transaction.parent is None:
        session.info.pop(_ON_COMMIT, None)

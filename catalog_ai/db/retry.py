"""One chunk of work in its own transaction, tried again when it lost a lock race.

Two writers that touch the same rows (two ingests, an import and an upload) can make the
database give up on one of them: PostgreSQL ends one transaction of a deadlock (SQLSTATE 40P01)
or a serialisation failure (40001); SQLite raises "database is locked" once its busy timeout is
over. The loser's chunk is rolled back whole, so running it again in a fresh transaction is safe:
what the other writer committed meanwhile then shows up as duplicates.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from catalog_ai.db.session import unit_of_work

__all__ = ["CHUNK_ATTEMPTS", "lost_lock_race", "run_chunk"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_ATTEMPTS = 5


class _LostLockRace(Exception):
    """Carries a lost race out of ``unit_of_work`` (which rolls back) to the retry loop."""


def lost_lock_race(exc: DBAPIError) -> bool:
    """Whether ``exc`` is the database giving up on this transaction for another's sake."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in {"40P01", "40001"} or "database is locked" in str(exc.orig).lower()


def run_chunk(
    fn: Callable[[Session], T],
    *,
    what: str = "chunk",
    attempts: int = CHUNK_ATTEMPTS,
    url: str | None = None,
) -> T:
    """``fn(session)`` in a fresh :func:`unit_of_work`, committed; its result.

    Tried again (up to ``attempts`` times in all, with a short random back-off) only when a
    statement of ``fn`` itself lost a lock race. An error of the commit or after it (an on-commit
    callback) is never retried: a chunk that may have committed must not run twice. ``fn`` must
    therefore be safe to run again from the start (anything it reports, such as progress, it
    should report once per item across attempts).
    """
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(url) as session:
                try:
                    result = fn(session)
                except DBAPIError as exc:
                    if attempt < attempts and lost_lock_race(exc):
                        raise _LostLockRace from exc
                    raise
            return result
        except _LostLockRace as race:
            log.info("%s lost a lock race (%s); trying again", what, race.__cause__)
            time.sleep(0.05 * attempt * (1 + random.random()))
    raise AssertionError("unreachable: the last attempt returns or raises")

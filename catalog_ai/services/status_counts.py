"""Products per status for the whole catalogue, exact and read from a handful of rows.

Triggers on ``products`` (migration ``0008_scale``) insert one delta row per change into
``product_status_deltas``; the count of a status is its folded total in
``product_status_counts`` plus the deltas not folded yet. Inserting a delta never waits on
another writer (no shared counter row is updated in the writer's transaction), so ingest and
review stay as concurrent as they were. :func:`fold_status_deltas` moves the deltas into the
totals (the worker's beat runs it every ``CATALOG_AI_SWEEP_INTERVAL`` seconds) so that the sum
a read makes stays short; a fold that races another one, or a writer, loses nothing: each delta
row is deleted by exactly one fold, which adds exactly the rows it deleted.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from catalog_ai.db import ProductStatus, ProductStatusCount, ProductStatusDelta
from catalog_ai.db.insert import conflict_insert

__all__ = ["fold_status_deltas", "total_status_counts"]


def total_status_counts(session: Session) -> dict[str, int]:
    """Products per status (every status listed, zeros included), for the whole catalogue."""
    parts = union_all(
        select(ProductStatusCount.status, ProductStatusCount.n.label("n")),
        select(ProductStatusDelta.status, ProductStatusDelta.delta.label("n")),
    ).subquery()
    rows = session.execute(
        select(parts.c.status, func.sum(parts.c.n)).group_by(parts.c.status)
    ).all()
    counts = {status: int(n or 0) for status, n in rows}
    return {s.value: counts.get(s.value, 0) for s in ProductStatus}


def fold_status_deltas(session: Session) -> int:
    """Move the pending deltas into the totals; returns how many delta rows were folded.

    ``DELETE ... RETURNING`` first: the delete takes the rows (a concurrent fold waits for them
    and then finds them gone), and only what it deleted is added.
    """
    moved = session.execute(
        delete(ProductStatusDelta).returning(ProductStatusDelta.status, ProductStatusDelta.delta)
    ).all()
    if not moved:
        return 0
    sums: dict[str, int] = defaultdict(int)
    for status, delta in moved:
        sums[status] += int(delta)
    table = ProductStatusCount.__table__
    for status in sorted(sums):  # one order for every fold: two folds cannot deadlock
        stmt = conflict_insert(session, table).values(status=status, n=sums[status])
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["status"],
                set_={"n": table.c.n + literal_column("excluded.n")},
            )
        )
    session.flush()
    return len(moved)

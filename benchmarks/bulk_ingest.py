"""Bulk ingest through Celery: does classification keep its pace as the tables grow? (issue 16)

    .venv/bin/python benchmarks/bulk_ingest.py [--products 100000] [--workers 2] [--json FILE]

A fresh PostgreSQL database (``catalog_ai_bulk_<random>``, dropped at the end unless
``--keep``), Redis database 12 (flushed), and ``--workers`` real ``catalog-ai worker
--concurrency 1`` processes (the first with the beat: sweep, index refresh). The test server
runs with ``autovacuum = off``: ``--vacuum-every`` (60 s) stands in for it. The search index is
written after the warm-up, before the clock starts (``--no-index``: left to the beat), so that
the near-duplicate check runs from the first timed chunk to the last. The model is a
``tiny-cnn`` bundle with random weights (``benchmarks/_bulk.py``): its forward pass costs well
under a millisecond a photo, so the run measures the pipeline (ingest, queue, claims, records,
webhooks and near-duplicate checks, commits), not the network; ``--backbone`` is not offered
because at ~12 products/s a real model would take hours for 100k (see BENCHMARKS.md).

This process ingests ``--products`` generated 16 px PNGs in transactions of ``--batch`` through
``services.ingest.ingest_files`` with the Celery dispatcher (each commit enqueues its chunks of
``CATALOG_AI_CLASSIFY_CHUNK``), as fast as it can while the workers classify. After a warm-up
(every worker has loaded the model), it prints, for each tenth of the products:

- ingest rate: products/s over the tenth of ``products.created_at``;
- classification rate: products/s over the tenth of finishing times (``status_changed_at`` of
  finished products), the first tenth counted from the first timed ingest;
- the workers' own time per chunk outside the model (claim, record, near-duplicates, commits),
  from their ``classified {...}`` log lines, median per tenth of the chunks;
- the longest queue (Redis list length) and the mean 1-minute load average, sampled every 2 s
  (the machine is shared: the load says how much of it the run had);
- what the database did per product (``pg_stat_database``: buffers hit or read, rows returned;
  ``pg_stat_user_tables``: rows read by sequential scans), figures the machine's load does not
  move: a query that scans a growing table shows here as work per product that grows;

and the ratio of the last tenth's classification rate to the first.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bulk

PATHS = [f"Shop > Aisle {a} > Shelf {b}" for a in range(4) for b in range(4)]


def _finished_count(ids_from: int) -> int:
    from sqlalchemy import func, select

    from catalog_ai.db import Product, ProductStatus, unit_of_work

    done = (ProductStatus.SUGGESTED, ProductStatus.ACCEPTED, ProductStatus.FAILED)
    with unit_of_work() as s:
        return (
            s.scalar(select(func.count()).where(Product.id >= ids_from, Product.status.in_(done)))
            or 0
        )


def _database_work() -> tuple[int, int, int]:
    """(buffers hit or read, rows returned, rows read by sequential scans) in this database
    since its statistics began: what the queries cost, whatever else the shared machine does."""
    from sqlalchemy import text

    from catalog_ai.db import unit_of_work

    with unit_of_work() as s:
        row = s.execute(
            text(
                "SELECT blks_hit + blks_read, tup_returned, "
                "(SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables) "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _unfinished() -> bool:
    """Any product still waiting (the first row of the status index: no count over the table,
    which would itself be work that grows with it)."""
    from sqlalchemy import exists, select

    from catalog_ai.db import Product, ProductStatus, unit_of_work

    with unit_of_work() as s:
        return bool(
            s.scalar(
                select(
                    exists().where(
                        Product.status.in_((ProductStatus.PENDING, ProductStatus.PROCESSING))
                    )
                )
            )
        )


def _timestamps(first_id: int) -> tuple[list[float], list[float], int]:
    """(created, finished) epoch seconds of the timed products, and how many failed."""
    from sqlalchemy import select

    from catalog_ai.db import Product, ProductStatus, unit_of_work

    with unit_of_work() as s:
        rows = s.execute(
            select(Product.created_at, Product.status_changed_at, Product.status).where(
                Product.id >= first_id
            )
        ).all()
    failed = sum(1 for r in rows if r[2] == ProductStatus.FAILED)
    return [r[0].timestamp() for r in rows], [r[1].timestamp() for r in rows], failed


def _ingest(n: int, batch: int, rng: np.random.Generator, prefix: str) -> list[int]:
    from catalog_ai.db import unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.ingest import ingest_files
    from catalog_ai.settings import get_settings
    from catalog_ai.worker.tasks import CeleryDispatcher

    media, dispatcher, ids = MediaStore(get_settings().media_dir), CeleryDispatcher(), []
    for start in range(0, n, batch):
        files = [
            (f"{prefix}-{start + i}.png", _bulk.png(rng)) for i in range(min(batch, n - start))
        ]
        with unit_of_work() as s:
            ids += ingest_files(s, files, media=media, dispatcher=dispatcher).created
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64, help="products per ingest transaction")
    parser.add_argument("--no-beat", action="store_true", help="no sweep/index refresh")
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="no search index before the clock (the beat writes the first one minutes in)",
    )
    parser.add_argument(
        "--vacuum-every",
        type=float,
        default=60.0,
        help="VACUUM (ANALYZE) every S seconds, as autovacuum would (0: never; see _bulk.py)",
    )
    parser.add_argument("--redis-url", default=_bulk.REDIS_URL)
    parser.add_argument("--admin-url", default=_bulk.ADMIN_URL)
    parser.add_argument("--database-url", help="an existing, empty database instead of a new one")
    parser.add_argument("--keep", action="store_true", help="keep the database (print its URL)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import redis

    # SIGTERM ends the run through the ``finally`` below: workers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ["CATALOG_AI_OFFLINE"] = "1"
    home = Path(tempfile.mkdtemp(prefix="catalog-ai-bulk-"))
    url = args.database_url or _bulk.new_database("catalog_ai_bulk", args.admin_url)
    env = {
        "CATALOG_AI_HOME": str(home),
        "CATALOG_AI_DATABASE_URL": url,
        "CATALOG_AI_BROKER_URL": args.redis_url,
    }
    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()
    _bulk.use(env)
    workers = _bulk.Workers(env, home, args.workers, beat=not args.no_beat)
    print(f"database {url}\nhome {home}", flush=True)
    try:
        from catalog_ai.db import migrate, unit_of_work
        from catalog_ai.services.models import activate_model, register_model
        from catalog_ai.settings import get_settings

        migrate.upgrade()
        bundle = _bulk.tiny_bundle(home / "bundle", PATHS)
        with unit_of_work() as s:
            version = register_model(s, bundle.path, add_categories=True).version
            activate_model(s, version, dispatcher=None)
        maintenance = _bulk.Maintenance(url, args.vacuum_every).start()
        workers.start()
        rng = np.random.default_rng(16)
        chunk = get_settings().classify_chunk
        warm = _ingest(chunk * args.workers * 4, args.batch, rng, "warm")
        _bulk.wait_for(
            lambda: _finished_count(warm[0]) == len(warm), timeout=300, what="the warm-up"
        )
        if not args.no_index:
            # The search index of the warm-up's embeddings, as the beat's refresh would write it
            # minutes in: from then on every chunk checks near-duplicates against it. Written
            # before the clock starts, so the first tenth does the same work as the last.
            from catalog_ai.worker.pipeline import refresh_index

            print(f"search index written: {refresh_index(version)} photos", flush=True)
        load_start = os.getloadavg()
        print(
            f"tiny-cnn, {args.products} products, {args.workers} worker processes, chunks of "
            f"{chunk}, ingest transactions of {args.batch}; {os.cpu_count()} cores, load "
            f"average {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}",
            flush=True,
        )
        # (time, queue length, 1-minute load average, _database_work())
        samples: list[tuple[float, int, float, tuple[int, int, int]]] = []
        stop = threading.Event()
        first_id = warm[-1] + 1

        def sample() -> None:
            while not stop.is_set():
                at = time.time()
                samples.append(
                    (at, broker.llen("catalog_ai"), os.getloadavg()[0], _database_work())
                )
                stop.wait(2.0)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.time()
        sampler.start()
        ids = _ingest(args.products, args.batch, rng, "p")
        ingested = time.time()
        print(f"ingested {len(ids)} in {ingested - started:.0f} s", flush=True)
        _bulk.wait_for(lambda: not _unfinished(), timeout=6 * 3600, every=5.0, what="the end")
        finished = time.time()
        maintenance.stop()
        stop.set()
        sampler.join()
        loads = os.getloadavg()
        created, done, failed = _timestamps(first_id)
        chunks = [c for c in workers.chunk_logs() if c["at"] >= started]
    finally:
        workers.kill()
        if not args.keep and not args.database_url:
            _bulk.drop_database(url, args.admin_url)
    ingest_rates = _bulk.deciles(created, started)
    rates = _bulk.deciles(done, started)
    tenth = max(1, len(chunks) // 10)
    overhead = [
        statistics.median(c["seconds"] - c["model_seconds"] for c in chunks[k : k + tenth]) * 1000
        for k in range(0, tenth * 10, tenth)
    ]
    # Per tenth of the products finished: from the time the tenth before it was done.
    ends = sorted(done)
    edges = [started] + [ends[(k + 1) * len(ends) // 10 - 1] for k in range(10)]
    within = [[r for r in samples if a <= r[0] < b] for a, b in itertools.pairwise(edges)]
    queue = [max((r[1] for r in rows), default=0) for rows in within]
    load = [statistics.mean(r[2] for r in rows) if rows else float("nan") for rows in within]

    def work_at(t: float) -> tuple[int, int, int]:
        return min(samples, key=lambda r: abs(r[0] - t))[3]

    marks = [work_at(t) for t in edges]
    per_product = [
        tuple((b[j] - a[j]) / (len(ends) / 10) for j in range(3))
        for a, b in itertools.pairwise(marks)
    ]
    print(
        f"{len(ids)} products classified in {finished - started:.0f} s "
        f"({len(ids) / (finished - started):.1f} /s overall; {failed} failed); "
        f"load average at the end {loads[0]:.2f} / {loads[1]:.2f} / {loads[2]:.2f}"
    )
    if maintenance.runs:
        print(
            f"VACUUM (ANALYZE) every {args.vacuum_every:.0f} s: {len(maintenance.runs)} runs, "
            f"{statistics.median(maintenance.runs):.2f} s median, {max(maintenance.runs):.2f} s max"
        )
    print(
        "tenth  ingest/s  classified/s  ms per chunk outside the model  max queue (messages)  "
        "load average  per product: buffers  rows returned  rows read by seq scans"
    )
    for k in range(10):
        print(
            f"{k + 1:>5}  {ingest_rates[k]:8.1f}  {rates[k]:12.1f}  {overhead[k]:30.1f}  "
            f"{queue[k]:8d}  {load[k]:5.1f}  {per_product[k][0]:8.0f}  {per_product[k][1]:8.0f}  "
            f"{per_product[k][2]:8.0f}"
        )
    ratio = rates[-1] / rates[0]
    print(f"last tenth / first tenth, classified/s: {ratio:.3f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "products": len(ids),
                    "workers": args.workers,
                    "seconds": finished - started,
                    "failed": failed,
                    "ingest_per_s": ingest_rates,
                    "classified_per_s": rates,
                    "chunk_overhead_ms": overhead,
                    "max_queue": queue,
                    "load_average": load,
                    "buffers_per_product": [p[0] for p in per_product],
                    "rows_returned_per_product": [p[1] for p in per_product],
                    "seq_rows_per_product": [p[2] for p in per_product],
                    "last_over_first": ratio,
                    "vacuum_every_s": args.vacuum_every,
                    "vacuum_runs_s": maintenance.runs,
                    "load_start": load_start,
                    "load_end": loads,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

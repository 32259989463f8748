"""Activating a new model on a big catalogue: the chunked re-classification's pace, its visible
progress, and the review queue's latency meanwhile (issue 16).

    .venv/bin/python benchmarks/seed_catalog.py --products 100000 --database-url URL --home HOME
    .venv/bin/python benchmarks/reclassify_scale.py --home HOME [--seconds 900]
        [--kill-after 300 --resume queue|reactivate] [--json FILE]

On a catalogue written by ``seed_catalog.py`` (``HOME/seed.json`` names its database), this
registers a ``tiny-cnn`` bundle with random weights over 16 of the catalogue's leaves
(``benchmarks/_bulk.py``: the run measures the pipeline, not a network), activates it through
``services.models.activate_model`` with the Celery dispatcher (Redis database 12, flushed), and
runs ``--workers`` real ``catalog-ai worker --concurrency 1`` processes (the first with the
beat). Catalogue embedding, which activation also enqueues, is left out: this measures
re-classification alone. The workers' visibility timeout is 30 s here (300 s by default) so that
a killed worker's messages come back within the run.

Meanwhile a separate process reads the dashboard's review queue
(``services.review_queue.review_queue``, first page of 20, and ``queue_count``) every 0.5 s,
20 s before the activation (the baseline) and all through the run; this process reads
``services.models.model_progress`` every ``--progress-every`` seconds, as the dashboard does.

``--kill-after S``: SIGKILL every worker S seconds in (as when the machine dies), then either
start them again on the same queue (``--resume queue``: the chain's next link is still in Redis,
the killed workers' messages come back after the visibility timeout) or lose the queue too and
activate the version again (``--resume reactivate``: a new chain from the start, which skips
what the version did). Stops when nothing remains, or after ``--seconds`` (a time box: the
projection of the total is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bulk

LINK = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+).*re-classification after product (\d+): "
    r"(\d+) products enqueued \((\d+) marked again\) in ([\d.]+) s"
)


def probe(out: Path, every: float) -> int:
    """The separate reader: one line per read, ``epoch review_queue_ms queue_count_ms``."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.review_queue import queue_count, review_queue

    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    with out.open("a") as f:
        while running[0]:
            t0 = time.perf_counter()
            with unit_of_work() as s:
                review_queue(s)
            t1 = time.perf_counter()
            with unit_of_work() as s:
                queue_count(s)
            t2 = time.perf_counter()
            f.write(f"{time.time():.3f} {1000 * (t1 - t0):.2f} {1000 * (t2 - t1):.2f}\n")
            f.flush()
            time.sleep(every)
    return 0


class OnlyReclassify:
    """The Celery dispatcher, minus catalogue embedding (see the module docstring)."""

    def __init__(self) -> None:
        from catalog_ai.worker.tasks import CeleryDispatcher

        self.celery = CeleryDispatcher()

    def __getattr__(self, name):
        return getattr(self.celery, name)

    def embed_catalogue(self, version: str) -> None:
        pass


def activate(version: str) -> None:
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model

    with unit_of_work() as s:
        activate_model(s, version, dispatcher=OnlyReclassify())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def links(workers: _bulk.Workers) -> list[tuple[float, int, int, int, float]]:
    """(time, after id, enqueued, marked, seconds) of every link the workers logged."""
    out = []
    for i in range(workers.n):
        for line in (workers.home / f"worker-{i}.log").read_text(errors="replace").splitlines():
            m = LINK.match(line)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append((at, int(m.group(2)), int(m.group(3)), int(m.group(4)), float(m[5])))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="the seeded catalogue's home (seed.json)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3600, help="time box")
    parser.add_argument("--progress-every", type=float, default=10.0)
    parser.add_argument("--kill-after", type=float)
    parser.add_argument("--resume", choices=("queue", "reactivate"), default="queue")
    parser.add_argument("--redis-url", default=_bulk.REDIS_URL)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # the reader process
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["CATALOG_AI_OFFLINE"] = "1"
    if args.probe:
        _bulk.use({"CATALOG_AI_DATABASE_URL": args.database_url})
        return probe(args.probe, 0.5)

    import redis
    from sqlalchemy import select

    from catalog_ai.db import Category, unit_of_work
    from catalog_ai.services.models import model_progress, register_model

    seeded = json.loads((args.home / "seed.json").read_text())
    url, home = seeded["database_url"], Path(seeded["home"])
    run = home / f"reclassify-{int(time.time())}"
    run.mkdir()
    env = {
        "CATALOG_AI_HOME": str(home),
        "CATALOG_AI_DATABASE_URL": url,
        "CATALOG_AI_BROKER_URL": args.redis_url,
        "CATALOG_AI_VISIBILITY_TIMEOUT": "30",
    }
    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()
    _bulk.use(env)
    with unit_of_work() as s:
        leaves = list(
            s.scalars(
                select(Category.path)
                .where(~Category.id.in_(select(Category.parent_id).where(Category.parent_id > 0)))
                .order_by(Category.id)
                .limit(16)
            )
        )
    bundle = _bulk.tiny_bundle(run / "bundle", leaves)
    with unit_of_work() as s:
        version = register_model(s, bundle.path).version
    reader_log = run / "review_queue.txt"
    reader = subprocess.Popen(
        [sys.executable, __file__, "--probe", str(reader_log), "--database-url", url],
        env={**os.environ, **env},
    )
    workers = _bulk.Workers(env, run, args.workers)
    # SIGTERM ends the run through the ``finally``: workers and the reader stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        workers.start()
        time.sleep(20)  # the baseline: the queue read while the workers idle
        load0 = os.getloadavg()
        print(
            f"{seeded['products']} seeded products; tiny-cnn {version}; {args.workers} workers; "
            f"{os.cpu_count()} cores, load average "
            f"{load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}",
            flush=True,
        )
        started = time.time()
        activate(version)
        progress: list[
            tuple[float, int, int, int, float]
        ] = []  # (t, suggested, remaining, queued, s)
        killed_at = None
        print("     s  suggested  remaining  queued   /s   model_progress ms", flush=True)
        while True:
            t0 = time.perf_counter()
            with unit_of_work() as s:
                p = model_progress(s, version)
            took = time.perf_counter() - t0
            now = time.time()
            rate = (
                (p.suggested - progress[-1][1]) / (now - progress[-1][0])
                if progress
                else float("nan")
            )
            progress.append((now, p.suggested, p.remaining, p.queued, took))
            print(
                f"{now - started:6.0f} {p.suggested:10d} {p.remaining:10d} {p.queued:7d} "
                f"{rate:5.0f} {1000 * took:10.0f}",
                flush=True,
            )
            if p.remaining == 0 or now - started > args.seconds:
                break
            if args.kill_after and killed_at is None and now - started > args.kill_after:
                killed_at = now
                workers.kill(signal.SIGKILL)
                print(f"killed the workers (SIGKILL) at {now - started:.0f} s", flush=True)
                if args.resume == "reactivate":
                    broker.flushdb()  # the queue is lost too
                    activate(version)
                    print("queue flushed; the version activated again", flush=True)
                workers.start()
            time.sleep(args.progress_every)
        finished = time.time()
    finally:
        workers.kill()
        reader.send_signal(signal.SIGTERM)
        reader.wait(timeout=30)
    loads = os.getloadavg()
    reads = [tuple(map(float, line.split())) for line in reader_log.read_text().splitlines()]
    base = [r for r in reads if r[0] < started]
    during = [r for r in reads if started <= r[0] <= finished]
    chain = [c for c in links(workers) if c[0] >= started]
    done = progress[-1][1] - progress[0][1]
    rate = done / (finished - started)
    total = progress[0][1] + progress[0][2]
    summary = {
        "products": seeded["products"],
        "version": version,
        "seconds": finished - started,
        "reclassified": done,
        "remaining": progress[-1][2],
        "per_s": rate,
        "projected_total_s": (progress[0][2]) / rate if rate else None,
        "to_reclassify_at_start": progress[0][2],
        "load_start": load0,
        "load_end": loads,
        "killed_at_s": None if killed_at is None else killed_at - started,
        "resume": args.resume if killed_at else None,
    }
    for name, rows in (("baseline", base), ("during", during)):
        for col, what in ((1, "review_queue"), (2, "queue_count")):
            values = [r[col] for r in rows]
            summary[f"{what}_{name}_ms"] = {
                "n": len(values),
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
                "max": max(values, default=float("nan")),
            }
    progress_ms = [1000 * p[4] for p in progress]
    summary["model_progress_ms"] = {
        "p50": percentile(progress_ms, 0.5),
        "p95": percentile(progress_ms, 0.95),
    }
    if chain:
        tenth = max(1, len(chain) // 10)
        pace = []
        for k in range(0, min(len(chain), tenth * 10), tenth):
            part = chain[k : k + tenth + 1]
            span = part[-1][0] - part[0][0]
            pace.append(sum(c[2] for c in part[:-1]) / span if span > 0 else float("nan"))
        summary["links"] = len(chain)
        summary["link_seconds"] = {
            "p50": statistics.median(c[4] for c in chain),
            "p95": percentile([c[4] for c in chain], 0.95),
            "max": max(c[4] for c in chain),
        }
        summary["chain_pace_per_tenth"] = pace
    print(json.dumps(summary, indent=2))
    print(
        f"re-classified {done} of {total - progress[0][1]} in {finished - started:.0f} s "
        f"({rate:.1f} /s); projected for all: {summary['projected_total_s'] or 0:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps({**summary, "progress": progress}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Classification throughput through the worker path, against the raw batched forward pass.

    .venv/bin/python benchmarks/ingest.py [--photos 128] [--backbone efficientnet_lite0]
                                          [--modes embedded,sqlite,postgres] [--json FILE]

Builds a bundle from the backbone's real pretrained weights (the head is untrained: speed does
not depend on it), then measures photos/s:

- raw forward: prepared input squares through ``Predictor.forward`` in the worker's batch size,
  in one process with all cores, and in two processes with one thread each (the two layouts the
  worker runs in), measured right before and after every end-to-end run (the machine is shared
  and its speed drifts), each run compared with the mean of the two;
- end to end: photos already ingested as pending products, then classified through the tasks:
  claim, read from the media store, decode, forward, decide, write Suggestion + Embedding and
  status. ``embedded`` is SQLite with no broker (tasks in-process); ``sqlite`` and ``postgres``
  are a real ``catalog-ai worker --concurrency N`` process on Redis, N = 1 and 2. The model is
  loaded and warm before the clock starts; the clock stops when the database says every product
  is finished. The embedded run also reports the share of its time spent in the forward pass
  and in decoding, measured within the same run (immune to the drift).

Also prints the ingest rate (read, hash, store, header probe, insert). Uses Redis database 14 and
creates (and drops) its own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import ast
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "grocery-store"


# --- the model and the photos ---------------------------------------------------------------------


def build_bundle(out: Path, backbone: str, data: Path) -> Path:
    from catalog_ai.backbones import create_backbone, get_backbone
    from catalog_ai.model.bundle import ModelBundle, write_bundle
    from catalog_ai.model.decision import Thresholds
    from catalog_ai.model.network import HierarchicalClassifier
    from catalog_ai.taxonomy import scan_folder

    if (out / "bundle.json").is_file() and ModelBundle.load(out).backbone == backbone:
        return out
    shutil.rmtree(out, ignore_errors=True)
    taxonomy = scan_folder(data / "train").taxonomy
    spec = get_backbone(backbone)
    network = HierarchicalClassifier(
        create_backbone(backbone, pretrained=True), spec.embedding_dim, len(taxonomy.leaf_ids)
    )
    write_bundle(
        out,
        state_dict=network.state_dict(),
        backbone=backbone,
        embedding_dim=spec.embedding_dim,
        preprocessing=spec.preprocessing,
        image_size=spec.preprocessing.input_size,
        eval_crop_pct=spec.preprocessing.crop_pct,
        temperature=1.0,
        thresholds=Thresholds(decision=0.5, auto_accept=0.6),
        taxonomy=taxonomy,
        metrics={},
        training={"note": "benchmark: pretrained backbone, untrained head"},
    )
    return out


def pick_photos(data: Path, n: int) -> list[Path]:
    files = sorted(p for split in ("val", "train") for p in (data / split).rglob("*.jpg"))
    if len(files) < n:
        raise SystemExit(f"only {len(files)} photos under {data}; ask for fewer with --photos")
    return files[:n]


# --- raw forward ----------------------------------------------------------------------------------


def _forward_worker(bundle: str, files: list[str], threads: int, barrier, out) -> None:
    import torch

    from catalog_ai.inference.predictor import Predictor

    torch.set_num_threads(threads)
    predictor = Predictor.load(bundle)
    squares = [predictor.prepare(Path(f)) for f in files]
    predictor.forward(squares[: predictor.batch_size])  # warm-up
    barrier.wait()
    start = time.perf_counter()
    for i in range(0, len(squares), predictor.batch_size):
        predictor.forward(squares[i : i + predictor.batch_size])
    out.put((start, time.perf_counter(), len(squares)))


def raw_forward(bundle: Path, photos: list[Path], processes: int, threads: int) -> float:
    """Photos/s of the forward pass alone, ``processes`` processes of ``threads`` threads each."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    shares = [[str(p) for p in photos[i::processes]] for i in range(processes)]
    procs = [
        ctx.Process(target=_forward_worker, args=(str(bundle), share, threads, barrier, out))
        for share in shares
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    return sum(r[2] for r in results) / (end - start)


# --- end to end -----------------------------------------------------------------------------------


def _use(env: dict[str, str]) -> None:
    from catalog_ai.db import dispose_engines
    from catalog_ai.settings import reset_settings

    for name in ("CATALOG_AI_BROKER_URL", "CATALOG_AI_DATABASE_URL", "CATALOG_AI_TORCH_THREADS"):
        os.environ.pop(name, None)
    os.environ.update(env)
    reset_settings()
    dispose_engines()


def _prepare_catalog(
    bundle: Path, photos: list[Path], warmup: int
) -> tuple[list[int], list[int], float]:
    """Migrate, activate the model, ingest without enqueueing.

    Returns (warm-up ids, timed ids, ingest photos/s).
    """
    from catalog_ai.db import migrate, unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.ingest import ingest_files
    from catalog_ai.services.models import activate_model, register_model
    from catalog_ai.settings import get_settings

    migrate.upgrade()
    with unit_of_work() as session:
        version = register_model(session, bundle, add_categories=True).version
        activate_model(session, version, dispatcher=None)  # the benchmark enqueues its own work
    media = MediaStore(get_settings().media_dir)
    ids: list[int] = []
    start = time.perf_counter()
    for i in range(0, len(photos), 64):
        with unit_of_work() as session:
            ids += ingest_files(session, photos[i : i + 64], media=media, dispatcher=None).created
    rate = len(photos) / (time.perf_counter() - start)
    if len(ids) != len(photos):
        raise SystemExit(f"ingested {len(ids)} of {len(photos)} photos; duplicates among them?")
    return ids[:warmup], ids[warmup:], rate


def _wait_finished(ids: list[int], timeout: float = 1800) -> None:
    from sqlalchemy import func, select

    from catalog_ai.db import Product, ProductStatus, unit_of_work

    done = (ProductStatus.SUGGESTED, ProductStatus.ACCEPTED, ProductStatus.FAILED)
    deadline = time.monotonic() + timeout
    while True:
        with unit_of_work() as session:
            n = session.scalar(
                select(func.count()).where(Product.id.in_(ids), Product.status.in_(done))
            )
        if n == len(ids):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {n} of {len(ids)} products finished after {timeout} s")
        time.sleep(0.1)


def run_embedded(bundle: Path, photos: list[Path], home: Path, chunk: int) -> dict:
    """In-process, as with no broker; also splits the run's time into decode and forward (the
    rest is claim, media reads, decisions and database writes), measured in the same run."""
    import torch

    from catalog_ai.worker import model_cache
    from catalog_ai.worker.dispatch import InProcessDispatcher

    runner = InProcessDispatcher()

    _use({"CATALOG_AI_HOME": str(home)})
    torch.set_num_threads(os.cpu_count() or 1)
    warm, timed, ingest_rate = _prepare_catalog(bundle, photos, chunk)
    _, predictor = model_cache.current()
    runner.classify(warm)  # no broker: this process's background thread
    runner.drain()
    # The network pass is ``analyse`` (network, prototype fusion, node probabilities) where the
    # Predictor has one, else ``forward``: what the raw measurement times too.
    network_stage = "analyse" if hasattr(predictor, "analyse") else "forward"
    spent = {"prepare": 0.0, network_stage: 0.0}
    for stage in spent:  # instance attributes: this predictor object only, for this run
        original = getattr(predictor, stage)

        def timed_stage(*a, _original=original, _stage=stage, **kw):
            start = time.perf_counter()
            try:
                return _original(*a, **kw)
            finally:
                spent[_stage] += time.perf_counter() - start

        setattr(predictor, stage, timed_stage)
    start = time.perf_counter()
    runner.classify(timed)
    runner.drain()
    _wait_finished(timed)
    elapsed = time.perf_counter() - start
    for stage in spent:
        delattr(predictor, stage)
    return {
        "photos_per_s": len(timed) / elapsed,
        "ingest_photos_per_s": ingest_rate,
        "share_forward": spent[network_stage] / elapsed,
        "share_decode": spent["prepare"] / elapsed,
    }


def run_with_worker(
    bundle: Path,
    photos: list[Path],
    home: Path,
    database_url: str,
    redis_url: str,
    workers: int,
    chunk: int,
) -> dict:
    import redis

    from catalog_ai.worker.tasks import CeleryDispatcher

    enqueue_classification = CeleryDispatcher().classify
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        "CATALOG_AI_HOME": str(home),
        "CATALOG_AI_DATABASE_URL": database_url,
        "CATALOG_AI_BROKER_URL": redis_url,
    }
    _use(env)
    warm, timed, ingest_rate = _prepare_catalog(bundle, photos, chunk * workers * 2)
    log = home / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "catalog_ai",
                "worker",
                "--concurrency",
                str(workers),
                "--no-beat",
                "--loglevel",
                "INFO",
            ],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        enqueue_classification(warm)  # every pool process loads the model on its first chunk
        _wait_finished(warm)
        time.sleep(0.5)  # the warm-up's last log lines
        offset = log.stat().st_size
        start = time.perf_counter()
        enqueue_classification(timed)
        _wait_finished(timed)
        elapsed = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    # Each task logs its own timing: the share of the pool processes' time spent in the model
    # (decode, forward, decide), measured in the same run.
    chunks = [
        ast.literal_eval(match.group(1))
        for match in re.finditer(r"classified (\{.*?\})\n", log.read_text()[offset:])
    ]
    model_seconds = sum(c["model_seconds"] for c in chunks)
    return {
        "photos_per_s": len(timed) / elapsed,
        "ingest_photos_per_s": ingest_rate,
        "share_model": model_seconds / (elapsed * workers),
    }


def _postgres_database(admin_url: str):
    import sqlalchemy as sa

    name = f"catalog_ai_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        from catalog_ai.db import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument(
        "--photos", type=int, default=128, help="photos timed per run (after a warm-up)"
    )
    parser.add_argument("--modes", default="embedded,sqlite,postgres")
    parser.add_argument(
        "--workers", default="1,2", help="worker process counts for sqlite/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--postgres-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "catalog-ai-bench-ingest"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    os.environ["CATALOG_AI_OFFLINE"] = "1"
    from catalog_ai.settings import get_settings

    cores = os.cpu_count() or 1
    modes = args.modes.split(",")
    worker_counts = [int(n) for n in args.workers.split(",")]
    bundle = build_bundle(args.work_dir / f"bundle-{args.backbone}", args.backbone, args.data)
    chunk = get_settings().classify_chunk
    photos = pick_photos(args.data, args.photos + chunk * max(worker_counts) * 2)
    timed_photos = photos[-args.photos :]
    load = os.getloadavg()[0]
    print(
        f"{args.backbone}: {args.photos} photos timed per run, chunks of {chunk}, {cores} cores, "
        f"load average {load:.1f} at the start (a shared machine: expect noise)",
        flush=True,
    )

    figures: dict = {
        "backbone": args.backbone,
        "photos": args.photos,
        "cores": cores,
        "chunk": chunk,
        "load_average_at_start": load,
        "runs": [],
    }
    layouts = {n: (n, max(1, cores // n)) for n in {1, *worker_counts}}
    last_raw: dict[int, float] = {}

    def raw(n: int) -> float:
        processes, threads = layouts[n]
        rate = raw_forward(bundle, timed_photos, processes, threads)
        print(
            f"  raw forward, {processes} process(es) x {threads} thread(s): {rate:6.1f} photos/s",
            flush=True,
        )
        return rate

    def measure(name: str, n: int, run) -> None:
        # The machine is shared: the raw forward is measured right before and right after each
        # end-to-end run, in the same process layout, and the run is compared with their mean.
        before = last_raw.get(n) or raw(n)
        result = run()
        after = last_raw[n] = raw(n)
        rate, reference = result["photos_per_s"], (before + after) / 2
        figures["runs"].append(
            {
                "name": name,
                "processes": n,
                **result,
                "raw_before": before,
                "raw_after": after,
                "vs_raw": rate / reference,
            }
        )
        line = (
            f"{name:<40} {rate:6.1f} photos/s = {100 * rate / reference:5.1f} % of the raw "
            f"forward around it; ingest {result['ingest_photos_per_s']:.0f} photos/s"
        )
        if "share_model" in result:
            line += (
                f"\n  time of the worker processes in decoding, the forward pass and "
                f"decisions: {100 * result['share_model']:.1f} %"
            )
        if "share_forward" in result:
            line += (
                f"\n  time in the forward pass {100 * result['share_forward']:.1f} %, decoding "
                f"{100 * result['share_decode']:.1f} %, the rest (claim, reads, decisions, "
                f"writes) {100 * (1 - result['share_forward'] - result['share_decode']):.1f} %"
            )
        print(line, flush=True)

    runs = args.work_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    if "embedded" in modes:
        measure(
            "embedded SQLite, in-process",
            1,
            lambda: run_embedded(bundle, photos, runs / "embedded", chunk),
        )
    for n in worker_counts:
        for mode in ("sqlite", "postgres"):
            if mode not in modes:
                continue
            home = runs / f"{mode}-{n}"
            if mode == "sqlite":
                url, drop = f"sqlite:///{home / 'catalog.db'}", (lambda: None)
            else:
                url, drop = _postgres_database(args.postgres_admin_url)
            try:
                database = "SQLite" if mode == "sqlite" else "PostgreSQL"
                measure(
                    f"{database} + Redis, {n} worker process(es)",
                    n,
                    lambda home=home, url=url, n=n: run_with_worker(
                        bundle, photos, home, url, args.redis_url, n, chunk
                    ),
                )
            finally:
                drop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

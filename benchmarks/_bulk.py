"""What the bulk benchmarks share (bulk_ingest.py, reclassify_scale.py): a tiny-cnn bundle, a
PostgreSQL database of their own, real ``catalog-ai worker`` processes, and pace per decile."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _databases import ADMIN_URL, drop_database, new_database  # noqa: F401 (used by both)

REDIS_URL = "redis://127.0.0.1:6379/12"


def use(env: dict[str, str]) -> None:
    """Point this process's settings and engines at ``env``."""
    from catalog_ai.db import dispose_engines
    from catalog_ai.settings import reset_settings

    for name in ("CATALOG_AI_BROKER_URL", "CATALOG_AI_DATABASE_URL", "CATALOG_AI_HOME"):
        os.environ.pop(name, None)
    os.environ.update(env)
    reset_settings()
    dispose_engines()


def png(rng: np.random.Generator, side: int = 16) -> bytes:
    """A small PNG of noise around a random colour: distinct bytes every call."""
    from PIL import Image

    colour = rng.integers(0, 256, 3)
    pixels = np.clip(colour + rng.normal(0, 25, (side, side, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def tiny_bundle(out: Path, paths: Sequence[str], *, seed: int = 0):
    """A ``tiny-cnn`` bundle with random weights over ``paths`` (no training: the bulk
    benchmarks measure the pipeline, not the model). Its auto-accept threshold is the median
    leaf confidence on generated photos, so about half the products are accepted."""
    import torch

    from catalog_ai.backbones import create_backbone, get_backbone
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.bundle import write_bundle
    from catalog_ai.model.decision import Thresholds
    from catalog_ai.model.network import HierarchicalClassifier
    from catalog_ai.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_paths(list(paths))
    spec = get_backbone("tiny-cnn")
    torch.manual_seed(seed)
    network = HierarchicalClassifier(
        create_backbone("tiny-cnn", pretrained=False), spec.embedding_dim, len(taxonomy.leaf_ids)
    )
    torch.nn.init.normal_(network.head.weight, std=1.0)
    bundle = write_bundle(
        out,
        state_dict=network.state_dict(),
        backbone="tiny-cnn",
        embedding_dim=spec.embedding_dim,
        preprocessing=spec.preprocessing,
        image_size=32,
        eval_crop_pct=1.0,
        temperature=0.05,
        thresholds=Thresholds(decision=0.5, auto_accept=1.01),
        taxonomy=taxonomy,
        metrics={},
        training={"note": "benchmark: tiny-cnn, random weights"},
    )
    rng = np.random.default_rng(seed)
    samples = out / "samples"
    samples.mkdir(exist_ok=True)
    files = []
    for i in range(64):
        files.append(samples / f"{i}.png")
        files[-1].write_bytes(png(rng))
    confidences = sorted(
        p.decision.confidence for p in Predictor(bundle).predict(files) if p.decision is not None
    )
    bundle.thresholds = Thresholds(decision=0.5, auto_accept=confidences[len(confidences) // 2])
    bundle.save_manifest()
    return bundle


class Workers:
    """``n`` real ``catalog-ai worker --concurrency 1`` processes (the first one with the beat),
    each in its own process group, logging to ``home``."""

    def __init__(self, env: dict[str, str], home: Path, n: int, *, beat: bool = True) -> None:
        self.env, self.home, self.n, self.beat = env, home, n, beat
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        for i in range(self.n):
            log = (self.home / f"worker-{i}.log").open("ab")
            args = [sys.executable, "-m", "catalog_ai", "worker", "--concurrency", "1"]
            args += ["--hostname", f"bulk{i}@%h", "--loglevel", "INFO"]
            args += ["--beat"] if (self.beat and i == 0) else ["--no-beat"]
            self.procs.append(
                subprocess.Popen(
                    args,
                    env={**os.environ, **self.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def kill(self, sig: int = signal.SIGTERM) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = []

    def chunk_logs(self) -> list[dict]:
        """Every ``classified {...}`` line the workers logged, with its log time (seconds)."""
        import ast
        from datetime import datetime

        out = []
        pattern = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+).*?classified (\{.*\})$")
        for i in range(self.n):
            for line in (self.home / f"worker-{i}.log").read_text(errors="replace").splitlines():
                m = pattern.match(line)
                if m:
                    at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    out.append({"at": at, **ast.literal_eval(m.group(2))})
        return sorted(out, key=lambda c: c["at"])


def deciles(times: Sequence[float], start: float) -> list[float]:
    """Items per second over each tenth of ``times`` (sorted event times), the first tenth
    counted from ``start``."""
    ts = sorted(times)
    n = len(ts)
    edges = [start] + [ts[min(n - 1, (k * n) // 10 - 1)] for k in range(1, 11)]
    rates = []
    for k in range(10):
        count = (k + 1) * n // 10 - k * n // 10
        span = edges[k + 1] - edges[k]
        rates.append(count / span if span > 0 else float("inf"))
    return rates


def wait_for(predicate, *, timeout: float, every: float = 1.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout} s")
        time.sleep(every)


class Maintenance:
    """``VACUUM (ANALYZE)`` of the database every ``every`` seconds on a thread, as autovacuum
    would do: the test server runs with ``autovacuum = off``, and without statistics the planner
    takes a table that grew from empty for a tiny one (it then reads the whole status index for
    every chunk's claim) and dead row versions pile up in every index."""

    def __init__(self, url: str, every: float) -> None:
        import threading

        self.url, self.every = url, every
        self.runs: list[float] = []  # seconds each took
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Maintenance:
        if self.every > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            while not self._stop.wait(self.every):
                started = time.perf_counter()
                with engine.connect() as connection:
                    connection.execute(sa.text("VACUUM (ANALYZE)"))
                self.runs.append(time.perf_counter() - started)
        finally:
            engine.dispose()

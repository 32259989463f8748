"""Real worker processes against the real Redis and PostgreSQL: nothing lost, nothing twice.

Each test starts ``python -m catalog_ai worker`` processes (in their own process group, so a
SIGKILL takes the pool process with it, as when a machine dies) on a fresh PostgreSQL database
and Redis database 15, ingests photos from this process (messages go to Redis), and checks the
database, the truth, at the end: every product finished, one suggestion each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import func, select

from catalog_ai.cli import cli
from catalog_ai.db import (
    Embedding,
    Product,
    ProductStatus,
    Suggestion,
    dispose_engines,
    migrate,
    unit_of_work,
)
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.worker.tasks import CeleryDispatcher
from worker.support import activate, bad_files, shared_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FINISHED = {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED, ProductStatus.FAILED}


@dataclass
class Deployment:
    """One catalog (PostgreSQL + Redis + media directory) and the worker processes on it."""

    tmp: Path
    env: dict[str, str]
    redis_url: str
    photos: list[Path]
    version: str
    workers: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    def start_worker(self, name: str, *, beat: bool = True) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        args = [
            sys.executable,
            "-m",
            "catalog_ai",
            "worker",
            "--concurrency",
            "1",
            "--hostname",
            f"{name}@%h",
            "--beat" if beat else "--no-beat",
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append((proc, log))
        return proc

    def wait_ready(self, proc: subprocess.Popen, timeout: float = 90) -> None:
        log = next(log for p, log in self.workers if p is proc)
        self.wait_until(
            lambda: b" ready." in log.read_bytes(), timeout, f"worker {log.stem} to start"
        )

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # ended between the poll and the kill
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)

    def ingest(self, files: list[Path]) -> list[int]:
        media = MediaStore(get_settings().media_dir)
        created = []
        for start in range(0, len(files), 64):  # like `catalog-ai ingest`: a commit per chunk
            with unit_of_work() as session:
                created += ingest_files(
                    session, files[start : start + 64], media=media, dispatcher=CeleryDispatcher()
                ).created
        return created

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:] for _, log in self.workers
        )

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.05)


def _counts() -> dict[ProductStatus, int]:
    with unit_of_work() as session:
        return dict(
            session.execute(select(Product.status, func.count()).group_by(Product.status)).all()
        )


def _finished(n: int) -> Callable[[], bool]:
    def check() -> bool:
        counts = _counts()
        return sum(counts.get(s, 0) for s in FINISHED) == n and not any(
            counts.get(s, 0) for s in (ProductStatus.PENDING, ProductStatus.PROCESSING)
        )

    return check


def _done_count() -> int:
    counts = _counts()
    return sum(counts.get(s, 0) for s in FINISHED)


def _assert_each_classified_exactly_once(product_ids: list[int]) -> None:
    with unit_of_work() as session:
        statuses = dict(session.execute(select(Product.id, Product.status)).all())
        per_product = dict(
            session.execute(
                select(Suggestion.product_id, func.count()).group_by(Suggestion.product_id)
            ).all()
        )
        embeddings = session.scalar(select(func.count()).select_from(Embedding))
    assert {statuses[i] for i in product_ids} <= {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}
    assert per_product == {i: 1 for i in product_ids}
    assert embeddings == len(product_ids)


@pytest.fixture
def deployment(
    tmp_path, postgres_url, redis_url, tmp_path_factory, monkeypatch
) -> Iterator[Deployment]:
    photos, bundle = shared_model(tmp_path_factory, n=200)
    env = {
        "CATALOG_AI_HOME": str(tmp_path / "home"),
        "CATALOG_AI_DATABASE_URL": postgres_url,
        "CATALOG_AI_BROKER_URL": redis_url,
        "CATALOG_AI_MEDIA_DIR": str(tmp_path / "media"),
        "CATALOG_AI_MODEL_DIR": str(tmp_path / "models"),
        "CATALOG_AI_OFFLINE": "1",
        # Tiny batches on 2 shared cores: one torch thread each (more only fight).
        "CATALOG_AI_TORCH_THREADS": "1",
        "CATALOG_AI_CLASSIFY_CHUNK": "8",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    migrate.upgrade()
    deployment = Deployment(tmp_path, env, redis_url, photos, activate(bundle.path))
    try:
        yield deployment
    finally:
        for proc, _ in deployment.workers:
            deployment.kill(proc)
        dispose_engines()
        reset_settings()


def _reconfigure(deployment: Deployment, monkeypatch, **values: str) -> None:
    for name, value in values.items():
        deployment.env[name] = value
        monkeypatch.setenv(name, value)
    reset_settings()


def test_two_workers_classify_200_uploads_exactly_once(deployment):
    first, second = deployment.start_worker("w1"), deployment.start_worker("w2")
    deployment.wait_ready(first)
    deployment.wait_ready(second)
    ids = deployment.ingest(deployment.photos)
    assert len(ids) == 200
    deployment.wait_until(_finished(200), 90, "200 products to be classified")
    _assert_each_classified_exactly_once(ids)
    with unit_of_work() as session:  # no message was handled twice: each product claimed once
        assert set(session.scalars(select(Product.attempts))) == {1}
    for _, log in deployment.workers:  # both workers took part
        assert b"succeeded" in log.read_bytes(), deployment.logs()


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(deployment, monkeypatch):
    _reconfigure(
        deployment,
        monkeypatch,
        CATALOG_AI_CLASSIFY_CHUNK="2",
        CATALOG_AI_VISIBILITY_TIMEOUT="5",
        CATALOG_AI_STALE_AFTER="4",
        CATALOG_AI_SWEEP_INTERVAL="1",
    )
    ids = deployment.ingest(deployment.photos)
    status = CliRunner().invoke(cli, ["status", "--json"])
    assert status.exit_code == 0, status.output
    assert '"queued": 100' in status.output  # 200 products in chunks of 2, no worker yet

    victim = deployment.start_worker("victim", beat=False)

    def mid_chunk() -> bool:  # some products done, and a chunk claimed but not yet recorded
        counts = _counts()
        return (
            sum(counts.get(s, 0) for s in FINISHED) >= 10
            and counts.get(ProductStatus.PROCESSING, 0) > 0
        )

    deployment.wait_until(mid_chunk, 90, "the first worker to be in the middle of a chunk")
    deployment.kill(victim)  # SIGKILL to the worker and its pool process
    assert _done_count() < 200, "the kill came after the run had finished: it tested nothing"

    deployment.start_worker("rescuer")
    deployment.wait_until(_finished(200), 90, "the restarted worker to finish every product")
    _assert_each_classified_exactly_once(ids)


def test_lost_broker_messages_are_recovered_by_the_sweep(deployment, monkeypatch):
    _reconfigure(
        deployment,
        monkeypatch,
        CATALOG_AI_CLASSIFY_CHUNK="2",
        CATALOG_AI_STALE_AFTER="3",
        CATALOG_AI_SWEEP_INTERVAL="1",
    )
    worker = deployment.start_worker("w1")
    deployment.wait_ready(worker)
    ids = deployment.ingest(deployment.photos)
    deployment.wait_until(lambda: _done_count() >= 10, 90, "the worker to get going")
    client = redis.Redis.from_url(deployment.redis_url)
    client.flushdb()  # every queued and unacknowledged message is gone
    assert client.llen("catalog_ai") == 0
    assert _done_count() < 200, "the flush came after the run had finished: it tested nothing"
    deployment.wait_until(_finished(200), 90, "the sweep to recover every product")
    _assert_each_classified_exactly_once(ids)
    client.close()


def test_bad_files_fail_with_their_reasons_and_good_ones_are_classified(deployment):
    worker = deployment.start_worker("w1")
    bad = bad_files(deployment.tmp / "bad")
    good = deployment.photos[:20]
    files = [*good[:10], bad["empty"], bad["corrupt"], bad["not_an_image"], *good[10:], bad["bomb"]]
    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as session:
        result = ingest_files(session, files, media=media, dispatcher=CeleryDispatcher())
    assert (
        len(result.created) == 21 and len(result.failed) == 3
    )  # the corrupt one fails in the worker
    deployment.wait_ready(worker)
    deployment.wait_until(_finished(24), 90, "every product to finish")
    with unit_of_work() as session:
        by_title = {p.title: p for p in session.scalars(select(Product))}
    assert (
        by_title["empty"].status == ProductStatus.FAILED
        and by_title["empty"].error == "file is empty"
    )
    assert "not an image file" in by_title["notes"].error
    assert "too large" in by_title["bomb"].error
    cut_off = by_title["cut-off"]
    assert (
        cut_off.status == ProductStatus.FAILED and "truncated or corrupt PNG data" in cut_off.error
    )
    good_ids = [i for i in result.created if i != cut_off.id]
    assert len(good_ids) == 20
    _assert_each_classified_exactly_once(good_ids)

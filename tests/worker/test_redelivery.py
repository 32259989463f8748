"""A message taken by a worker that dies comes back: real ``catalog-ai worker`` processes on the
real Redis, with no beat, so that only late acknowledgement and the visibility timeout can bring
the work back (the sweep, which would also rescue it, is tested in test_workers.py).

The workers run the real CLI with ``pipeline.classify_chunk`` replaced before the pool forks: the
first records the chunk it got and hangs until it is killed; the second records it and returns.
No model and no products are needed to see who got which message.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from catalog_ai.settings import reset_settings
from catalog_ai.worker.app import QUEUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Runs in the worker's main process, before Celery forks its pool, so the pool inherits it.
_HOLDING_WORKER = """
import json, os, sys, time
from catalog_ai.worker import pipeline

def held(product_ids, **_):
    with open(os.environ["HELD_LOG"], "a") as log:
        log.write(json.dumps(list(product_ids)) + "\\n")
    if os.environ.get("HELD_HANG") == "1":
        time.sleep(3600)  # mid-task until killed
    return pipeline.ChunkSummary()

pipeline.classify_chunk = held
from catalog_ai.cli import main
sys.argv = ["catalog-ai", "worker", "--concurrency", "1", "--no-beat"]
main()
"""


def _wait(condition: Callable[[], bool], timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs
            )
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{shown}")
        time.sleep(0.1)


def _chunks(log: Path) -> list[list[int]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    # A Redis database of its own: workers of other tests (on database 15) must not take this
    # test's message, nor this test's workers theirs.
    url = redis_url.rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def env(tmp_path: Path, broker: str, monkeypatch) -> Iterator[dict[str, str]]:
    values = {
        "CATALOG_AI_HOME": str(tmp_path / "home"),
        "CATALOG_AI_BROKER_URL": broker,
        "CATALOG_AI_VISIBILITY_TIMEOUT": "3",
        "CATALOG_AI_OFFLINE": "1",
        "CATALOG_AI_TORCH_THREADS": "1",
    }
    for name in ("CATALOG_AI_DATABASE_URL", "CATALOG_AI_MEDIA_DIR", "CATALOG_AI_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    yield {**os.environ, **values}
    reset_settings()


def _start(env: dict[str, str], log: Path, held_log: Path, *, hang: bool) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _HOLDING_WORKER],
            env={**env, "HELD_LOG": str(held_log), "HELD_HANG": "1" if hang else "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes the pool child too
        )


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # ended between the poll and the kill
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)


def test_a_message_taken_by_a_worker_that_dies_comes_back(env, tmp_path, broker):
    from catalog_ai.worker.tasks import CeleryDispatcher

    CeleryDispatcher().classify([41, 42])  # one message on the real Redis, no worker yet
    client = redis.Redis.from_url(broker)
    assert client.llen(QUEUE) == 1

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first_held, second_held = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    logs = [first_log, second_log]
    first = _start(env, first_log, first_held, hang=True)
    second = None
    try:
        _wait(lambda: _chunks(first_held) == [[41, 42]], 90, "the first worker's task", logs)
        # Taken but not acknowledged (acks_late): off the queue, held in Redis for its owner.
        assert client.llen(QUEUE) == 0 and client.hlen("unacked") == 1
        _kill(first)  # SIGKILL to the worker and its pool process: no chance to give it back

        second = _start(env, second_log, second_held, hang=False)
        _wait(lambda: _chunks(second_held) == [[41, 42]], 90, "the message to come back", logs)
        # Done and acknowledged this time: nothing waits, nothing is held.
        _wait(lambda: client.hlen("unacked") == 0, 20, "the acknowledgement", logs)
        assert client.llen(QUEUE) == 0
        assert _chunks(first_held) == [[41, 42]]  # the dead worker never ran it again
    finally:
        _kill(first)
        if second is not None:
            _kill(second)
        client.close()

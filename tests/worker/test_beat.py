"""The beat child of ``catalog-ai worker --beat`` cannot outlive its worker, and keeps its
schedule under CATALOG_AI_HOME (never in the system temp folder)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap, or never reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in {"Z", "X"}


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


def _wait(condition, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\n"
                + log.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_beat_ends_when_its_worker_is_killed_and_keeps_its_schedule_in_the_home(
    tmp_path, redis_url
):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    temp.mkdir()
    env = {
        **os.environ,
        "CATALOG_AI_HOME": str(home),
        # A database of its own: this worker must not take other tests' messages.
        "CATALOG_AI_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/13",
        "CATALOG_AI_OFFLINE": "1",
        "CATALOG_AI_TORCH_THREADS": "1",
        "TMPDIR": str(temp),  # where tempfile.gettempdir() points in the worker
    }
    for name in ("CATALOG_AI_DATABASE_URL", "CATALOG_AI_MEDIA_DIR", "CATALOG_AI_MODEL_DIR"):
        env.pop(name, None)
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "catalog_ai", "worker", "--concurrency", "1", "--beat"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The worker's children: its pool process and its beat (Celery names neither in ps).
        _wait(
            lambda: b"beat: Starting" in log.read_bytes() and len(_children(worker.pid)) >= 2,
            120,
            "the beat to start",
            log,
        )
        children = _children(worker.pid)
        assert list((home / "beat").glob(f"schedule-*-{worker.pid}*")), "no schedule in the home"

        worker.send_signal(signal.SIGKILL)  # the main process only: no chance to stop its beat
        worker.wait(timeout=20)
        _wait(lambda: not any(map(_running, children)), 5, "the beat to end with its worker", log)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(worker.pid, signal.SIGKILL)  # whatever else is left of the group
        worker.wait(timeout=20)
    # (multiprocessing's own pymp-* folder of the killed process is not the beat's)
    left = [p.name for p in temp.iterdir() if "beat" in p.name or "schedule" in p.name]
    assert left == [], "beat files left in the system temp folder"


def test_schedules_of_workers_no_longer_running_are_removed(tmp_path):
    from catalog_ai.cli.worker import _beat_schedule

    folder = tmp_path / "beat"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = _beat_schedule(tmp_path, os.getpid())
    prefix = mine.name.removesuffix(str(os.getpid()))  # schedule-HOST-
    (folder / f"{prefix}{dead.pid}").write_bytes(b"old")
    (folder / f"{prefix}{dead.pid}.db").write_bytes(b"old")
    (folder / f"{prefix}{os.getppid()}").write_bytes(b"a live worker's")
    (folder / f"schedule-elsewhere-{dead.pid}").write_bytes(b"another machine's worker")
    assert _beat_schedule(tmp_path, os.getpid()) == mine
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{prefix}{os.getppid()}", f"schedule-elsewhere-{dead.pid}"]
    )

"""Shared fixtures: real services, the shared dataset, and an isolated catalog home per test.

Integration tests use the real Redis and PostgreSQL of this machine. Where a service is missing
they skip with the reason, except under ``CI=true``: there a missing service stops the whole run
with a non-zero exit code, because a green CI run that tested nothing against the services would
be a lie.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("CATALOG_AI_SHARED_DATA", REPO_ROOT.parent / "shared" / "datasets" / "grocery-store")
)
POSTGRES_ADMIN_URL = os.environ.get(
    "CATALOG_AI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CATALOG_AI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _IN_CI:
        return
    missing = []
    if not _reachable(POSTGRES_ADMIN_URL, 5432):
        missing.append(f"PostgreSQL at {POSTGRES_ADMIN_URL}")
    if not _reachable(REDIS_URL, 6379):
        missing.append(f"Redis at {REDIS_URL}")
    if missing:
        pytest.exit(
            "CI=true but these services are unreachable: " + "; ".join(missing)
            + ". Start them (see README, 'Production set-up') or unset CI to skip integration tests.",
            returncode=3,
        )


def _service_or_skip(name: str, url: str, port: int) -> None:
    if not _reachable(url, port):
        pytest.skip(f"{name} is not reachable at {url}; start it to run this integration test")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The Grocery Store train/val photos in ../shared (skips when this checkout has none)."""
    if not (SHARED_DATA / "train").is_dir():
        pytest.skip(
            f"shared dataset not found at {SHARED_DATA}; put ../shared beside the checkout "
            "or set CATALOG_AI_SHARED_DATA"
        )
    return SHARED_DATA


@pytest.fixture
def catalog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty catalog home: SQLite database, media and model directories under tmp_path."""
    from catalog_ai.settings import reset_settings

    home = tmp_path / "home"
    monkeypatch.setenv("CATALOG_AI_HOME", str(home))
    for var in (
        "CATALOG_AI_DATABASE_URL",
        "CATALOG_AI_BROKER_URL",
        "CATALOG_AI_RESULT_BACKEND",
        "CATALOG_AI_MEDIA_DIR",
        "CATALOG_AI_MODEL_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "1")
    reset_settings()
    yield home
    _drain_background_work()
    reset_settings()


def _drain_background_work() -> None:
    # This process's in-process runner (the CLI's, the dashboard's) finishes what a test gave it
    # while the test's settings still point at its catalog.
    import sys

    dispatch = sys.modules.get("catalog_ai.worker.dispatch")
    runner = getattr(dispatch, "_in_process", None)
    if runner is not None and not runner.drain(timeout=120):
        raise AssertionError("the in-process runner was still busy 120 s after the test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database on the real server, dropped afterwards."""
    _service_or_skip("PostgreSQL", POSTGRES_ADMIN_URL, 5432)
    import sqlalchemy as sa

    name = f"catalog_ai_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from catalog_ai.db.session import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The real Redis, on a database number kept for tests and flushed before use."""
    _service_or_skip("Redis", REDIS_URL, 6379)
    import redis

    url = REDIS_URL.rsplit("/", 1)[0] + "/15"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def runner() -> Iterator[object]:
    """A fresh in-process dispatcher (a background thread); drained after the test."""
    from catalog_ai.worker.dispatch import InProcessDispatcher

    dispatcher = InProcessDispatcher(name="test-runner")
    yield dispatcher
    assert dispatcher.drain(timeout=120), "the test's runner was still busy 120 s after it"

"""Fixtures of the API tests: the real application under uvicorn on a loopback port, on a fresh
PostgreSQL database, and keys of each scope for it.

``api_server`` runs ``catalog_ai.api.app:app`` in a thread of the test process (a uvicorn
``Server`` on a socket bound to a free port of 127.0.0.1), so requests travel over real HTTP
through uvicorn, FastAPI and the database. No broker: background work goes to this process's
in-process runner, as in the embedded set-up. Reusable by every API test::

    @pytest.mark.integration
    def test_x(api_server, api_client):
        with api_client("write") as client:
            r = client.post("/v1/products", files=...)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from catalog_ai.db import dispose_engines, migrate, unit_of_work
from catalog_ai.services.api_keys import create_key
from catalog_ai.settings import get_settings, reset_settings


@dataclass(frozen=True)
class ApiServer:
    url: str  # http://127.0.0.1:PORT
    database_url: str
    media_dir: Path
    home: Path


def _serve(sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """Start the application on ``sock`` in a thread; returns once uvicorn listens."""
    from catalog_ai.api.app import create_app

    config = uvicorn.Config(create_app(), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)  # off the main thread it installs no signal handlers
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    return server, thread


@contextmanager
def serving() -> Iterator[str]:
    """Another server of the application (a second API process, say) on the configured
    settings, for as long as the block runs; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server, thread = _serve(sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def running_api(
    database_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiServer]:
    """The real API over HTTP on 127.0.0.1, on ``database_url`` (migrated here), with its home
    (media, models) under ``home``, no broker; the environment is set through ``monkeypatch``."""
    monkeypatch.setenv("CATALOG_AI_HOME", str(home))
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", database_url)
    for var in (
        "CATALOG_AI_BROKER_URL",
        "CATALOG_AI_RESULT_BACKEND",
        "CATALOG_AI_MEDIA_DIR",
        "CATALOG_AI_MODEL_DIR",
        "CATALOG_AI_API_RATE_LIMIT",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "1")
    reset_settings()
    migrate.upgrade(database_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server, thread = _serve(sock)
    try:
        yield ApiServer(
            url=f"http://127.0.0.1:{port}",
            database_url=database_url,
            media_dir=get_settings().media_dir,
            home=home,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        _drain_runner()
        from catalog_ai.worker import model_cache

        model_cache.reset()
        dispose_engines()
        reset_settings()


@pytest.fixture
def api_server(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiServer]:
    """The real API over HTTP on 127.0.0.1, on a new, migrated PostgreSQL database."""
    with running_api(postgres_url, tmp_path / "home", monkeypatch) as server:
        yield server


def _drain_runner() -> None:
    from catalog_ai.worker.dispatch import InProcessDispatcher, default_dispatcher

    runner = default_dispatcher()
    if isinstance(runner, InProcessDispatcher):
        runner.drain(timeout=120)


@pytest.fixture
def api_key(api_server: ApiServer) -> Callable[..., str]:
    """``api_key(scope, name=None, rate_limit=None, owner=None)`` -> a new key's token."""
    counter = iter(range(1, 1_000_000))

    def make(
        scope: str, name: str | None = None, rate_limit: int | None = None, owner: str | None = None
    ) -> str:
        with unit_of_work() as session:
            new = create_key(
                session,
                name or f"test-{scope}-{next(counter)}",
                scope=scope,
                owner=owner,
                rate_limit=rate_limit,
            )
        return new.token

    return make


@pytest.fixture
def api_client(
    api_server: ApiServer, api_key: Callable[..., str]
) -> Iterator[Callable[..., httpx.Client]]:
    """``api_client(scope=None, **key_options)`` -> an httpx client for the server, with a new
    key of that scope (none: no Authorization header). Closed after the test."""
    clients: list[httpx.Client] = []

    def make(scope: str | None = None, **key_options: object) -> httpx.Client:
        headers = {}
        if scope is not None:
            headers["Authorization"] = f"Bearer {api_key(scope, **key_options)}"
        client = httpx.Client(base_url=api_server.url, headers=headers, timeout=60)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@dataclass(frozen=True)
class ActiveModel:
    version: str
    photos: list[Path]  # photos of the kind the model was made for (small PNGs)
    bundle_path: Path


@pytest.fixture
def active_model(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> ActiveModel:
    """The worker tests' tiny model (built once per session), registered and active in the
    server's catalog (its categories added); nothing enqueued."""
    from worker.support import activate, shared_model

    photos, bundle = shared_model(tmp_path_factory)
    version = activate(Path(bundle.path))
    return ActiveModel(version=version, photos=photos, bundle_path=Path(bundle.path))


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the real PostgreSQL (as ``postgres_url``, for fixtures of a
    wider scope), dropped afterwards."""
    import os
    import uuid

    import sqlalchemy as sa

    admin_url = os.environ.get(
        "CATALOG_AI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"catalog_ai_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {admin_url} ({exc.orig}); start it")
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

"""``catalog-ai api`` as a user starts it: a separate process serving the API with uvicorn on
the configured database; a key made by ``catalog-ai api-keys create`` works against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_catalog_ai_api_serves_the_api(postgres_url, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")},
        "CATALOG_AI_HOME": str(tmp_path / "home"),
        "CATALOG_AI_DATABASE_URL": postgres_url,
        "CATALOG_AI_OFFLINE": "1",
    }
    cli = [sys.executable, "-m", "catalog_ai"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [*cli, "api-keys", "create", "shop", "--scope", "read"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    token = created.stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [*cli, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/v1/health", timeout=5)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read() if server.stdout else ""
                    raise AssertionError(f"catalog-ai api did not start: {output}") from None
                time.sleep(0.2)
        assert health.status_code == 200, health.text
        keyed = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert keyed.status_code == 200 and keyed.json() == {"models": [], "active": None}
        assert httpx.get(f"{base}/v1/models").status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0

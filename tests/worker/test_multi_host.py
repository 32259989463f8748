"""N workers on M machines, for real: two worker "machines" and an API "machine" in network
namespaces of this host, each reaching Redis and PostgreSQL only over a veth link.

Each namespace has its own network stack (its own ``lo``, no route to the host's 127.0.0.1) and
one veth link to the root namespace with a private /30. Redis and PostgreSQL listen on the
root namespace's 127.0.0.1 only, and are not reconfigured: a TCP forwarder in this test process
listens on the root side of each link and relays to them (PostgreSQL still sees a 127.0.0.1
client, which its pg_hba trusts). So each namespace reaches the services as a remote machine
does: by an address on its network, never by loopback. The media and model directories are one
folder on the local disk that every namespace sees, which plays the shared volume (NFS, ...) of
the README's production set-up; network namespaces do not separate filesystems.

Products are posted over HTTP to ``catalog-ai api`` in its namespace; each worker namespace runs
``catalog-ai worker --concurrency 1`` (one with the beat, one without). The test checks that
workers on both "machines" classified products, that every product ends ``suggested`` exactly
once, and that ``GET /v1/health`` (answered inside the API namespace) names the broker at the
link address and both workers.

Needs root and ``ip`` (iproute2): elsewhere it skips, except under ``CI=true``, where it fails,
as tests/conftest.py does for missing services.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy import func, select

from catalog_ai.db import Product, ProductStatus, Suggestion, dispose_engines, migrate, unit_of_work
from catalog_ai.settings import reset_settings
from worker.netns import Cluster, Forwarder, Host, free_subnet, ip
from worker.support import LEAVES, make_photos

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
REDIS_DB = 8  # this test's own Redis database (other tests use 9 to 12 and 15)
PRODUCTS = 24
API_PORT = 8000


def _netns_or_skip(reason: str | None) -> None:
    if reason is None:
        return
    if _IN_CI:
        pytest.fail(f"{reason}; CI=true, so the multi-host test must run, not skip")
    pytest.skip(reason)


def _make_bundle(out_dir: Path):
    """tiny-cnn with random weights and auto-accept out of reach: every product ``suggested``."""
    from helpers import random_bundle

    from catalog_ai.model.decision import Thresholds

    return random_bundle(
        out_dir,
        paths=LEAVES,
        temperature=0.05,
        thresholds=Thresholds(decision=0.5, auto_accept=1.01),
        metrics={},
        head_std=1.0,
        note="random weights for the multi-host test",
    )


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    reason = None
    if os.geteuid() != 0:
        reason = "creating network namespaces (ip netns) needs root"
    elif shutil.which("ip") is None:
        reason = "the ip command (iproute2) is not installed"
    _netns_or_skip(reason)
    local_redis = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis.Redis.from_url(local_redis)
    client.flushdb()
    cluster = Cluster(tmp_path, uuid.uuid4().hex[:6])
    try:
        try:
            subnet = free_subnet()
            for index, role in enumerate(("w1", "w2", "api")):
                cluster.add_host(role, subnet, index)
        except RuntimeError as exc:
            _netns_or_skip(f"cannot build the test's network namespaces: {exc}")
        cluster.forwarder = Forwarder()
        yield cluster
    finally:
        cluster.close()
        client.flushdb()
        client.close()


def _machine_env(
    cluster: Cluster, host: Host, postgres_url: str, shared: Path, role: str
) -> dict[str, str]:
    """What every machine of the README's production set-up is given: the database and broker
    by a network address, the shared media and model volume, its own home."""
    assert cluster.forwarder is not None
    pg_port = cluster.forwarder.listen(host.root_addr, 5432)
    redis_port = cluster.forwarder.listen(host.root_addr, 6379)
    database = (
        sa.make_url(postgres_url)
        .set(host=host.root_addr, port=pg_port)
        .render_as_string(hide_password=False)
    )
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")},
        "CATALOG_AI_HOME": str(cluster.tmp / f"home-{role}"),
        "CATALOG_AI_DATABASE_URL": database,
        "CATALOG_AI_BROKER_URL": f"redis://{host.root_addr}:{redis_port}/{REDIS_DB}",
        "CATALOG_AI_MEDIA_DIR": str(shared / "media"),
        "CATALOG_AI_MODEL_DIR": str(shared / "models"),
        "CATALOG_AI_OFFLINE": "1",
        "CATALOG_AI_TORCH_THREADS": "1",
        "CATALOG_AI_CLASSIFY_CHUNK": "1",
    }


def _loopback_closed(ns: str, port: int) -> bool:
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), 2)\n"
        "except OSError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe], timeout=20)
    return done.returncode == 0


def _suggested_per_worker(log: str) -> int:
    # Celery's line for each finished task ends with its result, the chunk's summary.
    done = re.findall(r"classify_products\[[^\]]+\] succeeded in [^:]+: (\{[^}]*\})", log)
    return sum(int(m.group(1)) for s in done if (m := re.search(r"'suggested': (\d+)", s)))


def test_workers_on_two_machines_classify_what_an_api_on_a_third_receives(
    cluster: Cluster, postgres_url: str, tmp_path: Path, monkeypatch
):
    shared = tmp_path / "shared"  # the one volume every machine mounts
    # This process sets the catalogue up, as an operator does once per release.
    for name, value in {
        "CATALOG_AI_HOME": str(tmp_path / "home-admin"),
        "CATALOG_AI_DATABASE_URL": postgres_url,
        "CATALOG_AI_MEDIA_DIR": str(shared / "media"),
        "CATALOG_AI_MODEL_DIR": str(shared / "models"),
        "CATALOG_AI_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CATALOG_AI_BROKER_URL", raising=False)
    reset_settings()
    migrate.upgrade()
    from catalog_ai.services.api_keys import create_key
    from worker.support import activate

    photos = make_photos(tmp_path / "photos", 2 * PRODUCTS)
    activate(_make_bundle(tmp_path / "bundle").path)
    with unit_of_work() as session:
        token = create_key(session, "shop", scope="write", rate_limit=10_000).token

    for role in ("w1", "w2", "api"):  # the namespaces really are other machines
        assert _loopback_closed(cluster.hosts[role].ns, 6379), f"{role} reaches 127.0.0.1:6379"
    api, w1, w2 = (cluster.hosts[r] for r in ("api", "w1", "w2"))
    workers = {"w1": f"w1@{w1.ns}", "w2": f"w2@{w2.ns}"}
    for role, beat in (("w1", "--beat"), ("w2", "--no-beat")):  # one beat for the whole set-up
        env = _machine_env(cluster, cluster.hosts[role], postgres_url, shared, role)
        args = ["worker", "--concurrency", "1", "--hostname", workers[role], beat]
        cluster.start(role, role, args, env)
    api_env = _machine_env(cluster, api, postgres_url, shared, "api")
    cluster.start("api", "api", ["api", "--host", api.addr, "--port", str(API_PORT)], api_env)
    for role, proc, _log in cluster.procs:  # each process runs in its own namespace
        assert str(proc.pid) in ip("netns", "pids", cluster.hosts[role].ns).split()

    base = f"http://{api.addr}:{API_PORT}"  # over the API machine's veth link

    def health() -> httpx.Response | None:
        try:
            return httpx.get(f"{base}/v1/health", timeout=5)
        except httpx.TransportError:
            return None

    def all_workers_answer() -> bool:
        r = health()
        return r is not None and r.status_code == 200 and len(r.json()["broker"]["workers"]) == 2

    cluster.wait_until(lambda: " ready." in cluster.log("w1"), 60, "worker w1 to start")
    cluster.wait_until(lambda: " ready." in cluster.log("w2"), 60, "worker w2 to start")
    cluster.wait_until(all_workers_answer, 60, "the API to see both workers")

    def post(i: int) -> int:
        files = [
            ("photos", (p.name, p.read_bytes(), "image/png")) for p in photos[2 * i : 2 * i + 2]
        ]
        r = httpx.post(
            f"{base}/v1/products",
            files=files,
            data={"external_id": f"SKU-{i}", "title": f"product {i}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    with ThreadPoolExecutor(4) as pool:  # a burst, as a shop's feed sends them
        ids = list(pool.map(post, range(PRODUCTS)))

    def all_suggested() -> bool:
        with unit_of_work() as session:
            statuses = list(session.scalars(select(Product.status)))
        return len(statuses) == PRODUCTS and set(statuses) == {ProductStatus.SUGGESTED}

    cluster.wait_until(all_suggested, 60, f"the {PRODUCTS} products to be suggested")
    with unit_of_work() as session:
        per_product = dict(
            session.execute(
                select(Suggestion.product_id, func.count()).group_by(Suggestion.product_id)
            ).all()
        )
        attempts = set(session.scalars(select(Product.attempts)))
    assert per_product == {i: 1 for i in ids} and attempts == {1}

    by_worker = {role: _suggested_per_worker(cluster.log(role)) for role in workers}
    assert all(by_worker.values()), f"a worker machine classified nothing: {by_worker}"
    assert sum(by_worker.values()) == PRODUCTS, (by_worker, cluster.logs())

    final = health()
    assert final is not None and final.status_code == 200, final.text if final else None
    body = final.json()
    assert body["status"] == "ok" and body["database"]["ok"] and body["broker"]["ok"]
    assert body["broker"]["workers"] == sorted(workers.values())
    assert body["broker"]["broker"].startswith(f"redis://{api.root_addr}:")
    assert {k: n for k, n in body["products"].items() if n} == {"suggested": PRODUCTS}
    print(f"\nproducts classified per worker machine: {by_worker}")
    dispose_engines()

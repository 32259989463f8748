"""The HTTP API under load: products created per second and latency, and the time from
``POST /v1/products`` to the signed ``suggestion.created`` webhook.

    .venv/bin/python benchmarks/api.py [--requests 48] [--clients 1,4,16] [--latency 20]
                                       [--backbone efficientnet_lite0] [--json FILE]

Everything is real and on loopback: a ``catalog-ai api`` process (uvicorn) on a fresh PostgreSQL
database with Redis as the broker, a webhook receiver in this process that checks every
signature, and, for the second part, two ``catalog-ai worker --concurrency 1`` processes. The
model is a bundle of the backbone's real pretrained weights with an untrained head (speed does
not depend on the head; ``benchmarks/ingest.py`` builds it).

1. Creation: for 1, 4 and 16 concurrent clients (one HTTP connection each), ``--requests``
   products per level, each one distinct real photo of the shared Grocery Store train split
   (multipart, one photo, a unique ``external_id``). No worker runs yet, so the figures are
   the API's own (the products queue up in Redis). Reported: products/s over the level's wall
   time, and p50/p95 of the request latency.
2. Then two worker processes start and classify that backlog; once every product is
   suggested and its webhook has arrived, ``--latency`` products are posted one at a time, each
   after the previous one's webhook came: the time from the start of the POST to the arrival
   of its ``suggestion.created`` webhook (p50, p95, max), on an otherwise idle system.

Uses Redis database 13 and creates (and drops) its own PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from ingest import _postgres_database, _use, build_bundle  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "grocery-store"
POSTGRES_ADMIN_URL = os.environ.get(
    "CATALOG_AI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Receiver:
    """A webhook endpoint on loopback: verifies each signature, records arrivals by product."""

    def __init__(self, secret_holder: dict[str, str]) -> None:
        from catalog_ai.services.webhook_signing import verify_signature

        self.arrived: dict[int, float] = {}
        self.bad_signatures = 0
        self.events: set[str] = set()
        self.duplicates = 0
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.perf_counter()
                ok = verify_signature(secret_holder["secret"], dict(self.headers), body)
                event = json.loads(body)
                with outer._cond:
                    if not ok:
                        outer.bad_signatures += 1
                    if event["event_id"] in outer.events:
                        outer.duplicates += 1
                    outer.events.add(event["event_id"])
                    if event["type"] == "suggestion.created":
                        outer.arrived.setdefault(int(event["data"]["product_id"]), now)
                    outer._cond.notify_all()
                self.send_response(204 if ok else 400)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, product_ids: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not product_ids <= self.arrived.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(product_ids - self.arrived.keys())
                    raise SystemExit(
                        f"{len(missing)} suggestion.created webhooks did not arrive within "
                        f"{timeout:.0f} s (first: product {missing[0]})"
                    )
                self._cond.wait(left)


def _prepare(bundle: Path, hook_url: str, keys: int) -> tuple[list[str], str]:
    """Migrate, register and activate the model, create ``keys`` keys and the webhook."""
    from catalog_ai.db import migrate, unit_of_work
    from catalog_ai.services.api_keys import create_key
    from catalog_ai.services.models import activate_model, register_model
    from catalog_ai.services.webhooks import add_webhook

    migrate.upgrade()
    with unit_of_work() as session:
        version = register_model(session, bundle, add_categories=True).version
        activate_model(session, version, dispatcher=None)
        tokens = [
            create_key(session, f"bench-{k}", scope="write", rate_limit=1_000_000).token
            for k in range(keys)
        ]
        secret = add_webhook(session, hook_url, ["suggestion.created"]).secret
    assert secret is not None
    return tokens, secret


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "catalog_ai", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_up(base: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the API did not come up within {timeout} s")


def _post(client, photo: Path, external_id: str) -> tuple[int, float]:
    start = time.perf_counter()
    response = client.post(
        "/v1/products",
        data={"title": photo.stem, "external_id": external_id},
        files={"photos": (photo.name, photo.read_bytes(), "image/jpeg")},
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 202:
        raise SystemExit(f"POST /v1/products: {response.status_code} {response.text[:500]}")
    return int(response.json()["id"]), elapsed


def creation_level(
    base: str, tokens: list[str], photos: list[Path], clients: int, tag: str
) -> dict:
    """``clients`` threads, each with its own connection and, when there are enough tokens,
    its own key."""
    import httpx

    local = threading.local()
    handed = iter(range(1_000_000))
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            with lock:
                token = tokens[next(handed) % len(tokens)]
            local.client = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
            )
        return local.client

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(
            pool.map(lambda ip: _post(client(), ip[1], f"{tag}-{ip[0]}"), enumerate(photos))
        )
    wall = time.perf_counter() - start
    latencies = [r[1] for r in results]
    return {
        "clients": clients,
        "requests": len(photos),
        "products_per_s": len(photos) / wall,
        "p50_ms": 1000 * _percentile(latencies, 0.5),
        "p95_ms": 1000 * _percentile(latencies, 0.95),
        "ids": [r[0] for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--requests", type=int, default=48, help="products per client level")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--latency", type=int, default=20, help="products timed to the webhook")
    parser.add_argument(
        "--key-per-client",
        action="store_true",
        help="every client its own API key (default: all share one, as one shop integration)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    photos = sorted((args.data / "train").rglob("*.jpg"))
    needed = args.requests * len(levels) + args.latency + 1  # + 1: the warm-up request
    if len(photos) < needed:
        raise SystemExit(f"{len(photos)} train photos under {args.data}, {needed} needed")
    photos = photos[:: max(1, len(photos) // needed)][:needed]

    import httpx
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    work = Path(tempfile.mkdtemp(prefix="catalog-ai-api-bench-"))
    bundle = build_bundle(work / "bundle", args.backbone, args.data)
    database_url, drop = _postgres_database(POSTGRES_ADMIN_URL)
    env = {
        "CATALOG_AI_HOME": str(work / "home"),
        "CATALOG_AI_DATABASE_URL": database_url,
        "CATALOG_AI_BROKER_URL": args.redis_url,
        "CATALOG_AI_OFFLINE": "1",
    }
    _use(env)
    secret_holder: dict[str, str] = {}
    receiver = Receiver(secret_holder)
    tokens, secret_holder["secret"] = _prepare(
        bundle, receiver.url, max(levels) if args.key_per_client else 1
    )
    token = tokens[0]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    figures: dict = {
        "machine": f"{os.cpu_count()} cores",
        "backbone": args.backbone,
        "keys": len(tokens),
    }
    try:
        api_log = work / "api.log"
        procs.append(_spawn(["api", "--port", str(port)], env, api_log))
        _wait_up(base, procs[0], api_log)
        print(f"API up at {base}; {needed} distinct photos; logs in {work}")
        # One untimed request first: the API process imports the photo decoder and opens its
        # database connections on its first upload.
        warm = creation_level(base, tokens, photos[-1:], 1, "warm-up")
        print(f"  warm-up request: {warm['p50_ms']:.0f} ms")
        creation = []
        for n, clients in enumerate(levels):
            batch = photos[n * args.requests : (n + 1) * args.requests]
            level = creation_level(base, tokens, batch, clients, f"c{clients}")
            creation.append(level)
            print(
                f"  {clients:>2} clients: {level['products_per_s']:6.1f} products/s, "
                f"p50 {level['p50_ms']:6.1f} ms, p95 {level['p95_ms']:6.1f} ms "
                f"({level['requests']} requests)"
            )
        figures["creation"] = [{k: v for k, v in c.items() if k != "ids"} for c in creation]
        backlog = {pid for c in [warm, *creation] for pid in c["ids"]}
        worker_env = {**env, "CATALOG_AI_TORCH_THREADS": "1"}
        for k in (1, 2):
            procs.append(
                _spawn(
                    ["worker", "--concurrency", "1", "-n", f"bench{k}@%h"]
                    + ([] if k == 1 else ["--no-beat"]),
                    worker_env,
                    work / f"worker{k}.log",
                )
            )
        started = time.perf_counter()
        receiver.wait_for(backlog, timeout=1800)
        backlog_s = time.perf_counter() - started
        figures["backlog"] = {"products": len(backlog), "seconds": backlog_s}
        print(
            f"backlog of {len(backlog)} products classified and their webhooks received by two "
            f"workers in {backlog_s:.1f} s (includes loading the model in each worker)"
        )
        to_webhook: list[float] = []
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as client:
            for i, photo in enumerate(photos[len(levels) * args.requests : -1]):
                start = time.perf_counter()
                pid, _ = _post(client, photo, f"latency-{i}")
                receiver.wait_for({pid}, timeout=300)
                to_webhook.append(receiver.arrived[pid] - start)
        figures["post_to_webhook_ms"] = {
            "n": len(to_webhook),
            "p50": 1000 * statistics.median(to_webhook),
            "p95": 1000 * _percentile(to_webhook, 0.95),
            "max": 1000 * max(to_webhook),
        }
        figures["webhooks"] = {
            "received": len(receiver.events),
            "bad_signatures": receiver.bad_signatures,
            "duplicates": receiver.duplicates,
        }
        t = figures["post_to_webhook_ms"]
        print(
            f"POST -> suggestion.created webhook, two workers, {t['n']} products one at a time: "
            f"p50 {t['p50']:.0f} ms, p95 {t['p95']:.0f} ms, max {t['max']:.0f} ms"
        )
        print(
            f"webhooks received {len(receiver.events)}, bad signatures "
            f"{receiver.bad_signatures}, duplicate deliveries {receiver.duplicates}"
        )
    finally:
        for proc in reversed(procs):
            _stop(proc)
        receiver.server.shutdown()
        drop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A real webhook receiver on loopback for the tests: an ``http.server`` in a thread.

It can be down (the port bound but not listening: connections are refused) and come up later,
answer by a plan (a status per request number: 503, 404, a redirect, ...), and hold a request
past the sender's timeout after taking it (the sender then tries again: a duplicate). It keeps
every request it saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver", "Recorder", "Request"]


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["X-CatalogAI-Event-Id"]


class Receiver:
    """``plan(n, request)`` gives the status of the n-th request (1-based), default 200;
    ``hold_s(n)`` how long to sleep after recording it, before answering."""

    def __init__(
        self,
        plan: Callable[[int], int] | None = None,
        *,
        hold_s: Callable[[int], float] | None = None,
        up: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan or (lambda n: 200)
        self.hold_s = hold_s or (lambda n: 0.0)
        self.extra_headers = headers or {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    n = len(receiver.requests) + 1
                    status = receiver.plan(n)
                    receiver.requests.append(
                        Request(self.path, dict(self.headers.items()), body, status, time.time())
                    )
                time.sleep(receiver.hold_s(n))
                self.send_response(status)
                for key, value in receiver.extra_headers.items():
                    self.send_header(key, value)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                payload = b'{"ok": true}' if status < 300 else b'{"error": "planned"}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self._server.server_bind()
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        if up:
            self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/catalog-ai"

    def start(self) -> None:
        """Begin listening: until now connections to the port were refused."""
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()

    def seen(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Request]:
        return [r for r in self.seen() if 200 <= r.answered < 300]

    def wait_for(self, condition: Callable[[list[Request]], bool], timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not condition(self.seen()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; the receiver saw "
                    f"{[(r.answered, r.headers.get('X-CatalogAI-Event')) for r in self.seen()]}"
                )
            time.sleep(0.05)


class Recorder:
    """A dispatcher that writes down the deliveries it is handed (and nothing else)."""

    def __init__(self) -> None:
        self.delivered: list[list[int]] = []

    def classify(self, product_ids) -> None:
        pass

    def reclassify(self, version) -> None:
        pass

    def embed_catalogue(self, version) -> None:
        pass

    def deliver(self, delivery_ids) -> None:
        self.delivered.append(list(delivery_ids))

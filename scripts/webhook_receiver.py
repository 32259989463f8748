#!/usr/bin/env python3
"""A webhook receiver to try catalog_ai's signed webhooks with (README, "Connect your shop").

    python3 scripts/webhook_receiver.py --secret whsec_... [--port 9000] [--fail-first N]

Standard library only, so it doubles as the reference for a shop's own endpoint: it checks the
``X-CatalogAI-Signature`` header (HMAC-SHA256 over ``f"{t}."`` + the exact body, Stripe's
scheme; a timestamp more than 5 minutes off is refused), answers 204, and prints one line per
event. Each event id is printed once: a redelivered event (at-least-once delivery) is reported
as a duplicate and acknowledged again, which is what a receiver must do. ``--fail-first N``
answers 503 to the first N requests, to watch the retries with back-off.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300


def verify(secret: str, header: str | None, body: bytes) -> str | None:
    """Why the signature is bad; ``None`` when it is good and fresh."""
    if not header:
        return "no X-CatalogAI-Signature header"
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    stamp = (parts.get("t") or [""])[0]
    if not stamp.isdigit() or not parts.get("v1"):
        return "malformed signature header"
    if abs(time.time() - int(stamp)) > TOLERANCE_S:
        return "stale timestamp"
    good = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(good, v) for v in parts["v1"]):
        return "signature does not match"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="the secret `webhooks add` printed")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 this many times")
    args = parser.parse_args()
    seen: set[str] = set()
    refused = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if refused[0] < args.fail_first:
                refused[0] += 1
                print(f"refusing request {refused[0]} of {args.fail_first} (503)", flush=True)
                self.send_response(503)
                self.end_headers()
                return
            problem = verify(args.secret, self.headers.get("X-CatalogAI-Signature"), body)
            if problem:
                print(f"REJECTED: {problem}", flush=True)
                self.send_response(400)
                self.end_headers()
                return
            event = json.loads(body)
            duplicate = event["event_id"] in seen
            seen.add(event["event_id"])
            data = event.get("data", {})
            found = data.get("suggestion") or data.get("category") or {}
            summary = found.get("path") or data.get("version") or data.get("error") or ""
            if "confidence" in found:
                summary += f" (confidence {found['confidence']:.2f})"
            print(
                f"{'duplicate ' if duplicate else ''}{event['type']} {event['event_id']} "
                f"product={data.get('product_id')} {summary} "
                f"(attempt {self.headers.get('X-CatalogAI-Attempt')}, signature ok)",
                flush=True,
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

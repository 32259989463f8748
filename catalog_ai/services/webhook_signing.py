"""Signing webhook deliveries, and checking a signature (for receivers and the tests).

Signing (Stripe's scheme): ``X-CatalogAI-Signature: t=<unix seconds>,v1=<hex>``, the hex being
``HMAC-SHA256(key=secret, msg=f"{t}.".encode() + body)`` over the exact bytes of the body.
The timestamp inside the signed text lets a receiver refuse old (replayed) requests.
:func:`verify_signature` checks it; a receiver without catalog_ai does the same in 5 lines::

    import hashlib, hmac, time
    def verify(secret: str, headers, body: bytes, tolerance_s: int = 300) -> bool:
        parts = dict(p.split("=", 1) for p in headers["X-CatalogAI-Signature"].split(","))
        good = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
        fresh = abs(time.time() - int(parts["t"])) <= tolerance_s
        return fresh and hmac.compare_digest(good.hexdigest(), parts["v1"])

Every request also carries ``X-CatalogAI-Event-Id`` (``evt_…``: the same on every try, the key
a receiver dedupes on), ``X-CatalogAI-Event`` (the type), ``X-CatalogAI-Timestamp`` (the signed
``t``), ``X-CatalogAI-Delivery`` (the delivery id of ``catalog-ai webhooks deliveries``) and
``X-CatalogAI-Attempt`` (the try's number).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ATTEMPT_HEADER",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "body_bytes",
    "sign",
    "signature_header",
    "signature_problem",
    "verify_signature",
]

SIGNATURE_HEADER = "X-CatalogAI-Signature"
TIMESTAMP_HEADER = "X-CatalogAI-Timestamp"
EVENT_HEADER = "X-CatalogAI-Event"
EVENT_ID_HEADER = "X-CatalogAI-Event-Id"
DELIVERY_HEADER = "X-CatalogAI-Delivery"
ATTEMPT_HEADER = "X-CatalogAI-Attempt"
#: How old a signed timestamp a receiver should still accept (Stripe's default too).
DEFAULT_TOLERANCE_S = 300


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent for ``payload``: compact JSON, sorted keys, UTF-8. The same every time,
    so each retry carries the identical body."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def sign(secret: str, body: bytes | str, timestamp: int) -> str:
    """The hex ``v1`` signature: HMAC-SHA256 with ``secret`` over ``f"{timestamp}."`` + body."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes | str, timestamp: int) -> str:
    return f"t={timestamp},v1={sign(secret, body, timestamp)}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def signature_problem(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> str | None:
    """Why the request does not carry a valid, fresh signature of ``body``; None if it does."""
    raw = _header(headers, SIGNATURE_HEADER)
    if not raw:
        return f"no {SIGNATURE_HEADER} header"
    timestamp, signatures = None, []
    for part in raw.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)  # several during a secret change: any one may match
    if timestamp is None or not timestamp.isdigit() or not signatures:
        return f"{SIGNATURE_HEADER} is not of the form t=<unix seconds>,v1=<hex>"
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_s:
        return f"the signed timestamp is {age:.0f} s off, beyond the {tolerance_s:.0f} s allowed"
    expected = sign(secret, body, int(timestamp))
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        return "the signature does not match the body (another secret, or a changed body)"
    return None


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` (any mapping; names in any case) sign exactly ``body`` with
    ``secret`` at a time within ``tolerance_s`` of now. For receivers::

        body = request.body()                      # the raw bytes, before any JSON parsing
        if not verify_signature(SECRET, request.headers, body):
            return Response(status_code=400)
        event = json.loads(body)                   # dedupe on event["event_id"]
    """
    return signature_problem(secret, headers, body, tolerance_s, now=now) is None

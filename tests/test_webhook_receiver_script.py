"""The README's example receiver (scripts/webhook_receiver.py) accepts exactly what
catalog_ai signs: it is the reference a shop copies, so it must agree with the signer."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from catalog_ai.services.webhook_signing import body_bytes, signature_header

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "webhook_receiver.py"


def _receiver():
    spec = importlib.util.spec_from_file_location("webhook_receiver", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_receiver_verifies_catalog_ai_signatures() -> None:
    receiver = _receiver()
    body = body_bytes({"event_id": "evt_1", "type": "suggestion.created", "data": {"x": "é"}})
    now = int(time.time())
    header = signature_header("whsec_test", body, now)
    assert receiver.verify("whsec_test", header, body) is None
    assert receiver.verify("whsec_other", header, body) == "signature does not match"
    assert receiver.verify("whsec_test", header, body + b" ") == "signature does not match"
    stale = signature_header("whsec_test", body, now - 3600)
    assert receiver.verify("whsec_test", stale, body) == "stale timestamp"
    assert receiver.verify("whsec_test", None, body) == "no X-CatalogAI-Signature header"

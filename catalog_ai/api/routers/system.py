"""``GET /v1/health`` and ``GET /metrics``: for load balancers, monitors and Prometheus.

Neither needs a key. Health must answer a load balancer that holds no secret. The metrics hold
counts only (requests per route, products per status, suggestions per outcome, queue depth), no
product, photo, key or person, and Prometheus scrapers are most often set up without
credentials; a deployment that must hide even those counts keeps ``/metrics`` off the public
network at its proxy, as it would for any exporter.

Health is ``200`` when the database answers and, with a broker configured, the broker answers
and at least one worker replies to a ping (without one, uploads wait for ever); else ``503``,
with the reasons in ``problems``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from catalog_ai.api.metrics import CONTENT_TYPE, render
from catalog_ai.api.schemas.system import BrokerOut, DatabaseOut, HealthOut

__all__ = ["router"]

router = APIRouter(tags=["system"])


def _health() -> HealthOut:
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.health import pipeline_status
    from catalog_ai.settings import get_settings

    problems: list[str] = []
    figures: dict = {}
    try:
        with unit_of_work() as session:
            figures = pipeline_status(session, recent_failures=0)
        database = DatabaseOut(ok=True)
    except Exception as exc:  # health reports, it does not fail
        database = DatabaseOut(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        problems.append("the database does not answer: " + (database.error or ""))
    if get_settings().broker_url is None:
        from catalog_ai.worker.dispatch import InProcessDispatcher, default_dispatcher

        runner = default_dispatcher()
        depth = runner.pending() if isinstance(runner, InProcessDispatcher) else None
        broker = BrokerOut(broker="in-process", ok=True, queued=depth)
    else:
        from catalog_ai.worker.queue import broker_status

        status = broker_status(ping_timeout=1.0)
        broker = BrokerOut(ok=status.error is None, **status.to_dict())
        depth = status.queued
        if status.error is not None:
            problems.append(f"the broker does not answer: {status.error}"[:500])
        elif not status.workers:
            problems.append(
                "no worker answers a ping: uploads wait until one runs (catalog-ai worker)"
            )
    return HealthOut(
        status="unhealthy" if problems else "ok",
        database=database,
        broker=broker,
        queue_depth=depth,
        products=figures.get("by_status", {}),
        oldest_pending_s=figures.get("oldest_pending_s"),
        active_model=figures.get("active_model"),
        problems=problems,
    )


@router.get(
    "/v1/health",
    response_model=HealthOut,
    summary="Database, broker, workers and queue depth (no key needed)",
    responses={503: {"model": HealthOut, "description": "something the API needs is down"}},
)
def health() -> JSONResponse:
    body = _health()
    return JSONResponse(
        body.model_dump(mode="json"), status_code=200 if body.status == "ok" else 503
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics (no key needed; see the module docstring for why)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    return Response(render(), media_type=CONTENT_TYPE)

"""Prometheus metrics of the API process, served at ``/metrics``.

Counted as requests pass (this process): requests by method, route template and status, their
latency, and the model's latency on ``POST /v1/classify``. Read at scrape time (the truth is the
database and the broker, shared by every process, so any API process reports the same): products
per status, the oldest pending product's wait, suggestions by source and outcome, the queue depth
and live workers. A scrape that cannot reach the database or the broker leaves those gauges out
(and logs why) instead of failing: the request metrics are still worth having.

One registry of our own (:data:`REGISTRY`), not prometheus_client's global one: tests build
several applications in one process, and a metric may be registered once per registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CLASSIFY_SECONDS",
    "CONTENT_TYPE",
    "REGISTRY",
    "REQUESTS",
    "REQUEST_SECONDS",
    "MetricsMiddleware",
    "render",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "catalog_ai_api_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "catalog_ai_api_request_duration_seconds",
    "time to answer an HTTP request, by method and route template",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLASSIFY_SECONDS = Histogram(
    "catalog_ai_classification_duration_seconds",
    "time the model took for one photo of POST /v1/classify (decoding included)",
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _StateCollector(Collector):
    """Gauges read from the database and the broker when Prometheus scrapes."""

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # nothing is read when the collector is registered, only on a scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _database_gauges()
        yield from _queue_gauges()


def _database_gauges() -> Iterator[GaugeMetricFamily]:
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.health import oldest_pending, status_counts
    from catalog_ai.services.suggestion_stats import suggestion_outcomes

    try:
        with unit_of_work() as session:
            by_status = status_counts(session)
            oldest = oldest_pending(session)
            outcomes = suggestion_outcomes(session)
    except Exception as exc:  # a scrape reports what it can
        log.warning("metrics: the database cannot be read (%s)", exc)
        return
    products = GaugeMetricFamily("catalog_ai_products", "products per status", labels=["status"])
    for status, n in by_status.items():
        products.add_metric([status], n)
    yield products
    yield GaugeMetricFamily(
        "catalog_ai_oldest_pending_seconds",
        "how long the product waiting longest for a worker has waited (0: none waits)",
        value=0.0 if oldest is None else oldest[1],
    )
    suggestions = GaugeMetricFamily(
        "catalog_ai_suggestions",
        "products by the source and outcome of their newest suggestion",
        labels=["source", "outcome"],
    )
    for (source, outcome), n in sorted(outcomes.items()):
        suggestions.add_metric([source, outcome], n)
    yield suggestions


def _queue_gauges() -> Iterator[GaugeMetricFamily]:
    from catalog_ai.settings import get_settings

    if get_settings().broker_url is None:
        from catalog_ai.worker.dispatch import default_dispatcher

        runner = default_dispatcher()
        depth = getattr(runner, "pending", lambda: 0)()
        yield GaugeMetricFamily(
            "catalog_ai_queue_depth", "background jobs waiting or running", value=depth
        )
        return
    from catalog_ai.worker.queue import broker_status

    status = broker_status(ping_timeout=0.5)
    if status.error is not None:
        log.warning("metrics: the broker cannot be asked (%s)", status.error)
        return
    yield GaugeMetricFamily(
        "catalog_ai_queue_depth", "messages waiting in the broker's queue", value=status.queued or 0
    )
    yield GaugeMetricFamily(
        "catalog_ai_workers", "workers that answered a ping", value=len(status.workers)
    )


REGISTRY.register(_StateCollector())


def render() -> bytes:
    """The text exposition of every metric."""
    return _generate(REGISTRY)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (``/v1/products/{id}``, not
    the concrete path, so the label set stays bounded; unmatched paths count as ``unmatched``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before the response started is answered with a 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            REQUESTS.labels(method, template, str(status)).inc()
            REQUEST_SECONDS.labels(method, template).observe(time.perf_counter() - start)

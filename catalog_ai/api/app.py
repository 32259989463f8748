"""The FastAPI application: its routers, its error handlers and its OpenAPI document.

:func:`create_app` builds it; ``catalog-ai api`` serves it with uvicorn (``catalog_ai.api.app:app``
is the same, built at import). Every router module under :mod:`catalog_ai.api.routers` that has a
``router`` is included (:func:`catalog_ai.api.routers.all_routers`).

Every error leaves as ``application/problem+json`` (:mod:`catalog_ai.api.problems`): a
:class:`~catalog_ai.api.problems.Problem` a route raised, a
:class:`~catalog_ai.errors.CatalogAIError` it let out (mapped by its class), FastAPI's request
validation (422, every invalid field listed), Starlette's HTTP errors (404 for an unknown path,
405, ...), and anything unexpected: a 500 whose detail names no internals, with the traceback in
the log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

import catalog_ai
from catalog_ai.api.body_limit import BodyLimit
from catalog_ai.api.deps import route_scope
from catalog_ai.api.docs import add_docs
from catalog_ai.api.metrics import MetricsMiddleware
from catalog_ai.api.problems import MEDIA_TYPE, Problem, ProblemBody, from_error
from catalog_ai.api.routers import all_routers, api_routes
from catalog_ai.errors import CatalogAIError
from catalog_ai.settings import get_settings

__all__ = ["app", "create_app"]

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Sort product photos into your store's category tree over HTTP.

Every route but `GET /v1/health` and `/metrics` needs an API key
(`catalog-ai api-keys create NAME --scope read|write|review|admin`), sent as
`Authorization: Bearer <token>`. Scopes are ordered read < write < review < admin; each includes
the ones before it. Errors are `application/problem+json` (RFC 9457) with `field` (the field at
fault) and `fix`.
"""

_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "request-too-large",
    415: "unsupported-media-type",
}


def _respond(request: Request, problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return _respond(request, exc)


async def _on_catalog_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CatalogAIError)
    return _respond(request, from_error(exc))


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "title") -> "title"; ("query", "limit") -> "limit"; ("header", "x") -> "x"
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(e.get("loc", ())), "in": str(e.get("loc", ("",))[0]), "msg": e["msg"]}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": None, "msg": "invalid request"}
    problem = Problem(
        422,
        "validation-error",
        f"{first['field'] or 'the request'}: {first['msg']}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        field=first["field"] or None,
        fix="correct the fields listed in errors; see /docs for what each accepts",
        errors=errors,
    )
    return _respond(request, problem)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    fix = None
    if status == 404:
        detail, fix = f"no route {request.url.path!r}", "see /docs for the routes"
    elif status == 405:
        fix = "see /docs for the methods this route accepts"
    problem = Problem(
        status,
        _SLUGS.get(status, f"http-{status}"),
        detail,
        fix=fix,
        headers=dict(exc.headers or {}),
    )
    return _respond(request, problem)


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the request carried (a number beyond its column, text it
    # cannot hold): the request's fault, never the server's. Routes bound their inputs; this
    # catches what a bound missed.
    log.warning("the database refused a value of %s %s: %s", request.method, request.url.path, exc)
    problem = Problem(
        422,
        "value-out-of-range",
        "a value in the request is beyond what the catalog can hold (ids are at most "
        f"{2**31 - 1}); send a smaller value",
    )
    return _respond(request, problem)


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    # The database did not answer (connection refused, pool exhausted, server restarting): the
    # request may well succeed later, so say so rather than report a server fault.
    log.warning("the database failed on %s %s: %s", request.method, request.url.path, exc)
    problem = Problem(
        503,
        "database-unavailable",
        "the catalog database does not answer; try again in a few seconds",
        headers={"Retry-After": "5"},
    )
    return _respond(request, problem)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(
        500,
        "internal-error",
        "the server failed on this request (the traceback is in its log)",
        fix="try again; if it persists, report the request and the time to the operator",
    )
    return _respond(request, problem)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the problem schema and each route's ``x-required-scope``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ProblemBody", ProblemBody.model_json_schema())
    for route in api_routes():
        if not route.include_in_schema:
            continue
        scope = route_scope(route)
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None and scope is not None:
                operation["x-required-scope"] = scope.value
    app.openapi_schema = schema
    return schema


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With the in-process runner (no broker), this long-lived process also sweeps for webhook
    deliveries that are due: what an earlier process left when it ended before a retry. With a
    broker the worker's beat does it."""
    from catalog_ai.worker.dispatch import InProcessDispatcher, default_dispatcher

    runner = default_dispatcher()
    if isinstance(runner, InProcessDispatcher):
        runner.start_sweeping()
    try:
        yield
    finally:
        if isinstance(runner, InProcessDispatcher):
            runner.stop_sweeping()


def create_app() -> FastAPI:
    """The API application (one per process). It reads the settings when it answers, except
    ``CATALOG_AI_API_CORS_ORIGINS``, read here."""
    app = FastAPI(
        title="catalog_ai",
        version=catalog_ai.__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served from this host by add_docs (no CDN)
        redoc_url=None,
        lifespan=_lifespan,
    )
    for router in all_routers():
        app.include_router(router)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(CatalogAIError, _on_catalog_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DataError, _on_data_error)
    app.add_exception_handler(OperationalError, _on_database_down)
    app.add_exception_handler(SQLAlchemyTimeoutError, _on_database_down)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(MetricsMiddleware)
    # Outside the routes and metrics: an oversized body is refused before anything reads it.
    app.add_middleware(BodyLimit, limit=lambda: get_settings().api_max_request_bytes)
    origins = get_settings().api_cors_origins
    if origins:  # a shop's admin pages calling the API from the browser (still with a key)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=[
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
                "Location",
            ],
            max_age=600,
        )
    add_docs(app, title="catalog_ai")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


app = create_app()

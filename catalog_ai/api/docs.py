"""The API's docs page (Swagger UI) served from this host: a self-hosted system may have no
internet, and FastAPI's default page loads its JavaScript from a CDN (a blank page offline).

The assets come from the ``fastapi-offline`` wheel (Swagger UI 5, which reads OpenAPI 3.1 as
FastAPI writes it; the ``swagger-ui-bundle`` wheel ships 4.15, which cannot).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_URL", "add_docs"]

DOCS_URL = "/docs"
_STATIC = f"{DOCS_URL}/static"


def add_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at :data:`DOCS_URL` for ``app.openapi_url``, every asset from here."""
    static_dir = files("fastapi_offline") / "static"
    app.mount(_STATIC, StaticFiles(directory=str(static_dir)), name="docs-static")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - API docs",
            swagger_js_url=f"{_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{_STATIC}/favicon.png",
        )

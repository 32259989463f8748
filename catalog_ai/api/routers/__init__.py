"""One router per resource; :func:`all_routers` finds them.

Every module in this package that defines ``router`` (a FastAPI ``APIRouter``) is included by the
application, in module-name order, so a new resource is a new module here and nothing else.
Routers carry their own prefix (``/v1/...``) and tags; each route declares its key scope through
its key parameter (``ReadKey``, ``WriteKey``, ... in :mod:`catalog_ai.api.deps`) and its error
statuses with :func:`catalog_ai.api.problems.error_responses`.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute

__all__ = ["all_routers", "api_routes"]


def all_routers() -> list[APIRouter]:
    """The ``router`` of every module of this package, in module-name order."""
    out: list[APIRouter] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            out.append(router)
    return out


def api_routes() -> list[APIRoute]:
    """Every route of the API, with its full path (routers are included without a prefix of
    their own; FastAPI's ``app.routes`` nests included routers, so read them from here)."""
    return [r for router in all_routers() for r in router.routes if isinstance(r, APIRoute)]

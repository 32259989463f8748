"""A cap on the size of a whole request body, checked as the bytes arrive.

uvicorn has no such limit and Starlette spools every uploaded file to disk before the route
runs, so without it one client could fill the disk with a single request. The photo limit
(``CATALOG_AI_MAX_IMAGE_BYTES``) is checked per photo by the routes; this is the outer bound
(``CATALOG_AI_API_MAX_REQUEST_BYTES``). A declared ``Content-Length`` over it is refused before
anything is read; a chunked body is counted and refused once it passes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from catalog_ai.api.problems import Problem

__all__ = ["BodyLimit"]

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    """Pure ASGI middleware: ``413`` problem when a request body is over ``limit()`` bytes."""

    def __init__(self, app: Any, *, limit: Callable[[], int]) -> None:
        self.app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, limit)
            return
        received = 0
        refused = False
        started = False  # the route answered already: then it is only cut off

        async def counted() -> Message:
            # Past the limit: answer 413 at once and tell the route the client has gone (an
            # exception would not get out: FastAPI turns any error while it reads a body into a
            # 400), so it stops reading; whatever it answers then is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(scope, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if not refused:
                started = started or message["type"] == "http.response.start"
                await send(message)

        await self.app(scope, counted, unless_refused)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Any, limit: int) -> None:
    problem = Problem(
        413,
        "request-too-large",
        f"the request body is over {limit} bytes; send fewer or smaller photos per request, "
        "or raise CATALOG_AI_API_MAX_REQUEST_BYTES",
        title="Request too large",
        field="body",
    )
    body = json.dumps(problem.body(scope.get("path"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Errors as ``application/problem+json`` (RFC 9457): one shape for every refusal of the API.

A body holds ``type`` (a stable URI, ``https://catalog-ai.dev/problems/<slug>``: clients branch on
it, never on the wording), ``title`` (the same for every problem of a type), ``status``,
``detail`` (this occurrence, one line), ``instance`` (the request path), and two members of our
own: ``field`` (the request field at fault, when one is) and ``fix`` (what to do about it).

A route raises :class:`Problem` (or lets a :class:`~catalog_ai.errors.CatalogAIError` out: it is
mapped by its class through :data:`ERROR_STATUS`, the nearest base class winning). ``fix``
defaults to the part of the message after its last ``"; "``: catalog_ai's messages are written
as "what is wrong; what to do".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from catalog_ai.db.queries import ModelVersionNotFound
from catalog_ai.errors import (
    CatalogAIError,
    ConfigError,
    DatabaseError,
    ImageError,
    TaxonomyError,
)
from catalog_ai.index import SearchError
from catalog_ai.model.bundle import BundleError
from catalog_ai.services.api_keys import (
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidToken,
    RevokedKey,
)
from catalog_ai.services.history import CatalogViewError
from catalog_ai.services.ingest import IngestError
from catalog_ai.services.review import ReviewConflict, ReviewError

__all__ = [
    "ERROR_STATUS",
    "MEDIA_TYPE",
    "TYPE_BASE",
    "Problem",
    "ProblemBody",
    "error_responses",
    "from_error",
    "keyed_responses",
    "photo_problem",
    "register_error",
]

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://catalog-ai.dev/problems/"

#: Titles of the statuses the API answers with; a problem's title is its type's, not the detail.
_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Outside the key's scope",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Photo too large",
    415: "Not a photo",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemBody(BaseModel):
    """An RFC 9457 problem details object (the schema of every error response)."""

    type: str = Field(
        examples=[TYPE_BASE + "not-found"],
        description=(
            f"stable: branch on it, never on the wording. {TYPE_BASE}<slug>, for instance "
            "missing-api-key, invalid-api-key, revoked-api-key, insufficient-scope, "
            "rate-limited, validation-error, not-found, photo-too-large, not-a-photo, "
            "no-active-model, database-unavailable, internal-error"
        ),
    )
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = Field(default=None, description="the request field at fault, when one is")
    fix: str | None = Field(default=None, description="what to do about it")
    errors: list[dict[str, Any]] | None = Field(
        None, description="every invalid field of a 422 validation problem"
    )


class Problem(Exception):
    """A refusal to answer as ``application/problem+json``; raise it from a route."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.field = field
        self.fix = fix if fix is not None else _fix_of(detail)
        self.headers = dict(headers or {})
        self.errors = errors

    @property
    def type(self) -> str:
        return TYPE_BASE + self.slug

    def body(self, instance: str | None) -> dict[str, Any]:
        out = ProblemBody(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            field=self.field,
            fix=self.fix,
            errors=self.errors,
        ).model_dump(exclude_none=True)
        return out


def _fix_of(detail: str) -> str | None:
    head, sep, tail = detail.rpartition("; ")
    return tail.strip() if sep and head else None


#: CatalogAIError subclass -> (status, slug). The most specific class in an error's MRO wins.
ERROR_STATUS: dict[type[CatalogAIError], tuple[int, str]] = {
    CatalogAIError: (422, "invalid-request"),
    InvalidToken: (401, "invalid-api-key"),
    RevokedKey: (401, "revoked-api-key"),
    ApiKeyExists: (409, "api-key-exists"),
    ApiKeyNotFound: (404, "api-key-not-found"),
    ModelVersionNotFound: (404, "model-version-not-found"),
    CatalogViewError: (404, "not-found"),
    BundleError: (409, "model-unavailable"),
    SearchError: (422, "search-refused"),
    ReviewError: (422, "review-refused"),
    ReviewConflict: (409, "review-conflict"),
    IngestError: (422, "ingest-refused"),
    TaxonomyError: (422, "invalid-category"),
    DatabaseError: (503, "database-unavailable"),
    ConfigError: (500, "server-misconfigured"),
}


def register_error(error: type[CatalogAIError], status: int, slug: str) -> None:
    """Map another module's error class to a status and a problem slug (routers call this at
    import time for the errors of the services they use)."""
    ERROR_STATUS[error] = (status, slug)


def from_error(exc: CatalogAIError, *, field: str | None = None) -> Problem:
    """The problem a typed error becomes (photos: :func:`photo_problem`)."""
    if isinstance(exc, ImageError):
        return photo_problem(exc, field=field or "photo")
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            status, slug = ERROR_STATUS[cls]
            break
    else:  # unreachable: CatalogAIError is in the table
        status, slug = 422, "invalid-request"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Problem(status, slug, str(exc), field=field, headers=headers)


# The loader's refusals that mean "too large" (bytes, pixels, a decompression bomb): each names
# the setting that would let the photo in, or says it is too large to decode.
_TOO_LARGE = ("CATALOG_AI_MAX_IMAGE_BYTES", "CATALOG_AI_MAX_IMAGE_PIXELS", "too large to decode")


def photo_problem(exc: ImageError, *, field: str = "photo") -> Problem:
    """413 for a photo over the size limits, else 415: not a photo the safe loader accepts
    (unrecognised, damaged, another format, an unusable shape)."""
    reason = exc.reason
    if any(marker in reason for marker in _TOO_LARGE):
        return Problem(413, "photo-too-large", str(exc), field=field)
    return Problem(415, "not-a-photo", str(exc), field=field)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route's error statuses, each a problem+json body."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}},
        }
        for status in _unique(statuses)
    }


def keyed_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """:func:`error_responses` of a route that needs a key (401, 403, 429; 400 for a body that
    cannot be parsed; 503 when the database does not answer) plus ``statuses`` (give 422 for a
    route that takes parameters or a body)."""
    return error_responses(400, 401, 403, 429, 503, *statuses)


def _unique(statuses: Iterable[int]) -> list[int]:
    return sorted(set(statuses))

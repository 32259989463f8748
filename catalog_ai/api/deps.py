"""Typed dependencies of the routes: the session, the key and its scope, the dispatcher, the
media store, the settings (full-stack-fastapi-template's ``Annotated`` aliases).

A route declares what it needs in its signature and nothing else::

    @router.get("/things/{id}", responses=error_responses(404))
    def get_thing(id: int, session: SessionDep, key: ReadKey) -> ThingOut: ...

- :data:`SessionDep`: one unit of work per request. It commits when the route function returns
  (before the response is sent, so a client never reads a ``202`` for rows that were rolled
  back) and rolls back when it raises. Services never commit; routes neither.
- :data:`ReadKey`, :data:`WriteKey`, :data:`ReviewKey`, :data:`AdminKey`: the request's key,
  which must hold that scope or a higher one. The key is authenticated and counted against its
  rate limit in a transaction of its own, committed at once (see
  :mod:`catalog_ai.services.api_keys`). ``401`` without a key or with an unknown or revoked one,
  ``429`` over the rate limit, ``403`` outside the scope.
- :data:`DispatcherDep`: the same dispatcher as the command line's
  (:func:`catalog_ai.worker.dispatch.default_dispatcher`): Celery with a broker configured, else
  this process's in-process runner. Hand it to services; they defer their calls to the commit.
- :data:`MediaDep`: the media store; :data:`SettingsDep`: the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from catalog_ai.api.problems import Problem
from catalog_ai.db import ApiScope, unit_of_work
from catalog_ai.dispatch import Dispatcher
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.api_keys import ApiKeyInfo, authenticate
from catalog_ai.settings import Settings, get_settings

__all__ = [
    "AdminKey",
    "DispatcherDep",
    "MediaDep",
    "ReadKey",
    "ReviewKey",
    "SessionDep",
    "SettingsDep",
    "WriteKey",
    "bearer",
    "require",
    "route_scope",
]

#: The security scheme the OpenAPI declares (``bearer``); ``auto_error=False``: a missing key is
#: our own 401 problem, not FastAPI's plain 403.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key from `catalog-ai api-keys create NAME --scope SCOPE`",
)


def get_session() -> Iterator[Session]:
    with unit_of_work() as session:
        yield session


def get_dispatcher() -> Dispatcher:
    from catalog_ai.worker.dispatch import default_dispatcher

    return default_dispatcher()


def get_media(settings: Annotated[Settings, Depends(get_settings)]) -> MediaStore:
    return MediaStore(settings.media_dir)


# scope="function": the unit of work ends (commits) when the route returns, before the response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
MediaDep = Annotated[MediaStore, Depends(get_media)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

_SCOPE_ATTR = "required_scope"


def require(scope: ApiScope) -> Callable[..., ApiKeyInfo]:
    """A dependency that authenticates the request's key and demands ``scope`` (or above)."""

    def dependency(
        request: Request,
        response: Response,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKeyInfo:
        if credentials is None:
            raise Problem(
                401,
                "missing-api-key",
                "this route needs an API key; send 'Authorization: Bearer <token>' with a key "
                "from: catalog-ai api-keys create NAME --scope " + scope.value,
                field="Authorization",
                headers={"WWW-Authenticate": "Bearer"},
            )
        with unit_of_work() as session:  # committed at once: the key row is locked briefly
            access = authenticate(session, credentials.credentials, durable=False)
        request.state.api_key = access.key
        limits = {
            "RateLimit-Limit": str(access.limit),
            "RateLimit-Remaining": str(access.remaining),
            "RateLimit-Reset": str(access.reset_after_s),
        }
        if access.exceeded:
            raise Problem(
                429,
                "rate-limited",
                f"the API key {access.key.name!r} made more than {access.limit} requests this "
                f"minute; wait {access.reset_after_s} s (Retry-After), or raise its limit",
                headers={"Retry-After": str(access.reset_after_s), **limits},
            )
        response.headers.update(limits)
        if not access.key.allows(scope):
            raise Problem(
                403,
                "insufficient-scope",
                f"the API key {access.key.name!r} has scope {access.key.scope.value!r}; this "
                f"route needs {scope.value!r}; use a key created with --scope {scope.value}",
                field="Authorization",
            )
        return access.key

    setattr(dependency, _SCOPE_ATTR, scope)
    dependency.__name__ = f"require_{scope.value}_key"
    return dependency


ReadKey = Annotated[ApiKeyInfo, Depends(require(ApiScope.READ))]
WriteKey = Annotated[ApiKeyInfo, Depends(require(ApiScope.WRITE))]
ReviewKey = Annotated[ApiKeyInfo, Depends(require(ApiScope.REVIEW))]
AdminKey = Annotated[ApiKeyInfo, Depends(require(ApiScope.ADMIN))]


def route_scope(route: APIRoute) -> ApiScope | None:
    """The scope a route demands (None: no key needed), read from its dependency tree."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        scope = getattr(dep.call, _SCOPE_ATTR, None)
        if scope is not None:
            return ApiScope(scope)
        stack.extend(dep.dependencies)
    return None

"""``catalog-ai api`` (serve the HTTP API) and the ``api-keys`` group (create, list, revoke)."""

from __future__ import annotations

import click

from catalog_ai.cli._root import cli, echo_json, ensure_db

SCOPES = ("read", "write", "review", "admin")


@cli.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API processes (they share the keys' rate limits through the database)",
)
def api(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs).

    It uses the same settings and database as every other command; background work goes to
    Celery when CATALOG_AI_BROKER_URL is set, else to a runner inside this process.
    """
    import uvicorn

    ensure_db()
    click.echo(f"catalog_ai API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "catalog_ai.api.app:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,  # the client address is only used for logs
        log_level="info",
    )


@cli.group("api-keys")
def api_keys() -> None:
    """Keys of the HTTP API (shown once when created, stored as a hash)."""


@api_keys.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), required=True, help="what the key may do")
@click.option("--owner", default=None, help="who acts with it: the reviewer its reviews record")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="requests per minute (default: CATALOG_AI_API_RATE_LIMIT)",
)
def api_keys_create(name: str, scope: str, owner: str | None, rate_limit: int | None) -> None:
    """Create the key NAME and print its token (the only time it is shown).

    Scopes: read < write (create products) < review (review them) < admin (activate models);
    each includes the ones before it.
    """
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.api_keys import create_key

    ensure_db()
    with unit_of_work() as session:
        new = create_key(session, name, scope=scope, owner=owner, rate_limit=rate_limit)
    click.echo(
        f"created API key {new.key.name!r} (scope {new.key.scope.value}, owner "
        f"{new.key.owner!r}); its token, shown only now:",
        err=True,
    )
    click.echo(new.token)


@api_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def api_keys_list(as_json: bool) -> None:
    """Every key: name, scope, owner, last use, revoked or not (never the token)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.api_keys import list_keys

    ensure_db()
    with unit_of_work() as session:
        keys = list_keys(session)
    if as_json:
        echo_json(
            [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "scope": k.scope.value,
                    "owner": k.owner,
                    "rate_limit_per_minute": k.rate_limit_per_minute,
                    "created_at": k.created_at.isoformat(),
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in keys
            ]
        )
        return
    if not keys:
        click.echo("no API keys; create one with: catalog-ai api-keys create NAME --scope read")
        return
    for k in keys:
        used = k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never used"
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        limit = f"{k.rate_limit_per_minute}/min" if k.rate_limit_per_minute else "default limit"
        click.echo(
            f"{k.name}  {k.scope.value}  owner {k.owner}  cai_{k.prefix}_…  {limit}  "
            f"last used {used}  {state}"
        )


@api_keys.command("revoke")
@click.argument("name")
def api_keys_revoke(name: str) -> None:
    """Revoke the key NAME: its token is refused from the next request on."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.api_keys import revoke_key

    ensure_db()
    with unit_of_work() as session:
        info = revoke_key(session, name)
    click.echo(f"revoked API key {info.name!r} ({info.revoked_at:%Y-%m-%d %H:%M:%S} UTC)")

"""The ``webhooks`` command group: subscriptions, the delivery log, redelivery, a sweep."""

from __future__ import annotations

import click

from catalog_ai.cli._root import cli, dispatching, echo_json, ensure_db

_TYPES = "suggestion.created, product.accepted, product.failed, model.activated"


@cli.group()
def webhooks() -> None:
    """Signed webhooks: tell your shop about suggestions, accepted and failed products, and
    model changes (see README, 'Connect your shop')."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--events",
    required=True,
    help=f"comma-separated event types: {_TYPES}",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def webhooks_add(url: str, events: str, as_json: bool) -> None:
    """Subscribe URL to the given events and print its signing secret (shown only once)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import add_webhook

    ensure_db()
    with unit_of_work() as session:
        info = add_webhook(session, url, events)
    if as_json:
        echo_json({"id": info.id, "url": info.url, "events": info.events, "secret": info.secret})
        return
    click.echo(f"webhook {info.id}: {info.url} ({', '.join(info.events)})")
    click.echo(f"secret: {info.secret}")
    click.echo(
        "Keep the secret now: it is not shown again. Check X-CatalogAI-Signature with it "
        "(README, 'Connect your shop').",
        err=True,
    )


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def webhooks_list(as_json: bool) -> None:
    """The webhooks, with their deliveries counted by status."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import list_webhooks

    ensure_db()
    with unit_of_work() as session:
        hooks = list_webhooks(session)
    if as_json:
        echo_json(
            [
                {
                    "id": h.id,
                    "url": h.url,
                    "events": h.events,
                    "active": h.is_active,
                    "created_at": h.created_at.isoformat() if h.created_at else None,
                    "deliveries": h.counts,
                }
                for h in hooks
            ]
        )
        return
    if not hooks:
        click.echo("no webhooks; add one: catalog-ai webhooks add URL --events ...")
    for h in hooks:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(h.counts.items())) or "none"
        state = "" if h.is_active else " (inactive)"
        click.echo(f"{h.id}  {h.url}{state}  events: {', '.join(h.events)}  deliveries: {counts}")


@webhooks.command("remove")
@click.argument("webhook_id", metavar="ID", type=int)
def webhooks_remove(webhook_id: int) -> None:
    """Delete webhook ID and its deliveries."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import remove_webhook

    ensure_db()
    with unit_of_work() as session:
        remove_webhook(session, webhook_id)
    click.echo(f"webhook {webhook_id} removed")


@webhooks.command("deliveries")
@click.option(
    "--status",
    type=click.Choice(["pending", "delivered", "failed"]),
    default=None,
    help="only deliveries in this state",
)
@click.option("--webhook", "webhook_id", type=int, default=None, help="only this webhook's")
@click.option("--event", "event_id", default=None, help="only this event's (evt_...)")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def webhooks_deliveries(
    status: str | None, webhook_id: int | None, event_id: str | None, limit: int, as_json: bool
) -> None:
    """The delivery log, newest first, with every attempt."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import deliveries

    ensure_db()
    with unit_of_work() as session:
        log = deliveries(
            session, status=status, webhook_id=webhook_id, event_id=event_id, limit=limit
        )

    def when(value) -> str | None:
        return None if value is None else value.isoformat()

    if as_json:
        echo_json(
            [
                {
                    "id": d.id,
                    "webhook_id": d.webhook_id,
                    "url": d.url,
                    "event_id": d.event_id,
                    "type": d.type,
                    "status": d.status.value,
                    "attempts": d.attempts,
                    "next_attempt_at": when(d.next_attempt_at),
                    "last_status_code": d.last_status_code,
                    "last_error": d.last_error,
                    "created_at": when(d.created_at),
                    "delivered_at": when(d.delivered_at),
                    "tries": [
                        {
                            "at": when(a.attempted_at),
                            "status_code": a.status_code,
                            "duration_ms": a.duration_ms,
                            "error": a.error,
                        }
                        for a in d.tries
                    ],
                }
                for d in log
            ]
        )
        return
    if not log:
        click.echo("no deliveries")
    for d in log:
        line = f"{d.id}  {d.status.value:<9}  {d.type:<18}  {d.event_id}  webhook {d.webhook_id}"
        if d.status.value == "pending" and d.next_attempt_at is not None:
            line += f"  next try {d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        click.echo(line)
        for a in d.tries:
            answer = a.status_code if a.status_code is not None else (a.error or "no answer")
            took = f"{a.duration_ms:.0f} ms" if a.duration_ms is not None else "?"
            click.echo(f"      {a.attempted_at:%Y-%m-%d %H:%M:%S}  {answer}  ({took})")
        if d.last_error and d.status.value != "delivered":
            click.echo(f"      last error: {d.last_error}")


@webhooks.command("redeliver")
@click.argument("delivery_id", metavar="ID", type=int)
def webhooks_redeliver(delivery_id: int) -> None:
    """Send delivery ID again (failed or delivered) with a fresh cycle of retries."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import deliveries, redeliver

    ensure_db()
    with dispatching(progress=False) as dispatcher, unit_of_work() as session:
        redeliver(session, delivery_id, dispatcher=dispatcher)
    with unit_of_work() as session:
        (row,) = deliveries(session, delivery_id=delivery_id, with_attempts=False)
    when = f", next try {row.next_attempt_at:%H:%M:%S} UTC" if row.status.value == "pending" else ""
    click.echo(f"delivery {delivery_id}: {row.status.value}{when}")


@webhooks.command("sweep")
def webhooks_sweep() -> None:
    """Send every delivery that is due now (what a stopped process left; the beat does this
    on its own with a worker)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.webhooks import due_deliveries

    ensure_db()
    with dispatching(progress=False) as dispatcher:
        with unit_of_work() as session:
            ids = due_deliveries(session)
        dispatcher.deliver(ids)
    click.echo(f"{len(ids)} deliveries due, handed over")

"""What the broker knows: messages waiting, messages taken but not finished, live workers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from catalog_ai.worker.app import QUEUE, configure

__all__ = ["BrokerStatus", "broker_status"]


def _queued(channel) -> int:
    # A passive declare counts the messages on any kombu transport (Redis: LLEN over the
    # queue's priority lists); Redis reports a queue with no messages as not found.
    from kombu.exceptions import ChannelError

    try:
        return int(channel.queue_declare(queue=QUEUE, passive=True).message_count)
    except ChannelError:
        return 0


@dataclass
class BrokerStatus:
    broker: str  # the broker URL without its password, or "in-process"
    queued: int | None = None  # messages waiting in the queue
    unacknowledged: int | None = None  # taken by a worker, not finished (Redis only)
    workers: list[str] = field(default_factory=list)
    error: str | None = None  # why the broker could not be asked

    def to_dict(self) -> dict:
        return asdict(self)


def broker_status(*, ping_timeout: float = 1.0) -> BrokerStatus:
    """Queue depth and workers that answer a ping within ``ping_timeout`` seconds."""
    app = configure()
    if app.conf.task_always_eager:
        return BrokerStatus(broker="in-process")
    from catalog_ai.db.session import safe_url

    status = BrokerStatus(broker=safe_url(app.conf.broker_url))
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.default_channel
            status.queued = _queued(channel)
            client = getattr(channel, "client", None)
            if client is not None and hasattr(channel, "unacked_key"):
                status.unacknowledged = int(client.hlen(channel.unacked_key))
        replies = app.control.inspect(timeout=ping_timeout).ping() or {}
        status.workers = sorted(replies)
    except Exception as exc:
        status.error = f"{type(exc).__name__}: {exc}"
    return status

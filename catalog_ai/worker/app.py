"""The Celery application, configured from :mod:`catalog_ai.settings`.

With ``CATALOG_AI_BROKER_URL`` set (Redis in production), ``.delay()`` sends a message and
``catalog-ai worker`` processes run it. Without one the embedded set-up uses no Celery at all (the
in-process runner of :mod:`catalog_ai.worker.dispatch`); the app is still configured eagerly
(``task_always_eager``) so that nothing ever tries to reach a broker that is not configured.

Reliability settings, and why:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when its task
  has finished, so a worker that dies mid-task (killed, out of memory, machine lost) gives the
  message back instead of losing it. Tasks are idempotent, so running one twice is harmless.
- Redis ``visibility_timeout`` (``CATALOG_AI_VISIBILITY_TIMEOUT``, 300 s): how long an
  unacknowledged message stays with the worker that took it; a chunk takes seconds, so a live
  worker never loses its message, and a dead worker's chunk comes back within minutes.
- ``worker_prefetch_multiplier=1``: a worker holds one chunk beyond the one it runs, so a slow
  or dead worker strands little work and idle workers get the rest.
- ``task_ignore_result``: the database is the truth; nobody waits on task results.
- A beat schedule runs ``sweep_stale`` every ``CATALOG_AI_SWEEP_INTERVAL`` seconds
  (``catalog-ai worker --beat``): products whose message was lost are enqueued again. The beat
  runs as a child process of the worker (it also sweeps the webhook deliveries that are due);
  :func:`_bind_beat_to_worker` makes it end with its worker, even when the worker is killed
  with SIGKILL and has no chance to stop it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import beat_embedded_init, worker_process_init

from catalog_ai.settings import Settings, get_settings

__all__ = [
    "BEAT_PARENT_ENV",
    "QUEUE",
    "RETRAIN_CHECK_S",
    "RETRAIN_TASK",
    "SWEEP_TASK",
    "WEBHOOK_SWEEP_TASK",
    "app",
    "celery_config",
    "configure",
    "end_with_parent",
]

#: The one queue every catalog_ai task goes to (its own name, so one Redis can serve others).
QUEUE = "catalog_ai"
SWEEP_TASK = "catalog_ai.sweep_stale"
INDEX_TASK = "catalog_ai.refresh_index"
FIGURES_TASK = "catalog_ai.refresh_figures"
FOLD_COUNTS_TASK = "catalog_ai.fold_status_counts"
WEBHOOK_SWEEP_TASK = "catalog_ai.sweep_webhooks"
RETRAIN_TASK = "catalog_ai.retrain_if_due"
#: How often the opt-in retraining checks whether enough reviews arrived (a count: cheap).
RETRAIN_CHECK_S = 600.0
#: Set by ``catalog-ai worker`` to its own pid: the process its beat child must not outlive.
BEAT_PARENT_ENV = "CATALOG_AI_BEAT_PARENT_PID"
_PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)

app = Celery("catalog_ai", include=["catalog_ai.worker.tasks"])

_lock = threading.Lock()
_applied: tuple[Any, ...] | None = None


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for ``settings`` (a plain dict, easy to inspect in tests)."""
    eager = settings.broker_url is None
    return {
        # "memory://" when eager: nothing may ever try to reach a broker that is not configured.
        "broker_url": settings.broker_url or "memory://",
        "result_backend": None if eager else settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_default_queue": QUEUE,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            # Look for abandoned messages every ~10 s instead of kombu's ~100 s, so the
            # visibility timeout is the delay that matters.
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        # With acks_late, a task still running when the broker connection drops would run a
        # second time elsewhere; cancel it instead (its message is redelivered).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_send_task_events": False,
        "task_always_eager": eager,
        "task_eager_propagates": eager,
        "beat_schedule": {
            "sweep-stale": {"task": SWEEP_TASK, "schedule": float(settings.sweep_interval)},
            "refresh-index": {"task": INDEX_TASK, "schedule": float(settings.index_interval)},
            # The summaries a large catalogue's pages read (services.branch_figures,
            # services.status_counts).
            "refresh-figures": {
                "task": FIGURES_TASK,
                "schedule": float(settings.figures_interval),
            },
            "fold-status-counts": {
                "task": FOLD_COUNTS_TASK,
                "schedule": float(settings.sweep_interval),
            },
            # Webhook deliveries whose message was lost, or whose next try is too far off for
            # a countdown (see worker.tasks.deliver_webhook).
            "sweep-webhooks": {
                "task": WEBHOOK_SWEEP_TASK,
                "schedule": float(settings.sweep_interval),
            },
            # Opt-in (CATALOG_AI_RETRAIN_AFTER_REVIEWS): retrain and promote-if-better.
            **(
                {"retrain-if-due": {"task": RETRAIN_TASK, "schedule": RETRAIN_CHECK_S}}
                if settings.retrain_after_reviews
                else {}
            ),
        },
        "timezone": "UTC",
        "enable_utc": True,
    }


def configure(settings: Settings | None = None) -> Celery:
    """Apply the current settings to :data:`app` (again, when they changed) and return it.

    Called before every enqueue: the CLI and tests change the environment at run time, and a
    changed broker URL must not reuse connections to the old one.
    """
    global _applied
    settings = settings or get_settings()
    key = (
        settings.broker_url,
        settings.result_backend,
        settings.visibility_timeout,
        settings.sweep_interval,
    )
    with _lock:
        if key != _applied:
            _forget_connections()
            app.conf.update(celery_config(settings))
            _applied = key
    return app


def _forget_connections() -> None:
    # Celery caches the broker connection pool, the producer pool (which keeps its connection)
    # and the result backend; a message sent after a settings change must not use them. The
    # same resets as Celery's own after-fork clean-up, plus the backend. The pools are not
    # closed: kombu shares them process-wide, keyed by broker URL, and reuses them if that
    # URL comes back.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    app._backend_cache = None
    app._local = threading.local()


@worker_process_init.connect
def _fresh_worker_process(**_: Any) -> None:
    # A pool process is forked from the worker: database connections must not cross the fork
    # (forget them without closing: closing would end the parent's sessions), and the model
    # is loaded here, once, on first use.
    from catalog_ai.db import dispose_engines
    from catalog_ai.worker import model_cache

    dispose_engines(close=False)
    model_cache.reset()


def end_with_parent(parent_pid: int, *, poll_s: float = 0.5) -> None:
    """Make this process end (SIGTERM) when ``parent_pid``, its parent, ends.

    On Linux the kernel does it (``prctl(PR_SET_PDEATHSIG)``) the moment the parent dies; a
    watchdog thread that notices the re-parenting covers other systems (and a parent that died
    before this was called).
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no libc to speak of: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # died already, before the death signal was armed
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


@beat_embedded_init.connect
def _bind_beat_to_worker(**_: Any) -> None:
    # Runs in the beat child process (``worker --beat``). Without this, a worker killed with
    # SIGKILL leaves its beat running, sending sweeps for a worker that no longer exists.
    parent = int(os.environ.get(BEAT_PARENT_ENV) or os.getppid())
    end_with_parent(parent)
    log.info("beat running as process %d; it ends with worker process %d", os.getpid(), parent)


configure()

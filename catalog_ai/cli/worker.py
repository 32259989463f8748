"""Commands that run and watch the background system: ``worker``, ``status``, ``embed``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from catalog_ai.cli._root import cli, dispatching, echo_json, ensure_db


@cli.command("status")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(as_json: bool) -> None:
    """Products per status, the queue, the workers, the oldest waiting product."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.health import pipeline_status
    from catalog_ai.worker.queue import broker_status

    ensure_db()
    with unit_of_work() as session:
        report = pipeline_status(session)
    report["broker"] = broker_status().to_dict()
    if as_json:
        echo_json(report)
        return
    counts = report["by_status"]
    click.echo(
        f"{report['products']} products: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    )
    click.echo(
        f"active model: {report['active_model'] or 'none (catalog-ai models activate VERSION)'}"
    )
    if report["oldest_pending_s"] is not None:
        click.echo(f"oldest pending: {report['oldest_pending_s']:.0f} s")
    broker = report["broker"]
    if broker["broker"] == "in-process":
        click.echo("queue: none; tasks run in-process (set CATALOG_AI_BROKER_URL to use workers)")
    elif broker["error"]:
        click.secho(f"broker {broker['broker']}: unreachable ({broker['error']})", fg="red")
    else:
        click.echo(
            f"queue at {broker['broker']}: {broker['queued']} waiting"
            + (
                f", {broker['unacknowledged']} in progress"
                if broker["unacknowledged"] is not None
                else ""
            )
        )
        click.echo(f"workers: {', '.join(broker['workers']) or 'none answered'}")
    for f in report["recent_failures"]:
        click.echo(f"  failed #{f['product_id']} {f['title']}: {f['error']}")
    if counts["failed"]:
        click.echo("  retry with: catalog-ai retry --failed   (or catalog-ai retry ID ...)")


@cli.command("worker")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="worker processes, each loading the model once and using cores/N torch threads "
    "(default: the number of CPU cores: on a CPU, N processes of one thread each classify "
    "faster than one process of N threads)",
)
@click.option(
    "--beat/--no-beat",
    default=True,
    show_default=True,
    help="also run the periodic sweep (once per deployment is enough; more is harmless)",
)
@click.option("--hostname", "-n", default=None, help="worker name (default: catalog-ai-PID@HOST)")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker_cmd(concurrency: int | None, beat: bool, hostname: str | None, loglevel: str) -> None:
    """Start a Celery worker that classifies uploads (needs CATALOG_AI_BROKER_URL)."""
    from catalog_ai.db import dispose_engines
    from catalog_ai.errors import ConfigError
    from catalog_ai.settings import get_settings, reset_settings

    settings = get_settings()
    if settings.broker_url is None:
        raise ConfigError(
            "no broker configured: set CATALOG_AI_BROKER_URL (e.g. redis://localhost:6379/0) to "
            "run workers. Without it no worker is needed: ingest, retry and models activate run "
            "the classification in-process"
        )
    ensure_db()
    concurrency = concurrency or os.cpu_count() or 1
    if settings.torch_threads is None:
        # Each pool process gets its share of the cores; more threads only fight each other.
        os.environ["CATALOG_AI_TORCH_THREADS"] = str(max(1, (os.cpu_count() or 1) // concurrency))
        reset_settings()
    # No connection may cross the fork into the pool processes.
    dispose_engines()
    from catalog_ai.worker.app import BEAT_PARENT_ENV, configure

    app = configure()
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--hostname={hostname or f'catalog-ai-{os.getpid()}@%h'}",
        "--without-gossip",
        "--without-mingle",
    ]
    schedule = None
    if beat:
        # The beat child ends with this process (see catalog_ai.worker.app), and keeps its
        # schedule under CATALOG_AI_HOME, one file per worker (two beats must not share one).
        schedule = _beat_schedule(settings.home, os.getpid())
        os.environ[BEAT_PARENT_ENV] = str(os.getpid())
        argv += ["--beat", f"--schedule={schedule}"]
    try:
        app.worker_main(argv)
    finally:
        if schedule is not None:
            _remove_schedule(schedule)


def _beat_schedule(home: Path, pid: int) -> Path:
    """This worker's beat schedule file under ``home/beat``; files of this machine's workers no
    longer running (killed before they could remove theirs) are removed. The machine's name is
    part of the file name: a process id means nothing on another machine sharing the home."""
    import re
    import socket

    folder = home / "beat"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "schedule-" + re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) + "-"
    for old in folder.glob(prefix + "*"):
        owner = old.name.removeprefix(prefix).split(".", 1)[0]
        if owner.isdigit() and int(owner) != pid and not _alive(int(owner)):
            old.unlink(missing_ok=True)
    return folder / f"{prefix}{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _remove_schedule(schedule: Path) -> None:
    # The shelve module may add a suffix (.db, or .dat/.dir/.bak) depending on the dbm backend.
    for file in schedule.parent.glob(schedule.name + "*"):
        file.unlink(missing_ok=True)


@cli.command("embed")
@click.option("--model", "version", default=None, help="model version (default: the active one)")
@click.option("--status", "only_status", is_flag=True, help="only show how far embedding is")
def embed_cmd(version: str | None, only_status: bool) -> None:
    """Embed every catalog photo with the active model (for search and near-duplicates).

    Runs when a model is activated; use this to run it again or to see its progress.
    """
    from catalog_ai.db import unit_of_work
    from catalog_ai.model.bundle import BundleError
    from catalog_ai.services.embed import embedding_progress
    from catalog_ai.services.models import active_model

    ensure_db()
    with unit_of_work() as session:
        if version is None:
            row = active_model(session)
            if row is None:
                raise BundleError("no active model: catalog-ai models activate VERSION")
            version = row.version
        before = embedding_progress(session, version)
    if not only_status and not before.done:
        with dispatching() as dispatcher:
            dispatcher.embed_catalogue(version)
    with unit_of_work() as session:
        after = embedding_progress(session, version)
    click.echo(
        f"model {version}: {after.embedded} of {after.images} catalog photos embedded"
        + ("" if after.done or only_status else " (the rest is queued for the workers)")
    )

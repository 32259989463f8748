"""``catalog-ai dashboard``: the Streamlit review dashboard on this environment's catalog."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from catalog_ai.cli._root import cli, ensure_db
from catalog_ai.errors import ConfigError

__all__ = ["dashboard_app", "streamlit_command"]


def dashboard_app() -> Path:
    """The dashboard's entry script (``dashboards/app.py`` of the source checkout)."""
    app = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
    if not app.is_file():
        raise ConfigError(
            f"the dashboard is not found at {app}: it ships with the source checkout; "
            "install catalog_ai from it (pip install -e .) to run the dashboard"
        )
    return app


def streamlit_command(port: int, address: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``streamlit run`` command line for the dashboard (headless: it prints its URL)."""
    from catalog_ai.settings import get_settings

    upload_mib = max(1, -(-get_settings().max_image_bytes // 2**20))
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(dashboard_app()),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(upload_mib),
        "--browser.gatherUsageStats",
        "false",
        # Staff see the app, not Streamlit's developer menu (Deploy, rerun settings).
        "--client.toolbarMode",
        "viewer",
        *extra,
    ]


@cli.command("dashboard", context_settings={"ignore_unknown_options": True})
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="interface to listen on (0.0.0.0: every interface; put it behind a proxy)",
)
@click.argument("streamlit_args", nargs=-1, type=click.UNPROCESSED)
def dashboard(port: int, address: str, streamlit_args: tuple[str, ...]) -> None:
    """Start the review dashboard (Streamlit) with the current environment.

    Reviewers sign in with the users of CATALOG_AI_USERS / CATALOG_AI_USERS_FILE (make one with
    `catalog-ai users hash-password NAME`) or through CATALOG_AI_AUTH_HEADER (believed only from
    CATALOG_AI_TRUSTED_PROXIES). Extra arguments go
    to `streamlit run` (e.g. `-- --server.fileWatcherType none`).
    """
    ensure_db()
    command = streamlit_command(port, address, streamlit_args)
    # Streamlit's server (uvicorn) would otherwise replace the connection's address with the one
    # in X-Forwarded-For when the peer is 127.0.0.1: any local process could then pose as a
    # trusted proxy. The dashboard decides itself whom to believe (CATALOG_AI_TRUSTED_PROXIES).
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    click.echo(f"dashboard: http://{address}:{port}  (Ctrl+C stops it)", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: signals (Ctrl+C, a service manager's SIGTERM) reach Streamlit directly.
    os.execv(command[0], command)

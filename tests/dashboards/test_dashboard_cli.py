"""``catalog-ai dashboard``: migrates the embedded database and execs ``streamlit run`` on the app."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from catalog_ai.cli import cli
from conftest import APP


def test_dashboard_command_runs_streamlit_on_the_app(catalog_home, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_MAX_IMAGE_BYTES", str(3 * 2**20 + 1))
    from catalog_ai.settings import reset_settings

    reset_settings()
    seen = {}

    def fake_execv(path, argv):
        seen["argv"] = argv
        raise SystemExit(0)

    monkeypatch.setattr("catalog_ai.cli.dashboard.os.execv", fake_execv)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")  # restored after the test
    result = CliRunner().invoke(cli, ["dashboard", "--port", "8765", "--address", "0.0.0.0",
                                      "--server.fileWatcherType", "none"])
    assert result.exit_code == 0, result.output
    argv = seen["argv"]
    import os

    assert os.environ["FORWARDED_ALLOW_IPS"] == ""  # the server keeps the real peer address
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    flags = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert flags["--server.port"] == "8765" and flags["--server.address"] == "0.0.0.0"
    assert flags["--server.headless"] == "true"
    assert flags["--server.maxUploadSize"] == "4"  # MiB, rounded up from the photo limit
    assert flags["--server.fileWatcherType"] == "none"  # extra arguments go to streamlit
    assert (catalog_home / "catalog.db").is_file()  # the embedded database was migrated first
    assert "http://0.0.0.0:8765" in result.output


def test_dashboard_port_is_checked(catalog_home):
    result = CliRunner().invoke(cli, ["dashboard", "--port", "0"])
    assert result.exit_code == 2 and "--port" in result.output


def test_dashboard_help_names_the_sign_in_setup():
    out = CliRunner().invoke(cli, ["dashboard", "--help"]).output
    assert "catalog-ai users hash-password" in out

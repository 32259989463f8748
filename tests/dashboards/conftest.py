"""Fixtures of the dashboard tests: a small catalog in tmp_path and signed-in AppTests.

This folder has no ``__init__.py`` on purpose: as a package it would be called ``dashboards``
and hide the app's own package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))  # catalog_builder, beside this file
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the dashboards package (not installed: Streamlit runs it from the checkout)

from catalog_builder import build_catalog, users_env  # noqa: E402

APP = REPO / "dashboards" / "app.py"


@pytest.fixture
def auth_env(monkeypatch):
    """Reviewers alice and bob; no header, no read-only viewing (tests switch them on)."""
    monkeypatch.setenv("CATALOG_AI_USERS", users_env())
    for var in ("CATALOG_AI_USERS_FILE", "CATALOG_AI_AUTH_HEADER", "CATALOG_AI_READ_ONLY_VIEWING"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def catalog(catalog_home, auth_env, tmp_path) -> dict[str, int]:
    """The built test catalog (see catalog_builder); product ids by title."""
    return build_catalog(tmp_path / "bundles")


@pytest.fixture
def open_app():
    """``open_app(page, user)``: an AppTest of the dashboard, run once, on ``page``
    (``views/<page>.py``), signed in as ``user`` (None: anonymous)."""
    from streamlit.testing.v1 import AppTest

    from dashboards.access import SIGNED_IN_KEY

    def _open(page: str | None = None, user: str | None = "alice") -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if user:
            at.session_state[SIGNED_IN_KEY] = user
        at.run()
        if page:
            at.switch_page(f"views/{page}.py")
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open


def frame(at, *columns: str):
    """The first dataframe on the page that has all these columns (AppTest exposes no keys)."""
    for df in at.dataframe:
        value = df.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no dataframe with columns {columns} on the page")

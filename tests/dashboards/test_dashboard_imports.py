"""The dashboard stays on the service layer: it never imports training code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import APP, REPO

SCRIPT = """
import os, sys
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}, {here!r}]
from catalog_builder import build_catalog
build_catalog(Path({base!r}))
from streamlit.testing.v1 import AppTest
from dashboards.access import SIGNED_IN_KEY
at = AppTest.from_file({app!r}, default_timeout=120)
at.session_state[SIGNED_IN_KEY] = "alice"
at.run()
for page in ["review", "catalog", "similar", "models", "upload", "health"]:
    at.switch_page(f"views/{{page}}.py")
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
    assert at.title[0].value != "catalog_ai", page
print("LOADED", sorted(m for m in sys.modules if m.startswith("catalog_ai.training")))
"""


def test_pages_never_import_training_code(tmp_path):
    here = Path(__file__).parent
    code = SCRIPT.format(repo=str(REPO), tests=str(here.parent), here=str(here), base=str(tmp_path / "bundles"),
                         app=str(APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")}
    env.update(CATALOG_AI_HOME=str(tmp_path / "home"), CATALOG_AI_OFFLINE="1",
               CATALOG_AI_READ_ONLY_VIEWING="0", CATALOG_AI_USERS="alice:pbkdf2_sha256$1000$c2FsdA==$eA==")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED []" in out.stdout, out.stdout

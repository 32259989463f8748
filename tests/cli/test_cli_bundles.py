"""``catalog-ai predict`` and ``catalog-ai models register`` on tampered or broken bundles: a
non-zero exit with one line naming the field, and nothing registered (issue 13, finding 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bundle_cases import CASES, PARAMS, assert_one_line_naming, tamper
from catalog_ai.cli import cli
from helpers import LEAF_COLOURS, one_torch_thread, random_bundle, write_photo  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return random_bundle(tmp_path / "bundle").path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return write_photo(tmp_path / "p.png", LEAF_COLOURS[("Fruit", "Banana")], np.random.default_rng(0))


def _refused_in_one_line(result) -> str:
    assert result.exit_code != 0, result.output
    # A CatalogAIError ends in ctx.exit: anything else would be the raw exception here.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _registered_versions() -> list[str]:
    result = CliRunner().invoke(cli, ["models", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("case", PARAMS)
def test_predict_on_a_tampered_bundle_exits_with_one_line(bundle_dir, photo, case, catalog_home):
    tamper(bundle_dir, case)
    result = CliRunner().invoke(cli, ["predict", "--model", str(bundle_dir), str(photo)])
    assert_one_line_naming(_refused_in_one_line(result), case)


@pytest.mark.parametrize("case", PARAMS)
def test_register_refuses_a_tampered_bundle_in_one_line(bundle_dir, case, catalog_home):
    tamper(bundle_dir, case)
    result = CliRunner().invoke(cli, ["models", "register", str(bundle_dir), "--add-categories",
                                      "--activate"])
    assert_one_line_naming(_refused_in_one_line(result), case)
    assert _registered_versions() == []


def _corrupt(weights: Path, how: str) -> None:
    if how == "garbage":
        weights.write_bytes(b"not a safetensors file" * 4)
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "nan":
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(weights))
        tensors["head.weight"] = tensors["head.weight"] * float("nan")
        save_file(tensors, str(weights))
    elif how == "empty":
        weights.write_bytes(b"")


@pytest.mark.parametrize("how", ["garbage", "truncated", "nan", "empty"])
def test_register_refuses_unusable_weights_and_registers_nothing(bundle_dir, how, catalog_home):
    _corrupt(bundle_dir / "model.safetensors", how)
    result = CliRunner().invoke(cli, ["models", "register", str(bundle_dir), "--add-categories",
                                      "--activate"])
    line = _refused_in_one_line(result)
    assert "model.safetensors" in line or "weights" in line, line
    assert _registered_versions() == []


def test_register_still_accepts_a_working_bundle(bundle_dir, catalog_home):
    result = CliRunner().invoke(cli, ["models", "register", str(bundle_dir), "--add-categories",
                                      "--activate"], catch_exceptions=False)
    assert result.exit_code == 0 and "(active)" in result.output, result.output


def test_activate_refuses_a_bundle_whose_weights_broke_after_registration(bundle_dir, catalog_home):
    registered = CliRunner().invoke(cli, ["models", "register", str(bundle_dir), "--add-categories"],
                                    catch_exceptions=False)
    version = registered.output.split()[1].rstrip(";")
    _corrupt(bundle_dir / "model.safetensors", "nan")
    result = CliRunner().invoke(cli, ["models", "activate", version])
    assert "NaN" in _refused_in_one_line(result)
    assert not any(line.startswith("*") for line in _registered_versions())


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "register"])
def test_the_real_command_prints_no_traceback(bundle_dir, photo, command, tmp_path):
    """The whole process, not the in-process runner: stderr is one line, the exit code 2."""
    case = next(c for c in CASES if c.id == "eval_crop_pct-0")  # a ZeroDivisionError on main
    tamper(bundle_dir, case)
    args = (["predict", "--model", str(bundle_dir), str(photo)] if command == "predict"
            else ["models", "register", str(bundle_dir), "--add-categories"])
    env = {**os.environ, "CATALOG_AI_HOME": str(tmp_path / "home"), "CATALOG_AI_OFFLINE": "1",
           "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("CATALOG_AI_DATABASE_URL", "CATALOG_AI_MEDIA_DIR", "CATALOG_AI_MODEL_DIR"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "catalog_ai", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert_one_line_naming(lines[0], case)

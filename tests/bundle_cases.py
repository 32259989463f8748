"""Tampered model bundles: each case edits one thing in a bundle's ``bundle.json`` (or its
prototype file) the way a hostile or careless user could, and says which field and value the
one-line error must name. Shared by the bundle, predictor and CLI tests (issue 13, finding 7).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Tamper:
    id: str
    edit: Callable[[dict], object]  # gets the parsed manifest, returns the new JSON value
    field: str  # must appear in the message
    value: str  # must appear in the message
    # False: only the Predictor can tell (it needs the installed backbone), not the manifest alone
    manifest_only: bool = True


def _set(path: str, value) -> Callable[[dict], dict]:
    keys = path.split(".")

    def edit(manifest: dict) -> dict:
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        return manifest

    return edit


def _drop(path: str) -> Callable[[dict], dict]:
    keys = path.split(".")

    def edit(manifest: dict) -> dict:
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return manifest

    return edit


CASES = [
    # Found on main: raw tracebacks.
    Tamper("eval_crop_pct-0", _set("eval_crop_pct", 0), "eval_crop_pct", "= 0"),
    Tamper("interpolation-bogus", _set("backbone.preprocessing.interpolation", "bogus"),
           "backbone.preprocessing.interpolation", "'bogus'"),
    Tamper("manifest-a-list", lambda m: [m], "bundle.json", "JSON list"),
    # Found on main: OOM-killed at 21 GB.
    Tamper("image_size-20000", _set("image_size", 20000), "image_size", "20000"),
    # Found on main: accepted silently, nonsense decisions.
    Tamper("temperature-0", _set("calibration.temperature", 0), "calibration.temperature", "= 0"),
    Tamper("temperature-nan", _set("calibration.temperature", float("nan")),
           "calibration.temperature", "nan"),
    Tamper("temperature-negative", _set("calibration.temperature", -1.5),
           "calibration.temperature", "-1.5"),
    Tamper("auto_accept-0", _set("thresholds.auto_accept", 0), "thresholds.auto_accept", "= 0"),
    # Same classes of failure, neighbouring fields.
    Tamper("temperature-infinite", _set("calibration.temperature", float("inf")),
           "calibration.temperature", "inf"),
    Tamper("decision-0", _set("thresholds.decision", 0), "thresholds.decision", "= 0"),
    Tamper("decision-above-1", _set("thresholds.decision", 1.5), "thresholds.decision", "1.5"),
    Tamper("auto_accept-negative", _set("thresholds.auto_accept", -0.2),
           "thresholds.auto_accept", "-0.2"),
    Tamper("precision-threshold-nan",
           _set("thresholds.auto_accept_by_precision", {"0.98": float("nan")}),
           "thresholds.auto_accept_by_precision.0.98", "nan"),
    Tamper("eval_crop_pct-above-1", _set("eval_crop_pct", 1.5), "eval_crop_pct", "1.5"),
    # A tiny crop fraction blows the resize square up instead (32 / 0.001 = 32000 px).
    Tamper("eval_crop_pct-tiny", _set("eval_crop_pct", 0.001), "eval_crop_pct", "0.001"),
    Tamper("image_size-0", _set("image_size", 0), "image_size", "= 0"),
    Tamper("image_size-text", _set("image_size", "32"), "image_size", "'32'"),
    Tamper("mean-two-values", _set("backbone.preprocessing.mean", [0.5, 0.5]),
           "backbone.preprocessing.mean", "[0.5, 0.5]"),
    Tamper("std-zero", _set("backbone.preprocessing.std", [0.2, 0.0, 0.2]),
           "backbone.preprocessing.std.1", "0.0"),
    Tamper("format_version-0", _set("format_version", 0), "format_version", "= 0"),
    Tamper("format_version-newer", _set("format_version", 99), "format", "99"),
    Tamper("format-other", _set("format", "something.else"), "format", "'something.else'"),
    Tamper("taxonomy-file-outside", _set("taxonomy.file", "../../etc/passwd"), "taxonomy.file",
           "'../../etc/passwd'"),
    Tamper("calibration-missing", _drop("calibration"), "calibration", "is missing"),
    Tamper("embedding_dim-wrong", _set("backbone.embedding_dim", 64), "embedding_dim", "64",
           manifest_only=False),
    Tamper("parent-not-text", _set("parent", 3), "parent", "= 3"),
]

PARAMS = [pytest.param(case, id=case.id) for case in CASES]


def tamper(bundle_dir: Path, case: Tamper) -> None:
    manifest_file = Path(bundle_dir) / "bundle.json"
    manifest = json.loads(manifest_file.read_text("utf-8"))
    # json.dumps writes NaN / Infinity, which json.loads (and a hand edit) accepts.
    manifest_file.write_text(json.dumps(case.edit(manifest)), "utf-8")


def assert_one_line_naming(message: str, case: Tamper) -> None:
    message = message.strip()
    assert "\n" not in message, message
    assert case.field in message and case.value in message, message
    assert "Traceback" not in message

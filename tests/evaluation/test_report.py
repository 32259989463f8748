"""Tests for catalog_ai.evaluation.report: the PNGs and metrics.json it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from catalog_ai.errors import EvaluationError
from catalog_ai.evaluation import REPORT_FILES, EvaluationResult, evaluate_arrays, write_report
from catalog_ai.taxonomy import Taxonomy

from .cases import THRESHOLDS, node_probs_of


def _check_png(path: Path) -> tuple[int, int]:
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        size = image.size
    with Image.open(path) as image:
        image.verify()
    return size


@pytest.fixture(scope="module")
def plain_report(
    result: EvaluationResult, taxonomy: Taxonomy, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    return write_report(result, tmp_path_factory.mktemp("report"), taxonomy=taxonomy)


def test_write_report_without_thumbnails(
    result: EvaluationResult, plain_report: list[Path]
) -> None:
    assert [p.name for p in plain_report] == list(REPORT_FILES)
    assert json.loads(plain_report[0].read_text(encoding="utf-8")) == json.loads(
        json.dumps(result.metrics)
    )
    for png in plain_report[1:]:
        width, height = _check_png(png)
        assert width > 200 and height > 100


def test_write_report_with_thumbnails_and_a_missing_photo(
    result: EvaluationResult, taxonomy: Taxonomy, plain_report: list[Path], tmp_path: Path
) -> None:
    photos = []
    for i in range(8):
        path = tmp_path / f"photo{i}.png"
        Image.new("RGB", (40 + i, 30), (30 * i, 100, 200)).save(path)
        photos.append(path)
    photos[3].unlink()  # p3 (C1 predicted as C2) is one of the thumbnails to draw
    photos[5].write_bytes(b"not an image")  # p5 (C2 predicted as A1) too, unreadable
    written = write_report(result, tmp_path / "report", taxonomy=taxonomy, image_paths=photos)
    assert [p.name for p in written] == list(REPORT_FILES)
    for png in written[1:]:
        _check_png(png)
    # A grid of thumbnails (one row per pair), not the bar chart drawn without photos.
    assert _check_png(written[-1]) != _check_png(plain_report[-1])


def test_write_report_with_nothing_confused(taxonomy: Taxonomy, tmp_path: Path) -> None:
    probs = node_probs_of(taxonomy, [[0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    res = evaluate_arrays(
        probs,
        [taxonomy.row("A")],
        taxonomy,
        thresholds=THRESHOLDS,
        image_paths=[tmp_path / "nowhere.jpg"],
    )
    assert res.metrics["leaf_accuracy"] is None and res.metrics["ece"] is None
    for png in write_report(res, tmp_path, taxonomy=taxonomy)[1:]:
        _check_png(png)


def test_write_report_rejects_another_taxonomy(result: EvaluationResult, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="not the one the result was computed with"):
        write_report(result, tmp_path, taxonomy=Taxonomy.from_paths(["X > Y"]))

"""The few-shot benchmark's pairing of catalog photos with train leaves (``benchmarks/fewshot.py``).

A wrong pairing makes a leaf's val photos count as wrong whatever the model does, so the
benchmark's figure would be low for a reason that has nothing to do with the model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_fewshot():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling modules by name
    try:
        spec = importlib.util.spec_from_file_location("_benchmark_fewshot", BENCHMARKS / "fewshot.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


fewshot = _load_fewshot()


def test_every_catalog_photo_is_paired_with_a_train_leaf_by_name(shared_data):
    from catalog_ai.taxonomy import format_path, scan_folder

    leaves = sorted({format_path(p) for _, p in scan_folder(shared_data / "train").files})
    photos, labels = fewshot.catalog_photos(shared_data, leaves)
    assert len(photos) == len(leaves) == 81
    assert sorted(labels) == leaves  # one catalog photo per leaf, none left without one
    # The catalog tree files this leaf under Vegetables/Mushroom; the train tree does not.
    mushroom = labels[[p.parent.name for p in photos].index("Brown-Cap-Mushroom")]
    assert mushroom == "Vegetables > Brown-Cap-Mushroom"


def test_a_leaf_name_shared_by_two_train_leaves_is_refused(tmp_path):
    photo = tmp_path / "iconic-images-and-descriptions" / "Fruit" / "Kiwi" / "Kiwi_Iconic.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"")
    with pytest.raises(SystemExit, match="2 train leaves are named 'Kiwi'"):
        fewshot.catalog_photos(tmp_path, ["Fruit > Kiwi", "Imported > Kiwi"])
    with pytest.raises(SystemExit, match="0 train leaves are named 'Kiwi'"):
        fewshot.catalog_photos(tmp_path, ["Fruit > Apple"])
    assert fewshot.catalog_photos(tmp_path, ["Fruit > Kiwi"]) == ([photo], ["Fruit > Kiwi"])

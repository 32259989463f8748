"""Evaluation and few-shot add isolate a photo the network fails on (issue 13, finding 1): the
photo is named with its reason, its batch-mates are not affected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import LEAF_COLOURS, trained_bundle, write_photo  # noqa: F401 (fixture)
from PIL import Image

from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.prototypes import PrototypeError
from catalog_ai.services.evaluate import evaluate_folder
from catalog_ai.services.fewshot import add_examples


def _black(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (0, 0, 0)).save(path)
    return path


@pytest.fixture
def network_fails_on_black(monkeypatch):
    real = Predictor.analyse

    def analyse(self, squares):
        if any(int(sq.max()) == 0 for sq in squares):
            raise RuntimeError("kernel rejected the input")
        return real(self, squares)

    monkeypatch.setattr(Predictor, "analyse", analyse)


def test_evaluation_skips_only_the_photo_the_network_fails_on(
    trained_bundle, tmp_path, network_fails_on_black  # noqa: F811
):
    rng = np.random.default_rng(3)
    data = tmp_path / "val"
    for leaf, colour in LEAF_COLOURS.items():
        for i in range(2):
            write_photo(data.joinpath(*leaf) / f"{i}.png", colour, rng)
    hostile = _black(data / "Fruit" / "Banana" / "black.png")
    result, skipped = evaluate_folder(trained_bundle.path, data)
    assert skipped == [(str(hostile), skipped[0][1])]
    assert "the model failed on this photo (kernel rejected the input)" in skipped[0][1]
    assert result.n_images == 2 * len(LEAF_COLOURS)


def test_fewshot_add_names_the_photo_the_network_fails_on(
    trained_bundle, tmp_path, network_fails_on_black  # noqa: F811
):
    bundle = Path(shutil.copytree(trained_bundle.path, tmp_path / "bundle"))
    rng = np.random.default_rng(5)
    good = [write_photo(tmp_path / "ex" / f"{i}.png", (220, 40, 220), rng) for i in range(3)]
    hostile = _black(tmp_path / "ex" / "black.png")
    examples = [(f, ("Veg", "Beet")) for f in [good[0], hostile, *good[1:]]]
    with pytest.raises(PrototypeError, match=r"1 example photos cannot be read, nothing was added "
                       r"\(first: .*black\.png: the model failed on this photo"):
        add_examples(bundle, examples)
    assert Predictor.load(bundle).proto_only_paths == []

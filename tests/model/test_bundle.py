"""Model bundles: write -> load round trip, no pickle on load, and refusal of damaged bundles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import LEAF_COLOURS, LEAF_PATHS, one_torch_thread, random_bundle, write_photo  # noqa: F401
from safetensors.torch import load_file

from catalog_ai.backbones import get_backbone
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import (
    FORMAT,
    FORMAT_VERSION,
    BundleError,
    ModelBundle,
    check_output_dir,
    read_manifest,
)
from catalog_ai.model.decision import Thresholds
from catalog_ai.taxonomy import Taxonomy

THRESHOLDS = Thresholds(
    decision=0.6,
    auto_accept=0.93,
    auto_accept_by_precision={"0.95": 0.81, "0.98": 0.93, "0.99": 1.01},
)


@pytest.fixture
def bundle(tmp_path: Path) -> ModelBundle:
    return random_bundle(
        tmp_path / "bundle",
        temperature=1.7,
        thresholds=THRESHOLDS,
        metrics={"held_out": {"leaf_accuracy": 0.75, "n_images": 12}},
    )


def test_round_trip_keeps_every_manifest_field(bundle):
    loaded = ModelBundle.load(bundle.path)
    assert loaded.version == bundle.version and loaded.version.startswith("tiny-cnn-")
    assert loaded.backbone == "tiny-cnn" and loaded.embedding_dim == 32
    assert loaded.preprocessing == get_backbone("tiny-cnn").preprocessing
    assert (loaded.image_size, loaded.eval_crop_pct) == (32, 1.0)
    assert loaded.temperature == 1.7
    assert loaded.thresholds == THRESHOLDS
    assert loaded.taxonomy == Taxonomy.from_paths(LEAF_PATHS)  # same nodes in the same row order
    assert loaded.taxonomy.leaf_ids == LEAF_PATHS
    assert loaded.metrics == {"held_out": {"leaf_accuracy": 0.75, "n_images": 12}}
    assert loaded.created_at == bundle.created_at != ""

    manifest = json.loads((bundle.path / "bundle.json").read_text())
    assert manifest["format"] == FORMAT and manifest["format_version"] == FORMAT_VERSION
    assert manifest["taxonomy"] == {
        "file": "taxonomy.json",
        "fingerprint": bundle.taxonomy.fingerprint(),
        "n_nodes": 7,
        "n_leaves": 4,
    }
    assert manifest["calibration"] == {"method": "temperature", "temperature": 1.7}
    assert manifest["weights"] == "model.safetensors"
    assert sorted(p.name for p in bundle.path.iterdir()) == [
        "bundle.json",
        "model.safetensors",
        "taxonomy.json",
    ]


def test_weights_are_the_state_dict_written(tmp_path):
    bundle = random_bundle(tmp_path / "b", seed=4)
    tensors = load_file(str(bundle.weights_path))
    assert set(tensors) >= {
        "head.weight",
        "head.bias",
        "backbone.0.weight",
        "backbone.1.running_mean",
    }
    assert tensors["head.weight"].shape == (4, 32)
    # Different weights, different version id (the id hashes the weights file).
    other = random_bundle(tmp_path / "c", seed=5)
    assert other.version != bundle.version
    assert not torch.equal(
        load_file(str(other.weights_path))["head.weight"], tensors["head.weight"]
    )


def test_loading_a_bundle_and_predicting_never_unpickles(bundle, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model bundle must load without unpickling anything")

    # Serving preprocessing imports timm on first use, and importing a library may read its own
    # caches with pickle: that is not the bundle's doing, so it happens before the refusal.
    import timm.data  # noqa: F401

    for target, name in (
        (torch, "load"),
        (torch.serialization, "load"),
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
    ):
        monkeypatch.setattr(target, name, refuse)
    predictor = Predictor.load(bundle.path)
    photo = write_photo(
        tmp_path / "p.png", LEAF_COLOURS[("Fruit", "Banana")], np.random.default_rng(0)
    )
    (prediction,) = predictor.predict([photo])
    assert prediction.error is None and prediction.decision.model_version == bundle.version


def test_tampered_taxonomy_is_refused(bundle):
    data = json.loads((bundle.path / "taxonomy.json").read_text())
    data["nodes"][-1]["path"][-1] = "Parsnip"
    data["nodes"][-1]["id"] = "Veg > Parsnip"
    (bundle.path / "taxonomy.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="fingerprint"):
        ModelBundle.load(bundle.path)


def test_missing_weights_are_refused(bundle):
    bundle.weights_path.unlink()
    with pytest.raises(BundleError, match=r"no model.safetensors"):
        ModelBundle.load(bundle.path)
    with pytest.raises(BundleError):
        Predictor.load(bundle.path)


def test_newer_format_version_asks_for_an_upgrade(bundle):
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="upgrade catalog_ai"):
        ModelBundle.load(bundle.path)


def test_not_a_bundle_and_damaged_manifests(tmp_path, bundle):
    with pytest.raises(BundleError, match="not a model bundle"):
        read_manifest(tmp_path)
    (bundle.path / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot be read as JSON"):
        ModelBundle.load(bundle.path)
    (bundle.path / "bundle.json").write_text(json.dumps({"format": FORMAT, "format_version": 1}))
    with pytest.raises(BundleError, match="incomplete or damaged"):
        ModelBundle.load(bundle.path)


def test_weights_of_another_tree_are_a_bundle_error(tmp_path, bundle):
    # model.safetensors copied from a bundle with 5 leaves into one whose tree has 4.
    other = random_bundle(tmp_path / "other", paths=[*LEAF_PATHS, "Dairy"])
    bundle.weights_path.write_bytes(other.weights_path.read_bytes())
    with pytest.raises(BundleError, match="do not fit"):
        Predictor.load(bundle.path)


def test_damaged_weights_file_is_a_bundle_error(bundle):
    bundle.weights_path.write_bytes(b"not a safetensors file" * 4)
    with pytest.raises(BundleError, match="cannot be read"):
        Predictor.load(bundle.path)


def test_refuses_to_write_into_a_folder_with_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "photos").mkdir()
    (out / "photos" / "a.jpg").write_bytes(b"jpeg")
    before = sorted(
        (p.relative_to(out), p.read_bytes() if p.is_file() else None) for p in out.rglob("*")
    )
    with pytest.raises(BundleError, match="already holds other files"):
        random_bundle(out)
    after = sorted(
        (p.relative_to(out), p.read_bytes() if p.is_file() else None) for p in out.rglob("*")
    )
    assert after == before
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(BundleError, match="is a file"):
        check_output_dir(file)


def test_rewriting_a_bundle_in_place_replaces_it(tmp_path):
    first = random_bundle(tmp_path / "b", seed=1)
    second = random_bundle(tmp_path / "b", seed=2)
    assert ModelBundle.load(tmp_path / "b").version == second.version != first.version

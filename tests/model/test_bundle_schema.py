"""A bundle is validated before it is trusted (issue 13, finding 7): every tampered manifest is
a one-line BundleError naming the field and the value, at load time, never a traceback or a
model that silently decides nonsense."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bundle_cases import PARAMS, assert_one_line_naming, tamper
from helpers import (  # noqa: F401 (one_torch_thread: autouse fixture)
    LEAF_COLOURS,
    LEAF_PATHS,
    one_torch_thread,
    random_bundle,
    write_photo,
)

from catalog_ai.errors import CatalogAIError
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.model.prototypes import META, PrototypeError, PrototypeMemory


@pytest.fixture
def bundle(tmp_path: Path) -> ModelBundle:
    return random_bundle(tmp_path / "bundle")


@pytest.mark.parametrize("case", PARAMS)
def test_a_tampered_manifest_is_one_line_naming_the_field(bundle, case):
    tamper(bundle.path, case)
    if case.manifest_only:
        with pytest.raises(BundleError) as info:
            ModelBundle.load(bundle.path)
        assert_one_line_naming(str(info.value), case)
    with pytest.raises(BundleError) as info:
        Predictor.load(bundle.path)
    assert_one_line_naming(str(info.value), case)


@pytest.mark.parametrize(
    "parent",
    [
        None,
        {
            "version": "tiny-cnn-20260101-000000-abcdef12",
            "memory_revision": 3,
            "change": "calibrate",
        },
    ],
)
def test_an_optional_parent_version_is_accepted(bundle, parent):
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["parent"] = parent
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    loaded = ModelBundle.load(bundle.path)
    assert loaded.version == bundle.version and loaded.parent == parent


def test_a_parent_without_its_version_is_refused(bundle):
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["parent"] = {"memory_revision": 1}
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"parent\.version"):
        ModelBundle.load(bundle.path)


def test_unknown_manifest_keys_are_ignored(bundle):
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["added_by_a_later_release"] = {"anything": 1}
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    assert ModelBundle.load(bundle.path).version == bundle.version


def test_auto_accept_off_above_1_still_loads(bundle):
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["thresholds"]["auto_accept"] = 1.01
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    assert not ModelBundle.load(bundle.path).thresholds.auto_accept_enabled


def test_a_bundle_with_nonsense_values_is_never_written(tmp_path):
    with pytest.raises(BundleError, match=r"calibration\.temperature = nan"):
        random_bundle(tmp_path / "b", temperature=float("nan"))
    assert not (tmp_path / "b" / "bundle.json").exists()


def test_a_valid_tampered_looking_bundle_still_predicts(bundle, tmp_path):
    # The boundaries themselves are valid: the schema refuses nonsense, not unusual values.
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    manifest["thresholds"]["decision"] = 1.0
    manifest["calibration"]["temperature"] = 0.05
    manifest["eval_crop_pct"] = 0.875
    (bundle.path / "bundle.json").write_text(json.dumps(manifest))
    photo = write_photo(
        tmp_path / "p.png", LEAF_COLOURS[("Veg", "Carrot")], np.random.default_rng(0)
    )
    (prediction,) = Predictor.load(bundle.path).predict([photo])
    assert prediction.error is None and np.isfinite(prediction.decision.confidence)


def _with_memory(bundle: ModelBundle) -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(8, bundle.embedding_dim)).astype(np.float32)
    PrototypeMemory.from_examples(
        embeddings, [LEAF_PATHS[i % 4] for i in range(8)], source="train"
    ).save(bundle.path)


@pytest.mark.parametrize(
    ("edit", "field", "value"),
    [
        pytest.param(
            lambda m: {**m, "sources": ["bogus"] * len(m["sources"])},
            "sources.0",
            "'bogus'",
            id="unknown-source",
        ),
        pytest.param(
            lambda m: {**m, "fusion": {**m["fusion"], "open_set_cosine": float("nan")}},
            "fusion.open_set_cosine",
            "nan",
            id="open-set-nan",
        ),
        pytest.param(
            lambda m: {**m, "fusion": {**m["fusion"], "scale": float("inf")}},
            "fusion.scale",
            "inf",
            id="scale-infinite",
        ),
        pytest.param(lambda m: [m], "prototypes.json", "JSON list", id="a-list"),
        pytest.param(
            lambda m: {**m, "sources": m["sources"][:1]},
            "(whole file)",
            "sources",
            id="fewer-sources-than-paths",
        ),
    ],
)
def test_a_tampered_prototype_file_is_one_line_naming_the_field(bundle, edit, field, value):
    _with_memory(bundle)
    meta = json.loads((bundle.path / META).read_text())
    (bundle.path / META).write_text(json.dumps(edit(meta)))
    with pytest.raises(PrototypeError) as info:
        Predictor.load(bundle.path)
    message = str(info.value)
    assert "\n" not in message and field in message and value in message, message


def test_prototypes_of_another_model_are_refused(bundle):
    rng = np.random.default_rng(0)
    PrototypeMemory.from_examples(
        rng.normal(size=(4, 7)).astype(np.float32), LEAF_PATHS, source="train"
    ).save(bundle.path)
    with pytest.raises(CatalogAIError, match="7-dimensional"):
        Predictor.load(bundle.path)


def test_a_taxonomy_file_that_is_not_an_object_is_a_bundle_error(bundle):
    (bundle.path / "taxonomy.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match=r"taxonomy.json cannot be read"):
        ModelBundle.load(bundle.path)

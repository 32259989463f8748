"""``fit()`` end to end on the tiny tree with the ``tiny-cnn`` backbone (about a second a run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import METRIC_KEYS, LEAF_PATHS, make_tree, tiny_config
from safetensors.torch import load_file

from catalog_ai.errors import BackboneError
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.training.data import Example, TrainingDataError, stratified_split
from catalog_ai.training.fit import PRECISION_TARGETS, TrainConfig, fit
from catalog_ai.training.sources import load_folder_examples


def test_fit_writes_a_bundle_that_loads(trained_bundle):
    bundle = ModelBundle.load(trained_bundle.path)
    assert bundle.version == trained_bundle.result.bundle.version
    assert bundle.backbone == "tiny-cnn" and bundle.image_size == 32
    assert bundle.taxonomy.leaf_ids == LEAF_PATHS
    assert 0.05 <= bundle.temperature <= 20.0
    assert set(bundle.thresholds.auto_accept_by_precision) == set(PRECISION_TARGETS)
    # Held out of the training folder (same photo sessions): thresholds recorded, auto-accept off.
    assert not bundle.thresholds.auto_accept_enabled and bundle.thresholds.auto_accept > 1.0
    assert "held out of the training set" in bundle.thresholds.calibrated_on
    assert bundle.training["config"]["backbone"] == "tiny-cnn"
    assert bundle.training["config"]["seed"] == 0
    predictor = Predictor.load(trained_bundle.path)
    assert predictor.network.head.out_features == 4


def test_held_out_metrics_are_in_the_manifest(trained_bundle):
    held = ModelBundle.load(trained_bundle.path).metrics["held_out"]
    for key in (
        *METRIC_KEYS,
        "temperature",
    ):
        assert key in held, key
    assert held["n_images"] == trained_bundle.result.n_held_out == 12
    assert set(held["coverage_at_precision"]) == set(PRECISION_TARGETS)
    # One colour per leaf: even a 3-layer CNN trained for a second beats chance (0.25) by far.
    assert held["leaf_accuracy"] >= 0.75


def test_inner_node_photos_train_and_an_unreadable_photo_is_skipped(trained_bundle):
    """The shared bundle's data: 4 leaves x 12 photos, 2 photos directly in ``Fruit/Apple/`` and
    ``Veg/Carrot/broken.png``, which is not an image."""
    result, config = trained_bundle.result, trained_bundle.config
    _, examples, _ = load_folder_examples(trained_bundle.data)
    inner = [e for e in examples if e.label == "Fruit > Apple"]
    assert len(inner) == 2
    train, held = stratified_split(examples, config.holdout, seed=config.seed)
    # Fewer than 4 photos: both stay in training (nothing of the label is held out).
    assert all(e in train for e in inner)
    broken = trained_bundle.data / "Veg" / "Carrot" / "broken.png"
    assert [file for file, _ in result.skipped] == [str(broken)]
    assert result.skipped[0][1]  # with its reason
    # n_train counts every readable training photo, the two inner-node photos included.
    assert result.n_train == sum(1 for e in train if e.file != broken)
    assert result.n_held_out == sum(1 for e in held if e.file != broken)
    assert result.n_train + result.n_held_out == 4 * 12 + 2
    training = result.bundle.training
    assert (training["n_train"], training["n_held_out"], training["skipped"]) == (
        result.n_train,
        result.n_held_out,
        1,
    )


def test_same_seed_gives_identical_weights(trained_bundle, tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(trained_bundle.data)
    again = fit(
        trained_bundle.config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "again"
    )
    first = load_file(str(trained_bundle.path / "model.safetensors"))
    second = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert different == []
    assert again.bundle.temperature == trained_bundle.result.bundle.temperature
    assert again.bundle.thresholds == trained_bundle.result.bundle.thresholds


def test_another_seed_gives_other_weights(trained_bundle, tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(trained_bundle.data)
    config = tiny_config(seed=1, epochs=1)
    fit(config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "other")
    first = load_file(str(trained_bundle.path / "model.safetensors"))
    other = load_file(str(tmp_path / "other" / "model.safetensors"))
    assert not torch.equal(first["head.weight"], other["head.weight"])


def test_a_backbone_that_is_not_installed_is_a_clear_error(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=4))
    with pytest.raises(BackboneError, match="no-such-net") as info:
        fit(
            tiny_config(backbone="no-such-net"),
            taxonomy=taxonomy,
            examples=examples,
            out_dir=tmp_path / "out",
        )
    assert "backbones list" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_an_empty_category_folder_is_a_clear_error(tmp_path, catalog_home):
    data = make_tree(tmp_path / "data", per_class=4, empty=("Veg", "Pepper"))
    taxonomy, examples, _ = load_folder_examples(data)
    with pytest.raises(TrainingDataError) as info:
        fit(tiny_config(), taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "out")
    assert "'Veg > Pepper'" in str(info.value) and "remove the empty folder" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_too_few_photos_to_hold_out_asks_for_validation_data(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=3))
    with pytest.raises(TrainingDataError, match="--val-data"):
        fit(tiny_config(), taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "out")


def test_validation_photos_must_use_the_training_tree(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=4))
    held = [Example(Path(tmp_path / "x.png"), "Fruit > Kiwi")]
    with pytest.raises(TrainingDataError, match="'Fruit > Kiwi'"):
        fit(
            tiny_config(),
            taxonomy=taxonomy,
            examples=examples,
            out_dir=tmp_path / "out",
            held_out=held,
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (dict(decision_threshold=0.4), "at least 0.5"),
        (dict(auto_accept_precision="0.9"), "auto_accept_precision"),
        # A bundle outside the schema's ranges would be refused on load: refused before training.
        (dict(image_size=20000), "image_size=20000"),
        (dict(eval_crop_pct=0.0), "eval_crop_pct=0.0"),
    ],
)
def test_bad_settings_are_refused_before_training(tmp_path, catalog_home, override, message):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=4))
    with pytest.raises(TrainingDataError, match=message):
        fit(tiny_config(**override), taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "out")


def test_independent_validation_photos_switch_auto_accept_on(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=6))
    _, held, _ = load_folder_examples(
        make_tree(tmp_path / "val", per_class=3, seed=7), taxonomy=taxonomy
    )
    result = fit(
        tiny_config(), taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "out", held_out=held
    )
    thresholds = result.bundle.thresholds
    assert "validation photos" in thresholds.calibrated_on
    if thresholds.auto_accept_by_precision["0.98"] <= 1.0:
        assert thresholds.auto_accept_enabled
        assert thresholds.auto_accept == thresholds.auto_accept_by_precision["0.98"]
    else:  # no threshold reached 98 % precision on these photos: stays off, honestly
        assert not thresholds.auto_accept_enabled


def test_holdout_can_be_trusted_explicitly(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=8))
    result = fit(
        tiny_config(auto_accept_from_holdout=True),
        taxonomy=taxonomy,
        examples=examples,
        out_dir=tmp_path / "out",
    )
    t = result.bundle.thresholds
    assert t.auto_accept == t.auto_accept_by_precision["0.98"]


def test_each_mode_has_its_own_default_backbone():
    # The accurate model fine-tunes Lite2; the quick model (main job) probes Lite0 to stay fast.
    assert TrainConfig.preset("finetune").backbone == "efficientnet_lite2"
    assert TrainConfig.preset("linear_probe").backbone == "efficientnet_lite0"


def test_calibration_and_prototypes_embed_with_the_frozen_serving_network(
    trained_bundle, tmp_path, catalog_home, monkeypatch
):
    """On the CPU the photos are embedded after training by the frozen graph the workers serve;
    with CATALOG_AI_FREEZE_NETWORK=0 by the eager network. Same weights, same numbers within
    the freezing tolerance."""
    import numpy as np

    import catalog_ai.inference.frozen as frozen
    from catalog_ai.model.prototypes import PrototypeMemory
    from catalog_ai.settings import reset_settings

    made = []
    real = frozen.freeze_backbone
    monkeypatch.setattr(
        frozen, "freeze_backbone", lambda *a, **k: made.append(real(*a, **k)) or made[-1]
    )
    taxonomy, examples, _ = load_folder_examples(trained_bundle.data)
    fit(trained_bundle.config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "frozen")
    assert len(made) == 1 and isinstance(
        made[0], torch.jit.ScriptModule
    )  # traced once, used for both sets

    monkeypatch.setenv("CATALOG_AI_FREEZE_NETWORK", "0")
    reset_settings()
    try:
        eager = fit(
            trained_bundle.config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "eager"
        )
    finally:
        monkeypatch.delenv("CATALOG_AI_FREEZE_NETWORK")
        reset_settings()
    assert len(made) == 1  # not traced with the setting off
    a = load_file(str(tmp_path / "frozen" / "model.safetensors"))
    b = load_file(str(tmp_path / "eager" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    pa, pb = PrototypeMemory.load(tmp_path / "frozen"), PrototypeMemory.load(tmp_path / "eager")
    assert np.allclose(pa.prototypes(), pb.prototypes(), atol=1e-3)
    assert eager.bundle.temperature == pytest.approx(
        trained_bundle.result.bundle.temperature, rel=1e-3
    )

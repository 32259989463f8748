"""Weight averaging (``catalog_ai/training/averaging.py``) on the tiny tree with ``tiny-cnn``."""

from __future__ import annotations

import pytest
import torch
from helpers import make_tree, tiny_config
from safetensors.torch import load_file

from catalog_ai.training.averaging import WeightAverages, parse_average
from catalog_ai.training.data import TrainingDataError
from catalog_ai.training.fit import fit
from catalog_ai.training.sources import load_folder_examples


@pytest.mark.parametrize(
    ("text", "name", "kind", "value"),
    [
        ("ema", "ema0.998", "ema", 0.998),
        ("EMA0.99", "ema0.99", "ema", 0.99),
        ("swa", "swa0.5", "swa", 0.5),
        ("swa0.75", "swa0.75", "swa", 0.75),
    ],
)
def test_specs_parse(text, name, kind, value):
    spec = parse_average(text)
    assert (spec.name, spec.kind, spec.value) == (name, kind, value)


@pytest.mark.parametrize("text", ["polyak", "ema1.5", "swa-1", ""])
def test_bad_specs_are_refused(text):
    with pytest.raises(TrainingDataError, match="weight averaging"):
        parse_average(text)


def test_a_bad_spec_is_refused_before_training(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=6))
    with pytest.raises(TrainingDataError, match="weight averaging"):
        fit(
            tiny_config(weight_averaging="mean"),
            taxonomy=taxonomy,
            examples=examples,
            out_dir=tmp_path / "m",
        )


def test_ema_weights_differ_from_raw_and_are_what_the_bundle_holds(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=8))
    config = tiny_config(epochs=3, weight_averaging="ema0.9", record_averages=["swa0.5"])
    result = fit(config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "m")
    variants = tmp_path / "m" / "checkpoints" / "weights"
    raw = load_file(str(variants / "raw.safetensors"))
    ema = load_file(str(variants / "ema0.9.safetensors"))
    swa = load_file(str(variants / "swa0.5.safetensors"))
    saved = load_file(str(result.bundle.weights_path))
    assert not torch.equal(raw["head.weight"], ema["head.weight"])
    assert not torch.equal(swa["head.weight"], ema["head.weight"])
    assert all(torch.equal(saved[k], ema[k]) for k in saved)
    assert result.bundle.training["config"]["weight_averaging"] == "ema0.9"


def test_without_averaging_the_bundle_holds_the_raw_weights(tmp_path, catalog_home):
    taxonomy, examples, _ = load_folder_examples(make_tree(tmp_path / "data", per_class=8))
    config = tiny_config(epochs=2, record_averages=["ema0.9"])
    result = fit(config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "m")
    raw = load_file(str(tmp_path / "m" / "checkpoints" / "weights" / "raw.safetensors"))
    saved = load_file(str(result.bundle.weights_path))
    assert all(torch.equal(saved[k], raw[k]) for k in saved)


def test_ema_is_the_exponential_average_of_the_steps():
    """Three steps by hand: the average after steps w1, w2, w3 is EMA(decay) started at w1."""
    net = torch.nn.Linear(2, 1, bias=False)

    class Module:
        network = net

    class Trainer:
        estimated_stepping_batches = 3
        global_step = 0

    cb = WeightAverages(["ema0.5"])
    trainer, module = Trainer(), Module()
    cb.on_train_start(trainer, module)  # type: ignore[arg-type]
    values = [1.0, 3.0, 5.0]
    for step, value in enumerate(values, start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module)  # type: ignore[arg-type]
    cb.on_train_end(trainer, module)  # type: ignore[arg-type]
    expected = (1.0 * 0.5 + 3.0 * 0.5) * 0.5 + 5.0 * 0.5  # 3.5
    assert cb.states["ema0.5"]["weight"].flatten().tolist() == [expected, expected]
    assert cb.states["raw"]["weight"].flatten().tolist() == [5.0, 5.0]

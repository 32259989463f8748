"""The linear probe (the main job's quick model): a head fitted on frozen embeddings."""

from __future__ import annotations

import numpy as np
import torch
from helpers import LEAF_PATHS, make_tree

from catalog_ai.model.preprocess import normalise
from catalog_ai.training.data import HierarchyDataModule, examples_from_folder
from catalog_ai.training.module import HierarchicalClassifierModule
from catalog_ai.training.probe import train_linear_probe


def _data(tmp_path, per_class: int) -> HierarchyDataModule:
    taxonomy, examples = examples_from_folder(make_tree(tmp_path / "photos", per_class=per_class))
    data = HierarchyDataModule(
        taxonomy=taxonomy,
        train=examples,
        held_out=examples[:2],
        cache_root=tmp_path / "cache",
        image_size=32,
        train_as_served=True,
        progress=False,
    )
    data.setup("fit")
    return data


def _module(data: HierarchyDataModule) -> HierarchicalClassifierModule:
    torch.manual_seed(0)
    return HierarchicalClassifierModule(
        backbone="tiny-cnn", taxonomy=data.taxonomy.to_dict(), pretrained=False
    )


def _probe(module, data, **overrides):
    settings = dict(
        epochs=40,
        lr=0.05,
        weight_decay=1e-4,
        label_smoothing=0.0,
        balance_power=0.5,
        seed=0,
        progress=False,
    )
    settings.update(overrides)
    return train_linear_probe(module, data, **settings)


def test_prototypes_get_each_photo_once_unmirrored_whatever_the_photo_count(tmp_path):
    # 4 leaves x 5 photos = 20 training photos: not a multiple of the embedding batch (16).
    # The mirrored embeddings of the last, short batch used to slip into the prototypes.
    data = _data(tmp_path, per_class=5)
    assert len(data.train_set) % 16 != 0
    module = _module(data)
    embeddings, rows = _probe(module, data, epochs=1)[:2]
    assert len(embeddings) == len(rows) == len(data.train_set)
    net = module.network.eval().cpu()
    with torch.inference_mode():
        for i in range(len(data.train_set)):
            image, row = data.train_set.cache.load(data.train_set.digests[i]), data.train_rows[i]
            x = normalise(torch.from_numpy(np.array(image))[None], module.mean, module.std)
            expected = net.embed(x)[0].float()
            assert int(rows[i]) == row
            torch.testing.assert_close(embeddings[i], expected, rtol=1e-4, atol=1e-5)


def test_the_probe_learns_the_tiny_tree_and_keeps_the_backbone(tmp_path):
    data = _data(tmp_path, per_class=12)
    module = _module(data)
    before = {k: v.clone() for k, v in module.network.backbone.state_dict().items()}
    head_before = module.network.head.weight.detach().clone()
    embeddings, rows = _probe(module, data)[:2]
    for k, v in module.network.backbone.state_dict().items():
        assert torch.equal(v, before[k]), f"the frozen backbone changed: {k}"
    assert not torch.equal(module.network.head.weight.detach(), head_before)
    with torch.inference_mode():
        predicted = module.network.head(embeddings).argmax(1)
    leaf_rows = module.tree.leaf_rows
    accuracy = (leaf_rows[predicted] == rows).float().mean().item()
    assert accuracy >= 0.9, accuracy
    assert len(LEAF_PATHS) == module.tree.n_leaves


def test_the_same_seed_fits_the_same_head(tmp_path):
    data = _data(tmp_path, per_class=5)
    heads = []
    for _ in range(2):
        module = _module(data)
        _probe(module, data, epochs=3)
        heads.append(module.network.head.weight.detach().clone())
    assert torch.equal(heads[0], heads[1])


def test_fit_in_probe_mode_writes_a_bundle_with_the_photos_prototypes(tmp_path, catalog_home):
    from helpers import tiny_config

    from catalog_ai.model.bundle import ModelBundle
    from catalog_ai.model.prototypes import PrototypeMemory
    from catalog_ai.training.fit import fit

    taxonomy, examples = examples_from_folder(make_tree(tmp_path / "photos", per_class=7))
    config = tiny_config(mode="linear_probe", epochs=30, lr=0.05)
    result = fit(config, taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "out")
    bundle = ModelBundle.load(tmp_path / "out")
    assert bundle.training["config"]["mode"] == "linear_probe"
    assert bundle.metrics["held_out"]["leaf_accuracy"] >= 0.75
    memory = PrototypeMemory.load(tmp_path / "out")
    assert memory is not None
    assert int(memory.counts.sum()) == result.n_train  # each training photo once

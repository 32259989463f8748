"""The Predictor against a forward pass written out by hand, on the session's trained bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import LEAF_COLOURS, write_photo
from PIL import Image
from safetensors.torch import load_file

from catalog_ai.backbones import create_backbone
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.model.network import HierarchicalClassifier


@pytest.fixture(scope="module")
def predictor(trained_bundle) -> Predictor:
    return Predictor.load(trained_bundle.path, batch_size=2)


def _manual(bundle: ModelBundle, photo) -> tuple[np.ndarray, np.ndarray]:
    """Embedding and node probabilities computed without the predictor's code paths."""
    network = HierarchicalClassifier(create_backbone("tiny-cnn", pretrained=False), 32, 4)
    network.load_state_dict(load_file(str(bundle.weights_path)))
    network.eval()
    # Photos are 40x40, the input 32 with crop 1.0: the whole photo resized to 32 with the
    # backbone's interpolation (bilinear for tiny-cnn), as in training.
    assert bundle.preprocessing.interpolation == "bilinear" and bundle.eval_crop_pct == 1.0
    img = (
        Image.open(photo)
        .convert("RGB")
        .resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=3.0)
    )
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    mean = torch.tensor(bundle.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.preprocessing.std).view(1, 3, 1, 1)
    with torch.no_grad():
        emb = network.backbone((x - mean) / std)
        leaf = (network.head(emb) / bundle.temperature).softmax(1)[0].double().numpy()
    leaves = bundle.taxonomy.leaf_ids
    nodes = np.array(
        [
            sum(
                p
                for leaf_id, p in zip(leaves, leaf, strict=True)
                if leaf_id == n.text or leaf_id.startswith(n.text + " > ")
            )
            for n in bundle.taxonomy
        ]
    )
    return emb[0].numpy(), nodes


def test_predict_equals_a_manual_forward_pass(predictor, trained_bundle):
    photos = (
        sorted((trained_bundle.data / "Fruit" / "Banana").glob("*.png"))[:2]
        + sorted((trained_bundle.data / "Fruit" / "Apple" / "Red").glob("*.png"))[:1]
    )
    predictions = predictor.predict(photos)
    for photo, prediction in zip(photos, predictions, strict=True):
        emb, nodes = _manual(predictor.bundle, photo)
        assert prediction.error is None and prediction.source == str(photo)
        assert np.allclose(prediction.embedding, emb, atol=1e-5)
        assert np.allclose(prediction.node_probs, nodes, atol=1e-5)
        # Open set: the photo's best cosine to the category prototypes, by hand.
        memory = predictor.prototypes
        centred = emb - memory.center
        protos = memory.sums / np.linalg.norm(memory.sums, axis=1, keepdims=True)
        best = (protos @ (centred / np.linalg.norm(centred))).max()
        far = bool(best < memory.fusion.open_set_cosine)
        assert prediction.decision.open_set == far
        assert prediction.decision == predictor.decider.decide(prediction.node_probs, open_set=far)
        assert prediction.decision.model_version == trained_bundle.result.bundle.version


def test_photos_as_bytes_give_the_same_result(predictor, trained_bundle):
    photo = sorted((trained_bundle.data / "Veg" / "Carrot").glob("carrot-*.png"))[0]
    by_path, by_bytes = predictor.predict([photo, photo.read_bytes()])
    assert by_bytes.source == "upload-1"
    assert np.array_equal(by_path.node_probs, by_bytes.node_probs)


def test_an_unreadable_photo_gets_an_error_and_the_others_still_get_decisions(
    predictor, trained_bundle, tmp_path
):
    rng = np.random.default_rng(9)
    good = [
        write_photo(tmp_path / f"{i}.png", LEAF_COLOURS[("Veg", "Carrot")], rng) for i in range(3)
    ]
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    # With batches of 2, the bad photo shares a batch with a good one.
    results = predictor.predict(
        [good[0], empty, trained_bundle.data / "Veg" / "Carrot" / "broken.png", *good[1:]]
    )
    assert [r.error is None for r in results] == [True, False, False, True, True]
    assert results[1].error == "file is empty" and results[2].error
    assert results[1].decision is None and results[1].node_probs is None
    for r in (results[0], results[3], results[4]):
        assert r.decision is not None and r.embedding.shape == (32,)
    assert predictor.predict([]) == []


def test_node_probabilities_are_tree_consistent(predictor, trained_bundle):
    photos = sorted(trained_bundle.data.rglob("*-0[0-2].png"))
    taxonomy = predictor.bundle.taxonomy
    for prediction in predictor.predict(photos):
        p = prediction.node_probs
        roots = [taxonomy.row(n.id) for n in taxonomy if n.parent_id is None]
        assert p[roots].sum() == pytest.approx(1.0, abs=1e-6)
        for node in taxonomy:
            children = taxonomy.children(node.id)
            if children:
                assert p[[taxonomy.row(c.id) for c in children]].sum() == pytest.approx(
                    p[taxonomy.row(node.id)], abs=1e-6
                )
        assert np.all(p >= 0) and np.all(p <= 1 + 1e-9)


def test_a_trained_model_sorts_the_colours(predictor, trained_bundle):
    # Not a unit check of code paths: the tiny network has learnt one colour per leaf.
    rng = np.random.default_rng(11)
    photos = {
        path: write_photo(trained_bundle.data.parent / f"new-{path[-1]}.png", colour, rng)
        for path, colour in LEAF_COLOURS.items()
    }
    results = predictor.predict(list(photos.values()))
    leaf_paths = [r.decision.leaf_path for r in results]
    assert sum(lp == " > ".join(path) for lp, path in zip(leaf_paths, photos, strict=True)) >= 3

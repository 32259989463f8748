"""Head/prototype fusion: one distribution over head and prototype-only categories, the
nearest-prototype gate, the fitted scale/bias, and the open-set threshold."""

from __future__ import annotations

import numpy as np
import torch

from catalog_ai.model.fusion import FusionParams, fit_fusion, fuse, open_set_threshold


def test_fuse_is_one_softmax_over_head_logits_and_prototype_logits():
    head = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    cos = torch.tensor([[0.5, 0.1]], dtype=torch.float64)
    params = FusionParams(scale=10.0, bias=-2.0, nearest_gate=False)
    probs = fuse(head, cos, params)
    logits = torch.tensor([[2.0, 0.0, -1.0, 3.0, -1.0]], dtype=torch.float64)
    assert torch.allclose(probs, logits.softmax(1))
    assert torch.allclose(probs.sum(1), torch.ones(1, dtype=torch.float64))


def test_without_prototype_only_categories_it_is_the_head_alone():
    head = torch.randn(4, 3, dtype=torch.float64)
    assert torch.allclose(
        fuse(head, torch.zeros(4, 0, dtype=torch.float64), FusionParams()), head.softmax(1)
    )


def test_nearest_gate_keeps_a_new_category_out_unless_it_is_nearer_than_every_trained_one():
    head = torch.zeros(2, 2, dtype=torch.float64)
    cos = torch.tensor([[0.8], [0.8]], dtype=torch.float64)
    trained_best = torch.tensor([0.9, 0.7], dtype=torch.float64)  # photo 0: a trained one is nearer
    params = FusionParams(scale=20.0, bias=0.0)
    probs = fuse(head, cos, params, trained_best)
    assert probs[0, 2] == 0.0 and torch.allclose(
        probs[0, :2], torch.tensor([0.5, 0.5], dtype=torch.float64)
    )
    assert probs[1, 2] > 0.99
    # Switched off, the same photo 0 goes to the new category.
    ungated = fuse(head, cos, FusionParams(scale=20.0, bias=0.0, nearest_gate=False), trained_best)
    assert ungated[0, 2] > 0.99


def test_gate_setting_survives_the_bundle_round_trip_and_old_bundles_get_it():
    assert FusionParams.from_dict(FusionParams(nearest_gate=False).to_dict()).nearest_gate is False
    assert FusionParams.from_dict({"scale": 5.0, "bias": 1.0}).nearest_gate is True


def _clusters(rng, n_classes: int, per_class: int, dim: int = 16, spread: float = 0.35):
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per_class, 0) + spread * rng.normal(
        size=(n_classes * per_class, dim)
    ) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.repeat(np.arange(n_classes), per_class)


def test_fit_fusion_lets_prototypes_win_their_own_photos_and_leaves_the_others_to_the_head():
    rng = np.random.default_rng(0)
    train_x, train_y = _clusters(rng, 6, 20)
    held_x, held_y = _clusters(np.random.default_rng(0), 6, 20)  # the same centres
    held_x = held_x + 0.05 * rng.normal(size=held_x.shape)
    held_x /= np.linalg.norm(held_x, axis=1, keepdims=True)
    # A decent head: logits from the true centres, some noise.
    centres = np.stack([train_x[train_y == c].mean(0) for c in range(6)])
    logits = torch.from_numpy(8 * held_x @ centres.T + rng.normal(0, 0.5, (len(held_x), 6)))
    params = fit_fusion(
        logits, held_x, held_y, {c: train_x[train_y == c] for c in range(6)}, source="test"
    )
    assert params.scale > 0 and "120 photos" in params.fitted_on

    # Category 0 becomes prototype-only: its photos should go to the prototype,
    # the photos of the other categories should stay with the head's answer.
    proto = train_x[train_y == 0][:5].mean(0)
    proto /= np.linalg.norm(proto)
    head = logits[:, 1:]
    probs = fuse(head, torch.from_numpy(held_x @ proto)[:, None], params)
    pred = probs.argmax(1).numpy()
    own = held_y == 0
    assert (pred[own] == 5).mean() > 0.9
    assert (pred[~own] == held_y[~own] - 1).mean() > 0.9


def test_fit_fusion_with_too_little_data_says_so():
    params = fit_fusion(
        torch.zeros(1, 3, dtype=torch.float64),
        np.zeros((1, 4)),
        np.array([0]),
        {0: np.ones((1, 4))},
    )
    assert "too little data" in params.fitted_on


def test_open_set_threshold_is_the_false_alarm_quantile():
    best = np.linspace(0.0, 1.0, 101)
    assert abs(open_set_threshold(best, 0.02) - 0.02) < 1e-9
    assert (best < open_set_threshold(best, 0.10)).sum() == 10  # 0.00 … 0.09 are flagged
    assert open_set_threshold(np.array([])) == -1.0

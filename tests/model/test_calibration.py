"""Temperature scaling, ECE and precision thresholds, against known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

from catalog_ai.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    threshold_for_precision,
)


def _sample(n: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibrated logits and labels drawn from their own softmax: T = 1 is right for these."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_classes, generator=g, dtype=torch.float64) * 2.0
    labels = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)
    mask = torch.zeros(n, n_classes, dtype=torch.bool)
    mask[torch.arange(n), labels] = True
    return logits, mask


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_fit_temperature_recovers_a_known_temperature(t_true):
    logits, mask = _sample(6000, 6, seed=3)
    # Over-confident (t_true > 1) or under-confident (< 1) network: logits scaled by t_true.
    fitted = fit_temperature(logits * t_true, mask)
    assert fitted == pytest.approx(t_true, rel=0.08)


def test_fit_temperature_uses_inner_labels_too():
    # Labels at an inner node covering two leaves: the marginal likelihood still finds T.
    logits, mask = _sample(6000, 6, seed=5)
    merged = mask.clone()
    merged[:, 0] |= mask[:, 1]
    merged[:, 1] |= mask[:, 0]  # photos of leaf 0 or 1 labelled "0 or 1"
    assert fit_temperature(logits * 2.0, merged) == pytest.approx(2.0, rel=0.1)


def test_fit_temperature_with_nothing_to_fit_on_is_one():
    logits, mask = _sample(1, 4, seed=0)
    assert fit_temperature(logits * 5, mask) == 1.0


def test_ece_hand_case():
    # Bin (0.8, 0.9]: 4 photos, confidence 0.85, accuracy 3/4 -> gap 0.10
    # Bin (0.2, 0.3]: 1 photo, confidence 0.25, accuracy 0 -> gap 0.25
    # ECE = (4 * 0.10 + 1 * 0.25) / 5 = 0.13
    conf = np.array([0.85, 0.85, 0.85, 0.85, 0.25])
    correct = np.array([1, 1, 1, 0, 0])
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.13)
    bins = reliability_bins(conf, correct, n_bins=10)
    assert [(b["count"], round(b["accuracy"], 6)) for b in bins] == [(1, 0.0), (4, 0.75)]
    assert bins[1]["low"] == pytest.approx(0.8) and bins[1]["high"] == pytest.approx(0.9)


def test_ece_of_perfect_calibration_is_zero_and_empty_is_nan():
    conf = np.array([0.5, 0.5, 1.0, 1.0])
    correct = np.array([1, 0, 1, 1])
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.0)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


@pytest.mark.parametrize(
    ("precision", "expected"),
    [
        (1.0, 0.8),  # top two are right
        (0.8, 0.8),  # top three: 2/3 < 0.8
        (0.75, 0.6),  # all four: 3/4
        (0.6, 0.6),  # the lowest threshold that meets the target wins (most coverage)
    ],
)
def test_threshold_for_precision_hand_cases(precision, expected):
    conf = np.array([0.7, 0.9, 0.6, 0.8])  # unsorted on purpose
    correct = np.array([False, True, True, True])
    assert threshold_for_precision(conf, correct, precision) == pytest.approx(expected)


def test_threshold_for_precision_accepts_or_refuses_ties_together():
    # Cutting between the two 0.7s would give precision 2/2, but a threshold accepts both:
    # 2/3 < 0.9, so the threshold stays at 0.9.
    conf = np.array([0.9, 0.7, 0.7, 0.5])
    correct = np.array([True, True, False, False])
    assert threshold_for_precision(conf, correct, 0.9) == pytest.approx(0.9)
    assert threshold_for_precision(conf, correct, 0.66) == pytest.approx(0.7)


def test_threshold_for_unreachable_precision_accepts_nothing():
    conf = np.array([0.9, 0.8, 0.3])
    assert threshold_for_precision(conf, np.array([False, True, True]), 0.99) > 1.0
    assert threshold_for_precision(np.array([]), np.array([]), 0.5) > 1.0


def test_threshold_when_all_correct_is_the_lowest_confidence():
    conf = np.array([0.91, 0.42, 0.77])
    assert threshold_for_precision(conf, np.ones(3, dtype=bool), 0.99) == pytest.approx(0.42)


def test_reliability_bins_put_edge_values_in_the_bin_below_as_before():
    # The hand-written binning these bins replaced (np.digitize, right=True), written out here:
    # scikit-learn's calibration_curve must reproduce it, confidences on the edges included.
    rng = np.random.default_rng(3)
    conf = np.concatenate([rng.uniform(0, 1, 500), np.linspace(0, 1, 11), [1.0, 0.0, 0.5]])
    correct = rng.uniform(0, 1, conf.size) < conf
    edges = np.linspace(0.0, 1.0, 11)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, 9)
    expected = [
        (
            float(edges[b]),
            int((which == b).sum()),
            conf[which == b].mean(),
            correct[which == b].mean(),
        )
        for b in range(10)
        if (which == b).any()
    ]
    got = reliability_bins(conf, correct, n_bins=10)
    assert [(b["low"], b["count"]) for b in got] == [(low, n) for low, n, _, _ in expected]
    assert [b["confidence"] for b in got] == pytest.approx([c for _, _, c, _ in expected])
    assert [b["accuracy"] for b in got] == pytest.approx([a for _, _, _, a in expected])
    assert reliability_bins(np.array([]), np.array([], dtype=bool)) == []

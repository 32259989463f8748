"""``calibrate --from-reviews`` weights: the weighted threshold and temperature, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catalog_ai.inference.recalibrate import weighted_temperature, weighted_threshold
from catalog_ai.model.calibration import fit_temperature, threshold_for_precision

CONF = np.array([0.9, 0.8, 0.7, 0.6])
RIGHT = np.array([True, True, False, True])


def test_equal_weights_are_the_plain_threshold() -> None:
    # cumulative precision from the top: 1/1, 2/2, 2/3, 3/4 -> 0.75 is first reached at 0.6
    assert weighted_threshold(CONF, RIGHT, np.ones(4), 0.75) == 0.6
    assert threshold_for_precision(CONF, RIGHT, 0.75) == 0.6


def test_a_heavy_wrong_photo_raises_the_threshold() -> None:
    # the wrong photo at 0.7 stands for 3: 2/5 at 0.7, 3/6 at 0.6 -> only 0.8 reaches 0.75
    assert weighted_threshold(CONF, RIGHT, np.array([1, 1, 3, 1.0]), 0.75) == 0.8


def test_a_heavy_right_photo_lowers_it() -> None:
    # the right photo at 0.6 stands for 5: (1 + 1 + 5) / 8 = 0.875 at 0.6
    w = np.array([1, 1, 1, 5.0])
    assert weighted_threshold(CONF, RIGHT, w, 0.875) == 0.6
    assert weighted_threshold(CONF, RIGHT, w, 0.9) == 0.8
    # nothing reaches 1.0 below the top two: the top two are all right -> 0.8
    assert weighted_threshold(CONF, RIGHT, w, 1.0) == 0.8
    assert weighted_threshold(np.array([0.5]), np.array([False]), np.ones(1), 0.9) == 1.01


def _logits(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(40, 3, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 3, (40,), generator=g)
    mask = torch.nn.functional.one_hot(labels, 3).bool()
    return logits, mask


def test_equal_weights_are_the_plain_temperature() -> None:
    logits, mask = _logits()
    assert weighted_temperature(logits, mask, torch.ones(40)) == pytest.approx(
        fit_temperature(logits, mask), rel=1e-4
    )


def test_a_weight_of_two_is_the_photo_twice() -> None:
    logits, mask = _logits(1)
    w = torch.ones(40)
    w[:10] = 2.0
    twice = fit_temperature(torch.cat([logits, logits[:10]]), torch.cat([mask, mask[:10]]))
    assert weighted_temperature(logits, mask, w) == pytest.approx(twice, rel=1e-4)

"""The target precisions are one constant: what calibration computes thresholds for is what the
evaluation report lists and what training accepts."""

from __future__ import annotations

import catalog_ai.evaluation as evaluation
import catalog_ai.training.fit as fit
from catalog_ai.model import calibration


def test_one_tuple_of_precision_targets_everywhere():
    assert evaluation.PRECISION_TARGETS is calibration.PRECISION_TARGETS
    assert fit.PRECISION_TARGETS is calibration.PRECISION_TARGETS
    assert list(calibration.PRECISION_TARGETS) == sorted(calibration.PRECISION_TARGETS, key=float)

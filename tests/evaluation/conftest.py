"""Fixtures of the evaluation tests: the tree and photos of :mod:`.cases`, evaluated once."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_ai.evaluation import EvaluationResult, evaluate_arrays
from catalog_ai.taxonomy import Taxonomy

from .cases import PATHS, PHOTOS, THRESHOLDS, node_probs_of


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    tax = Taxonomy.from_paths(PATHS)
    assert [n.text for n in tax] == [
        "A",
        "A > A1",
        "A > A2",
        "A > A2 > A2x",
        "A > A2 > A2y",
        "B",
        "C",
        "C > C1",
        "C > C2",
    ]
    return tax


@pytest.fixture(scope="module")
def arrays(taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    probs = node_probs_of(taxonomy, [p for _, p in PHOTOS])
    truth = np.array([taxonomy.row(label) for label, _ in PHOTOS])
    return probs, truth


@pytest.fixture(scope="module")
def result(taxonomy: Taxonomy, arrays) -> EvaluationResult:
    probs, truth = arrays
    return evaluate_arrays(
        probs, truth, taxonomy, thresholds=THRESHOLDS, model_version="v-test", top_k=2
    )

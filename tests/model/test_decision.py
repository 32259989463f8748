"""Decisions: back-off, abstention, variable depth, top-k, auto-accept, serialisation.

The tree (leaves marked *):

    Fruit                   Veg            Dairy*   (a depth-1 leaf)
    ├─ Apple                └─ Carrot*
    │  ├─ Green*
    │  └─ Red*
    └─ Banana*              (a depth-2 leaf beside depth-3 leaves)

Node probabilities are the hand sums of the leaf probabilities each test gives.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DECISION_KEYS

from catalog_ai.model.decision import Candidate, Decider, Decision, Thresholds
from catalog_ai.taxonomy import Taxonomy

TREE = Taxonomy.from_paths(
    ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot", "Dairy"]
)
THRESHOLDS = Thresholds(decision=0.5, auto_accept=0.9, auto_accept_by_precision={"0.98": 0.9})


def node_probs(**leaves: float) -> np.ndarray:
    """Leaf probabilities by short name (Green, Red, Banana, Carrot, Dairy) -> node row order."""
    names = {
        "Green": "Fruit > Apple > Green",
        "Red": "Fruit > Apple > Red",
        "Banana": "Fruit > Banana",
        "Carrot": "Veg > Carrot",
        "Dairy": "Dairy",
    }
    leaf = {names[k]: v for k, v in leaves.items()}
    return np.array(
        [
            sum(p for text, p in leaf.items() if text == n.text or text.startswith(n.text + " > "))
            for n in TREE
        ]
    )


@pytest.fixture
def decider() -> Decider:
    return Decider(TREE, THRESHOLDS, model_version="m-1", top_k=5)


def test_backs_off_to_a_confident_ancestor_instead_of_a_wrong_leaf(decider):
    # Fruit .85, Apple .65, Green .35, Red .30: Apple is confident, neither apple leaf is.
    d = decider.decide(node_probs(Green=0.35, Red=0.30, Banana=0.2, Carrot=0.1, Dairy=0.05))
    assert d.path == "Fruit > Apple" and d.depth == 2
    assert d.confidence == pytest.approx(0.65)
    assert d.leaf_path == "Fruit > Apple > Green" and d.leaf_confidence == pytest.approx(0.35)
    assert d.backed_off and d.source == "head" and d.model_version == "m-1"
    assert not d.auto_accept


def test_abstains_when_no_top_level_category_is_confident(decider):
    # Fruit .40, Veg .35, Dairy .25: nothing reaches 0.5 even at depth 1.
    d = decider.decide(node_probs(Green=0.1, Red=0.1, Banana=0.2, Carrot=0.35, Dairy=0.25))
    assert d.source == "abstain" and d.path == "" and d.depth == 0
    assert d.confidence == pytest.approx(0.40)  # the best top level's probability
    assert d.leaf_path == "Veg > Carrot" and not d.auto_accept
    assert d.backed_off


def test_variable_depth_leaves(decider):
    banana = decider.decide(node_probs(Green=0.05, Red=0.05, Banana=0.8, Carrot=0.05, Dairy=0.05))
    assert (banana.path, banana.depth, banana.backed_off) == ("Fruit > Banana", 2, False)
    assert banana.confidence == pytest.approx(0.8)
    dairy = decider.decide(node_probs(Green=0.02, Red=0.02, Banana=0.02, Carrot=0.02, Dairy=0.92))
    assert (dairy.path, dairy.depth, dairy.auto_accept) == ("Dairy", 1, True)
    green = decider.decide(node_probs(Green=0.6, Red=0.1, Banana=0.1, Carrot=0.1, Dairy=0.1))
    assert (green.path, green.depth) == ("Fruit > Apple > Green", 3)


def test_top_k_per_depth_is_sorted_and_cut_at_k():
    decider = Decider(TREE, THRESHOLDS, model_version="m-1", top_k=2)
    d = decider.decide(node_probs(Green=0.1, Red=0.25, Banana=0.3, Carrot=0.2, Dairy=0.15))
    levels = [[(c.path, round(c.probability, 6)) for c in level] for level in d.levels]
    assert levels == [
        [("Fruit", 0.65), ("Veg", 0.2)],  # Dairy (0.15) is cut at k=2
        [("Fruit > Apple", 0.35), ("Fruit > Banana", 0.3)],  # Carrot (0.2) is cut
        [("Fruit > Apple > Red", 0.25), ("Fruit > Apple > Green", 0.1)],
    ]
    for level in decider.decide(
        node_probs(Green=0.3, Red=0.05, Banana=0.05, Carrot=0.5, Dairy=0.1)
    ).levels:
        probs = [c.probability for c in level]
        assert probs == sorted(probs, reverse=True)


@pytest.mark.parametrize(
    ("leaves", "open_set", "auto"),
    [
        (
            dict(Green=0.02, Red=0.02, Banana=0.9, Carrot=0.03, Dairy=0.03),
            False,
            True,
        ),  # exactly at 0.9
        (
            dict(Green=0.02, Red=0.02, Banana=0.89, Carrot=0.04, Dairy=0.03),
            False,
            False,
        ),  # just below
        (
            dict(Green=0.48, Red=0.47, Banana=0.01, Carrot=0.02, Dairy=0.02),
            False,
            False,
        ),  # inner at .95
        (dict(Green=0.01, Red=0.01, Banana=0.96, Carrot=0.01, Dairy=0.01), True, False),  # open set
    ],
)
def test_auto_accept_only_for_confident_leaf_decisions_outside_open_set(
    decider, leaves, open_set, auto
):
    d = decider.decide(node_probs(**leaves), open_set=open_set)
    assert d.auto_accept is auto
    assert d.open_set is open_set
    if leaves["Green"] == 0.48:
        assert d.path == "Fruit > Apple" and d.confidence == pytest.approx(0.95)


def test_source_is_passed_through_unless_abstaining(decider):
    d = decider.decide(
        node_probs(Green=0.02, Red=0.02, Banana=0.92, Carrot=0.02, Dairy=0.02), source="prototype"
    )
    assert d.source == "prototype"


def test_decision_round_trips_through_json(decider):
    d = decider.decide(
        node_probs(Green=0.35, Red=0.30, Banana=0.2, Carrot=0.1, Dairy=0.05), open_set=True
    )
    data = json.loads(json.dumps(d.to_dict()))
    assert set(data) == DECISION_KEYS
    back = Decision.from_dict(data)
    assert back.to_dict() == d.to_dict()
    assert (back.path, back.depth, back.leaf_path, back.source, back.model_version) == (
        d.path,
        d.depth,
        d.leaf_path,
        d.source,
        d.model_version,
    )
    assert back.confidence == pytest.approx(d.confidence, abs=1e-6)
    assert [[c.path for c in level] for level in back.levels] == [
        [c.path for c in level] for level in d.levels
    ]
    assert isinstance(back.levels[0][0], Candidate)
    assert back.backed_off and back.open_set


def test_thresholds_round_trip_and_defaults():
    assert Thresholds.from_dict(THRESHOLDS.to_dict()) == THRESHOLDS
    assert Thresholds.from_dict(json.loads(json.dumps(THRESHOLDS.to_dict()))) == THRESHOLDS
    default = Thresholds.from_dict({})
    assert default.decision == 0.5 and default.auto_accept > 1.0  # never auto-accept unless told

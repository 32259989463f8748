"""Which catalog categories get a head output and which are left to few-shot prototypes."""

from __future__ import annotations

from pathlib import Path

from catalog_ai.training.data import Example
from catalog_ai.training.sources import split_rare_categories


def _examples(counts: dict[str, int]) -> list[Example]:
    return [Example(Path(f"{label}-{i}.png"), label) for label, n in counts.items() for i in range(n)]


def _labels(examples) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in examples:
        out[e.label] = out.get(e.label, 0) + 1
    return out


def test_rare_leaves_go_to_prototypes_frequent_ones_and_inner_labels_stay():
    head, rare = split_rare_categories(_examples({
        "Fruit > Apple": 2,  # an inner label (photos labelled only down to Apple): trains the head
        "Fruit > Apple > Green": 9,
        "Fruit > Apple > Pink": 3,  # rare leaf
        "Fruit > Banana": 5,  # exactly the minimum: stays
        "Veg > Kale": 1,  # rare leaf under a branch with no other label
    }), 5)
    assert _labels(head) == {"Fruit > Apple": 2, "Fruit > Apple > Green": 9, "Fruit > Banana": 5}
    assert _labels(rare) == {"Fruit > Apple > Pink": 3, "Veg > Kale": 1}


def test_a_rare_child_stays_when_its_parent_would_become_a_head_leaf():
    # Moving "Tea > Green" out would make "Tea" (it has photos of its own) a head leaf with a
    # prototype category below it: the tree could not hold both, so it stays in the head.
    head, rare = split_rare_categories(_examples({"Tea": 8, "Tea > Green": 2, "Coffee": 8}), 5)
    assert _labels(head) == {"Tea": 8, "Tea > Green": 2, "Coffee": 8}
    assert rare == []


def test_min_photos_of_one_keeps_everything_in_the_head():
    examples = _examples({"A > B": 1, "A > C": 7})
    head, rare = split_rare_categories(examples, 1)
    assert head == examples and rare == []

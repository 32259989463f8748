"""Browsing the catalog by branch: per-branch figures of the tree, the products of a branch."""

from __future__ import annotations

import pytest

from catalog_ai.db import unit_of_work
from catalog_ai.services.browse import (
    branch_stats,
    category_paths,
    count_products_in_branch,
    products_in_branch,
)


def test_branch_stats_roll_up_the_tree(reviewed_catalog):
    with unit_of_work() as s:
        stats = {b.path: b for b in branch_stats(s)}
    assert list(stats)[:4] == [
        "Fruit",
        "Fruit > Apple",
        "Fruit > Apple > Green",
        "Fruit > Apple > Red",
    ]
    fruit, apple, green, red, banana, veg = (
        stats[p]
        for p in [
            "Fruit",
            "Fruit > Apple",
            "Fruit > Apple > Green",
            "Fruit > Apple > Red",
            "Fruit > Banana",
            "Veg",
        ]
    )
    # Products: 3 imports + ok-green in Green; auto-red in Red; too-deep at Apple; wrong-red moved to Banana.
    assert (green.products, red.products, apple.products, banana.products, fruit.products) == (
        4,
        1,
        6,
        1,
        7,
    )
    assert veg.products == 1
    # Of those, the ones a person labelled (imports, reviews): all but auto-red.
    assert (green.labelled_by_people, red.labelled_by_people, apple.labelled_by_people) == (4, 0, 5)
    assert (banana.labelled_by_people, fruit.labelled_by_people, veg.labelled_by_people) == (
        1,
        6,
        1,
    )
    # Suggestions in Fruit: auto-red, ok-green, wrong-red, too-deep, junk (all decided).
    assert (fruit.classified, fruit.decided, fruit.accepted_as_suggested) == (5, 5, 3)
    assert fruit.acceptance_rate == pytest.approx(3 / 5)
    # Reviewed in Fruit: ok-green (accept), wrong-red (correct), too-deep (partial), junk (reject).
    assert (fruit.reviewed, fruit.reviewed_correct) == (4, 1)
    assert fruit.accuracy == pytest.approx(0.25)
    assert (
        red.classified,
        red.decided,
        red.accepted_as_suggested,
        red.reviewed,
        red.reviewed_correct,
    ) == (2, 2, 1, 1, 0)
    assert (green.reviewed, green.reviewed_correct) == (2, 1)
    # Veg: one suggestion still waiting; nothing decided, so no rate.
    assert (veg.classified, veg.decided) == (1, 0)
    assert veg.acceptance_rate is None and veg.accuracy is None


def test_products_in_branch_and_counts(reviewed_catalog):
    with unit_of_work() as s:
        assert count_products_in_branch(s, "Fruit > Apple") == 6
        assert count_products_in_branch(s, "Fruit > Apple", include_subcategories=False) == 1
        assert count_products_in_branch(s, None) == 8
        tiles = products_in_branch(s, "Fruit > Apple > Green", limit=2)
    assert [t.title for t in tiles] == ["ok-green", "imp-green-2"]  # newest first
    assert tiles[0].image_path == "ab/ok-green.png"
    assert tiles[0].category_path == "Fruit > Apple > Green"


def test_category_paths_are_in_tree_order(reviewed_catalog):
    with unit_of_work() as s:
        assert category_paths(s)[:3] == ["Fruit", "Fruit > Apple", "Fruit > Apple > Green"]

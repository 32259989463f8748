"""The Taxonomy model (catalog_ai.taxonomy.tree): lookup, construction, extension, snapshots."""

from __future__ import annotations

import json

import pytest

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy import (
    Node,
    Taxonomy,
    load_taxonomy,
)
from taxonomy.support import FIXTURES, check_index_maps


def test_lookup_and_membership() -> None:
    tax = Taxonomy.from_paths(["Fruit > Apple > Granny-Smith", "Fruit > Avocado"])
    assert "Fruit > Apple" in tax
    assert ("Fruit", "Apple", "Granny-Smith") in tax
    assert " Fruit>Avocado " in tax  # path text is normalised
    assert "Fruit > Banana" not in tax and "A >  > B" not in tax and 3 not in tax
    assert tax.find("Fruit > Banana") is None and tax.find("A > ") is None
    assert tax.find(["Fruit", "Avocado"]).id == "Fruit > Avocado"
    with pytest.raises(TaxonomyError, match=r"did you mean 'Fruit > Apple' or"):
        tax.by_path("Fruit > Aple")
    with pytest.raises(TaxonomyError, match=r"unknown category id 'Fruit > Avocad'.*did you mean"):
        tax.node("Fruit > Avocad")
    with pytest.raises(TaxonomyError, match="no similar category"):
        tax.by_path("Zzzz")
    with pytest.raises(TaxonomyError):
        tax.children("nope")


def test_from_paths_ids_and_errors() -> None:
    tax = Taxonomy.from_paths([("Fruit", "Apple"), "Fruit"], ids=["101", "100"])
    assert [(n.id, n.parent_id) for n in tax] == [("100", None), ("101", "100")]
    with pytest.raises(TaxonomyError, match="2 ids for 1 paths"):
        Taxonomy.from_paths(["A"], ids=["1", "2"])
    with pytest.raises(TaxonomyError, match="duplicate id '1'"):
        Taxonomy.from_paths(["A", "B"], ids=["1", "1"])
    # An implied ancestor's default id (its path text) must not be taken by another category.
    with pytest.raises(TaxonomyError, match="default id 'A' is already the id of 'B'"):
        Taxonomy.from_paths(["B", "A > C"], ids=["A", "ac"])
    assert len(Taxonomy.from_paths([])) == 0


def test_hand_made_node_lists_are_checked() -> None:
    root = Node("a", "A", ("A",), None, 1)
    child = Node("b", "B", ("A", "B"), "a", 2)
    assert list(Taxonomy([root, child])) == [root, child]
    with pytest.raises(TaxonomyError, match="does not follow its parent"):
        Taxonomy([child, root])  # child before parent
    with pytest.raises(TaxonomyError, match="does not follow its parent"):
        Taxonomy([root, Node("b", "B", ("X", "B"), "a", 2)])  # path disagrees with parent
    with pytest.raises(TaxonomyError, match="does not follow its parent"):
        Taxonomy([root, Node("b", "C", ("A", "B"), "a", 2)])  # name is not the last path part
    with pytest.raises(TaxonomyError, match="listed twice"):
        Taxonomy([root, root])


def test_extended() -> None:
    base = Taxonomy.from_paths(["Fruit > Apple", "Fruit > Avocado"])
    bigger = base.extended(
        ["Fruit > Apple > Granny-Smith", "Vegetables > Pepper", "Fruit > Avocado"]
    )  # the last one exists: no-op
    assert list(bigger)[: len(base)] == list(base)  # existing rows keep their index
    assert [n.text for n in bigger][len(base) :] == [
        "Fruit > Apple > Granny-Smith",
        "Vegetables",
        "Vegetables > Pepper",
    ]
    assert not bigger.is_leaf("Fruit > Apple") and base.is_leaf("Fruit > Apple")  # base unchanged
    check_index_maps(bigger)
    assert base.extended(["Fruit > Apple", ("Fruit",)]) == base
    with_ids = base.extended(["Drinks > Juice"], ids=["900"])
    assert with_ids.node("900").parent_id == "Drinks"
    with pytest.raises(TaxonomyError, match=r"already has id 'Fruit > Apple'.*id '7'"):
        base.extended(["Fruit > Apple"], ids=["7"])
    with pytest.raises(TaxonomyError, match=r"duplicate id 'Fruit'.*already in the taxonomy"):
        base.extended(["Drinks"], ids=["Fruit"])
    with pytest.raises(TaxonomyError, match="blank level"):
        base.extended(["Fruit >  > X"])


def test_dict_round_trip_and_fingerprint() -> None:
    tax = load_taxonomy(FIXTURES / "google_excerpt.txt")
    data = json.loads(json.dumps(tax.to_dict()))
    assert data["nodes"][1] == {"id": "3237", "path": ["Animals & Pet Supplies", "Live Animals"]}
    back = Taxonomy.from_dict(data)
    assert back == tax and list(back) == list(tax)
    assert back.fingerprint() == tax.fingerprint()
    assert back.leaf_ancestor_rows == tax.leaf_ancestor_rows

    a = Taxonomy.from_paths(["Fruit > Apple", "Vegetables", "Fruit > Avocado"])
    b = Taxonomy.from_paths(["Vegetables", "Fruit > Avocado", "Fruit", "Fruit > Apple"])
    assert a != b  # rows differ ...
    assert a.fingerprint() == b.fingerprint()  # ... but it is the same tree
    assert len(a.fingerprint()) == 64
    renamed = Taxonomy.from_paths(
        ["Fruit > Apple", "Vegetables", "Fruit > Avocado", "Fruit"], ids=["1", "2", "3", "4"]
    )
    assert renamed.fingerprint() != a.fingerprint()  # ids are part of the identity
    assert a.extended(["Fruit > Kiwi"]).fingerprint() != a.fingerprint()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"nodes": []}, "not a taxonomy snapshot"),
        ({"version": 1, "nodes": [{"path": ["A"]}]}, "non-empty text 'id'"),
        ({"version": 1, "nodes": [{"id": "1", "path": []}]}, "non-empty tuple of names"),
        ({"version": 1, "nodes": [{"id": "2", "path": ["A", "B"]}]}, "unknown parent 'A'"),
    ],
)
def test_from_dict_rejects_bad_snapshots(data: dict, match: str) -> None:
    with pytest.raises(TaxonomyError, match=match):
        Taxonomy.from_dict(data)

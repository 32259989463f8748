"""The Shopify Standard Product Taxonomy (catalog_ai.taxonomy.shopify): text and JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from catalog_ai.taxonomy import load_taxonomy
from catalog_ai.taxonomy.shopify import (
    SHOPIFY_GID_PREFIX,
    is_shopify_gid,
    parse_shopify_json,
    parse_shopify_text,
)
from taxonomy.support import check_index_maps, error_at, write_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TEXT = FIXTURES / "shopify_taxonomy_excerpt.txt"
JSON = FIXTURES / "shopify_taxonomy_excerpt.json"
G = SHOPIFY_GID_PREFIX
HEADER = "# Shopify Product Taxonomy - Categories: 2024-07\n# Format: {GID} : {path}\n\n"


def test_the_excerpt_is_detected_and_keeps_every_gid() -> None:
    tree = load_taxonomy(TEXT)  # format "auto"
    lines = [
        line
        for line in TEXT.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert len(tree) == len(lines) > 200
    for line, node in zip(lines, tree, strict=True):  # parents come first in the file already
        gid, path = (part.strip() for part in line.split(" : ", 1))
        assert node.id == gid and node.text == path
    activewear = tree.node(G + "aa-1-1")
    assert activewear.path == ("Apparel & Accessories", "Clothing", "Activewear")
    assert activewear.parent_id == G + "aa-1"
    assert tree.node(G + "aa").parent_id is None
    assert tree.max_depth == 6
    deep = tree.node(G + "aa-1-2-4-17-16")
    assert deep.name == "Wrap Coats" and deep.depth == 6
    assert all(is_shopify_gid(n.id) for n in tree)
    check_index_maps(tree)


def test_text_and_json_give_the_same_tree() -> None:
    from_json = load_taxonomy(JSON)  # format "auto": a JSON object
    from_text = load_taxonomy(TEXT)
    assert len(from_json) > 40
    same = [from_text.node(n.id) for n in from_json]  # every JSON category is in the text...
    assert same == list(from_json)  # ...with the same path, parent and depth, in the same order
    data = json.loads(JSON.read_text(encoding="utf-8"))
    assert [v["prefix"] for v in data["verticals"]] == ["ap", "aa"]
    assert sum(len(v["categories"]) for v in data["verticals"]) == len(from_json)


def test_a_nested_children_export_is_read_once() -> None:
    root = {"id": G + "aa", "level": 0, "full_name": "Apparel & Accessories", "parent_id": None}
    child = {
        "id": G + "aa-1",
        "level": 1,
        "full_name": "Apparel & Accessories > Clothing",
        "parent_id": G + "aa",
    }
    nested = {**root, "children": [child]}
    text = json.dumps({"version": "x", "verticals": [{"categories": [nested, child]}]})
    tree = parse_shopify_json(text)
    assert [n.id for n in tree] == [G + "aa", G + "aa-1"]


def test_depth_seven_and_padding_and_comments(tmp_path: Path) -> None:
    names = ["Vehicles & Parts", "Vehicle Parts", "Motor Parts", "Engine", "Pumps", "Fuel", "Caps"]
    lines = [HEADER]
    for depth in range(1, 8):
        gid = G + "vp" + "".join(f"-{i}" for i in range(1, depth))
        lines.append(f"{gid.ljust(48)} : {' > '.join(names[:depth])}\n")
        lines.append("\n# a comment between categories\n")
    tree = load_taxonomy(write_file(tmp_path, "categories.txt", "".join(lines)))
    assert tree.max_depth == 7 and len(tree) == 7
    assert tree.node(G + "vp-1-2-3-4-5-6").path == tuple(names)


def test_a_missing_parent_is_an_error_not_a_made_up_category(tmp_path: Path) -> None:
    text = HEADER + f"{G}aa : Apparel & Accessories\n{G}aa-1-1 : Apparel & Accessories > X > Y\n"
    path = write_file(tmp_path, "categories.txt", text)
    error_at(path, 5, r"unknown parent 'Apparel & Accessories > X'.*define the parent")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("aa-1 : Apparel & Accessories > Clothing", r"expected 'GID : Parent > Category' like"),
        (
            f"{G}aa-1 Apparel & Accessories > Clothing",
            r"no ' : ' between the GID and the",
        ),
        (f"{G}aa-1 : Apparel & Accessories > ", r"blank level"),
        ("gid://shopify/TaxonomyAttribute/1 : Color", r"TaxonomyAttribute is not a category"),
        (f"{G}aa-1 : Apparel & Accessories > Cloth\x1bing", r"control character U\+001B"),
        (f"{G}aa : Apparel & Accessories", r"duplicate path 'Apparel & Accessories'"),
        (f"{G}aa : Apparel & Accessories > Clothing", r"duplicate id '.*aa'"),
    ],
)
def test_a_bad_line_is_one_line_naming_the_line_and_the_fix(
    tmp_path: Path, line: str, match: str
) -> None:
    text = HEADER + f"{G}aa : Apparel & Accessories\n{line}\n"
    path = write_file(tmp_path, "categories.txt", text)
    err = error_at(path, 5, match, load_taxonomy, "shopify")
    assert "\n" not in str(err) and ";" in str(err)  # one line, with what to do


def test_an_id_too_long_for_the_catalog_is_refused(tmp_path: Path) -> None:
    text = HEADER + f"{G}{'a' * 40} : Apparel & Accessories\n"
    path = write_file(tmp_path, "categories.txt", text)
    error_at(path, 4, r"at most 64")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"version": "x"}, r"'verticals' list"),
        ({"verticals": [{"name": "A"}]}, r"verticals\[0\] has no 'categories'"),
        ({"verticals": [{"categories": [{"id": "aa", "full_name": "A"}]}]}, r"needs a 'gid"),
        (
            {"verticals": [{"categories": [{"id": G + "aa", "full_name": "A", "level": 2}]}]},
            r"level 2 but its full_name 'A' has 1 levels",
        ),
        (
            {
                "verticals": [
                    {
                        "categories": [
                            {"id": G + "aa", "full_name": "A"},
                            {"id": G + "bb", "full_name": "B"},
                            {"id": G + "aa-1", "full_name": "A > C", "parent_id": G + "bb"},
                        ]
                    }
                ]
            },
            r"categories\[2\]: .*parent_id '.*bb', but its full_name puts it under '.*aa'",
        ),
        (
            {"verticals": [{"categories": [{"id": G + "aa-1", "full_name": "A > B"}]}]},
            r"unknown parent 'A'",
        ),
    ],
)
def test_bad_json_is_one_line_naming_where(tmp_path: Path, data: dict, match: str) -> None:
    path = write_file(tmp_path, "categories.json", json.dumps(data))
    err = error_at(path, None, match)
    assert "\n" not in str(err)


def test_broken_json_names_its_line(tmp_path: Path) -> None:
    path = write_file(tmp_path, "categories.json", '{\n  "verticals": [\n    oops\n')
    error_at(path, 3, r"not valid JSON")


def test_other_formats_are_still_detected(tmp_path: Path) -> None:
    google = write_file(tmp_path, "google.txt", "1 - Animals\n2 - Animals > Pets\n")
    assert [n.id for n in load_taxonomy(google)] == ["1", "2"]
    paths = write_file(tmp_path, "paths.txt", "Fruit > Apple\n")
    assert [n.id for n in load_taxonomy(paths)] == ["Fruit", "Fruit > Apple"]


def test_parse_shopify_text_takes_lines() -> None:
    tree = parse_shopify_text(
        [f"{G}aa : Apparel & Accessories\n", f"{G}aa-1 : Apparel & Accessories > Clothing\n"]
    )
    assert [n.depth for n in tree] == [1, 2]


def test_a_shopify_size_tree_parses_the_same_from_text_and_json(tmp_path: Path) -> None:
    # Its speed is a benchmark's to measure (benchmarks/shopify_taxonomy.py, docs/BENCHMARKS.md),
    # not a timed test's: a bound here failed on a loaded host without anything being wrong.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        from shopify_taxonomy import generate, write_json, write_text
    finally:
        sys.path.pop(0)
    rows = generate(10_000)
    text, js = tmp_path / "categories.txt", tmp_path / "categories.json"
    write_text(text, rows)
    write_json(js, rows)
    tree = load_taxonomy(text)
    assert len(tree) == 10_000 and tree.max_depth == 7
    assert load_taxonomy(js).fingerprint() == tree.fingerprint()

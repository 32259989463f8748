"""The name and path contract (catalog_ai.taxonomy.names): parse_path, format_path, what a
name may hold, and the storage limits every parser enforces."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy import (
    Taxonomy,
    format_path,
    parse_csv,
    parse_google,
    parse_path,
    parse_path_lines,
)
from taxonomy.support import error_at, write_file


def test_parse_and_format_path() -> None:
    assert parse_path("  Fruit >Apple>  Granny-Smith ") == ("Fruit", "Apple", "Granny-Smith")
    assert parse_path("Arts & Entertainment > Hobbies, Creative Arts") == (
        "Arts & Entertainment",
        "Hobbies, Creative Arts",
    )
    assert format_path(("Fruit", "Apple")) == "Fruit > Apple"
    assert parse_path(format_path(("A & B", "C, D"))) == ("A & B", "C, D")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty category path"),
        ("   ", "empty category path"),
        ("A >  > C", "blank level"),
        ("A > ", "blank level"),
        ("> A", "blank level"),
        ("A >> B", "blank level"),
        ("A\nB", "line break"),
    ],
)
def test_parse_path_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(TaxonomyError, match=match):
        parse_path(text)


@pytest.mark.parametrize("path", [(), ("A", "B > C"), ("A", ""), (" A",), "A > B"])
def test_format_path_rejects_bad_paths(path) -> None:
    with pytest.raises(TaxonomyError):
        format_path(path)


@pytest.mark.parametrize(
    ("name", "text", "line", "match"),
    [
        (
            "esc.txt",
            "Fruit\nFruit > \x1b[31mRed\n",
            2,
            r"'\\x1b\[31mRed' contains the control "
            r"character U\+001B \(control character\)",
        ),
        ("bel.txt", "Fr\x07uit\n", 1, r"U\+0007"),
        ("nul.txt", "Fruit\n\nFruit > A\x00\n", 3, r"U\+0000"),
        ("rtl.txt", "Fruit > \u202eelppA\n", 1, r"U\+202E \(right-to-left override\)"),
        ("isolate.txt", "Fruit > \u2066x\n", 1, r"U\+2066"),
        ("zwsp.txt", "Fru\u200bit\n", 1, r"U\+200B \(zero width space\)"),
        ("c1.txt", "\x85Fruit\n", 1, r"U\+0085"),
        ("google.txt", "1 - Fruit\n2 -\x1cFruit > A\n", 2, r"line '2 -\\x1cFruit > A' .*U\+001C"),
        ("id.csv", "id,path\n1\x1b,Fruit\n", 2, r"category id '1\\x1b'.*U\+001B"),
        ("parent.csv", "id,parent_id,name\n1,,Fruit\n2,1,Ap\u202eple\n", 3, r"U\+202E"),
        (
            "long.txt",
            "F > " + "x" * 256 + "\n",
            1,
            r"'x{60}'\.\.\. \(256 characters\) is 256 characters long; .* at most 255",
        ),
        (
            "path.txt",
            " > ".join(["y" * 255] * 4) + " > z\n",
            1,
            r"is 1033 characters long; the "
            r"catalog stores at most 1024, shorten its names or use fewer levels",
        ),
        ("gid.txt", "1 - Fruit\n" + "7" * 65 + " - Fruit > A\n", 2, r"at most 64, use shorter"),
    ],
)
def test_storage_contract_errors(
    tmp_path: Path, name: str, text: str, line: int, match: str
) -> None:
    err = error_at(write_file(tmp_path, name, text), line, match)
    assert str(err).isprintable()  # quoted escaped: the terminal never sees the raw character


def test_names_at_the_limits_are_accepted() -> None:
    name, ident = "n" * 255, "7" * 64
    assert parse_path_lines(f"Fruit > {name}\n").leaf_ids == [f"Fruit > {name}"]
    assert parse_google(f"{ident} - Fruit\n").leaf_ids == [ident]
    path = " > ".join(["y" * 255] * 3 + ["z" * 250])
    assert len(path) == 1024 and len(parse_path(path)) == 4
    with pytest.raises(TaxonomyError, match="is 1025 characters long"):
        parse_path(path + "z")


def test_text_is_normalised_and_spaces_collapsed() -> None:
    # NFD (macOS) and NFC spellings, NBSP, tabs and repeated spaces give one category.
    tax = parse_path_lines("Cafe\u0301\u00a0 Bar\t>  Te\u0301  \n")
    assert [n.path for n in tax] == [("Caf\u00e9 Bar",), ("Caf\u00e9 Bar", "T\u00e9")]
    with pytest.raises(TaxonomyError, match="duplicate path 'Caf\u00e9 > T\u00e9'"):
        parse_path_lines("Cafe\u0301 > Te\u0301\nCaf\u00e9 >  T\u00e9\n")
    csv_tax = parse_csv("id,parent_id,name\n 1 ,, Cafe\u0301  Bar \n")
    assert [(n.id, n.name) for n in csv_tax] == [("1", "Caf\u00e9 Bar")]
    # Joiners stay: emoji sequences and Persian need them.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert parse_path(f"Toys > {family}") == ("Toys", family)
    assert tax.find("Cafe\u0301 Bar > Te\u0301") is not None  # lookups are normalised too


def test_names_given_one_by_one_must_be_canonically_spaced() -> None:
    # A tuple element or folder name is an identity: NFC is applied, spacing is not repaired.
    assert Taxonomy.from_paths([("Cafe\u0301",)]).leaf_ids == ["Caf\u00e9"]
    for bad, match in [
        (("A  B",), "repeated spaces"),
        (("A\tB",), "repeated spaces"),
        (("A\u00a0B",), "repeated spaces"),
        ((" A",), "leading or trailing"),
        (("A\x1b",), r"U\+001B"),
        (("x" * 256,), "at most 255"),
    ]:
        with pytest.raises(TaxonomyError, match=match):
            format_path(bad)
        with pytest.raises(TaxonomyError, match=match):
            Taxonomy.from_paths([bad])
    with pytest.raises(TaxonomyError, match="at most 64"):
        Taxonomy.from_paths(["A"], ids=["i" * 65])
    with pytest.raises(TaxonomyError, match=r"U\+0000"):
        Taxonomy.from_dict({"version": 1, "nodes": [{"id": "a\x00", "path": ["A"]}]})

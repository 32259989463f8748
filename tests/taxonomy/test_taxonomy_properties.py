"""Property-based tests of every taxonomy parser (issue 13): whatever the input, a parser either
returns a tree the catalog can store on every database, or raises a one-line, printable
:class:`TaxonomyError`; nothing else escapes.

The contract is re-stated here independently of catalog_ai.taxonomy's private helpers.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    Taxonomy,
    load_taxonomy,
    parse_csv,
    parse_google,
    parse_path,
    parse_path_lines,
    scan_folder,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces a hostile (or just careless) file is made of: separators, CSV syntax, control and
# invisible characters, odd spaces, decomposed accents, and names at and over the limits.
_PIECES = [
    ">",
    " > ",
    ">>",
    " ",
    "  ",
    "\t",
    "\r",
    "\n",
    "\r\n",
    ",",
    '"',
    "-",
    " - ",
    "#",
    "1",
    "42",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\x1c",
    "\x7f",
    "\x85",
    "\x9b",
    "\u00a0",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\u2028",
    "\ufeff",
    "\u3000",
    "e\u0301",
    "\u00e9",
    "\ud800",
    "\U0001f34e",
    "Fruit",
    "Apple",
    "id",
    "path",
    "parent_id",
    "name",
    "id,path\n",
    "id,parent_id,name\n",
    "a" * (MAX_NAME_CHARS - 1),
    "b" * (MAX_NAME_CHARS + 1),
    "9" * (MAX_ID_CHARS + 1),
]
hostile_text = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=8)), max_size=25).map(
    "".join
)

# Mostly well-formed values, so that the "parses to a valid tree" branch is exercised too.
likely_text = st.one_of(
    st.sampled_from(["Fruit", "Fruit > Apple", "Veg", " Fruit  >Pear\t", "1", "2", ""]),
    hostile_text,
)

_REFUSED = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _clean_chars(text: str) -> bool:
    return all(unicodedata.category(ch) not in _REFUSED or ch in "\u200c\u200d" for ch in text)


def assert_storable(tree: Taxonomy) -> None:
    """Every node meets the taxonomy contract (what both databases can store, shown safely)."""
    assert len(tree) > 0
    for node in tree:
        for name in node.path:
            assert name and name == " ".join(name.split()), repr(name)  # canonical spacing
            assert unicodedata.is_normalized("NFC", name), repr(name)
            assert _clean_chars(name) and ">" not in name, repr(name)
            assert len(name) <= MAX_NAME_CHARS
        assert len(node.text) <= MAX_PATH_CHARS
        if node.id != node.text:  # stored as external_id
            assert 0 < len(node.id) <= MAX_ID_CHARS and _clean_chars(node.id), repr(node.id)
        # Cleaning is idempotent: the stored text reads back as the same path.
        assert parse_path(node.text) == node.path


def _outcome(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except TaxonomyError as exc:
        message = str(exc)
        assert message.isprintable(), repr(message)  # one line, no raw control characters
        assert exc.reason
        return None
    return result


@FAST
@given(hostile_text)
def test_parse_path_returns_clean_names_or_a_taxonomy_error(text: str) -> None:
    path = _outcome(parse_path, text)
    if path is not None:
        assert_storable(Taxonomy.from_paths([path]))


@FAST
@given(hostile_text)
def test_path_lines(text: str) -> None:
    tree = _outcome(parse_path_lines, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(
    st.lists(st.tuples(st.one_of(st.integers(0, 10**70), hostile_text), likely_text), max_size=8)
)
def test_google_lines(rows: list[tuple[object, str]]) -> None:
    text = "\n".join(f"{ident} - {path}" for ident, path in rows)
    tree = _outcome(parse_google, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(hostile_text)
def test_google_arbitrary_text(text: str) -> None:
    tree = _outcome(parse_google, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(
    st.sampled_from(["id,path", "id,parent_id,name", "ID,Parent,Name,extra", ""]),
    st.lists(st.lists(likely_text, min_size=1, max_size=4), max_size=6),
    st.booleans(),
)
def test_csv(header: str, rows: list[list[str]], quote: bool) -> None:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    text = "\n".join([header, *(",".join(map(cell, row)) for row in rows)])
    tree = _outcome(parse_csv, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(
    st.lists(
        st.tuples(st.one_of(st.integers(0, 99).map(str), likely_text), likely_text),
        min_size=1,
        max_size=6,
    )
)
def test_csv_id_path_rows(rows: list[tuple[str, str]]) -> None:
    quoted = ('"{}"'.format(cell.replace('"', '""')) for row in rows for cell in row)
    cells = list(quoted)
    text = "id,path\n" + "\n".join(f"{a},{b}" for a, b in zip(cells[::2], cells[1::2], strict=True))
    tree = _outcome(parse_csv, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(hostile_text)
def test_csv_arbitrary_text(text: str) -> None:
    tree = _outcome(parse_csv, text)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(
    st.lists(st.lists(hostile_text, min_size=1, max_size=3).map(tuple), max_size=5),
    st.one_of(st.none(), st.lists(hostile_text, max_size=5)),
)
def test_from_paths_with_tuples_and_ids(paths: list[tuple[str, ...]], ids) -> None:
    tree = _outcome(Taxonomy.from_paths, paths, ids=ids)
    if tree is not None and len(tree):
        assert_storable(tree)


@FAST
@given(
    st.binary(max_size=300),
    st.sampled_from([".txt", ".csv"]),
    st.sampled_from(["auto", "paths", "google", "csv"]),
)
def test_load_taxonomy_from_arbitrary_bytes(data: bytes, suffix: str, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"tree{suffix}"
        file.write_bytes(data)
        tree = _outcome(load_taxonomy, file, format=fmt)
    if tree is not None:
        assert_storable(tree)


@FAST
@given(
    hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([".txt", ".csv"]),
)
def test_load_taxonomy_from_hostile_text(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"tree{suffix}"
        file.write_bytes(data)
        tree = _outcome(load_taxonomy, file)
    if tree is not None:
        assert_storable(tree)


@pytest.mark.skipif(os.name != "posix", reason="folder names with control characters")
@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(hostile_text, min_size=1, max_size=3), min_size=1, max_size=4))
def test_folder_tree(paths: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        for names in paths:
            # What a POSIX file system can hold at all: no '/', no NUL, at most 255 bytes.
            assume(
                all(
                    name not in ("", ".", "..")
                    and "/" not in name
                    and "\x00" not in name
                    and "\ud800" not in name
                    and len(name.encode()) <= 255
                    for name in names
                )
            )
            try:
                Path(root, *names).mkdir(parents=True, exist_ok=True)
            except OSError:
                assume(False)
        tree = _outcome(scan_folder, root)
    if tree is not None:
        assert_storable(tree.taxonomy)

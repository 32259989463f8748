"""The file formats (catalog_ai.taxonomy.formats): path lines, Google, CSV, load_taxonomy."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy import (
    Node,
    load_taxonomy,
    parse_csv,
    parse_google,
    parse_path_lines,
)
from taxonomy.support import FIXTURES, GOOGLE_HEADER, check_index_maps, error_at, write_file


def test_path_lines_file() -> None:
    source = FIXTURES / "store_paths.txt"
    tax = load_taxonomy(source)
    assert [n.text for n in tax] == [
        "Fruit",
        "Fruit > Apple",
        "Fruit > Apple > Granny-Smith",
        "Fruit > Apple > Pink-Lady",
        "Fruit > Avocado",
        "Vegetables",
        "Vegetables > Pepper",
        "Vegetables > Pepper > Green-Bell-Pepper",
        "Packages",
        "Packages > Juice",
        "Packages > Juice > Bravo-Apple-Juice",
        "Arts & Entertainment",
        "Arts & Entertainment > Hobbies, Creative Arts",
    ]
    assert all(n.id == n.text for n in tax)
    assert len(tax) == 13 and tax.max_depth == 3
    roots = ["Fruit", "Vegetables", "Packages", "Arts & Entertainment"]
    assert [n.name for n in tax if n.parent_id is None] == roots
    # Variable depth: Avocado is a leaf at depth 2 beside the depth-3 apples.
    avocado = tax.by_path("Fruit > Avocado")
    assert avocado == Node("Fruit > Avocado", "Avocado", ("Fruit", "Avocado"), "Fruit", 2)
    assert tax.is_leaf(avocado.id) and avocado.text == "Fruit > Avocado"
    # An inner node is a node like any other (it can be a label).
    apple = tax.by_path(("Fruit", "Apple"))
    assert not tax.is_leaf(apple.id)
    assert [c.name for c in tax.children(apple.id)] == ["Granny-Smith", "Pink-Lady"]
    assert [c.name for c in tax.children("Fruit")] == ["Apple", "Avocado"]
    assert tax.by_path("Fruit > Apple > Pink-Lady").parent_id == apple.id
    assert tax.node("Fruit").parent_id is None
    assert [n.name for n in tax if n.depth == 3] == [
        "Granny-Smith",
        "Pink-Lady",
        "Green-Bell-Pepper",
        "Bravo-Apple-Juice",
    ]
    assert len(tax.leaves) == 6
    check_index_maps(tax)


def test_path_lines_errors(tmp_path: Path) -> None:
    dup = write_file(tmp_path, "dup.txt", "# header\nA > B\nA\n\nA >  B\n")
    err = error_at(dup, 5, "duplicate path 'A > B'")
    assert "line 2" in str(err)
    error_at(write_file(tmp_path, "blank.txt", "A > B\nA >  > C\n"), 2, "blank level")
    error_at(write_file(tmp_path, "trailing.txt", "A\n\nA > \n"), 3, "blank level")
    error_at(write_file(tmp_path, "empty.txt", "# nothing here\n\n"), None, "no categories")
    # The in-memory parser names its source too.
    with pytest.raises(TaxonomyError, match=r"^<string>:2: duplicate path"):
        parse_path_lines("X\nX\n")


def test_google_excerpt() -> None:
    source = FIXTURES / "google_excerpt.txt"
    tax = load_taxonomy(source)  # sniffed as Google format
    assert len(tax) == 38
    assert [n.id for n in tax if n.parent_id is None] == ["1", "166", "8", "412", "632", "536"]
    assert tax.max_depth == 5 and len(tax.leaves) == 16
    food = tax.node("412")
    assert food.name == "Food, Beverages & Tobacco" and food.depth == 1
    assert tax.by_path("Food, Beverages & Tobacco > Food Items").id == "422"
    baths = tax.node("499954")
    assert baths.path[-2:] == ("Bird Cage Accessories", "Bird Cage Bird Baths")
    assert baths.parent_id == "7385"
    # The ancestors' Google ids, through the path prefixes and through the row chain.
    assert [tax.by_path(baths.path[:d]).id for d in range(1, baths.depth)] == [
        "1",
        "2",
        "3",
        "7385",
    ]
    chain = tax.leaf_ancestor_rows[tax.leaf_ids.index("499954")]
    assert [list(tax)[row].id for row in chain] == ["1", "2", "3", "7385", "499954"]
    assert [n.id for n in tax.children("3")] == ["7385", "4989", "4990"]
    assert tax.is_leaf("3237") and not tax.is_leaf("2")  # a leaf at depth 2 beside deeper ones
    assert [n.id for n in tax][:4] == ["1", "3237", "2", "3"]  # file order kept
    check_index_maps(tax)
    # Order in the file does not matter: reversed lines give the same tree, parents first.
    lines = source.read_text(encoding="utf-8").splitlines()
    flipped = parse_google(lines[:1] + lines[:0:-1], source="reversed")
    assert flipped.fingerprint() == tax.fingerprint()
    # The first line is now 4976 (depth 5): its four ancestors are pulled in front of it.
    assert [n.id for n in flipped][:5] == ["536", "630", "623", "4973", "4976"]
    check_index_maps(flipped)


@pytest.mark.parametrize(
    ("body", "line", "match"),
    [
        ("1 - A\n2 - A > B\n2 - A > C\n", 4, "duplicate id '2'.*line 3"),
        ("1 - A\n2 - A > B\n3 - A > B\n", 4, r"duplicate path 'A > B'.*id '2' \(line 3\)"),
        ("1 - A\n5 - A > B > C\n", 3, "unknown parent 'A > B'"),
        ("1 - A\nA > B\n", 3, "expected 'ID - Category > Subcategory'"),
        ("1 - A\n7 A > B\n", 3, "expected 'ID - Category"),
        ("1 - A\n2 - \n", 3, "empty category path"),
        ("1 - A\n3 - A >  > C\n", 3, "blank level"),
    ],
    ids=[
        "duplicate-id",
        "same-path-two-ids",
        "unknown-parent",
        "no-id",
        "no-dash",
        "empty-path",
        "blank-segment",
    ],
)
def test_google_errors(tmp_path: Path, body: str, line: int, match: str) -> None:
    path = write_file(tmp_path, "google.txt", GOOGLE_HEADER + body)
    error_at(path, line, match, load_taxonomy, "google")


def test_csv_parent_form() -> None:
    tax = load_taxonomy(FIXTURES / "store_parent.csv")
    # Input order, except that Packages (line 7) is pulled in front of its child Juice (line 6).
    assert [n.id for n in tax] == ["10", "11", "12", "13", "31", "30", "20", "21", "14"]
    assert tax.node("21").path == ("Food, Beverages & Tobacco", "Hobbies, Creative Arts")
    assert tax.node("14").text == "Fruit > Apple > Pink-Lady"
    assert tax.by_path("Packages > Juice").parent_id == "31"
    assert [n.id for n in tax if n.parent_id is None] == ["10", "31", "20"]
    assert sorted(tax.leaf_ids) == ["12", "13", "14", "21", "30"]
    check_index_maps(tax)


def test_csv_path_form_and_header_variants(tmp_path: Path) -> None:
    tax = load_taxonomy(FIXTURES / "store_paths.csv")
    assert [n.id for n in tax] == ["f", "fa", "fag", "fv", "Drinks", "j"]
    assert tax.node("j").path == ("Drinks", "Juice, Nectar & Smoothies")
    assert tax.node("Drinks").depth == 1  # implied ancestor, id = its path text
    check_index_maps(tax)
    # 'parent' instead of 'parent_id', any case, BOM, CRLF, an extra column.
    text = "\ufeffName,ID,PARENT,notes\r\nFruit,1,,x\r\nApple,2,1,\r\n"
    same = parse_csv(text, source="inline.csv")
    assert [(n.id, n.text) for n in same] == [("1", "Fruit"), ("2", "Fruit > Apple")]
    # A file object works like text.
    with open(FIXTURES / "store_parent.csv", encoding="utf-8", newline="") as handle:
        assert (
            parse_csv(handle).fingerprint()
            == load_taxonomy(FIXTURES / "store_parent.csv").fingerprint()
        )


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("id,parent_id,name\n1,,A\n2,9,B\n", 3, "unknown parent '9' of category '2'"),
        ("id,parent_id,name\n1,,Root\na,b,A\nb,a,B\n", 3, "cycle: a -> b -> a"),
        ("id,parent_id,name\n1,,Root\nx,y,X\ny,z,Y\nz,x,Z\n", 3, "cycle: x -> y -> z -> x"),
        ("id,parent_id,name\n1,,A\n2,2,B\n", 3, "'2' is its own parent"),
        ("id,parent_id,name\n1,,A\n2,1,B\n2,1,C\n", 4, "duplicate id '2' \\(first on line 3\\)"),
        ("id,parent_id,name\n1,,A\n2,1,\n", 3, "empty category name"),
        ("id,parent_id,name\n1,,A\n2,1,B > C\n", 3, "contains '>'"),
        ("id,parent_id,name\n1,,A\n2,1,B\n3,1,B\n", 4, "duplicate path 'A > B'.*line 3"),
        ("id,path\n1,A\n2,A >  > B\n", 3, "blank level"),
        ("id,path\n1,A\n1,B\n", 3, "duplicate id '1'"),
        ("id,path\n1,A\n2,A > Food, Drinks\n", 3, "quote values that contain commas"),
        ("id,path\n1,A\n,A > B\n", 3, "empty id"),
        ("\n\nkey,label\n1,A\n", 3, "names neither 'id,path' nor 'id,parent_id,name'"),
        ("id,path\n", None, "no categories"),
        ("", None, "empty CSV"),
    ],
    ids=[
        "unknown-parent",
        "cycle-2",
        "cycle-3",
        "self-parent",
        "duplicate-id",
        "empty-name",
        "gt-in-name",
        "duplicate-sibling",
        "blank-segment",
        "duplicate-id-path-form",
        "unquoted-comma",
        "empty-id",
        "bad-header",
        "header-only",
        "empty-file",
    ],
)
def test_csv_errors(tmp_path: Path, text: str, line: int | None, match: str) -> None:
    path = write_file(tmp_path, "tree.csv", text)
    error_at(path, line, match)


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Fruit > Apple\n# ok\nDrinks > Caf\u00e9\n".encode("latin-1"))
    error_at(path, 3, "not UTF-8 text.*re-save the file as UTF-8")


def test_bom_is_tolerated_and_format_can_be_forced(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff1 - Fruit\n2 - Fruit > Apple\n".encode())
    assert [n.id for n in load_taxonomy(path)] == ["1", "2"]  # sniffed as Google despite BOM
    as_paths = load_taxonomy(path, format="paths")
    assert as_paths.find("1 - Fruit > 2 - Fruit > Apple") is None
    assert "1 - Fruit" in as_paths  # read literally as names
    with pytest.raises(TaxonomyError, match="unknown taxonomy format 'yaml'"):
        load_taxonomy(path, format="yaml")
    error_at(tmp_path / "missing.txt", None, "file not found")
    error_at(tmp_path, None, "is a folder", load_taxonomy, "csv")


def test_parsers_remember_file_and_line(tmp_path: Path) -> None:
    path = write_file(tmp_path, "tree.txt", "# header\n1 - Fruit\n\n2 - Fruit > Apple\n")
    tax = load_taxonomy(path)
    assert tax.source == str(path)
    assert [tax.line_of(i) for i in ("1", "2", "3")] == [2, 4, None]
    implied = parse_path_lines("Fruit > Apple\n")
    assert implied.line_of("Fruit") == 1  # an implied parent: the line that implied it


def _google_like_lines(n: int = 5600, max_depth: int = 7, seed: int = 0) -> list[str]:
    """A synthetic file shaped like Google's: 21 roots, most nodes at depth 3 to 5, some at 7."""
    rng = random.Random(seed)
    words = [
        "Home",
        "Garden",
        "Tools",
        "Pet",
        "Baby",
        "Toys",
        "Audio",
        "Video",
        "Kitchen",
        "Dining",
        "Outdoor",
        "Sports",
        "Office",
        "Craft",
        "Party",
        "Health",
        "Beauty",
    ]
    paths: list[tuple[str, ...]] = [(f"{rng.choice(words)} & {w} Supplies",) for w in words[:21]]
    paths += [(f"Root {i} & More",) for i in range(21 - len(paths))]
    for depth in range(2, max_depth + 1):  # one branch reaches the maximum depth
        paths.append(paths[-1 if depth > 2 else 0] + (f"Deep Level {depth}",))
    open_rows = [i for i, p in enumerate(paths) if len(p) < max_depth]
    while len(paths) < n:
        parent = paths[rng.choice(open_rows)]
        if rng.random() > 0.6 ** (len(parent) - 1):  # deeper parents take fewer children
            continue
        paths.append((*parent, f"{rng.choice(words)}, {rng.choice(words)} & Co {len(paths)}"))
        if len(parent) + 1 < max_depth:
            open_rows.append(len(paths) - 1)
    ids = rng.sample(range(1, 600_000), n)
    body = sorted(zip(paths, ids, strict=True))  # the real file lists parents before children
    return [f"{node_id} - {' > '.join(path)}" for path, node_id in body]


def test_google_sized_file_parses_fast(tmp_path: Path) -> None:
    lines = _google_like_lines()
    path = write_file(
        tmp_path, "taxonomy-with-ids.en-US.txt", GOOGLE_HEADER + "\n".join(lines) + "\n"
    )
    start = time.perf_counter()
    tax = load_taxonomy(path)
    elapsed = time.perf_counter() - start
    assert len(tax) == 5600 and tax.max_depth == 7 and sum(n.depth == 1 for n in tax) == 21
    assert elapsed < 2.0, f"parsing 5,600 categories took {elapsed:.2f} s"
    check_index_maps(tax)
    random.Random(1).shuffle(lines)  # any order gives the same tree
    assert parse_google(lines).fingerprint() == tax.fingerprint()

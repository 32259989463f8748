"""Tests for catalog_ai.taxonomy: paths, the Taxonomy model, every parser and the folder scan."""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path

import pytest

from catalog_ai.errors import CatalogAIError, TaxonomyError
from catalog_ai.taxonomy import (
    FolderScan,
    Node,
    Taxonomy,
    format_path,
    from_folder,
    labelled_files,
    load_taxonomy,
    parse_csv,
    parse_google,
    parse_path,
    parse_path_lines,
    scan_folder,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "taxonomy"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error_at(path: Path, line: int | None, match: str, fn=load_taxonomy, *args) -> TaxonomyError:
    """Call fn(path, *args), expect a TaxonomyError naming the file and line, return it."""
    with pytest.raises(TaxonomyError, match=match) as info:
        fn(path, *args)
    err = info.value
    assert isinstance(err, CatalogAIError)
    assert err.source == str(path)
    assert err.line == line
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err).startswith(where), str(err)
    return err


def _check_index_maps(tax: Taxonomy) -> None:
    """The index maps agree with the tree and with each other."""
    nodes = list(tax)
    index = tax.node_index
    assert index == {n.id: i for i, n in enumerate(nodes)}
    parents = tax.parent_rows
    assert len(parents) == len(nodes)
    for row, node in enumerate(nodes):
        if node.parent_id is None:
            assert parents[row] == -1 and node.depth == 1
        else:
            assert parents[row] == index[node.parent_id]
            assert parents[row] < row  # parent before child
            assert nodes[parents[row]].path == node.path[:-1]
        expected = [index[a.id] for a in tax.ancestors(node.id, include_self=True)]
        assert tax.ancestor_rows(node.id) == expected
        assert tax.row(node.id) == row
    assert tax.leaf_ids == [n.id for n in nodes if not tax.children(n.id)]
    assert tax.leaf_index == {leaf: i for i, leaf in enumerate(tax.leaf_ids)}
    assert len(tax.leaf_ancestor_rows) == len(tax.leaf_ids)
    for leaf_id, rows in zip(tax.leaf_ids, tax.leaf_ancestor_rows, strict=True):
        assert rows[-1] == index[leaf_id]
        assert parents[rows[0]] == -1  # starts at a root
        assert len(rows) == tax.node(leaf_id).depth
        assert all(parents[b] == a for a, b in itertools.pairwise(rows))
    # Callers get copies: mutating them must not corrupt the taxonomy.
    tax.leaf_ids.clear()
    tax.node_index.clear()
    tax.leaf_ancestor_rows[0].append(999)
    assert tax.leaf_ids and tax.node_index and 999 not in tax.leaf_ancestor_rows[0]


# ---------------------------------------------------------------------------------------------
# Paths


def test_parse_and_format_path() -> None:
    assert parse_path("  Fruit >Apple>  Granny-Smith ") == ("Fruit", "Apple", "Granny-Smith")
    assert parse_path("Arts & Entertainment > Hobbies, Creative Arts") == (
        "Arts & Entertainment", "Hobbies, Creative Arts")
    assert format_path(("Fruit", "Apple")) == "Fruit > Apple"
    assert parse_path(format_path(("A & B", "C, D"))) == ("A & B", "C, D")


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty category path"), ("   ", "empty category path"), ("A >  > C", "blank level"),
     ("A > ", "blank level"), ("> A", "blank level"), ("A >> B", "blank level"),
     ("A\nB", "line break")],
)
def test_parse_path_rejects_bad_text(text: str, match: str) -> None:
    with pytest.raises(TaxonomyError, match=match):
        parse_path(text)


@pytest.mark.parametrize("path", [(), ("A", "B > C"), ("A", ""), (" A",), "A > B"])
def test_format_path_rejects_bad_paths(path) -> None:
    with pytest.raises(TaxonomyError):
        format_path(path)


# ---------------------------------------------------------------------------------------------
# Path lines


def test_path_lines_file() -> None:
    source = FIXTURES / "store_paths.txt"
    tax = load_taxonomy(source)
    assert [n.text for n in tax] == [
        "Fruit", "Fruit > Apple", "Fruit > Apple > Granny-Smith", "Fruit > Apple > Pink-Lady",
        "Fruit > Avocado",
        "Vegetables", "Vegetables > Pepper", "Vegetables > Pepper > Green-Bell-Pepper",
        "Packages", "Packages > Juice", "Packages > Juice > Bravo-Apple-Juice",
        "Arts & Entertainment", "Arts & Entertainment > Hobbies, Creative Arts",
    ]
    assert all(n.id == n.text for n in tax)
    assert len(tax) == 13 and tax.max_depth == 3
    roots = ["Fruit", "Vegetables", "Packages", "Arts & Entertainment"]
    assert [n.name for n in tax.roots] == roots
    # Variable depth: Avocado is a leaf at depth 2 beside the depth-3 apples.
    avocado = tax.by_path("Fruit > Avocado")
    assert avocado == Node("Fruit > Avocado", "Avocado", ("Fruit", "Avocado"), "Fruit", 2)
    assert tax.is_leaf(avocado.id) and avocado.text == "Fruit > Avocado"
    # An inner node is a node like any other (it can be a label).
    apple = tax.by_path(("Fruit", "Apple"))
    assert not tax.is_leaf(apple.id)
    assert [c.name for c in tax.children(apple.id)] == ["Granny-Smith", "Pink-Lady"]
    assert [c.name for c in tax.children("Fruit")] == ["Apple", "Avocado"]
    assert tax.parent("Fruit > Apple > Pink-Lady") == apple
    assert tax.parent("Fruit") is None
    assert [n.id for n in tax.ancestors("Fruit > Apple > Pink-Lady")] == ["Fruit", "Fruit > Apple"]
    assert tax.ancestors("Fruit", include_self=True) == (tax.node("Fruit"),)
    assert [n.name for n in tax.descendants("Fruit")] == [
        "Apple", "Granny-Smith", "Pink-Lady", "Avocado"]
    assert tax.descendants("Fruit > Avocado") == ()
    assert [n.name for n in tax.nodes_at_depth(3)] == [
        "Granny-Smith", "Pink-Lady", "Green-Bell-Pepper", "Bravo-Apple-Juice"]
    assert len(tax.leaves) == 6
    _check_index_maps(tax)


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


def test_path_lines_errors(tmp_path: Path) -> None:
    dup = _write(tmp_path, "dup.txt", "# header\nA > B\nA\n\nA >  B\n")
    err = _error_at(dup, 5, "duplicate path 'A > B'")
    assert "line 2" in str(err)
    _error_at(_write(tmp_path, "blank.txt", "A > B\nA >  > C\n"), 2, "blank level")
    _error_at(_write(tmp_path, "trailing.txt", "A\n\nA > \n"), 3, "blank level")
    _error_at(_write(tmp_path, "empty.txt", "# nothing here\n\n"), None, "no categories")
    # The in-memory parser names its source too.
    with pytest.raises(TaxonomyError, match=r"^<string>:2: duplicate path"):
        parse_path_lines("X\nX\n")


# ---------------------------------------------------------------------------------------------
# Google product taxonomy


def test_google_excerpt() -> None:
    source = FIXTURES / "google_excerpt.txt"
    tax = load_taxonomy(source)  # sniffed as Google format
    assert len(tax) == 38
    assert [n.id for n in tax.roots] == ["1", "166", "8", "412", "632", "536"]
    assert tax.max_depth == 5 and len(tax.leaves) == 16
    food = tax.node("412")
    assert food.name == "Food, Beverages & Tobacco" and food.depth == 1
    assert tax.by_path("Food, Beverages & Tobacco > Food Items").id == "422"
    baths = tax.node("499954")
    assert baths.path[-2:] == ("Bird Cage Accessories", "Bird Cage Bird Baths")
    assert baths.parent_id == "7385"
    assert [n.id for n in tax.ancestors("499954")] == ["1", "2", "3", "7385"]
    assert [n.id for n in tax.children("3")] == ["7385", "4989", "4990"]
    assert tax.is_leaf("3237") and not tax.is_leaf("2")  # a leaf at depth 2 beside deeper ones
    assert [n.id for n in tax][:4] == ["1", "3237", "2", "3"]  # file order kept
    _check_index_maps(tax)
    # Order in the file does not matter: reversed lines give the same tree, parents first.
    lines = source.read_text(encoding="utf-8").splitlines()
    flipped = parse_google(lines[:1] + lines[:0:-1], source="reversed")
    assert flipped.fingerprint() == tax.fingerprint()
    # The first line is now 4976 (depth 5): its four ancestors are pulled in front of it.
    assert [n.id for n in flipped][:5] == ["536", "630", "623", "4973", "4976"]
    _check_index_maps(flipped)


GOOGLE_HEADER = "# Google_Product_Taxonomy_Version: 2021-09-21\n"


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
    ids=["duplicate-id", "same-path-two-ids", "unknown-parent", "no-id", "no-dash",
         "empty-path", "blank-segment"],
)
def test_google_errors(tmp_path: Path, body: str, line: int, match: str) -> None:
    path = _write(tmp_path, "google.txt", GOOGLE_HEADER + body)
    _error_at(path, line, match, load_taxonomy, "google")


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_parent_form() -> None:
    tax = load_taxonomy(FIXTURES / "store_parent.csv")
    # Input order, except that Packages (line 7) is pulled in front of its child Juice (line 6).
    assert [n.id for n in tax] == ["10", "11", "12", "13", "31", "30", "20", "21", "14"]
    assert tax.node("21").path == ("Food, Beverages & Tobacco", "Hobbies, Creative Arts")
    assert tax.node("14").text == "Fruit > Apple > Pink-Lady"
    assert tax.by_path("Packages > Juice").parent_id == "31"
    assert [n.id for n in tax.roots] == ["10", "31", "20"]
    assert sorted(tax.leaf_ids) == ["12", "13", "14", "21", "30"]
    _check_index_maps(tax)


def test_csv_path_form_and_header_variants(tmp_path: Path) -> None:
    tax = load_taxonomy(FIXTURES / "store_paths.csv")
    assert [n.id for n in tax] == ["f", "fa", "fag", "fv", "Drinks", "j"]
    assert tax.node("j").path == ("Drinks", "Juice, Nectar & Smoothies")
    assert tax.node("Drinks").depth == 1  # implied ancestor, id = its path text
    _check_index_maps(tax)
    # 'parent' instead of 'parent_id', any case, BOM, CRLF, an extra column.
    text = "\ufeffName,ID,PARENT,notes\r\nFruit,1,,x\r\nApple,2,1,\r\n"
    same = parse_csv(text, source="inline.csv")
    assert [(n.id, n.text) for n in same] == [("1", "Fruit"), ("2", "Fruit > Apple")]
    # A file object works like text.
    with open(FIXTURES / "store_parent.csv", encoding="utf-8", newline="") as handle:
        assert parse_csv(handle).fingerprint() == load_taxonomy(
            FIXTURES / "store_parent.csv").fingerprint()


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
    ids=["unknown-parent", "cycle-2", "cycle-3", "self-parent", "duplicate-id", "empty-name",
         "gt-in-name", "duplicate-sibling", "blank-segment", "duplicate-id-path-form",
         "unquoted-comma", "empty-id", "bad-header", "header-only", "empty-file"],
)
def test_csv_errors(tmp_path: Path, text: str, line: int | None, match: str) -> None:
    path = _write(tmp_path, "tree.csv", text)
    _error_at(path, line, match)


# ---------------------------------------------------------------------------------------------
# Files: encoding and format selection


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Fruit > Apple\n# ok\nDrinks > Caf\u00e9\n".encode("latin-1"))
    _error_at(path, 3, "not UTF-8 text.*re-save the file as UTF-8")


def test_bom_is_tolerated_and_format_can_be_forced(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff1 - Fruit\n2 - Fruit > Apple\n".encode())
    assert [n.id for n in load_taxonomy(path)] == ["1", "2"]  # sniffed as Google despite BOM
    as_paths = load_taxonomy(path, format="paths")
    assert as_paths.find("1 - Fruit > 2 - Fruit > Apple") is None
    assert "1 - Fruit" in as_paths  # read literally as names
    with pytest.raises(TaxonomyError, match="unknown taxonomy format 'yaml'"):
        load_taxonomy(path, format="yaml")
    _error_at(tmp_path / "missing.txt", None, "file not found")
    _error_at(tmp_path, None, "is a folder", load_taxonomy, "csv")


# ---------------------------------------------------------------------------------------------
# Programmatic construction, extension, serialisation


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
    bigger = base.extended(["Fruit > Apple > Granny-Smith", "Vegetables > Pepper",
                            "Fruit > Avocado"])  # the last one exists: no-op
    assert list(bigger)[: len(base)] == list(base)  # existing rows keep their index
    assert [n.text for n in bigger][len(base):] == [
        "Fruit > Apple > Granny-Smith", "Vegetables", "Vegetables > Pepper"]
    assert not bigger.is_leaf("Fruit > Apple") and base.is_leaf("Fruit > Apple")  # base unchanged
    _check_index_maps(bigger)
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
    renamed = Taxonomy.from_paths(["Fruit > Apple", "Vegetables", "Fruit > Avocado", "Fruit"],
                                  ids=["1", "2", "3", "4"])
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


# ---------------------------------------------------------------------------------------------
# Folder trees


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_scan_folder(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    generic = _touch(root / "Fruit" / "apple-generic.JPG")  # images beside a subfolder
    _touch(root / "Fruit" / "notes.txt")
    g1 = _touch(root / "Fruit" / "Apple" / "Granny-Smith" / "g1.jpg")
    g2 = _touch(root / "Fruit" / "Apple" / "Granny-Smith" / "g2.png")
    _touch(root / "Fruit" / "Apple" / "Granny-Smith" / "._g1.jpg")  # macOS resource fork
    avo = _touch(root / "Fruit" / "Avocado" / "a.webp")
    (root / "Vegetables").mkdir()
    _touch(root / ".thumbnails" / "t.jpg")
    _touch(root / "__pycache__" / "x.pyc")
    loose = _touch(root / "loose.jpeg")
    _touch(root / "README.md")

    scan = scan_folder(root)
    assert isinstance(scan, FolderScan)
    tax = scan.taxonomy
    assert [n.id for n in tax] == [
        "Fruit", "Fruit > Apple", "Fruit > Apple > Granny-Smith", "Fruit > Avocado", "Vegetables"]
    assert tax.leaf_ids == ["Fruit > Apple > Granny-Smith", "Fruit > Avocado", "Vegetables"]
    _check_index_maps(tax)
    assert scan.files == sorted([
        (generic, ("Fruit",)),
        (g1, ("Fruit", "Apple", "Granny-Smith")),
        (g2, ("Fruit", "Apple", "Granny-Smith")),
        (avo, ("Fruit", "Avocado")),
    ])
    assert scan.unlabelled == [loose]
    assert labelled_files(root) == scan.files
    assert labelled_files(root, suffixes=(".PNG",)) == [(g2, ("Fruit", "Apple", "Granny-Smith"))]
    assert from_folder(root) == tax
    shown = from_folder(root, ignore_hidden=False)
    assert ".thumbnails" in shown and "__pycache__" not in shown


def test_scan_folder_errors(tmp_path: Path) -> None:
    _error_at(tmp_path / "nope", None, "folder not found.*subfolders are the categories",
              scan_folder)
    _error_at(_touch(tmp_path / "file.jpg"), None, "is a file, not a folder", from_folder)
    empty = tmp_path / "empty"
    _touch(empty / "only-a-file.jpg")
    _error_at(empty, None, "no subfolders", load_taxonomy)
    _error_at(tmp_path / "file.jpg", None, "is a file", load_taxonomy, "folder")
    bad = tmp_path / "bad"
    _touch(bad / "Fruit" / "A > B" / "x.jpg")
    with pytest.raises(TaxonomyError, match=r"contains '>'.*folder name") as info:
        scan_folder(bad)
    assert info.value.source == str(bad / "Fruit" / "A > B")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_scan_folder_symlink_loop(tmp_path: Path) -> None:
    _touch(tmp_path / "A" / "B" / "x.jpg")
    os.symlink(tmp_path / "A", tmp_path / "A" / "B" / "back")
    with pytest.raises(TaxonomyError, match="symlink loop"):
        scan_folder(tmp_path)


def test_shared_grocery_tree(shared_data: Path) -> None:
    scan = scan_folder(shared_data / "train")
    tax = scan.taxonomy
    assert len(tax.leaves) == 81 and len(tax.roots) == 3
    assert [n.name for n in tax.roots] == ["Fruit", "Packages", "Vegetables"]
    assert tax.by_path("Fruit > Apple > Granny-Smith").depth == 3
    assert tax.is_leaf("Fruit > Avocado")
    assert len(tax.nodes_at_depth(2)) == 43  # the README's 43 coarse categories
    assert len(scan.files) == 2640 and scan.unlabelled == []
    assert all(tax.is_leaf(format_path(cat)) for _, cat in scan.files)
    _check_index_maps(tax)


# ---------------------------------------------------------------------------------------------
# Speed on a Google-sized file


def _google_like_lines(n: int = 5600, max_depth: int = 7, seed: int = 0) -> list[str]:
    """A synthetic file shaped like Google's: 21 roots, most nodes at depth 3 to 5, some at 7."""
    rng = random.Random(seed)
    words = ["Home", "Garden", "Tools", "Pet", "Baby", "Toys", "Audio", "Video", "Kitchen",
             "Dining", "Outdoor", "Sports", "Office", "Craft", "Party", "Health", "Beauty"]
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
    path = _write(tmp_path, "taxonomy-with-ids.en-US.txt", GOOGLE_HEADER + "\n".join(lines) + "\n")
    start = time.perf_counter()
    tax = load_taxonomy(path)
    elapsed = time.perf_counter() - start
    assert len(tax) == 5600 and tax.max_depth == 7 and len(tax.roots) == 21
    assert elapsed < 2.0, f"parsing 5,600 categories took {elapsed:.2f} s"
    _check_index_maps(tax)
    random.Random(1).shuffle(lines)  # any order gives the same tree
    assert parse_google(lines).fingerprint() == tax.fingerprint()


# ---------------------------------------------------------------------------------------------
# The storage contract (issue 13, finding 8): what every database can store, shown safely


@pytest.mark.parametrize(
    ("name", "text", "line", "match"),
    [
        ("esc.txt", "Fruit\nFruit > \x1b[31mRed\n", 2, r"'\\x1b\[31mRed' contains the control "
         r"character U\+001B \(control character\)"),
        ("bel.txt", "Fr\x07uit\n", 1, r"U\+0007"),
        ("nul.txt", "Fruit\n\nFruit > A\x00\n", 3, r"U\+0000"),
        ("rtl.txt", "Fruit > \u202eelppA\n", 1, r"U\+202E \(right-to-left override\)"),
        ("isolate.txt", "Fruit > \u2066x\n", 1, r"U\+2066"),
        ("zwsp.txt", "Fru\u200bit\n", 1, r"U\+200B \(zero width space\)"),
        ("c1.txt", "\x85Fruit\n", 1, r"U\+0085"),
        ("google.txt", "1 - Fruit\n2 -\x1cFruit > A\n", 2, r"line '2 -\\x1cFruit > A' .*U\+001C"),
        ("id.csv", "id,path\n1\x1b,Fruit\n", 2, r"category id '1\\x1b'.*U\+001B"),
        ("parent.csv", "id,parent_id,name\n1,,Fruit\n2,1,Ap\u202eple\n", 3, r"U\+202E"),
        ("long.txt", "F > " + "x" * 256 + "\n", 1,
         r"'x{60}'\.\.\. \(256 characters\) is 256 characters long; .* at most 255"),
        ("path.txt", " > ".join(["y" * 255] * 4) + " > z\n", 1, r"is 1033 characters long; the "
         r"catalog stores at most 1024, shorten its names or use fewer levels"),
        ("gid.txt", "1 - Fruit\n" + "7" * 65 + " - Fruit > A\n", 2, r"at most 64, use shorter"),
    ],
)
def test_storage_contract_errors(tmp_path: Path, name: str, text: str, line: int,
                                 match: str) -> None:
    err = _error_at(_write(tmp_path, name, text), line, match)
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
    for bad, match in [(("A  B",), "repeated spaces"), (("A\tB",), "repeated spaces"),
                       (("A\u00a0B",), "repeated spaces"), ((" A",), "leading or trailing"),
                       (("A\x1b",), r"U\+001B"), (("x" * 256,), "at most 255")]:
        with pytest.raises(TaxonomyError, match=match):
            format_path(bad)
        with pytest.raises(TaxonomyError, match=match):
            Taxonomy.from_paths([bad])
    with pytest.raises(TaxonomyError, match="at most 64"):
        Taxonomy.from_paths(["A"], ids=["i" * 65])
    with pytest.raises(TaxonomyError, match=r"U\+0000"):
        Taxonomy.from_dict({"version": 1, "nodes": [{"id": "a\x00", "path": ["A"]}]})


def test_parsers_remember_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "tree.txt", "# header\n1 - Fruit\n\n2 - Fruit > Apple\n")
    tax = load_taxonomy(path)
    assert tax.source == str(path)
    assert [tax.line_of(i) for i in ("1", "2", "3")] == [2, 4, None]
    implied = parse_path_lines("Fruit > Apple\n")
    assert implied.line_of("Fruit") == 1  # an implied parent: the line that implied it


@pytest.mark.skipif(os.name != "posix", reason="control characters in folder names")
def test_folder_names_meet_the_contract(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    _touch(bad / "Fruit" / "\x1b[31mRed" / "x.jpg")
    with pytest.raises(TaxonomyError, match=r"U\+001B.*\(folder name\)") as info:
        scan_folder(bad)
    assert str(info.value).isprintable() and "\\x1b[31mRed: " in str(info.value)

"""Helpers shared by the taxonomy tests: fixture files, error checks, index-map invariants."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from catalog_ai.errors import CatalogAIError, TaxonomyError
from catalog_ai.taxonomy import Taxonomy, load_taxonomy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "taxonomy"
GOOGLE_HEADER = "# Google_Product_Taxonomy_Version: 2021-09-21\n"


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def error_at(path: Path, line: int | None, match: str, fn=load_taxonomy, *args) -> TaxonomyError:
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


def check_index_maps(tax: Taxonomy) -> None:
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
        assert tax.row(node.id) == row
    assert tax.leaf_ids == [n.id for n in nodes if not tax.children(n.id)]
    assert len(tax.leaf_ancestor_rows) == len(tax.leaf_ids)
    for leaf_id, rows in zip(tax.leaf_ids, tax.leaf_ancestor_rows, strict=True):
        leaf = tax.node(leaf_id)
        # Root first, one row per level: the rows of the leaf's path prefixes.
        assert rows == [index[tax.by_path(leaf.path[:d]).id] for d in range(1, leaf.depth + 1)]
        assert parents[rows[0]] == -1
        assert all(parents[b] == a for a, b in itertools.pairwise(rows))
    # Callers get copies: mutating them must not corrupt the taxonomy.
    tax.leaf_ids.clear()
    tax.node_index.clear()
    tax.leaf_ancestor_rows[0].append(999)
    assert tax.leaf_ids and tax.node_index and 999 not in tax.leaf_ancestor_rows[0]

"""The immutable category tree: :class:`Node` and :class:`Taxonomy`.

The tree has variable depth and every node, not only a leaf, can be a label. Node order (the row
order of every index map) is the order of first appearance in the input, except that a parent
always comes before its children: a node whose parent is defined later in the input (or only
implied by its path) pulls that parent, and its missing ancestors, in front of itself.
:meth:`Taxonomy.extended` keeps existing rows and appends new ones.

Standard library only: training and inference build their tensors from the plain index maps.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy.names import (
    SEPARATOR,
    CategoryPath,
    PathInput,
    as_path,
    id_problem,
    path_problem,
)

# build_taxonomy and suggest serve the parsers (formats, folders); the package exports the rest.
__all__ = ["Node", "Taxonomy", "build_taxonomy", "fingerprint_of", "suggest"]


@dataclass(frozen=True, slots=True)
class Node:
    """One category. ``depth`` is 1 for a top-level category."""

    id: str
    name: str
    path: CategoryPath
    parent_id: str | None
    depth: int

    @property
    def text(self) -> str:
        return SEPARATOR.join(self.path)


class Taxonomy:
    """An immutable category tree. Build it with a parser, :meth:`from_paths` or
    :meth:`from_dict`; nodes keep the order described in the module docstring."""

    def __init__(self, nodes: Iterable[Node] = ()):
        self._nodes: tuple[Node, ...] = tuple(nodes)
        self._by_id: dict[str, Node] = {}
        self._by_path: dict[CategoryPath, Node] = {}
        self._rows: dict[str, int] = {}
        children: dict[str, list[Node]] = {}
        for row, node in enumerate(self._nodes):
            # The constructors guarantee these; checking keeps hand-made node lists honest.
            if node.id in self._by_id or node.path in self._by_path:
                raise TaxonomyError(f"node {node.id!r} ({node.text}) is listed twice")
            parent = self._by_path.get(node.path[:-1]) if len(node.path) > 1 else None
            consistent = (
                node.depth == len(node.path) >= 1
                and node.name == node.path[-1]
                and (parent is not None or node.depth == 1)
                and node.parent_id == (parent.id if parent is not None else None)
            )
            if not consistent:
                raise TaxonomyError(
                    f"node {node.id!r} ({node.text}) does not follow its parent; "
                    "build taxonomies with Taxonomy.from_paths or a parser"
                )
            self._by_id[node.id] = node
            self._by_path[node.path] = node
            self._rows[node.id] = row
            children[node.id] = []
            if parent is not None:
                children[parent.id].append(node)
        self._children = {key: tuple(value) for key, value in children.items()}
        # Where each node was read (set by the parsers), so that a clash found later, against the
        # catalog, still names the file and line.
        self.source: str | None = None
        self._lines: dict[str, int] = {}

    def line_of(self, node_id: str) -> int | None:
        """The line of the input that defined (or first implied) this node, if known."""
        return self._lines.get(node_id)

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Iterable[PathInput], ids: Sequence[str] | None = None) -> Taxonomy:
        """Categories from paths (text or tuples); missing ancestors are created with the path
        text as id, as is every node when ``ids`` is None. Errors give the 1-based position as
        the line."""
        paths = list(paths)
        if ids is not None and len(ids) != len(paths):
            raise TaxonomyError(f"got {len(ids)} ids for {len(paths)} paths; give one id per path")
        entries = []
        for i, value in enumerate(paths):
            path = as_path(value, source="<paths>", line=i + 1)
            entries.append((ids[i] if ids is not None else SEPARATOR.join(path), path, i + 1))
        return build_taxonomy(entries, source="<paths>", implicit_parents=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Taxonomy:
        """The inverse of :meth:`to_dict`."""
        nodes = data.get("nodes") if isinstance(data, Mapping) else None
        if not isinstance(nodes, list) or data.get("version") != 1:
            raise TaxonomyError(
                "not a taxonomy snapshot: expected {'version': 1, 'nodes': [...]} "
                "as written by Taxonomy.to_dict()",
                source="<dict>",
            )
        entries = []
        for i, item in enumerate(nodes):
            node_id = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(node_id, str) or not node_id:
                raise TaxonomyError(
                    f"node entry needs a non-empty text 'id', got {item!r}",
                    source="<dict>",
                    line=i + 1,
                )
            entries.append(
                (item["id"], as_path(item.get("path"), source="<dict>", line=i + 1), i + 1)
            )
        return build_taxonomy(entries, source="<dict>", implicit_parents=False)

    def extended(self, paths: Iterable[PathInput], *, ids: Sequence[str] | None = None) -> Taxonomy:
        """A new taxonomy with extra categories appended (existing rows keep their index).

        A path already present is a no-op; a given id that is taken by another path, or a
        present path given a different id, is an error. Missing ancestors get the path text as id.
        """
        paths = list(paths)
        if ids is not None and len(ids) != len(paths):
            raise TaxonomyError(f"got {len(ids)} ids for {len(paths)} paths; give one id per path")
        entries: list[tuple[str, CategoryPath, int | None]] = [
            (n.id, n.path, None) for n in self._nodes
        ]
        added: dict[CategoryPath, str] = {}
        for i, value in enumerate(paths):
            path = as_path(value, source="<extended>", line=i + 1)
            new_id = ids[i] if ids is not None else None
            old = self._by_path.get(path)
            known_id = old.id if old is not None else added.get(path)
            if known_id is not None:
                if new_id is not None and new_id != known_id:
                    raise TaxonomyError(
                        f"category {SEPARATOR.join(path)!r} already has id "
                        f"{known_id!r}, cannot give it id {new_id!r}",
                        source="<extended>",
                        line=i + 1,
                    )
                continue
            new_id = new_id if new_id is not None else SEPARATOR.join(path)
            added[path] = new_id
            entries.append((new_id, path, i + 1))
        if not added:
            return self
        return build_taxonomy(entries, source="<extended>", implicit_parents=True)

    # -- container protocol ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __contains__(self, item: object) -> bool:
        """True for a node id, a path tuple or a path text of this tree."""
        if isinstance(item, str):
            return item in self._by_id or self.find(item) is not None
        if isinstance(item, tuple):
            return item in self._by_path
        return False

    def __eq__(self, other: object) -> bool:
        # Order matters: rows are model outputs. Use fingerprint() for order-free comparison.
        return isinstance(other, Taxonomy) and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Taxonomy({len(self)} nodes, {len(self.leaf_ids)} leaves, max depth {self.max_depth})"
        )

    # -- lookup ------------------------------------------------------------------------------

    def node(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except (KeyError, TypeError):
            raise TaxonomyError(
                f"unknown category id {node_id!r}" + suggest(str(node_id), list(self._by_id))
            ) from None

    def find(self, path_or_text: PathInput) -> Node | None:
        """The node at this path, or None (also for text that is not a valid path)."""
        try:
            path = as_path(path_or_text)
        except TaxonomyError:
            return None
        return self._by_path.get(path)

    def by_path(self, path_or_text: PathInput) -> Node:
        found = self.find(path_or_text)
        if found is None:
            text = (
                path_or_text
                if isinstance(path_or_text, str)
                else SEPARATOR.join(map(str, path_or_text))
            )
            raise TaxonomyError(
                f"unknown category {text!r}" + suggest(text, [n.text for n in self._nodes])
            )
        return found

    def children(self, node_id: str) -> tuple[Node, ...]:
        return self._children[self.node(node_id).id]

    def is_leaf(self, node_id: str) -> bool:
        return not self.children(node_id)

    @property
    def leaves(self) -> tuple[Node, ...]:
        return tuple(n for n in self._nodes if not self._children[n.id])

    @property
    def max_depth(self) -> int:
        return max((n.depth for n in self._nodes), default=0)

    # -- index maps (rows in node order; each property returns a fresh copy) -----------------

    @cached_property
    def _parent_rows(self) -> tuple[int, ...]:
        return tuple(-1 if n.parent_id is None else self._rows[n.parent_id] for n in self._nodes)

    @cached_property
    def _chains(self) -> tuple[tuple[int, ...], ...]:
        chains: list[tuple[int, ...]] = []
        for row, parent in enumerate(self._parent_rows):
            chains.append((chains[parent] if parent >= 0 else ()) + (row,))  # parents come first
        return tuple(chains)

    @cached_property
    def _leaf_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.leaves)

    @property
    def node_index(self) -> dict[str, int]:
        return dict(self._rows)

    def row(self, node_id: str) -> int:
        """The row of one node (cheaper than ``node_index[node_id]`` in a loop)."""
        return self._rows[self.node(node_id).id]

    @property
    def leaf_ids(self) -> list[str]:
        return list(self._leaf_ids)

    @property
    def leaf_ancestor_rows(self) -> list[list[int]]:
        """Per leaf (in ``leaf_ids`` order): rows of its ancestors and itself, root first."""
        return [list(self._chains[self._rows[leaf_id]]) for leaf_id in self._leaf_ids]

    @property
    def parent_rows(self) -> list[int]:
        """Per row: the parent's row, -1 for a top-level category."""
        return list(self._parent_rows)

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-safe snapshot: ``{"version": 1, "nodes": [{"id", "path": [...]}, ...]}``."""
        return {"version": 1, "nodes": [{"id": n.id, "path": list(n.path)} for n in self._nodes]}

    def fingerprint(self) -> str:
        """sha256 hex of the (id, path) pairs sorted by path: equal trees, equal fingerprints."""
        return fingerprint_of((n.path, n.id) for n in self._nodes)


def fingerprint_of(pairs: Iterable[tuple[CategoryPath, str]]) -> str:
    """:meth:`Taxonomy.fingerprint` of the tree whose nodes are these ``(path, id)`` pairs,
    without building it (a catalogue that just wrote 10,000 categories knows their paths)."""
    canonical = sorted(pairs)
    blob = json.dumps(
        [[node_id, list(path)] for path, node_id in canonical],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "; no similar category exists (check the spelling and the ' > ' separators)"


def build_taxonomy(
    entries: Sequence[tuple[str, CategoryPath, int | None]],
    *,
    source: str | None,
    implicit_parents: bool,
) -> Taxonomy:
    """Nodes from (id, path, line) entries: checks clashes, orders parents first."""
    by_id: dict[str, tuple[CategoryPath, int | None]] = {}
    by_path: dict[CategoryPath, tuple[str, int | None]] = {}

    def where(line: int | None) -> str:
        return f" (line {line})" if line is not None else " (already in the taxonomy)"

    for node_id, path, line in entries:
        if not isinstance(node_id, str) or not node_id.strip():
            raise TaxonomyError(
                f"empty category id for {SEPARATOR.join(path)!r}", source=source, line=line
            )
        # Names were checked when the path was read; its total length and an explicit id
        # (one that is not the path text, stored as external_id) are checked here.
        problem = path_problem(path)
        if problem is None and node_id != SEPARATOR.join(path):
            problem = id_problem(node_id)
        if problem is not None:
            raise TaxonomyError(problem, source=source, line=line)
        if path in by_path:
            first_id, first_line = by_path[path]
            raise TaxonomyError(
                f"duplicate path {SEPARATOR.join(path)!r}: also id {first_id!r}"
                f"{where(first_line)}; list each category once",
                source=source,
                line=line,
            )
        if node_id in by_id:
            first_path, first_line = by_id[node_id]
            raise TaxonomyError(
                f"duplicate id {node_id!r}: used for {SEPARATOR.join(path)!r} and "
                f"for {SEPARATOR.join(first_path)!r}{where(first_line)}; "
                "ids must be unique",
                source=source,
                line=line,
            )
        by_id[node_id] = (path, line)
        by_path[path] = (node_id, line)

    if not implicit_parents:
        for node_id, path, line in entries:
            if len(path) > 1 and path[:-1] not in by_path:
                raise TaxonomyError(
                    f"unknown parent {SEPARATOR.join(path[:-1])!r} of category "
                    f"{node_id!r} ({SEPARATOR.join(path)}); define the parent "
                    "category too",
                    source=source,
                    line=line,
                )

    placed: dict[CategoryPath, Node] = {}
    nodes: list[Node] = []

    def place(node_id: str, path: CategoryPath) -> None:
        parent = placed[path[:-1]] if len(path) > 1 else None
        node = Node(node_id, path[-1], path, parent.id if parent else None, len(path))
        placed[path] = node
        nodes.append(node)

    for node_id, path, line in entries:
        if path in placed:
            continue
        if len(path) == 1 or path[:-1] in placed:  # the common, parent-first case
            place(node_id, path)
            continue
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            if prefix in placed:
                continue
            if prefix not in by_path:  # only reachable with implicit_parents
                implicit_id = SEPARATOR.join(prefix)
                if implicit_id in by_id:
                    raise TaxonomyError(
                        f"category {implicit_id!r} (parent of {SEPARATOR.join(path)!r}) is not "
                        f"listed, and its default id {implicit_id!r} is already the id of "
                        f"{SEPARATOR.join(by_id[implicit_id][0])!r}; list the parent with its own "
                        "id",
                        source=source,
                        line=line,
                    )
                by_path[prefix] = (implicit_id, line)
                by_id[implicit_id] = (prefix, line)
            place(by_path[prefix][0], prefix)
    taxonomy = Taxonomy(nodes)
    taxonomy.source = source
    taxonomy._lines = {node_id: line for node_id, (_, line) in by_id.items() if line is not None}
    return taxonomy

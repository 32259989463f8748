"""The category tree of a store: paths, the immutable :class:`Taxonomy`, and its parsers.

A category is a path of names (``("Fruit", "Apple", "Granny-Smith")``, text form
``"Fruit > Apple > Granny-Smith"``). The tree has variable depth and every node, not only a leaf,
can be a label. Sources: path lines, the Google product taxonomy (``ID - A > B``), CSV
(``id,path`` or ``id,parent_id,name``) and a folder tree whose directories are the categories.

Node order (the row order of every index map) is the order of first appearance in the input,
except that a parent always comes before its children: a node whose parent is defined later in
the input (or only implied by its path) pulls that parent, and its missing ancestors, in front
of itself. :meth:`Taxonomy.extended` keeps existing rows and appends new ones.

Standard library only: training and inference build their tensors from the plain index maps.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from catalog_ai.db.limits import MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS
from catalog_ai.errors import TaxonomyError
from catalog_ai.photos.types import PHOTO_SUFFIXES

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PATH_CHARS",
    "SEPARATOR",
    "CategoryPath",
    "FolderScan",
    "Node",
    "Taxonomy",
    "check_node",
    "describe_skipped",
    "format_path",
    "from_folder",
    "labelled_files",
    "load_taxonomy",
    "parse_csv",
    "parse_google",
    "parse_path",
    "parse_path_lines",
    "scan_folder",
]

SEPARATOR = " > "
IMAGE_SUFFIXES = PHOTO_SUFFIXES  # the one list of photo types (catalog_ai.photos.types)
FORMATS = ("auto", "paths", "google", "csv", "folder")

CategoryPath = tuple[str, ...]
PathInput = str | Sequence[str]

_GOOGLE_LINE = re.compile(r"^(\d+)\s*-\s*(.*)$")
_GOOGLE_SNIFF = re.compile(r"^\d+ - ")

# --------------------------------------------------------------------------------------------
# The contract every stored category meets, on every database.
#
# Lengths: the catalog's VARCHAR columns (MAX_NAME_CHARS, MAX_PATH_CHARS, MAX_ID_CHARS from
# catalog_ai.db.limits, the one source of truth), counted in code points after normalisation.
#
# Characters: control characters (C0 and C1, NUL included: PostgreSQL cannot store it), line and
# paragraph separators, surrogates, and invisible format characters (bidi overrides and isolates
# such as U+202E, zero-width spaces, soft hyphens, BOMs) are refused in names and ids: they
# reorder or hide what a reviewer reads and drive terminals. ZWNJ and ZWJ (U+200C, U+200D) stay:
# Persian and Indic words and emoji sequences need them.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEPT_FORMAT_CHARS = frozenset("\u200c\u200d")
#
# Text read from a file or typed by a person is cleaned, never refused for how it is spaced:
# Unicode NFC (so "Café" typed on macOS, NFD, and on Linux, NFC, is one category on every
# database, whose unique indexes compare bytes), then surrounding spaces dropped and every run of
# spaces, tabs and other Unicode spaces (NBSP, U+3000, ...) collapsed into one ' '. Names given
# one by one (path tuples, folder names) are identities: they are NFC-normalised too (invisible),
# but must already be spaced canonically; a stray space there is an error, not a silent rename.
_SPACES = (
    "\t\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)  # tab, CR (of CRLF files) and every Unicode space (Zs)


def _quote(value: str, limit: int = 60) -> str:
    """A value for an error message: repr (escapes control characters), long ones shortened."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def _refused_char(text: str) -> str | None:
    if text.isprintable():  # fast path: every refused character is non-printable
        return None
    for ch in text:
        if (
            ch != "\t"
            and ch not in _KEPT_FORMAT_CHARS
            and unicodedata.category(ch) in _REFUSED_CATEGORIES
        ):
            return ch
    return None


def _char_problem(text: str, what: str) -> str | None:
    bad = _refused_char(text)
    if bad is None:
        return None
    if bad in "\n\r":
        return f"{what} {_quote(text)} contains a line break; one category per line"
    label = unicodedata.name(bad, "control character").lower()
    return (
        f"{what} {_quote(text)} contains the control character U+{ord(bad):04X} ({label}), "
        "which cannot be shown safely; remove it"
    )


def _name_problem(name: str) -> str | None:
    """What is wrong with a normalised, canonically spaced name, or None."""
    problem = _char_problem(name, "category name")
    if problem is not None:
        return problem
    if ">" in name:
        return (
            f"category name {_quote(name)} contains '>', which cannot be part of a name "
            "('>' separates levels); rename it"
        )
    if len(name) > MAX_NAME_CHARS:
        return (
            f"category name {_quote(name)} is {len(name)} characters long; the catalog "
            f"stores at most {MAX_NAME_CHARS}, shorten it"
        )
    return None


def _path_problem(path: CategoryPath) -> str | None:
    length = sum(map(len, path)) + len(SEPARATOR) * (len(path) - 1)
    if length > MAX_PATH_CHARS:
        return (
            f"category path {_quote(SEPARATOR.join(path))} is {length} characters long; the "
            f"catalog stores at most {MAX_PATH_CHARS}, shorten its names or use fewer levels"
        )
    return None


def _id_problem(node_id: str) -> str | None:
    """Ids are opaque (never normalised): no control characters, no surrounding spaces."""
    problem = _char_problem(node_id, "category id")
    if problem is not None:
        return problem
    if node_id != node_id.strip():
        return f"category id {_quote(node_id)} has leading or trailing spaces; remove them"
    if len(node_id) > MAX_ID_CHARS:
        return (
            f"category id {_quote(node_id)} is {len(node_id)} characters long; the catalog "
            f"stores at most {MAX_ID_CHARS}, use shorter ids"
        )
    return None


def _clean_name(raw: str, *, source: str | None, line: int | None) -> str:
    """A name from text: NFC, spaces collapsed (see above), then the contract checked."""
    # Checked before split(), which would eat some controls (U+001C-U+001F, U+0085).
    problem = _char_problem(raw.strip(_SPACES), "category name")
    if problem is None:
        name = " ".join(unicodedata.normalize("NFC", raw).split())
        problem = _name_problem(name) if name else "empty category name; give every category a name"
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return name


def _check_name(name: object, *, source: str | None = None, line: int | None = None) -> str:
    """A name given on its own (tuple element, folder name): NFC, but spacing must be canonical."""
    if not isinstance(name, str):
        raise TaxonomyError(f"category name must be text, got {name!r}", source=source, line=line)
    name = unicodedata.normalize("NFC", name)
    problem = _char_problem(name, "category name")
    if problem is None:
        if not name.strip(_SPACES):
            problem = "empty category name; give every category a name"
        elif name != name.strip(_SPACES):
            problem = f"category name {_quote(name)} has leading or trailing spaces; remove them"
        elif name != " ".join(name.split()):
            problem = (
                f"category name {_quote(name)} has repeated spaces, tabs or special "
                "spaces; use single spaces"
            )
        else:
            problem = _name_problem(name)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return name


def check_node(node: Node, *, source: str | None = None, line: int | None = None) -> None:
    """Raise :class:`TaxonomyError` unless the catalog can store ``node`` as it is (for trees
    built by hand with ``Taxonomy(nodes)``, which skips the parsers' checks)."""
    for name in node.path:
        if _check_name(name, source=source, line=line) != name:
            raise TaxonomyError(
                f"category name {_quote(name)} is not in Unicode NFC form; "
                "build the tree with a parser or Taxonomy.from_paths",
                source=source,
                line=line,
            )
    problem = _path_problem(node.path)
    if problem is None and node.id != node.text:
        problem = _id_problem(node.id)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)


def parse_path(text: str, *, source: str | None = None, line: int | None = None) -> CategoryPath:
    """``"A > B > C"`` -> ``("A", "B", "C")``, names cleaned as described above."""
    if not isinstance(text, str):
        raise TaxonomyError(f"category path must be text, got {text!r}", source=source, line=line)
    if not text.strip():
        raise TaxonomyError("empty category path", source=source, line=line)
    if "\n" in text or "\r" in text:
        raise TaxonomyError(
            f"category path {_quote(text)} contains a line break; one path per line",
            source=source,
            line=line,
        )
    parts = text.split(">")
    if not all(part.strip(_SPACES) for part in parts):
        raise TaxonomyError(
            f"category path {_quote(text.strip())} has a blank level; write it as "
            "'Parent > Child' with a name on both sides of every '>'",
            source=source,
            line=line,
        )
    names = tuple(_clean_name(part, source=source, line=line) for part in parts)
    problem = _path_problem(names)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return names


def format_path(path: Sequence[str]) -> str:
    """``("A", "B")`` -> ``"A > B"``; raises :class:`TaxonomyError` for an invalid path."""
    if isinstance(path, str) or not path:
        raise TaxonomyError(f"a category path is a non-empty tuple of names, got {path!r}")
    return SEPARATOR.join(_check_name(name) for name in path)


def _as_path(
    value: PathInput, *, source: str | None = None, line: int | None = None
) -> CategoryPath:
    if isinstance(value, str):
        return parse_path(value, source=source, line=line)
    if not isinstance(value, Sequence) or not value:
        raise TaxonomyError(
            f"a category path is text or a non-empty tuple of names, got {value!r}",
            source=source,
            line=line,
        )
    path = tuple(_check_name(name, source=source, line=line) for name in value)
    problem = _path_problem(path)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return path


# --------------------------------------------------------------------------------------------
# Data model


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
            path = _as_path(value, source="<paths>", line=i + 1)
            entries.append((ids[i] if ids is not None else SEPARATOR.join(path), path, i + 1))
        return _build(entries, source="<paths>", implicit_parents=True)

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
                (item["id"], _as_path(item.get("path"), source="<dict>", line=i + 1), i + 1)
            )
        return _build(entries, source="<dict>", implicit_parents=False)

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
            path = _as_path(value, source="<extended>", line=i + 1)
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
        return _build(entries, source="<extended>", implicit_parents=True)

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
                f"unknown category id {node_id!r}" + _suggest(str(node_id), list(self._by_id))
            ) from None

    def find(self, path_or_text: PathInput) -> Node | None:
        """The node at this path, or None (also for text that is not a valid path)."""
        try:
            path = _as_path(path_or_text)
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
                f"unknown category {text!r}" + _suggest(text, [n.text for n in self._nodes])
            )
        return found

    def parent(self, node_id: str) -> Node | None:
        parent_id = self.node(node_id).parent_id
        return None if parent_id is None else self._by_id[parent_id]

    def children(self, node_id: str) -> tuple[Node, ...]:
        return self._children[self.node(node_id).id]

    def is_leaf(self, node_id: str) -> bool:
        return not self.children(node_id)

    def ancestors(self, node_id: str, include_self: bool = False) -> tuple[Node, ...]:
        """Ancestors root first (and the node itself last with ``include_self``)."""
        node = self.node(node_id)
        chain = [self._by_path[node.path[:d]] for d in range(1, node.depth)]
        return (*chain, node) if include_self else tuple(chain)

    def descendants(self, node_id: str) -> tuple[Node, ...]:
        """Every node below, depth first, children in node order."""
        out: list[Node] = []
        stack = list(reversed(self.children(node_id)))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self._children[node.id]))
        return tuple(out)

    @property
    def roots(self) -> tuple[Node, ...]:
        return tuple(n for n in self._nodes if n.parent_id is None)

    @property
    def leaves(self) -> tuple[Node, ...]:
        return tuple(n for n in self._nodes if not self._children[n.id])

    @property
    def max_depth(self) -> int:
        return max((n.depth for n in self._nodes), default=0)

    def nodes_at_depth(self, depth: int) -> tuple[Node, ...]:
        return tuple(n for n in self._nodes if n.depth == depth)

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
    def leaf_index(self) -> dict[str, int]:
        return {leaf_id: i for i, leaf_id in enumerate(self._leaf_ids)}

    def ancestor_rows(self, node_id: str) -> list[int]:
        """Rows of the node's ancestors and the node itself, root first."""
        return list(self._chains[self.row(node_id)])

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
        canonical = sorted((n.path, n.id) for n in self._nodes)
        blob = json.dumps(
            [[node_id, list(path)] for path, node_id in canonical],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=3)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "; no similar category exists (check the spelling and the ' > ' separators)"


def _build(
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
        problem = _path_problem(path)
        if problem is None and node_id != SEPARATOR.join(path):
            problem = _id_problem(node_id)
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


# --------------------------------------------------------------------------------------------
# Text parsers


def _lines(text_or_lines: str | Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for text or an iterable of lines; drops a BOM."""
    lines = text_or_lines.split("\n") if isinstance(text_or_lines, str) else text_or_lines
    for number, line in enumerate(lines, start=1):
        # Only spaces (and the '\r' of CRLF files) are trimmed: other control characters reach
        # the name checks and are refused there, wherever they are on the line.
        yield number, (line.lstrip("\ufeff") if number == 1 else line).strip(_SPACES)


def _require_nodes(entries: list, source: str, what: str) -> None:
    if not entries:
        raise TaxonomyError(f"no categories found; expected {what}", source=source)


def parse_path_lines(lines: str | Iterable[str], source: str = "<string>") -> Taxonomy:
    """One ``A > B > C`` path per line; blank and ``#`` lines skipped; id = the path text."""
    entries = []
    for number, line in _lines(lines):
        if not line or line.startswith("#"):
            continue
        path = parse_path(line, source=source, line=number)
        entries.append((SEPARATOR.join(path), path, number))
    _require_nodes(entries, source, "one 'Parent > Child' path per line")
    return _build(entries, source=source, implicit_parents=True)


def parse_google(lines: str | Iterable[str], source: str = "<string>") -> Taxonomy:
    """Google product taxonomy with ids (``3237 - Animals & Pet Supplies > Live Animals``).

    Every parent must be defined somewhere in the file (in any order); id = the number.
    """
    entries = []
    for number, line in _lines(lines):
        if not line or line.startswith("#"):
            continue
        problem = _char_problem(line, "line")  # before the regex, whose \s would eat some
        if problem is not None:
            raise TaxonomyError(problem, source=source, line=number)
        match = _GOOGLE_LINE.match(line)
        if match is None:
            raise TaxonomyError(
                f"expected 'ID - Category > Subcategory' (like '1 - Animals & Pet "
                f"Supplies'), got {line!r}",
                source=source,
                line=number,
            )
        path = parse_path(match.group(2), source=source, line=number)
        entries.append((match.group(1), path, number))
    _require_nodes(entries, source, "lines like '1 - Animals & Pet Supplies'")
    return _build(entries, source=source, implicit_parents=False)


def parse_csv(file: str | Iterable[str], source: str = "<string>") -> Taxonomy:
    """CSV with a header: ``id,path`` or ``id,parent_id,name`` (also ``parent``).

    Header names are case-insensitive and extra columns are ignored; ``path`` wins if both
    forms are present. In the path form missing ancestors are created with the path text as id;
    in the parent form an empty parent is a top-level category.
    """
    text = (
        file
        if isinstance(file, str)
        else "".join(line if line.endswith("\n") else line + "\n" for line in file)
    )
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], reader.line_num
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise TaxonomyError(f"malformed CSV: {exc}", source=source, line=reader.line_num) from None
    if header is None:
        raise TaxonomyError(
            "empty CSV; expected a header 'id,path' or 'id,parent_id,name'", source=source
        )
    parent_col = "parent_id" if "parent_id" in header else "parent"
    columns: tuple[str, ...]
    if "id" in header and "path" in header:
        columns = ("id", "path")
    elif "id" in header and "name" in header and parent_col in header:
        columns = ("id", parent_col, "name")
    else:
        raise TaxonomyError(
            f"CSV header {','.join(header)!r} names neither 'id,path' nor "
            "'id,parent_id,name'; add one of these header rows",
            source=source,
            line=header_line,
        )
    index = [header.index(c) for c in columns]
    records = []
    for number, cells in rows:
        if len(cells) != len(header):
            raise TaxonomyError(
                f"row has {len(cells)} cells but the header has {len(header)}; "
                'quote values that contain commas ("Food, Drinks")',
                source=source,
                line=number,
            )
        # Ids are trimmed of spaces only; names and paths are cleaned by their parsers.
        values = [
            cells[i] if columns[i_col] in ("path", "name") else cells[i].strip(_SPACES)
            for i_col, i in enumerate(index)
        ]
        if not values[0]:
            raise TaxonomyError("empty id; every row needs an id", source=source, line=number)
        records.append((number, values))
    _require_nodes(records, source, "one category per row below the header")

    if len(columns) == 2:
        entries = [(v[0], parse_path(v[1], source=source, line=n), n) for n, v in records]
        return _build(entries, source=source, implicit_parents=True)
    return _build(_resolve_parents(records, source), source=source, implicit_parents=False)


def _resolve_parents(
    records: list[tuple[int, list[str]]],
    source: str,
) -> list[tuple[str, CategoryPath, int]]:
    """Turn ``id, parent_id, name`` rows into (id, path, line), rejecting bad links."""
    rows: dict[str, tuple[int, str, str]] = {}
    for number, (node_id, parent_id, name) in records:
        if node_id in rows:
            raise TaxonomyError(
                f"duplicate id {node_id!r} (first on line {rows[node_id][0]}); ids must be unique",
                source=source,
                line=number,
            )
        rows[node_id] = (number, parent_id, _clean_name(name, source=source, line=number))
    for node_id, (number, parent_id, _) in rows.items():
        if parent_id == node_id:
            raise TaxonomyError(
                f"category {node_id!r} is its own parent; give it another parent "
                "or leave parent_id empty",
                source=source,
                line=number,
            )
        if parent_id and parent_id not in rows:
            raise TaxonomyError(
                f"unknown parent {parent_id!r} of category {node_id!r}"
                + _suggest(parent_id, list(rows)),
                source=source,
                line=number,
            )

    paths: dict[str, CategoryPath] = {}
    for node_id in rows:
        chain: list[str] = []
        current = node_id
        while current not in paths:
            if current in chain:
                cycle = [*chain[chain.index(current) :], current]
                first = min(rows[c][0] for c in cycle)
                raise TaxonomyError(
                    "parent links form a cycle: "
                    + " -> ".join(cycle)
                    + "; one of them must have another parent or none",
                    source=source,
                    line=first,
                )
            chain.append(current)
            parent_id = rows[current][1]
            if not parent_id:
                paths[current] = (rows[current][2],)
                chain.pop()
                break
            current = parent_id
        for child in reversed(chain):  # resolved top-down: parent path now known
            paths[child] = paths[rows[child][1]] + (rows[child][2],)
    return [(node_id, paths[node_id], rows[node_id][0]) for node_id in rows]


# --------------------------------------------------------------------------------------------
# Folder trees


#: Why :func:`scan_folder` left a file out (``FolderScan.skipped``).
SKIP_ROOT = "in the root folder (no category)"
SKIP_HIDDEN_FOLDER = "in hidden folders"
SKIP_HIDDEN_FILE = "hidden files"
SKIP_NOT_PHOTO = "not a photo type"
SKIP_OUTSIDE = "links leading outside the folder (not followed)"
SKIP_SPECIAL = "not regular files (broken links, devices)"
_SKIP_ORDER = (
    SKIP_ROOT,
    SKIP_HIDDEN_FOLDER,
    SKIP_HIDDEN_FILE,
    SKIP_NOT_PHOTO,
    SKIP_OUTSIDE,
    SKIP_SPECIAL,
)


@dataclass(frozen=True, slots=True)
class FolderScan:
    """A folder tree read as categories: the tree, labelled image files, images in the root
    folder itself (which have no category), and every file left out with the reason
    (``SKIP_*``), so an import can say what it did not take."""

    taxonomy: Taxonomy
    files: list[tuple[Path, CategoryPath]]
    unlabelled: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skipped_summary(self) -> str:
        """``"skipped 3 files: 1 in the root folder (no category), 2 in hidden folders"``, or
        ``""`` when nothing was skipped."""
        return describe_skipped(self.skipped)


def describe_skipped(skipped: Sequence[tuple[Path | str, str]]) -> str:
    if not skipped:
        return ""
    counts: dict[str, int] = {}
    for _, reason in skipped:
        counts[reason] = counts.get(reason, 0) + 1
    parts = []
    order = {r: i for i, r in enumerate(_SKIP_ORDER)}
    for reason, n in sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order))):
        if reason == SKIP_NOT_PHOTO:
            kinds = sorted(
                {Path(f).suffix.lower() or "no suffix" for f, r in skipped if r == reason}
            )
            shown = ", ".join(kinds[:6]) + (", ..." if len(kinds) > 6 else "")
            parts.append(f"{n} {reason} ({shown})")
        else:
            parts.append(f"{n} {reason}")
    total = len(skipped)
    return f"skipped {total} file{'s' if total != 1 else ''}: " + ", ".join(parts)


def _skip(name: str, ignore_hidden: bool) -> bool:
    return name == "__pycache__" or (ignore_hidden and name.startswith("."))


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _photos_below(folder: str, wanted: tuple[str, ...]) -> list[Path]:
    """Photo files anywhere below a skipped folder (links not followed), to count them."""
    found: list[Path] = []
    for base, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(Path(base) / n for n in sorted(names) if n.lower().endswith(wanted))
    return found


def scan_folder(
    root: str | os.PathLike[str],
    *,
    ignore_hidden: bool = True,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> FolderScan:
    """Every directory below ``root`` is a category (id = path text), walked in sorted order.

    Hidden entries (names starting with '.', e.g. macOS '._x.jpg') and ``__pycache__`` are
    skipped. ``unlabelled`` lists image files directly in ``root``. The walk never leaves
    ``root``: a link (to a folder or a file) whose target resolves outside it is not followed;
    a link to a place inside the tree is followed (a link back to a parent is an error). Every
    file left out is in ``skipped`` with its reason: photos in the root folder or in hidden
    folders, hidden files, files of other types, links leading out, broken links.
    """
    root = Path(root)
    fix = "pass the folder whose subfolders are the categories (e.g. data/train)"
    if not root.exists():
        raise TaxonomyError(f"folder not found; {fix}", source=str(root))
    if not root.is_dir():
        raise TaxonomyError(f"is a file, not a folder; {fix}", source=str(root))
    wanted = tuple(s.lower() for s in suffixes)
    root_real = os.path.realpath(root)
    paths: list[CategoryPath] = []
    files: list[tuple[Path, CategoryPath]] = []
    unlabelled: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    # (folder, category path, real paths above it): the last guards against symlink loops.
    stack: list[tuple[Path, CategoryPath, frozenset[str]]] = [(root, (), frozenset())]
    while stack:
        folder, category, seen = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            raise TaxonomyError(
                "folder links back to one of its parents (symlink loop); remove the link",
                source=str(folder),
            )
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise TaxonomyError(f"cannot read folder: {exc.strerror}", source=str(folder)) from None
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink() and not _inside(os.path.realpath(entry.path), root_real):
                # A link to a system folder once added 142 categories: never leave the root.
                skipped.append((path, SKIP_OUTSIDE))
                continue
            if _skip(entry.name, ignore_hidden):
                if entry.is_dir():
                    below = _photos_below(entry.path, wanted)
                    skipped.extend((f, SKIP_HIDDEN_FOLDER) for f in below)
                else:
                    skipped.append((path, SKIP_HIDDEN_FILE))
                continue
            if entry.is_dir():
                try:
                    name = _check_name(entry.name)
                except TaxonomyError as exc:
                    raise TaxonomyError(f"{exc.reason} (folder name)", source=entry.path) from None
                subfolders.append((path, (*category, name), seen | {real}))
            elif not entry.is_file():
                skipped.append((path, SKIP_SPECIAL))
            elif not entry.name.lower().endswith(wanted):
                skipped.append((path, SKIP_NOT_PHOTO))
            elif category:
                files.append((path, category))
            else:
                unlabelled.append(path)
                skipped.append((path, SKIP_ROOT))
        if category:
            paths.append(category)
        stack.extend(reversed(subfolders))  # depth first, sorted
    if not paths:
        raise TaxonomyError(f"folder has no subfolders, so no categories; {fix}", source=str(root))
    taxonomy = _build(
        [(SEPARATOR.join(p), p, None) for p in paths], source=str(root), implicit_parents=False
    )
    return FolderScan(taxonomy, sorted(files), sorted(unlabelled), sorted(skipped))


def from_folder(root: str | os.PathLike[str], *, ignore_hidden: bool = True) -> Taxonomy:
    return scan_folder(root, ignore_hidden=ignore_hidden).taxonomy


def labelled_files(
    root: str | os.PathLike[str],
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> list[tuple[Path, CategoryPath]]:
    """``(file, category path)`` for every image inside a category folder, sorted by file."""
    return scan_folder(root, suffixes=suffixes).files


# --------------------------------------------------------------------------------------------
# Files


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaxonomyError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TaxonomyError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8",
            source=str(path),
            line=line,
        ) from None


def load_taxonomy(path: str | os.PathLike[str], format: str = "auto") -> Taxonomy:
    """Read a taxonomy file or folder. ``auto``: a directory is a folder tree, ``*.csv`` is CSV,
    otherwise a first data line like ``123 - Name`` means Google format, else path lines."""
    if format not in FORMATS:
        raise TaxonomyError(f"unknown taxonomy format {format!r}; use one of {', '.join(FORMATS)}")
    path = Path(path)
    if format == "folder" or (format == "auto" and path.is_dir()):
        return from_folder(path)
    if not path.exists():
        raise TaxonomyError("file not found; check the path", source=str(path))
    if path.is_dir():
        raise TaxonomyError(
            f"is a folder; use format 'folder' or 'auto', not {format!r}", source=str(path)
        )
    text = _read_text(path)
    if format == "auto":
        if path.suffix.lower() == ".csv":
            format = "csv"
        else:
            first = next(
                (line for _, line in _lines(text) if line and not line.startswith("#")), ""
            )
            format = "google" if _GOOGLE_SNIFF.match(first) else "paths"
    parser = {"paths": parse_path_lines, "google": parse_google, "csv": parse_csv}[format]
    return parser(text, source=str(path))

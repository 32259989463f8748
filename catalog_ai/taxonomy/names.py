"""The name and path contract of a category: what a name may hold, how paths are read and written.

A category is a path of names (``("Fruit", "Apple", "Granny-Smith")``, text form
``"Fruit > Apple > Granny-Smith"``). Every parser, and :func:`check_node` for trees built by hand,
applies the rules below, so every stored category meets them on every database.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from catalog_ai.db.limits import MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS
from catalog_ai.errors import TaxonomyError

if TYPE_CHECKING:
    from catalog_ai.taxonomy.tree import Node

# The package re-exports the limits, SEPARATOR, CategoryPath, check_node, format_path and
# parse_path; the rest serve the taxonomy's own modules.
__all__ = [
    "MAX_ID_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PATH_CHARS",
    "SEPARATOR",
    "SPACES",
    "CategoryPath",
    "PathInput",
    "as_path",
    "char_problem",
    "check_name",
    "check_node",
    "clean_name",
    "format_path",
    "id_problem",
    "parse_path",
    "path_problem",
]

SEPARATOR = " > "

CategoryPath = tuple[str, ...]
PathInput = str | Sequence[str]

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
SPACES = (
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


def char_problem(text: str, what: str) -> str | None:
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
    problem = char_problem(name, "category name")
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


def path_problem(path: CategoryPath) -> str | None:
    length = sum(map(len, path)) + len(SEPARATOR) * (len(path) - 1)
    if length > MAX_PATH_CHARS:
        return (
            f"category path {_quote(SEPARATOR.join(path))} is {length} characters long; the "
            f"catalog stores at most {MAX_PATH_CHARS}, shorten its names or use fewer levels"
        )
    return None


def id_problem(node_id: str) -> str | None:
    """Ids are opaque (never normalised): no control characters, no surrounding spaces."""
    problem = char_problem(node_id, "category id")
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


def clean_name(raw: str, *, source: str | None, line: int | None) -> str:
    """A name from text: NFC, spaces collapsed (see above), then the contract checked."""
    # Checked before split(), which would eat some controls (U+001C-U+001F, U+0085).
    problem = char_problem(raw.strip(SPACES), "category name")
    if problem is None:
        name = " ".join(unicodedata.normalize("NFC", raw).split())
        problem = _name_problem(name) if name else "empty category name; give every category a name"
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return name


def check_name(name: object, *, source: str | None = None, line: int | None = None) -> str:
    """A name given on its own (tuple element, folder name): NFC, but spacing must be canonical."""
    if not isinstance(name, str):
        raise TaxonomyError(f"category name must be text, got {name!r}", source=source, line=line)
    name = unicodedata.normalize("NFC", name)
    problem = char_problem(name, "category name")
    if problem is None:
        if not name.strip(SPACES):
            problem = "empty category name; give every category a name"
        elif name != name.strip(SPACES):
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


@functools.lru_cache(maxsize=65_536)
def _canonical(name: str) -> bool:
    """Whether ``name`` passes :func:`check_name` unchanged. Cached: a tree repeats every
    ancestor's name in each descendant's path (a 10,000-category Shopify tree: 50,000 names,
    10,000 distinct; 0.3 s of its import before the cache)."""
    try:
        return check_name(name) == name
    except TaxonomyError:
        return False


def check_node(node: Node, *, source: str | None = None, line: int | None = None) -> None:
    """Raise :class:`TaxonomyError` unless the catalog can store ``node`` as it is (for trees
    built by hand with ``Taxonomy(nodes)``, which skips the parsers' checks)."""
    for name in node.path:
        if isinstance(name, str) and _canonical(name):
            continue
        if check_name(name, source=source, line=line) != name:
            raise TaxonomyError(
                f"category name {_quote(name)} is not in Unicode NFC form; "
                "build the tree with a parser or Taxonomy.from_paths",
                source=source,
                line=line,
            )
    problem = path_problem(node.path)
    if problem is None and node.id != node.text:
        problem = id_problem(node.id)
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
    if not all(part.strip(SPACES) for part in parts):
        raise TaxonomyError(
            f"category path {_quote(text.strip())} has a blank level; write it as "
            "'Parent > Child' with a name on both sides of every '>'",
            source=source,
            line=line,
        )
    names = tuple(clean_name(part, source=source, line=line) for part in parts)
    problem = path_problem(names)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return names


def format_path(path: Sequence[str]) -> str:
    """``("A", "B")`` -> ``"A > B"``; raises :class:`TaxonomyError` for an invalid path."""
    if isinstance(path, str) or not path:
        raise TaxonomyError(f"a category path is a non-empty tuple of names, got {path!r}")
    return SEPARATOR.join(check_name(name) for name in path)


def as_path(
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
    path = tuple(check_name(name, source=source, line=line) for name in value)
    problem = path_problem(path)
    if problem is not None:
        raise TaxonomyError(problem, source=source, line=line)
    return path

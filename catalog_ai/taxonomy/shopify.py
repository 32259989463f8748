"""The Shopify Standard Product Taxonomy: its published text file and its JSON.

Shopify publishes the taxonomy (github.com/Shopify/product-taxonomy, ``dist/<locale>/``) as

- ``categories.txt``: ``#`` comment lines, then one category per line, its GID padded with
  spaces, ``:``, and its full path::

      gid://shopify/TaxonomyCategory/aa-1-1          : Apparel & Accessories > Clothing > Activewear

- ``categories.json``: ``{"version": "2024-07", "verticals": [{"name", "prefix", "categories":
  [{"id", "level", "name", "full_name", "parent_id", "attributes", "children", "ancestors"},
  ...]}]}``, every category of a vertical in its flat ``categories`` list (``children`` and
  ``ancestors`` are references ``{"id", "name"}``), ``level`` 0 for a vertical's root.

Both list every parent, so a category whose parent is missing is an error (as in the Google
format), not a parent made up with a path-text id: a made-up parent would have no GID to export.
A category's id (the catalog's ``external_id``) is its whole GID, which is what Shopify's product
import and its Admin API take.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy.names import (
    SEPARATOR,
    SPACES,
    CategoryPath,
    char_problem,
    clean_name,
    parse_path,
    path_problem,
)
from catalog_ai.taxonomy.tree import Taxonomy, build_taxonomy

__all__ = [
    "SHOPIFY_GID_PREFIX",
    "is_shopify_gid",
    "looks_like_shopify_json",
    "looks_like_shopify_text",
    "parse_shopify",
    "parse_shopify_json",
    "parse_shopify_text",
]

SHOPIFY_GID_PREFIX = "gid://shopify/TaxonomyCategory/"
# The id after the prefix is Shopify's short id (``aa-1-1``): letters, digits and dashes. The
# padding before ':' is any run of spaces; the path after it is cleaned by parse_path.
_LINE = re.compile(r"^(gid://shopify/TaxonomyCategory/[A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$")
_OTHER_GID = re.compile(r"^gid://shopify/(TaxonomyAttribute|TaxonomyValue)/")
_EXAMPLE = "gid://shopify/TaxonomyCategory/aa-1 : Apparel & Accessories > Clothing"


def is_shopify_gid(value: str | None) -> bool:
    """Whether ``value`` (a category's external id) is a Shopify taxonomy category GID."""
    return bool(value) and str(value).startswith(SHOPIFY_GID_PREFIX)


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without surrounding spaces), skipping blanks and comments."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = (line.lstrip("\ufeff") if number == 1 else line).strip(SPACES)
        if line and not line.startswith("#"):
            yield number, line


def looks_like_shopify_text(text: str) -> bool:
    """The first data line starts with a Shopify category GID."""
    first = next((line for _, line in _data_lines(text)), "")
    return first.startswith(SHOPIFY_GID_PREFIX)


def looks_like_shopify_json(text: str) -> bool:
    """A JSON object (the only JSON taxonomy this system reads is Shopify's)."""
    return text.lstrip("\ufeff \t\r\n").startswith("{")


def parse_shopify(text: str, source: str = "<string>") -> Taxonomy:
    """Shopify's ``categories.txt`` or ``categories.json``, told apart by their first character."""
    if looks_like_shopify_json(text):
        return parse_shopify_json(text, source=source)
    return parse_shopify_text(text, source=source)


def parse_shopify_text(lines: str | Iterable[str], source: str = "<string>") -> Taxonomy:
    """``gid://shopify/TaxonomyCategory/ID : A > B > C`` lines; ``#`` lines and blanks skipped."""
    text = lines if isinstance(lines, str) else "\n".join(line.rstrip("\n") for line in lines)
    entries: list[tuple[str, CategoryPath, int | None]] = []
    # Each line repeats its parent's path, which the line before it (usually) parsed already:
    # the parent's text is looked up instead of cleaned again (half the parse of a 10,000-line
    # file). A prefix never seen is parsed in full, with the same checks and messages.
    parsed: dict[str, CategoryPath] = {}
    for number, line in _data_lines(text):
        problem = char_problem(line, "line")  # before the regex, which would stop at them
        if problem is not None:
            raise TaxonomyError(problem, source=source, line=number)
        match = _LINE.match(line)
        if match is None:
            raise TaxonomyError(_bad_line(line), source=source, line=number)
        path = _path(match.group(2), parsed, source=source, line=number)
        entries.append((match.group(1), path, number))
    if not entries:
        raise TaxonomyError(
            f"no categories found; expected lines like {_EXAMPLE!r} (Shopify's categories.txt)",
            source=source,
        )
    return build_taxonomy(entries, source=source, implicit_parents=False)


def _path(
    raw: str, parsed: dict[str, CategoryPath], *, source: str | None, line: int | None
) -> CategoryPath:
    """``parse_path(raw)``, its parent's part looked up in ``parsed`` (then ``raw`` added)."""
    head, sep, last = raw.rpartition(">")
    known = parsed.get(head.strip(SPACES)) if sep else None
    if known is not None and last.strip(SPACES):
        path = (*known, clean_name(last, source=source, line=line))
        problem = path_problem(path)
        if problem is not None:
            raise TaxonomyError(problem, source=source, line=line)
    else:
        path = parse_path(raw, source=source, line=line)
    parsed[raw.strip(SPACES)] = path
    return path


def _bad_line(line: str) -> str:
    shown = line if len(line) <= 80 else line[:80] + "..."
    other = _OTHER_GID.match(line)
    if other is not None:
        return (
            f"{other.group(1)} is not a category ({shown!r}); import Shopify's categories.txt "
            "or categories.json, not the attributes or values file"
        )
    if line.startswith(SHOPIFY_GID_PREFIX) and ":" not in line[len("gid:") :]:
        return f"no ' : ' between the GID and the category path in {shown!r}; write {_EXAMPLE!r}"
    return (
        f"expected 'GID : Parent > Category' like {_EXAMPLE!r}, got {shown!r}; every line of a "
        "Shopify taxonomy needs its gid://shopify/TaxonomyCategory/ id"
    )


def parse_shopify_json(text: str, source: str = "<string>") -> Taxonomy:
    """Shopify's ``categories.json`` (or ``taxonomy.json``, whose ``verticals`` are the same)."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise TaxonomyError(
            f"not valid JSON ({exc.msg}, column {exc.colno}); use Shopify's categories.json "
            "as published, or its categories.txt",
            source=source,
            line=exc.lineno,
        ) from None
    verticals = data.get("verticals") if isinstance(data, Mapping) else None
    if not isinstance(verticals, list):
        raise TaxonomyError(
            "not a Shopify taxonomy: expected a JSON object with a 'verticals' list, as in "
            "Shopify's dist/en/categories.json",
            source=source,
        )
    entries: list[tuple[str, CategoryPath, int | None]] = []
    declared: dict[str, tuple[str | None, str]] = {}  # id -> (parent_id, where)
    seen: dict[str, str] = {}  # id -> full_name, to skip a category given twice identically
    parsed: dict[str, CategoryPath] = {}
    for v, vertical in enumerate(verticals):
        where_v = f"verticals[{v}]"
        categories = vertical.get("categories") if isinstance(vertical, Mapping) else None
        if not isinstance(categories, list):
            raise TaxonomyError(
                f"{where_v} has no 'categories' list; use Shopify's categories.json as published",
                source=source,
            )
        for where, item in _walk(categories, f"{where_v}.categories"):
            gid, path, parent_id = _category(item, where, source, parsed)
            if seen.get(gid) == SEPARATOR.join(path):
                continue  # the same category nested again under its parent's children
            seen[gid] = SEPARATOR.join(path)
            declared[gid] = (parent_id, where)
            entries.append((gid, path, None))
    if not entries:
        raise TaxonomyError(
            "no categories found; expected verticals with categories (Shopify's categories.json)",
            source=source,
        )
    tree = build_taxonomy(entries, source=source, implicit_parents=False)
    for node in tree:  # the parent a category names must be the one its full name says
        parent_id, where = declared[node.id]
        if parent_id != node.parent_id:
            raise TaxonomyError(
                f"{where}: category {node.id!r} ({node.text}) gives parent_id {parent_id!r}, "
                f"but its full_name puts it under {node.parent_id!r}; fix one of the two",
                source=source,
            )
    return tree


def _walk(items: list[Any], where: str) -> Iterator[tuple[str, Any]]:
    """Each category of a list, and the full categories nested in its ``children`` (older
    exports nested them; the published file lists children as ``{"id", "name"}`` references)."""
    for i, item in enumerate(items):
        yield f"{where}[{i}]", item
        children = item.get("children") if isinstance(item, Mapping) else None
        if isinstance(children, list) and any(
            isinstance(c, Mapping) and "full_name" in c for c in children
        ):
            yield from _walk(
                [c for c in children if isinstance(c, Mapping) and "full_name" in c],
                f"{where}[{i}].children",
            )


def _category(
    item: Any, where: str, source: str, parsed: dict[str, CategoryPath]
) -> tuple[str, CategoryPath, str | None]:
    if not isinstance(item, Mapping):
        raise TaxonomyError(
            f"{where} is {type(item).__name__}, not a category object; "
            "use Shopify's categories.json as published",
            source=source,
        )
    gid, full_name, parent_id = item.get("id"), item.get("full_name"), item.get("parent_id")
    if not isinstance(gid, str) or not gid.startswith(SHOPIFY_GID_PREFIX):
        raise TaxonomyError(
            f"{where} has id {gid!r}; every category needs a '{SHOPIFY_GID_PREFIX}...' id",
            source=source,
        )
    if not isinstance(full_name, str):
        raise TaxonomyError(
            f"{where} ({gid}) has no 'full_name' text; it holds the path 'Parent > Category'",
            source=source,
        )
    if parent_id is not None and not isinstance(parent_id, str):
        raise TaxonomyError(
            f"{where} ({gid}) has parent_id {parent_id!r}; give a GID or null", source=source
        )
    try:
        path = _path(full_name, parsed, source=None, line=None)
    except TaxonomyError as exc:
        raise TaxonomyError(f"{where} ({gid}): {exc.reason}", source=source) from None
    level = item.get("level")
    if level is not None and level != len(path) - 1:
        raise TaxonomyError(
            f"{where} ({gid}) has level {level!r} but its full_name {full_name!r} has "
            f"{len(path)} levels (level 0 is a top category); fix one of the two",
            source=source,
        )
    return gid, path, parent_id or None

"""Taxonomy files: path lines, the Google product taxonomy, CSV, and :func:`load_taxonomy`.

Sources: path lines (``A > B > C``), the Google product taxonomy (``ID - A > B``), CSV
(``id,path`` or ``id,parent_id,name``), the Shopify Standard Product Taxonomy (its text and JSON,
:mod:`catalog_ai.taxonomy.shopify`) and a folder tree whose directories are the categories
(:mod:`catalog_ai.taxonomy.folders`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from catalog_ai.errors import TaxonomyError
from catalog_ai.taxonomy.folders import from_folder
from catalog_ai.taxonomy.names import (
    SEPARATOR,
    SPACES,
    CategoryPath,
    char_problem,
    clean_name,
    parse_path,
)
from catalog_ai.taxonomy.shopify import (
    looks_like_shopify_json,
    looks_like_shopify_text,
    parse_shopify,
)
from catalog_ai.taxonomy.tree import Taxonomy, build_taxonomy, suggest

__all__ = ["FORMATS", "load_taxonomy", "parse_csv", "parse_google", "parse_path_lines"]

FORMATS = ("auto", "paths", "google", "csv", "shopify", "folder")

_GOOGLE_LINE = re.compile(r"^(\d+)\s*-\s*(.*)$")
_GOOGLE_SNIFF = re.compile(r"^\d+ - ")


def _lines(text_or_lines: str | Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for text or an iterable of lines; drops a BOM."""
    lines = text_or_lines.split("\n") if isinstance(text_or_lines, str) else text_or_lines
    for number, line in enumerate(lines, start=1):
        # Only spaces (and the '\r' of CRLF files) are trimmed: other control characters reach
        # the name checks and are refused there, wherever they are on the line.
        yield number, (line.lstrip("\ufeff") if number == 1 else line).strip(SPACES)


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
    return build_taxonomy(entries, source=source, implicit_parents=True)


def parse_google(lines: str | Iterable[str], source: str = "<string>") -> Taxonomy:
    """Google product taxonomy with ids (``3237 - Animals & Pet Supplies > Live Animals``).

    Every parent must be defined somewhere in the file (in any order); id = the number.
    """
    entries = []
    for number, line in _lines(lines):
        if not line or line.startswith("#"):
            continue
        problem = char_problem(line, "line")  # before the regex, whose \s would eat some
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
    return build_taxonomy(entries, source=source, implicit_parents=False)


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
            cells[i] if columns[i_col] in ("path", "name") else cells[i].strip(SPACES)
            for i_col, i in enumerate(index)
        ]
        if not values[0]:
            raise TaxonomyError("empty id; every row needs an id", source=source, line=number)
        records.append((number, values))
    _require_nodes(records, source, "one category per row below the header")

    if len(columns) == 2:
        entries = [(v[0], parse_path(v[1], source=source, line=n), n) for n, v in records]
        return build_taxonomy(entries, source=source, implicit_parents=True)
    return build_taxonomy(_resolve_parents(records, source), source=source, implicit_parents=False)


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
        rows[node_id] = (number, parent_id, clean_name(name, source=source, line=number))
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
                + suggest(parent_id, list(rows)),
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
    a JSON object or a first data line ``gid://shopify/TaxonomyCategory/...`` is Shopify's, a
    first data line like ``123 - Name`` means Google format, else path lines."""
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
        elif looks_like_shopify_json(text) or looks_like_shopify_text(text):
            format = "shopify"
        else:
            first = next(
                (line for _, line in _lines(text) if line and not line.startswith("#")), ""
            )
            format = "google" if _GOOGLE_SNIFF.match(first) else "paths"
    parser = {
        "paths": parse_path_lines,
        "google": parse_google,
        "csv": parse_csv,
        "shopify": parse_shopify,
    }[format]
    return parser(text, source=str(path))

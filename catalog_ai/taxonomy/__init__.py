"""The category tree of a store: the name contract, the immutable :class:`Taxonomy`, its file
formats and folder trees.

- :mod:`~catalog_ai.taxonomy.names`: what a category name may hold; ``parse_path``/``format_path``
- :mod:`~catalog_ai.taxonomy.tree`: :class:`Node` and :class:`Taxonomy` (index maps for models)
- :mod:`~catalog_ai.taxonomy.formats`: path lines, Google, CSV; :func:`load_taxonomy`
- :mod:`~catalog_ai.taxonomy.folders`: a folder tree as categories, its labelled photos

This package re-exports their public names; its modules import each other, never this package.
"""

from __future__ import annotations

from catalog_ai.taxonomy.folders import (
    IMAGE_SUFFIXES,
    FolderScan,
    describe_skipped,
    from_folder,
    labelled_files,
    scan_folder,
)
from catalog_ai.taxonomy.formats import (
    FORMATS,
    load_taxonomy,
    parse_csv,
    parse_google,
    parse_path_lines,
)
from catalog_ai.taxonomy.names import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    SEPARATOR,
    CategoryPath,
    check_node,
    format_path,
    parse_path,
)
from catalog_ai.taxonomy.tree import Node, Taxonomy

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

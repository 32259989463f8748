"""A folder tree read as categories: every directory is a category, its photos are labelled.

:func:`scan_folder` also says what it left out and why (``SKIP_*``), so an import can report it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from catalog_ai.errors import TaxonomyError
from catalog_ai.photos.types import PHOTO_SUFFIXES
from catalog_ai.taxonomy.names import SEPARATOR, CategoryPath, check_name
from catalog_ai.taxonomy.tree import Taxonomy, build_taxonomy

__all__ = [
    "IMAGE_SUFFIXES",
    "SKIP_HIDDEN_FILE",
    "SKIP_HIDDEN_FOLDER",
    "SKIP_NOT_PHOTO",
    "SKIP_OUTSIDE",
    "SKIP_ROOT",
    "SKIP_SPECIAL",
    "FolderScan",
    "describe_skipped",
    "from_folder",
    "labelled_files",
    "scan_folder",
]

IMAGE_SUFFIXES = PHOTO_SUFFIXES  # the one list of photo types (catalog_ai.photos.types)

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
                    name = check_name(entry.name)
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
    taxonomy = build_taxonomy(
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

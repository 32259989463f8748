"""Jobs that own their transactions, as the command line and the main job run them.

``ingest_paths`` commits one chunk of files at a time (the same reasons as the folder import in
:mod:`catalog_ai.jobs.folder_import`), and each chunk's classification goes to the dispatcher
after its commit (with no broker: the in-process runner's background thread, through the same
task code).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from catalog_ai.db import unit_of_work
from catalog_ai.db.retry import run_chunk
from catalog_ai.dispatch import Dispatcher
from catalog_ai.photos.store import MediaStore
from catalog_ai.progress import progress_bar
from catalog_ai.services.ingest import FailedFile, IngestResult, ingest_files
from catalog_ai.services.requeue import RetrySummary, requeue_failed, requeue_stale
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import IMAGE_SUFFIXES

__all__ = ["IngestSummary", "expand_paths", "ingest_paths", "retry_products", "sweep_now"]

log = logging.getLogger(__name__)


@dataclass
class IngestSummary(IngestResult):
    # Files inside given folders that were not taken, with why (not a photo's suffix, hidden).
    ignored: list[tuple[str, str]] = field(default_factory=list)


def expand_paths(
    paths: Iterable[str | Path],
) -> tuple[list[Path], list[tuple[str, str]], list[Path]]:
    """Files as given, and the photo files below folders (recursively, sorted).

    Returns ``(files, ignored, empty_folders)``: ``ignored`` lists ``(file, reason)`` for files
    inside folders that are not taken (a suffix that is not a photo's, ``notes.txt``; hidden
    files and folders, which are editors' and systems' own); ``empty_folders`` the folders given
    that hold no photo at all. A file named explicitly is always taken, even a missing one: the
    ingest reports it with its reason.
    """
    files: list[Path] = []
    ignored: list[tuple[str, str]] = []
    empty: list[Path] = []
    wanted = tuple(s.lower() for s in IMAGE_SUFFIXES)
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = len(files)
        for folder, dirs, names in os.walk(path):
            for d in sorted(dirs):
                if d.startswith("."):
                    ignored.append((str(Path(folder) / d), "hidden folder"))
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(names):
                file = Path(folder) / name
                if name.startswith("."):
                    ignored.append((str(file), "hidden file"))
                elif name.lower().endswith(wanted):
                    files.append(file)
                else:
                    ignored.append((str(file), "not a photo file name"))
        if len(files) == found:
            empty.append(path)
    return files, ignored, empty


def ingest_paths(
    paths: Sequence[str | Path],
    *,
    dispatcher: Dispatcher | None,
    title: str | None = None,
    external_id: str | None = None,
    chunk_size: int = 64,
    progress: bool = False,
) -> IngestSummary:
    """Ingest files and folders: one pending product per photo, classification enqueued.

    Every file is named in the summary (ingested, duplicate or failed); a folder given that holds
    no photo is a failed item too, so that it never silently adds nothing.
    """
    files, ignored, empty = expand_paths(paths)
    settings = get_settings()
    media = MediaStore(settings.media_dir)
    summary = IngestSummary(ignored=ignored)
    for folder in empty:
        summary.failed.append(
            FailedFile(str(folder), None, "folder holds no photo files (" + _suffixes() + ")")
        )
    with progress_bar(
        total=len(files), desc="ingesting photos", unit="photo", enable=progress
    ) as bar:
        for start in range(0, len(files), chunk_size):
            chunk = files[start : start + chunk_size]

            # A chunk that lost a lock race is rolled back and ingested again; what a
            # concurrent writer committed meanwhile then shows as duplicates.
            def ingest_chunk(session: Session, chunk: list[Path] = chunk) -> IngestResult:
                return ingest_files(
                    session,
                    chunk,
                    media=media,
                    dispatcher=dispatcher,
                    title=title,
                    external_id=external_id,
                )

            part = run_chunk(ingest_chunk, what="ingest chunk")
            summary.merge(part)
            bar.update(len(chunk))
    return summary


def _suffixes() -> str:
    return " ".join(sorted({s.lower() for s in IMAGE_SUFFIXES}))


def retry_products(
    product_ids: Sequence[int] | None = None, *, dispatcher: Dispatcher | None
) -> RetrySummary:
    """Failed products back to pending and enqueued (every failed one for ``None``)."""
    with unit_of_work() as session:
        return requeue_failed(session, product_ids, dispatcher=dispatcher)


def sweep_now(older_than_s: float | None = None, *, dispatcher: Dispatcher | None) -> list[int]:
    """Run the sweep in this process: stale pending/processing products enqueued again."""
    if older_than_s is None:
        older_than_s = get_settings().stale_after
    with unit_of_work() as session:
        return requeue_stale(session, older_than_s=older_than_s, dispatcher=dispatcher)

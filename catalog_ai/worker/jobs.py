"""Jobs that own their transactions, as the command line and the main job run them.

``ingest_paths`` commits one chunk of files at a time (the same reasons as the folder import in
:mod:`catalog_ai.jobs`), and each chunk's classification goes to the dispatcher after its commit
(with no broker: the in-process runner's background thread, through the same task code).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from catalog_ai.db import unit_of_work
from catalog_ai.dispatch import Dispatcher
from catalog_ai.media import MediaStore
from catalog_ai.progress import progress_bar
from catalog_ai.services.classify import RetrySummary, requeue_failed, requeue_stale
from catalog_ai.services.ingest import IngestResult, ingest_files
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import IMAGE_SUFFIXES

__all__ = ["IngestSummary", "expand_paths", "ingest_paths", "retry_products", "sweep_now"]


@dataclass
class IngestSummary(IngestResult):
    ignored: list[str] = field(default_factory=list)  # files in folders without a photo suffix


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Files as given, and the photo files below folders (recursively, sorted, hidden skipped).

    Returns ``(files, ignored)``: ``ignored`` lists files inside folders whose suffix is not a
    photo's (``notes.txt``); a file named explicitly is always taken.
    """
    files: list[Path] = []
    ignored: list[str] = []
    wanted = tuple(s.lower() for s in IMAGE_SUFFIXES)
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(names):
                if name.startswith("."):
                    continue
                file = Path(folder) / name
                if name.lower().endswith(wanted):
                    files.append(file)
                else:
                    ignored.append(str(file))
    return files, ignored


def ingest_paths(
    paths: Sequence[str | Path],
    *,
    dispatcher: Dispatcher | None,
    title: str | None = None,
    external_id: str | None = None,
    chunk_size: int = 64,
    progress: bool = False,
) -> IngestSummary:
    """Ingest files and folders: one pending product per photo, classification enqueued."""
    files, ignored = expand_paths(paths)
    settings = get_settings()
    media = MediaStore(settings.media_dir)
    summary = IngestSummary(ignored=ignored)
    with progress_bar(
        total=len(files), desc="ingesting photos", unit="photo", enable=progress
    ) as bar:
        for start in range(0, len(files), chunk_size):
            chunk = files[start : start + chunk_size]
            with unit_of_work() as session:
                part = ingest_files(
                    session,
                    chunk,
                    media=media,
                    dispatcher=dispatcher,
                    title=title,
                    external_id=external_id,
                )
            summary.merge(part)
            bar.update(len(chunk))
    return summary


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

"""Long jobs that own their transactions: one ``unit_of_work`` per chunk.

Services never commit; a job that touches thousands of photos cannot hold one transaction open
for minutes either (SQLite would block every worker). Each chunk commits complete products only,
so an interrupted job leaves nothing half-written and re-running it skips what is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from catalog_ai.db import LabelSource, unit_of_work
from catalog_ai.db.retry import run_chunk
from catalog_ai.errors import ImportFolderError
from catalog_ai.photos.store import MediaStore
from catalog_ai.progress import progress_bar
from catalog_ai.services.catalog_import import ImportSummary, import_labelled_files, sync_taxonomy
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import describe_skipped, scan_folder

__all__ = ["FolderImportSummary", "import_folder"]


@dataclass
class FolderImportSummary(ImportSummary):
    categories_added: int = 0
    unlabelled: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) never tried

    @property
    def skipped_summary(self) -> str:
        """``"skipped 3 files: 1 in the root folder (no category), 2 in hidden folders"``."""
        return describe_skipped(self.skipped)


def import_folder(
    folder: Path,
    *,
    chunk_size: int = 64,
    progress: bool = False,
    label_source: LabelSource = LabelSource.IMPORT,
) -> FolderImportSummary:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportFolderError(
            f"{folder} is not a folder; give a folder whose sub-folders are categories "
            "(e.g. train/Fruit/Apple/Granny-Smith/*.jpg)"
        )
    scan = scan_folder(folder)
    if not scan.files:
        why = f" ({scan.skipped_summary()})" if scan.skipped else ""
        raise ImportFolderError(f"{folder} holds no photos in category sub-folders{why}")
    settings = get_settings()
    media = MediaStore(settings.media_dir)
    summary = FolderImportSummary(
        unlabelled=[str(p) for p in scan.unlabelled],
        skipped=[(str(p), reason) for p, reason in scan.skipped],
    )
    with unit_of_work() as session:
        kind = "fewshot" if label_source == LabelSource.FEWSHOT else "folder"
        summary.categories_added = sync_taxonomy(
            session, scan.taxonomy, source=f"{kind}:{folder}"
        ).added
    with progress_bar(
        total=len(scan.files), desc="importing photos", unit="photo", enable=progress
    ) as bar:
        counted: set[Path] = set()

        def tick(file: Path) -> None:
            if file not in counted:
                counted.add(file)
                bar.update(1)

        for start in range(0, len(scan.files), chunk_size):
            chunk = scan.files[start : start + chunk_size]

            # A chunk that lost a lock race to a concurrent writer (another import, an ingest)
            # is rolled back and imported again; the bar counts each file once, however many
            # attempts its chunk took.
            def import_chunk(
                session: Session, chunk: Sequence[tuple[Path, tuple[str, ...]]] = chunk
            ) -> ImportSummary:
                return import_labelled_files(
                    session,
                    chunk,
                    media=media,
                    max_bytes=settings.max_image_bytes,
                    max_pixels=settings.max_image_pixels,
                    on_file=tick,
                    label_source=label_source,
                )

            part = run_chunk(import_chunk, what="import chunk")
            summary.merge(part)
    return summary

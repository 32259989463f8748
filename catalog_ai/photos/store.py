"""The media store: photo files kept by content hash.

A file's sha256 decides where it lives (``ab/cd/abcd….jpg`` under the media directory), so an
identical photo uploaded twice is stored once, and a file that is present is always complete:
it is written to a temporary name in the same directory and renamed into place, which is atomic
on POSIX. Several worker processes can therefore write into one store without locks.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.types import stored_suffix

__all__ = ["MediaStore", "StoredFile", "content_hash"]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    content_hash: str
    relative_path: str
    created: bool  # False when an identical file was already in the store


class MediaStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def relative_path_for(self, digest: str, image_format: str | None) -> str:
        # The suffixes come from the one photo-type table; ".bin" only for a format outside it.
        suffix = stored_suffix(image_format) or ".bin"
        return f"{digest[:2]}/{digest[2:4]}/{digest}{suffix}"

    def put(
        self, data: bytes, *, image_format: str | None = None, digest: str | None = None
    ) -> StoredFile:
        digest = digest or content_hash(data)
        rel = self.relative_path_for(digest, image_format)
        target = self.root / rel
        if target.is_file() and target.stat().st_size == len(data):
            return StoredFile(digest, rel, created=False)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CatalogAIError(
                f"cannot write to the media store at {self.root}: {exc.strerror or exc}; "
                "check CATALOG_AI_MEDIA_DIR points to a writable directory with free space"
            ) from exc
        return StoredFile(digest, rel, created=True)

    def path(self, relative_path: str) -> Path:
        """Absolute path of a stored file; refuses paths that would leave the store."""
        candidate = (self.root / relative_path).resolve()
        if self.root.resolve() not in candidate.parents:
            raise CatalogAIError(f"media path {relative_path!r} points outside the media store")
        return candidate

    def read(self, relative_path: str) -> bytes:
        return self.path(relative_path).read_bytes()

"""Downloads checked against a known SHA-256.

The digest is computed while the file streams to disk (no second read); a file whose digest
differs is deleted before the error is raised, as is a file left half-written by a failed
download, so nothing unchecked is ever used.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from catalog_ai.errors import DatasetError
from catalog_ai.progress import progress_bar

__all__ = ["Artefact", "download"]

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artefact:
    """A downloadable file: where it is, what it is called in messages, and its SHA-256
    (None: not known in advance; ``pin_setting`` names the variable that pins it)."""

    name: str
    url: str
    sha256: str | None = None
    pin_setting: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            where = f"{self.pin_setting}=" if self.pin_setting else "the digest "
            raise DatasetError(
                f"{where}{self.sha256!r} is not a SHA-256 digest of {self.name}; "
                "use 64 lower-case hexadecimal characters (sha256sum prints them)"
            )


def download(artefact: Artefact, target: Path, *, progress: bool = False) -> str:
    """Download ``artefact`` to ``target`` and return its SHA-256; raise :class:`DatasetError`
    (and remove ``target``) when the download fails or the digest is not the expected one."""
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(artefact.url, timeout=30) as response,
            target.open("wb") as out,
        ):
            total = int(response.headers.get("Content-Length") or 0)
            with progress_bar(total=total, desc="downloading", unit="B", enable=progress) as bar:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise DatasetError(
            f"could not download {artefact.name} from {artefact.url} ({exc}); "
            "this machine may be offline: pass a local copy with --from DIR"
        ) from exc
    actual = digest.hexdigest()
    if artefact.sha256 is None:
        log.warning(
            "%s from %s has SHA-256 %s; no digest is pinned, so it was not checked%s",
            artefact.name,
            artefact.url,
            actual,
            f" (set {artefact.pin_setting} to pin it)" if artefact.pin_setting else "",
        )
    elif actual != artefact.sha256:
        target.unlink(missing_ok=True)
        fix = "download it again (a transfer broke)"
        if artefact.pin_setting:
            fix += (
                f", or, if a new {artefact.name} was published and you trust it, pin its digest "
                f"with {artefact.pin_setting}"
            )
        raise DatasetError(
            f"{artefact.name} from {artefact.url} has SHA-256 {actual}, expected "
            f"{artefact.sha256}; the file was removed: {fix}"
        )
    return actual

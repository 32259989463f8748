"""The one list of photo types: which file names are photos, and how the media store names them.

Folder import, ingest, the media store and the dashboard all read this table, so a format
accepted in one place is accepted everywhere (before, four lists disagreed: ``.avif`` was
decoded on ingest, stored as ``.bin`` and skipped by folder import). Standard library only, so
the taxonomy module can use it without importing Pillow; :mod:`catalog_ai.photos.decode` decides
which formats are decoded (:data:`catalog_ai.photos.decode.ACCEPTED_FORMATS` is derived from this
table).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DECODED_FORMATS",
    "PHOTO_SUFFIXES",
    "PHOTO_TYPES",
    "PhotoType",
    "stored_suffix",
]


@dataclass(frozen=True, slots=True)
class PhotoType:
    format: str  # Pillow's format id
    suffix: str  # the media store's suffix for it
    suffixes: tuple[str, ...]  # file names taken as this type (lower case)
    decoded: bool = True  # tried by the loader's Image.open; MPO is opened by the JPEG plugin


PHOTO_TYPES: tuple[PhotoType, ...] = (
    PhotoType("JPEG", ".jpg", (".jpg", ".jpeg", ".jpe", ".jfif")),
    PhotoType("PNG", ".png", (".png",)),
    PhotoType("WEBP", ".webp", (".webp",)),
    PhotoType("GIF", ".gif", (".gif",)),
    PhotoType("TIFF", ".tif", (".tif", ".tiff")),
    PhotoType("BMP", ".bmp", (".bmp",)),
    PhotoType("AVIF", ".avif", (".avif",)),
    # Multi-picture JPEG from some cameras: a JPEG whose first picture is the photo.
    PhotoType("MPO", ".jpg", (".mpo",), decoded=False),
)

#: Every suffix a photo file may have (lower case), in table order.
PHOTO_SUFFIXES: tuple[str, ...] = tuple(s for t in PHOTO_TYPES for s in t.suffixes)

#: Pillow format ids tried on uploads.
DECODED_FORMATS: tuple[str, ...] = tuple(t.format for t in PHOTO_TYPES if t.decoded)

_BY_FORMAT = {t.format: t for t in PHOTO_TYPES}


def stored_suffix(image_format: str | None) -> str | None:
    """The media store's suffix for a Pillow format id, None for a format not in the table."""
    found = _BY_FORMAT.get((image_format or "").upper())
    return found.suffix if found else None

"""What a refused photo is told: sizes for people, and what an unreadable file really is
(sniffed from its first bytes, to tell "damaged JPEG" from "a PDF" or "an iPhone HEIC")."""

from __future__ import annotations

import codecs
from collections.abc import Iterable

__all__ = ["human_bytes", "magic_format", "pixels", "too_many_bytes", "unrecognised"]

_MIB = 1024 * 1024

# Magic numbers of accepted formats, to tell "damaged JPEG" from "not an image at all".
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    unit, div = ("KiB", 1024) if n < _MIB else ("MiB", _MIB)
    return f"{n / div:.1f}".removesuffix(".0") + f" {unit}"


def too_many_bytes(size: int, limit: int) -> str:
    shown, shown_limit = human_bytes(size), human_bytes(limit)
    if shown == shown_limit:  # rounding hid the difference
        shown, shown_limit = f"{size} bytes", f"{limit} bytes"
    return (
        f"file is {shown}, above the {shown_limit} limit; raise CATALOG_AI_MAX_IMAGE_BYTES "
        "to accept it"
    )


def pixels(n: int, other: int) -> str:
    """``n`` pixels for a message, in megapixels with enough digits to differ from ``other``."""
    if min(n, other) >= 100_000:
        for digits in (1, 3):
            if f"{n / 1e6:.{digits}f}" != f"{other / 1e6:.{digits}f}":
                return f"{n / 1e6:.{digits}f} megapixels"
    return f"{n} pixels"


def magic_format(head: bytes) -> str | None:
    """The accepted format whose magic number ``head`` starts with, if any."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def unrecognised(data: bytes, accepted: Iterable[str]) -> str:
    """Why Pillow recognised no accepted format in ``data``, for the person who uploaded it."""
    head = data[:4096]
    if head.startswith(b"%PDF"):
        return "not an image file (it is a PDF document); export the photo as JPEG or PNG"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return (
            "a HEIC/HEIF photo, which cannot be read; upload it as JPEG (on an iPhone: Settings "
            "> Camera > Formats > Most Compatible)"
        )
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<svg", b"<?xml")) and b"<svg" in lowered:
        return "not a photo (it is an SVG drawing); export it as PNG or JPEG"
    if _looks_like_text(head):
        return "not an image file (it contains text)"
    fmt = magic_format(head)
    if fmt is not None:
        return f"damaged {fmt} file: the header cannot be read"
    return f"not an image file (unrecognised format; accepted formats: {', '.join(accepted)})"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return bool(text) and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)

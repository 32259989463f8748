"""Safe loading of untrusted product photos.

Store staff upload photos from phones, scanners and web shops; some are corrupt, cut off, huge or
not images at all. Every such file must end as a clear :class:`~catalog_ai.errors.ImageError`
(``"<source>: <reason>"``, the reason written for store staff), never as a crash or a hang.

Limits (defaults from :func:`catalog_ai.settings.get_settings`, overridable per call):

- ``CATALOG_AI_MAX_IMAGE_BYTES`` (50 MiB): checked from ``stat`` *before* a file is read, and again
  on the bytes, so a huge or growing file is never read into memory whole.
- ``CATALOG_AI_MAX_IMAGE_PIXELS`` (80 megapixels): checked on the size in the file header,
  *before* any pixel is decoded, so a decompression bomb (a tiny file claiming a giant canvas)
  costs nothing. Pillow's own bomb check (``PIL.Image.MAX_IMAGE_PIXELS``) stays in place as a
  second line; its ``DecompressionBombError`` (and its warning, where a warnings filter turns it
  into an exception) becomes an ``ImageError`` too; otherwise that warning goes to the warnings
  system as usual, because changing warning filters would be global state. Pillow's hard limit,
  twice its ``MAX_IMAGE_PIXELS``, still applies when our limit is raised above it.
- ``CATALOG_AI_MAX_ASPECT_RATIO`` (20): longest side / shortest side, checked on the header
  size too. Preprocessing scales the short side up to the network's input, so a 17 KB 65000x2
  JPEG (well under the pixel limit) would need gigabytes there; beyond 20:1 the network, which
  sees the centre square, would see under a twentieth of the photo anyway.
- Any other failure while decoding (a Pillow bug, ``MemoryError``) is an ``ImageError`` of that
  photo too, so one odd file never takes its neighbours down with it.
- Only common photo formats are accepted (:data:`ACCEPTED_FORMATS`); exotic Pillow plugins (EPS,
  which runs Ghostscript, PSD, ICO, ...) are never tried on uploads.

Every accepted photo is decoded in full, once: truncated or corrupt data is found at upload time,
not later in a worker. For a phone photo that costs milliseconds (the JPEG draft mode of
:func:`load_image` makes it cheaper still), which is worth it for uploads. Limits of detection:
libjpeg silently repairs some damage inside JPEG scan data (flipped bytes, a premature end-of-image
marker), so such a file loads with grey or garbled regions; truncation, broken markers and broken
PNG/zlib streams are always reported. Truncation is only detected while Pillow's global
``ImageFile.LOAD_TRUNCATED_IMAGES`` is off (its default); this module never changes it.

:func:`load_image` returns a fully loaded 8-bit RGB image with the EXIF orientation applied and
transparency composited on white (product photos with a transparent background must not turn
black); no file handle stays open. The turning and colour conversion are in
:mod:`catalog_ai.photos.convert`, the wording of refusals and the sniffing of unreadable files in
:mod:`catalog_ai.photos.messages`; this module is the one entry point.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, JpegImagePlugin, UnidentifiedImageError

from catalog_ai.errors import ImageError
from catalog_ai.photos.convert import orientation as exif_orientation
from catalog_ai.photos.convert import to_rgb, upright
from catalog_ai.photos.messages import magic_format, pixels, too_many_bytes, unrecognised
from catalog_ai.photos.types import DECODED_FORMATS, PHOTO_SUFFIXES, PHOTO_TYPES
from catalog_ai.settings import get_settings

__all__ = [
    "ACCEPTED_FORMATS",
    "PHOTO_SUFFIXES",
    "PHOTO_TYPES",
    "ImageInfo",
    "check_aspect_ratio",
    "load_image",
    "load_with_info",
    "probe",
    "probe_header",
    "read_bytes",
]

#: Formats tried on uploads (Pillow format ids), from the one photo-type table
#: (:mod:`catalog_ai.photos.types`, which also gives each type's file suffixes). MPO (multi-picture
#: JPEG from some cameras) is opened by the JPEG plugin and reported as "MPO".
ACCEPTED_FORMATS: tuple[str, ...] = DECODED_FORMATS


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the file says about itself; ``width``/``height`` are after EXIF orientation."""

    width: int
    height: int
    format: str
    mode: str
    size_bytes: int
    content_hash: str


# --- reading ------------------------------------------------------------------------------------


def read_bytes(
    source: str | Path | bytes, *, max_bytes: int | None = None, name: str | None = None
) -> bytes:
    """The bytes of a photo file (or the given bytes), refusing empty and over-size files.

    ``name`` labels a ``bytes`` source in error messages (e.g. the upload's file name); a path
    labels itself. The size limit is checked from ``stat`` before reading.
    """
    limit = _limit(max_bytes, "max_bytes", "max_image_bytes")
    label = _label(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = _read_file(Path(source), limit, label)
    if len(data) > limit:
        raise ImageError(too_many_bytes(len(data), limit), source=label)
    if not data:
        raise ImageError("file is empty", source=label)
    return data


def _read_file(path: Path, limit: int, label: str | None) -> bytes:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError("file not found", source=label) from None
    except PermissionError:
        raise ImageError("permission denied: the file cannot be read", source=label) from None
    except OSError as exc:
        raise ImageError(f"the file cannot be read ({exc.strerror or exc})", source=label) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError("is a folder, not an image file", source=label)
    if not stat.S_ISREG(st.st_mode):
        # FIFOs and devices could block or never end.
        raise ImageError("not a regular file", source=label)
    if st.st_size > limit:
        raise ImageError(too_many_bytes(st.st_size, limit), source=label)
    if st.st_size == 0:
        raise ImageError("file is empty", source=label)
    try:
        with path.open("rb") as fh:
            # One byte more than expected tells a file that grew since stat; never past the limit.
            data = fh.read(min(st.st_size, limit) + 1)
            if st.st_size < len(data) <= limit:
                data += fh.read(limit + 1 - len(data))
    except PermissionError:
        raise ImageError("permission denied: the file cannot be read", source=label) from None
    except OSError as exc:
        raise ImageError(f"the file cannot be read ({exc.strerror or exc})", source=label) from None
    return data


# --- probing and loading ------------------------------------------------------------------------


def probe(
    data: bytes,
    *,
    source: str | None = None,
    max_pixels: int | None = None,
    max_aspect_ratio: int | None = None,
) -> ImageInfo:
    """Check that ``data`` is a whole, decodable photo within the pixel limit; describe it.

    The pixel limit is checked on the header before decoding; then the image is decoded in full
    (see the module docstring for why and for what is detectable).
    """
    if not data:
        raise ImageError("file is empty", source=source)
    with _open(data, source, max_pixels, max_aspect_ratio) as im, _guard(source):
        fmt, mode, size = im.format or "image", im.mode, im.size
        _decode(im, source, fmt)
        return _info(data, fmt, mode, size, exif_orientation(im))


def probe_header(
    data: bytes,
    *,
    source: str | None = None,
    max_pixels: int | None = None,
    max_aspect_ratio: int | None = None,
) -> ImageInfo:
    """Like :func:`probe` but reads the header only (format, size, pixel limit): no pixel is
    decoded, so damage inside the image data is found later, when it is decoded."""
    if not data:
        raise ImageError("file is empty", source=source)
    with _open(data, source, max_pixels, max_aspect_ratio) as im, _guard(source):
        return _info(data, im.format or "image", im.mode, im.size, exif_orientation(im))


def load_with_info(
    source: str | Path | bytes,
    *,
    target_size: int | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    name: str | None = None,
    max_aspect_ratio: int | None = None,
) -> tuple[Image.Image, ImageInfo]:
    """Read once, check, decode: the 8-bit RGB image (as :func:`load_image`) and its info.

    ``info`` describes the file (full size, original mode), not the draft-reduced image.
    """
    if target_size is not None and target_size <= 0:
        raise ValueError(f"target_size must be a positive number of pixels, not {target_size!r}")
    data = read_bytes(source, max_bytes=max_bytes, name=name)
    label = _label(source, name)
    with _open(data, label, max_pixels, max_aspect_ratio) as im, _guard(label):
        fmt, mode, size = im.format or "image", im.mode, im.size
        if target_size is not None and isinstance(im, JpegImagePlugin.JpegImageFile):
            # The DCT decoder scales by 1/2, 1/4 or 1/8 for free; Pillow picks the largest scale
            # s with s * target_size <= each side, so the shorter side stays >= target_size.
            # Orientation only swaps the sides, so it does not change the shorter one.
            im.draft("RGB", (target_size, target_size))
        _decode(im, label, fmt)
        orientation = exif_orientation(im)
        info = _info(data, fmt, mode, size, orientation)
        try:
            rgb = to_rgb(upright(im, orientation))
        except Exception as exc:
            raise ImageError(
                f"cannot convert the {fmt} image (colour mode {mode}) to RGB ({exc}); "
                "save the photo as an ordinary RGB JPEG or PNG",
                source=label,
            ) from exc
    return rgb, info


def load_image(
    source: str | Path | bytes,
    *,
    target_size: int | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    name: str | None = None,
    max_aspect_ratio: int | None = None,
) -> Image.Image:
    """A fully loaded 8-bit RGB image, upright, with transparency on white.

    With ``target_size``, JPEGs are decoded at 1/2, 1/4 or 1/8 scale where the shorter side
    stays >= ``target_size`` (the model's transforms resize further); other formats and smaller
    photos are decoded at full size. Limits default to the settings.
    """
    return load_with_info(
        source,
        target_size=target_size,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        name=name,
        max_aspect_ratio=max_aspect_ratio,
    )[0]


# --- internals ----------------------------------------------------------------------------------


def _label(source: str | Path | bytes, name: str | None) -> str | None:
    if name is not None or isinstance(source, (bytes, bytearray, memoryview)):
        return name
    return str(source)


def _limit(value: int | None, what: str, setting: str) -> int:
    if value is None:
        return int(getattr(get_settings(), setting))
    if value <= 0:
        raise ValueError(f"{what} must be greater than zero, not {value!r}")
    return value


def _accepted_formats() -> list[str]:
    Image.init()  # registers every plugin once; asking Image.open for an unknown id is a KeyError
    return [fmt for fmt in ACCEPTED_FORMATS if fmt in Image.OPEN]


@contextlib.contextmanager
def _guard(label: str | None) -> Iterator[None]:
    """Any failure that is not already an ImageError (a plugin bug, ``MemoryError`` while
    converting) becomes one: untrusted input must fail as this photo, never as a crash."""
    try:
        yield
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(
            "not enough memory to decode the image; resize it before uploading", source=label
        ) from exc
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise ImageError(
            f"the photo cannot be read ({detail}); save it again as JPEG or PNG", source=label
        ) from exc


def check_aspect_ratio(
    width: int, height: int, *, source: str | None = None, max_aspect_ratio: int | None = None
) -> None:
    """Refuse a photo whose longer side is more than ``max_aspect_ratio`` times its shorter side
    (default: ``CATALOG_AI_MAX_ASPECT_RATIO``); see the module docstring for why."""
    limit = _limit(max_aspect_ratio, "max_aspect_ratio", "max_aspect_ratio")
    long, short = max(width, height), min(width, height)
    if short <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})", source=source)
    if long > limit * short:
        ratio = long / short
        shown = f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}"
        raise ImageError(
            f"image is {width}x{height}: its long side is {shown} times its short side, above "
            f"the limit of {limit} (the model sees only its centre square); crop the photo to "
            "the product, or raise CATALOG_AI_MAX_ASPECT_RATIO to accept it",
            source=source,
        )


def _open(
    data: bytes, label: str | None, max_pixels: int | None, max_aspect_ratio: int | None = None
) -> ImageFile.ImageFile:
    """Open the header only (no pixels decoded) and apply the pixel and aspect-ratio limits."""
    limit = _limit(max_pixels, "max_pixels", "max_image_pixels")
    try:
        im = Image.open(io.BytesIO(data), formats=_accepted_formats())
    except UnidentifiedImageError:
        raise ImageError(unrecognised(data, _accepted_formats()), source=label) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"image is too large to decode safely ({exc}); resize it before uploading",
            source=label,
        ) from exc
    except Exception as exc:
        fmt = magic_format(data[:16]) or "image"
        reason = f"damaged {fmt} file: the header cannot be read ({exc})"
        raise ImageError(reason, source=label) from exc
    width, height = im.size
    if width <= 0 or height <= 0:
        im.close()
        raise ImageError(f"image has no pixels ({width}x{height})", source=label)
    if width * height > limit:
        im.close()
        raise ImageError(
            f"image is {width}x{height} = {pixels(width * height, limit)}, above the limit of "
            f"{pixels(limit, width * height)}; raise CATALOG_AI_MAX_IMAGE_PIXELS to accept it",
            source=label,
        )
    try:
        check_aspect_ratio(width, height, source=label, max_aspect_ratio=max_aspect_ratio)
    except ImageError:
        im.close()
        raise
    return im


def _decode(im: ImageFile.ImageFile, label: str | None, fmt: str) -> None:
    try:
        im.load()
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, MemoryError):
            reason = "not enough memory to decode the image"
        elif isinstance(exc, EOFError) or "truncated" in detail:
            reason = (
                f"truncated or corrupt {fmt} data: the file is incomplete, maybe a cut-off upload; "
                f"upload the original file again ({detail})"
            )
        else:
            reason = f"corrupt {fmt} data; upload the original file again ({detail})"
        raise ImageError(reason, source=label) from exc


def _info(data: bytes, fmt: str, mode: str, size: tuple[int, int], orientation: int) -> ImageInfo:
    width, height = size
    if orientation >= 5:  # 5-8 turn the picture by 90 degrees
        width, height = height, width
    return ImageInfo(
        width=width,
        height=height,
        format=fmt,
        mode=mode,
        size_bytes=len(data),
        content_hash=hashlib.sha256(data).hexdigest(),
    )

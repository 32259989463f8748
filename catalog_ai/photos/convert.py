"""A decoded photo made upright (its EXIF orientation applied) and 8-bit RGB, whatever its
colour mode; transparency is composited on white (a product on a transparent background must not
turn black)."""

from __future__ import annotations

import math
from typing import cast

from PIL import ExifTags, Image, ImageOps

__all__ = ["orientation", "to_rgb", "upright"]

_ORIENTATION = ExifTags.Base.Orientation
_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
# Where Pillow keeps an orientation (JPEG/WebP/PNG EXIF, PNG text EXIF, XMP).
_METADATA = ("exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp")


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1..8); 1 when missing or unreadable (a broken EXIF block must not
    fail a good photo)."""
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(im: Image.Image, turn: int) -> Image.Image:
    """``im`` turned as its EXIF ``turn`` (from :func:`orientation`) says, by Pillow's own
    ``ImageOps.exif_transpose``, which also drops the tag so nobody turns it twice."""
    if turn == 1:
        return im
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        # Pillow rewrites the EXIF/XMP blocks after turning; one it cannot rewrite must not
        # fail a good photo: turn a copy that carries only the orientation (getexif() returns
        # the image's own, cached Exif, so the tag set here is the one exif_transpose reads).
        bare = im.copy()
        for key in _METADATA:
            bare.info.pop(key, None)
        bare.getexif()[_ORIENTATION] = turn
        return ImageOps.exif_transpose(bare)


def to_rgb(im: Image.Image) -> Image.Image:
    """A new, detached 8-bit RGB image for any Pillow mode."""
    mode = im.mode
    if mode == "RGB":
        return im.copy()  # detach from the ImageFile (and its buffer)
    if mode in _ALPHA_MODES or ("transparency" in im.info and mode in {"P", "L", "RGB", "1"}):
        # Premultiplied La has no direct conversion to RGBA; un-premultiply first.
        rgba = (im.convert("LA") if mode == "La" else im).convert("RGBA")
        white = Image.new("RGBA", im.size, (*_WHITE, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _INT_MODES or mode == "F":
        return _stretch_to_l(im).convert("RGB")
    # L, 1, P, CMYK (Pillow reads Adobe inverted CMYK/YCCK JPEGs the right way up), YCbCr, HSV,
    # and LAB (Pillow converts that one through LittleCMS).
    return im.convert("RGB")


def _stretch_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale scaled to 8 bits by its actual range (not clipped)."""
    wide = im if im.mode in {"I", "F"} else im.convert("I")
    # One band (I or F): getextrema() is (min, max), not a tuple per band.
    lo, hi = cast(tuple[float, float], wide.getextrema())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return wide.convert("L")  # NaN/inf pixels: no meaningful range, let Pillow clip
    if hi == lo:
        # A flat image has no range to stretch; keep its level on its nominal scale.
        level = lo / 257 if im.mode.startswith("I;16") else lo
        return Image.new("L", im.size, int(min(255, max(0, round(level)))))
    scale = 255.0 / (hi - lo)
    offset = 0.5 - lo * scale  # +0.5: the conversion to L truncates
    return wide.point(lambda x: x * scale + offset).convert("L")

"""Property-based tests of the photo loader: whatever the bytes, ``probe``, ``probe_header`` and
``load_image`` either succeed or raise :class:`~catalog_ai.errors.ImageError`, never anything
else (issue 13: the image loader's typed-error contract).

Inputs: arbitrary bytes, bytes behind a real format's magic number, and valid small photos of
every accepted format with bytes flipped, cut, inserted or duplicated. The pixel limit is kept
low so a mutated header claiming a big canvas is refused quickly (it is the refusal path that
is under test, not decoding speed).
"""

from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features

from catalog_ai.errors import ImageError
from catalog_ai.photos.decode import load_image, probe, probe_header

_MAX_PIXELS = 250_000
_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _sample(fmt: str, **params) -> bytes:
    im = Image.new("RGB", (19, 13), (30, 140, 220))
    im.paste((250, 200, 10), (3, 2, 11, 9))
    if fmt == "GIF":
        im = im.convert("P")
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


_FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"] + (
    ["AVIF"] if features.check("avif") else []
)
SAMPLES = {fmt: _sample(fmt) for fmt in _FORMATS}
_alpha = io.BytesIO()
Image.new("RGBA", (9, 7), (1, 2, 3, 100)).save(_alpha, "PNG")
SAMPLES["PNG-alpha"] = _alpha.getvalue()
SAMPLES["JPEG-progressive"] = _sample("JPEG", progressive=True, quality=80)
MAGICS = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"\x00\x00\x00\x1cftypavif",
]


def _only_image_errors(data: bytes) -> None:
    with warnings.catch_warnings():
        # Pillow warns about odd metadata (e.g. "Corrupt EXIF data"); warnings are not failures.
        warnings.simplefilter("ignore")
        for call in (
            lambda: probe_header(data, source="x", max_pixels=_MAX_PIXELS),
            lambda: probe(data, source="x", max_pixels=_MAX_PIXELS),
            lambda: load_image(data, name="x", max_pixels=_MAX_PIXELS),
            lambda: load_image(data, name="x", max_pixels=_MAX_PIXELS, target_size=8),
        ):
            try:
                result = call()
            except ImageError as exc:
                assert exc.reason and "\n" not in exc.reason  # one line, for store staff
                continue
            if isinstance(result, Image.Image):
                assert result.mode == "RGB" and result.width > 0 and result.height > 0


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "duplicate", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif kind == "zero":
            end = at + draw(st.integers(1, 32))
            data[at:end] = bytes(len(data[at:end]))
    return bytes(data)


@_SETTINGS
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_image_errors(data: bytes) -> None:
    _only_image_errors(data)


@_SETTINGS
@given(st.sampled_from(MAGICS), st.binary(max_size=256))
def test_bytes_behind_a_magic_number_raise_only_image_errors(magic: bytes, rest: bytes) -> None:
    _only_image_errors(magic + rest)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(mutated())
def test_mutated_photos_raise_only_image_errors(data: bytes) -> None:
    _only_image_errors(data)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_the_unmutated_samples_load(fmt: str) -> None:
    assert load_image(SAMPLES[fmt]).mode == "RGB"

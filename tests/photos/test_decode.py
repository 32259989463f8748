"""Tests for catalog_ai.photos.decode: every photo is made here, tiny, in memory or under
tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, features

from catalog_ai.errors import ImageError
from catalog_ai.photos.decode import ImageInfo, load_image, load_with_info, probe, read_bytes
from catalog_ai.settings import reset_settings

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# --- helpers --------------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def crafted_png(width: int, height: int, *, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG written by hand: IHDR says what we want, IDAT holds whatever we pass."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def near(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, expected, strict=True))


def quadrant_jpeg(orientation: int | None = None, exif: bytes | None = None) -> bytes:
    """40x20 JPEG: the top-left 24x16 block red (8x8-aligned, so JPEG keeps it clean), rest blue."""
    im = Image.new("RGB", (40, 20), BLUE)
    im.paste(RED, (0, 0, 24, 16))
    params: dict[str, object] = {"quality": 95, "subsampling": 0}  # no chroma bleeding
    if orientation is not None:
        tags = Image.Exif()
        tags[0x0112] = orientation
        params["exif"] = tags.tobytes()
    if exif is not None:
        params["exif"] = exif
    return encode(im, "JPEG", **params)


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert a raw APP1 segment (an EXIF block, broken if we like) right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def gradient_jpeg(width: int, height: int) -> bytes:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    arr = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128, np.float32),
        ],
        axis=-1,
    ).astype(np.uint8)
    return encode(Image.fromarray(arr), "JPEG", quality=85)


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return gradient_jpeg(2000, 1500)


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch):
    """Default limits from a clean environment; the test may set CATALOG_AI_* variables."""
    monkeypatch.delenv("CATALOG_AI_MAX_IMAGE_BYTES", raising=False)
    monkeypatch.delenv("CATALOG_AI_MAX_IMAGE_PIXELS", raising=False)
    reset_settings()
    yield monkeypatch
    reset_settings()


# --- basics: info, hash, handles, global state ----------------------------------------------------


def test_load_with_info_describes_the_file(tmp_path: Path) -> None:
    data = encode(Image.new("RGB", (30, 20), GREEN), "JPEG")
    path = tmp_path / "p.jpg"
    path.write_bytes(data)

    img, info = load_with_info(path)

    assert img.mode == "RGB" and img.size == (30, 20)
    assert near(img.getpixel((15, 10)), GREEN)
    assert info == ImageInfo(
        width=30,
        height=20,
        format="JPEG",
        mode="RGB",
        size_bytes=len(data),
        content_hash=hashlib.sha256(data).hexdigest(),
    )
    assert probe(data) == info
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.width = 1  # type: ignore[misc]


def test_content_hash_is_sha256_of_the_bytes() -> None:
    a = encode(Image.new("RGB", (8, 8), RED), "PNG")
    b = encode(Image.new("RGB", (8, 8), BLUE), "PNG")
    assert probe(a).content_hash == hashlib.sha256(a).hexdigest()
    assert probe(a).content_hash != probe(b).content_hash


@pytest.mark.parametrize(("suffix", "mode"), [(".jpg", "RGB"), (".png", "RGBA"), (".gif", "P")])
def test_loaded_image_keeps_no_file_open(tmp_path: Path, suffix: str, mode: str) -> None:
    path = tmp_path / f"p{suffix}"
    Image.new("RGB", (16, 16), RED).convert(mode).save(path)

    img = load_image(path)

    assert not isinstance(img, ImageFile.ImageFile)  # a plain, fully decoded image
    fd_dir = Path("/proc/self/fd")
    if fd_dir.is_dir():
        targets = {os.path.realpath(fd_dir / fd) for fd in os.listdir(fd_dir)}
        assert os.path.realpath(path) not in targets
    path.unlink()
    assert near(img.resize((4, 4)).getpixel((2, 2)), RED)


def test_global_pillow_state_is_left_alone(big_jpeg: bytes) -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    load_image(big_jpeg, target_size=224)
    probe(big_jpeg)
    for bad in (big_jpeg[: len(big_jpeg) // 2], b"not an image"):
        with pytest.raises(ImageError):
            load_image(bad)
    assert before == (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_errors_name_their_source(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list\n")
    with pytest.raises(ImageError) as err:
        load_image(path)
    assert err.value.source == str(path)
    assert str(err.value) == f"{path}: {err.value.reason}"

    with pytest.raises(ImageError) as err:
        load_image(b"shopping list\n", name="upload-7.jpg")
    assert str(err.value).startswith("upload-7.jpg: ")


def test_target_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_size"):
        load_image(encode(Image.new("RGB", (8, 8)), "PNG"), target_size=0)


# --- colour modes ---------------------------------------------------------------------------------


def test_cmyk_jpeg_is_not_a_negative() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    img, info = load_with_info(data)
    assert info.mode == "CMYK"
    assert img.mode == "RGB"
    assert near(img.getpixel((8, 8)), RED), img.getpixel((8, 8))


def test_palette_with_transparency_goes_on_white() -> None:
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    pal.paste(1, (4, 0, 8, 8))
    data = encode(pal, "PNG", transparency=0)  # index 0 (red) is fully transparent

    img = load_image(data)

    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == WHITE
    assert img.getpixel((6, 1)) == BLUE


@pytest.mark.parametrize("mode", ["PA", "La", "RGBa"])
def test_alpha_modes_no_file_format_stores_go_on_white(mode: str) -> None:
    # No accepted format writes these modes, so the conversion is checked on its own.
    from catalog_ai.photos.convert import to_rgb as _to_rgb

    if mode == "La":
        src = Image.new("LA", (4, 4), (0, 0))
        src.putpixel((3, 3), (90, 255))
        src = src.convert("La")  # (Pillow's RGBA -> La conversion loses the alpha)
    else:
        rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
        rgba.putpixel((3, 3), (*BLUE, 255))
        src = rgba.convert("P").convert("PA") if mode == "PA" else rgba.convert(mode)
    if mode == "PA":
        src.putpixel((0, 0), (src.getpixel((0, 0))[0], 0))
    assert src.mode == mode
    img = _to_rgb(src)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE
    assert img.getpixel((3, 3)) == (BLUE if mode != "La" else (90, 90, 90))


def test_rgba_transparent_background_becomes_white_not_black() -> None:
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # transparent *black*, the usual PNG background
    im.putpixel((1, 1), (*RED, 255))
    im.putpixel((2, 2), (0, 0, 0, 128))  # half-transparent black over white -> mid grey

    img = load_image(encode(im, "PNG"))

    assert img.mode == "RGB"
    assert img.getpixel((6, 6)) == WHITE
    assert img.getpixel((1, 1)) == RED
    assert near(img.getpixel((2, 2)), (127, 127, 127), tol=2)


def test_la_greyscale_with_alpha_goes_on_white() -> None:
    im = Image.new("LA", (4, 4), (0, 0))
    im.putpixel((0, 0), (60, 255))
    img = load_image(encode(im, "PNG"))
    assert img.getpixel((0, 0)) == (60, 60, 60)
    assert img.getpixel((3, 3)) == WHITE


def test_l_greyscale() -> None:
    img, info = load_with_info(encode(Image.new("L", (4, 4), 77), "PNG"))
    assert info.mode == "L" and img.mode == "RGB"
    assert img.getpixel((1, 1)) == (77, 77, 77)


def test_one_bit() -> None:
    im = Image.new("1", (8, 8), 0)
    im.putpixel((3, 3), 1)
    img, info = load_with_info(encode(im, "PNG"))
    assert info.mode == "1"
    assert img.getpixel((3, 3)) == WHITE and img.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("mode", "fmt", "lo", "hi"),
    [
        ("I;16", "PNG", 0, 65535),  # full 16-bit range
        ("I;16", "PNG", 1000, 3000),  # narrow range: clipping or >>8 would give a black image
        ("I;16B", "TIFF", 0, 40000),
        ("I", "TIFF", -70000, 70000),  # 32-bit int beyond the 16-bit range
    ],
)
def test_wide_integer_greyscale_is_stretched_to_8_bit(
    mode: str, fmt: str, lo: int, hi: int
) -> None:
    ramp = np.linspace(lo, hi, 64).round().astype(np.int64)
    arr = np.tile(ramp, (4, 1))
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    im = Image.frombytes(mode, (64, 4), arr.astype(dtype).tobytes())

    img, info = load_with_info(encode(im, fmt))

    assert info.mode == mode
    row = [img.getpixel((x, 1))[0] for x in range(64)]
    assert row[0] <= 1 and row[-1] >= 254
    assert row == sorted(row) and len(set(row)) > 50
    assert all(img.getpixel((x, 1)) == (v, v, v) for x, v in enumerate(row))


def test_flat_16_bit_image_keeps_its_level() -> None:
    im = Image.frombytes("I;16", (4, 4), np.full((4, 4), 65535, "<u2").tobytes())
    assert load_image(encode(im, "PNG")).getpixel((0, 0)) == WHITE


def test_16_bit_per_channel_rgb_png() -> None:
    # Pillow cannot write 16-bit RGB PNGs, so the file is written by hand (colour type 2, depth 16).
    arr = np.zeros((2, 4, 3), dtype=">u2")
    arr[..., 0] = 65535
    arr[..., 1] = np.arange(4) * 20000
    raw = b"".join(b"\x00" + arr[r].tobytes() for r in range(2))
    data = crafted_png(4, 2, bit_depth=16, colour_type=2, idat=zlib.compress(raw))

    img = load_image(data)

    assert img.mode == "RGB" and img.size == (4, 2)
    assert near(img.getpixel((0, 0)), (255, 0, 0), tol=1)
    assert near(img.getpixel((3, 1)), (255, 234, 0), tol=1)


def test_float_tiff_is_stretched_to_8_bit() -> None:
    ramp = np.tile(np.linspace(-1, 1, 32, dtype="<f4"), (2, 1))
    im = Image.frombytes("F", (32, 2), ramp.tobytes())
    data = encode(im, "TIFF")
    img, info = load_with_info(data)
    assert (info.format, info.mode) == ("TIFF", "F")
    row = [img.getpixel((x, 0))[0] for x in range(32)]
    assert row[0] == 0 and row[-1] == 255 and row == sorted(row)


def test_lab_tiff_is_colour_converted() -> None:
    # L=50 %, a=b=0 is a neutral mid grey; a plain channel copy would give a coloured pixel.
    img = load_image(encode(Image.new("LAB", (4, 4), (128, 128, 128)), "TIFF"))
    r, g, b = img.getpixel((1, 1))
    assert max(r, g, b) - min(r, g, b) <= 3 and 100 <= r <= 140


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_gives_the_first_frame(fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow build has no WebP support")
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 2  # really animated
    assert near(load_image(data).getpixel((8, 8)), RED)


@pytest.mark.parametrize("fmt", ["JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF"])
def test_every_accepted_format_loads(fmt: str) -> None:
    feature = {"WEBP": "webp", "AVIF": "avif"}.get(fmt)
    if feature and not features.check(feature):
        pytest.skip(f"this Pillow build cannot read or write {fmt}")
    im = Image.new("RGB", (64, 48), GREEN)
    params: dict[str, object] = {"save_all": True, "append_images": [im]} if fmt == "MPO" else {}
    img, info = load_with_info(encode(im, fmt, **params), target_size=16)
    assert info.format == fmt and img.mode == "RGB"
    assert near(img.getpixel((4, 4)), GREEN)
    # Only JPEG-family files have a draft mode: 64x48 at 1/2 keeps the short side >= 16.
    assert img.size == ((32, 24) if fmt in {"JPEG", "MPO"} else (64, 48))


# --- EXIF orientation -----------------------------------------------------------------------------


def test_exif_orientation_6_rotates_top_left_to_top_right() -> None:
    data = quadrant_jpeg(orientation=6)

    img, info = load_with_info(data)

    assert img.size == (20, 40) and (info.width, info.height) == (20, 40)
    assert probe(data).width == 20
    assert near(img.getpixel((16, 5)), RED), "the top-left block must now be top-right"
    assert near(img.getpixel((3, 5)), BLUE)
    assert near(img.getpixel((16, 35)), BLUE)
    assert img.getexif().get(0x0112, 1) == 1  # nobody may rotate it a second time


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(orientation: int) -> None:
    data = quadrant_jpeg(orientation=orientation)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    img = load_image(data)
    assert img.size == expected.size == ((20, 40) if orientation >= 5 else (40, 20))
    assert img.tobytes() == expected.tobytes()


# What each EXIF orientation asks of the stored pixels (rows, columns, channels) to stand
# upright, written from the EXIF specification with numpy, independently of Pillow's table.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1, :],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored over the main diagonal
    6: lambda a: np.rot90(a, k=-1),  # stored turned left: turn right
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored over the other diagonal
    8: lambda a: np.rot90(a, k=1),  # stored turned right: turn left
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_the_exif_specification(orientation: int) -> None:
    data = quadrant_jpeg(orientation=orientation)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # as stored, not turned
    assert np.array_equal(np.asarray(load_image(data)), UPRIGHT[orientation](stored))


BROKEN_EXIF = {
    "bad byte order": b"Exif\x00\x00XX\x00\x2a\x00\x00\x00\x08",
    "IFD offset past the end": b"Exif\x00\x00MM\x00\x2a\x7f\xff\xff\xff",
    "header only": b"Exif\x00\x00",
    "orientation 9": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00"
    b"\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00",
    "orientation as text": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00"
    b"\x12\x01\x02\x00\x04\x00\x00\x00abc\x00\x00\x00\x00\x00",
    "orientation as 0/0 rational": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00"
    b"\x12\x01\x05\x00\x01\x00\x00\x00\x1a\x00\x00\x00\x00\x00\x00\x00"
    b"\x06\x00\x00\x00\x00\x00\x00\x00",
}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize("payload", BROKEN_EXIF.values(), ids=BROKEN_EXIF.keys())
def test_broken_exif_does_not_fail_a_good_photo(payload: bytes) -> None:
    data = with_app1(quadrant_jpeg(), payload)
    img, info = load_with_info(data)
    assert img.size == (40, 20) and (info.width, info.height) == (40, 20)
    assert near(img.getpixel((3, 3)), RED)


def test_failing_exif_reader_means_no_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Image.Image) -> Image.Exif:
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    assert load_image(quadrant_jpeg(orientation=6)).size == (40, 20)


def test_an_exif_block_pillow_cannot_rewrite_still_rotates(monkeypatch: pytest.MonkeyPatch) -> None:
    data = quadrant_jpeg(orientation=6)
    calls = []

    def broken(self: Image.Exif) -> bytes:
        calls.append(self)
        raise ValueError("cannot rewrite EXIF")

    # exif_transpose rewrites the EXIF block once it has turned the picture; that may fail.
    monkeypatch.setattr(Image.Exif, "tobytes", broken)
    img = load_image(data)
    assert calls  # the rewrite was tried and failed

    assert img.size == (20, 40)
    assert near(img.getpixel((16, 5)), RED)
    assert img.getexif().get(0x0112, 1) == 1


# --- JPEG draft decoding --------------------------------------------------------------------------


def draft_sizes(width: int, height: int) -> set[tuple[int, int]]:
    return {(-(-width // s), -(-height // s)) for s in (2, 4, 8)}


@pytest.mark.parametrize(("target", "expected"), [(224, (500, 375)), (160, (250, 188))])
def test_jpeg_draft_reduces_the_decode(big_jpeg: bytes, target: int, expected: tuple) -> None:
    img, info = load_with_info(big_jpeg, target_size=target)
    assert img.size in draft_sizes(2000, 1500)
    assert img.size == expected  # largest 1/2^k scale keeping the short side >= target
    assert target <= min(img.size) < 1500
    assert (info.width, info.height) == (2000, 1500)  # info describes the file


def test_no_draft_without_target_size(big_jpeg: bytes) -> None:
    assert load_image(big_jpeg).size == (2000, 1500)


def test_draft_respects_orientation() -> None:
    tags = Image.Exif()
    tags[0x0112] = 6
    data = encode(Image.new("RGB", (1000, 600), GREEN), "JPEG", exif=tags.tobytes())
    img = load_image(data, target_size=140)
    assert img.size == (150, 250)  # 1/4 scale, then turned upright


@pytest.mark.parametrize(
    "size", [(449, 300), (300, 449), (1000, 224), (225, 225), (1799, 900), (200, 150)]
)
@pytest.mark.parametrize("target", [224, 112, 100])
def test_draft_never_undershoots_the_target(size: tuple[int, int], target: int) -> None:
    img = load_image(gradient_jpeg(*size), target_size=target)
    if min(size) >= target:
        assert min(img.size) >= target
    else:
        assert img.size == size  # too small to reduce: decoded as is
    assert img.size == size or img.size in draft_sizes(*size)


def test_target_size_leaves_other_formats_full_size() -> None:
    data = encode(Image.new("RGB", (600, 500), GREEN), "PNG")
    assert load_image(data, target_size=100).size == (600, 500)


# --- damaged and wrong files ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt: str) -> None:
    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, fmt)
    cut = data[: len(data) // 2]
    calls = (lambda: load_image(cut), lambda: probe(cut), lambda: load_image(cut, target_size=16))
    for call in calls:
        with pytest.raises(ImageError, match=f"truncated or corrupt {fmt} data"):
            call()


def test_jpeg_without_end_marker_is_truncated(big_jpeg: bytes) -> None:
    assert big_jpeg.endswith(b"\xff\xd9")
    with pytest.raises(ImageError, match="truncated"):
        load_image(big_jpeg[:-2])


def test_jpeg_with_broken_marker_in_scan_data(big_jpeg: bytes) -> None:
    # libjpeg repairs flipped bytes inside scan data without an error (documented limit); a
    # frame marker in the middle of the scan is damage it cannot get past.
    middle = len(big_jpeg) // 2
    data = big_jpeg[:middle] + b"\xff\xc0" + big_jpeg[middle + 2 :]
    with pytest.raises(ImageError, match="corrupt JPEG data"):
        load_image(data)
    with pytest.raises(ImageError, match="corrupt JPEG data"):
        probe(data)


def test_jpeg_with_broken_header_table() -> None:
    data = bytearray(quadrant_jpeg())
    start = data.find(b"\xff\xc4")  # Huffman table
    data[start + 4 : start + 40] = b"\xff" * 36
    with pytest.raises(ImageError, match="JPEG"):
        load_image(bytes(data))


def test_png_with_corrupt_compressed_data() -> None:
    rng = np.random.default_rng(2)
    data = bytearray(encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)), "PNG"))
    middle = len(data) // 2
    data[middle : middle + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match="corrupt PNG data"):
        load_image(bytes(data))


def test_empty_bytes_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    for source in (b"", path):
        with pytest.raises(ImageError) as err:
            load_image(source)
        assert err.value.reason == "file is empty"
    with pytest.raises(ImageError, match="file is empty"):
        probe(b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"Dear store,\nplease find the photo attached.\n", "it contains text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF document"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (np.random.default_rng(3).bytes(4096), "unrecognised format"),
        (encode(Image.new("RGB", (16, 16)), "ICO"), "unrecognised format"),  # not accepted
    ],
    ids=["text", "pdf", "heic", "svg", "random bytes", "icon"],
)
def test_not_an_image(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        load_image(data)
    with pytest.raises(ImageError, match=reason):
        probe(data)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="file not found"):
        read_bytes(tmp_path / "nope" / "deeper.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(quadrant_jpeg())
    if os.geteuid() == 0:
        # root reads files whatever their permissions: make the OS refusal happen by hand.
        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(Path, "open", refuse)
    else:
        path.chmod(0)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


# --- limits ---------------------------------------------------------------------------------------


def test_byte_limit_is_checked_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(quadrant_jpeg())

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened despite its size")

    monkeypatch.setattr(Path, "open", no_reading)
    expected = "above the 100 bytes limit; raise CATALOG_AI_MAX_IMAGE_BYTES"
    with pytest.raises(ImageError, match=expected):
        read_bytes(path, max_bytes=100)


def test_byte_limit_on_bytes_and_from_settings(env_settings: pytest.MonkeyPatch) -> None:
    data = quadrant_jpeg()
    with pytest.raises(ImageError, match="above the 100 bytes limit"):
        load_image(data, max_bytes=100)
    assert load_image(data, max_bytes=len(data)).size == (40, 20)

    env_settings.setenv("CATALOG_AI_MAX_IMAGE_BYTES", "200")
    reset_settings()
    with pytest.raises(ImageError, match="CATALOG_AI_MAX_IMAGE_BYTES"):
        load_image(data)


def test_pixel_limit_on_a_real_image(env_settings: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (100, 50), GREEN), "PNG")
    with pytest.raises(ImageError, match=r"image is 100x50 = 5000 pixels, above the limit of 4999"):
        load_image(data, max_pixels=4999)
    assert load_image(data, max_pixels=5000).size == (100, 50)
    env_settings.setenv("CATALOG_AI_MAX_IMAGE_PIXELS", "1000")
    reset_settings()
    with pytest.raises(ImageError, match="CATALOG_AI_MAX_IMAGE_PIXELS"):
        probe(data)


def test_decompression_bomb_is_refused_before_decoding(env_settings: pytest.MonkeyPatch) -> None:
    # 9000x9000 = 81 megapixels: above our default of 80, below Pillow's own warning (89.5), so
    # only our check can refuse it. The IDAT is garbage: decoding it would fail differently.
    bomb = crafted_png(9000, 9000, bit_depth=8, colour_type=2, idat=b"garbage")
    start = time.perf_counter()
    for call in (lambda: load_image(bomb), lambda: probe(bomb)):
        expected = r"image is 9000x9000 = 81\.0 megapixels, above the limit of 80\.0 megapixels"
        with pytest.raises(ImageError, match=expected):
            call()
    assert time.perf_counter() - start < 1.0


def test_real_decompression_bomb_is_refused(env_settings: pytest.MonkeyPatch) -> None:
    # A valid, decodable 9000x9000 1-bit PNG of one colour: about 10 KiB on disk, 81 MB decoded.
    row = b"\x00" + b"\x00" * (9000 // 8)
    bomb = crafted_png(9000, 9000, bit_depth=1, colour_type=0, idat=zlib.compress(row * 9000, 9))
    assert len(bomb) < 50_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="megapixels, above the limit"):
        load_image(bomb)
    assert time.perf_counter() - start < 1.0


def test_pillow_bomb_error_becomes_image_error() -> None:
    # Our limit raised far above Pillow's hard limit (2 x MAX_IMAGE_PIXELS): Pillow still refuses.
    assert Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < 20000 * 20000
    bomb = crafted_png(20000, 20000, bit_depth=8, colour_type=0, idat=b"garbage")
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(bomb, max_pixels=10**9)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_raised_as_error_becomes_image_error() -> None:
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < 10000 * 10000
    bomb = crafted_png(10000, 10000, bit_depth=8, colour_type=0, idat=b"garbage")
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(bomb, max_pixels=200_000_000)


# --- real photos ----------------------------------------------------------------------------------


def test_real_photos(shared_data: Path) -> None:
    paths = sorted((shared_data / "val").rglob("*.jpg"))[:5]
    if len(paths) < 5:
        pytest.skip(f"fewer than 5 JPEGs under {shared_data / 'val'}")
    for path in paths:
        full, info = load_with_info(path)
        assert full.mode == "RGB" and full.size == (info.width, info.height)
        assert info.format == "JPEG" and info.size_bytes == path.stat().st_size
        small = load_image(path, target_size=224)
        assert small.mode == "RGB"
        assert min(small.size) >= min(224, min(full.size))
        aspect = full.size[0] / full.size[1]
        assert math.isclose(small.size[0] / small.size[1], aspect, rel_tol=0.02)

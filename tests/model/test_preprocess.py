"""Preprocessing bounds memory before any resize (issue 13, finding 1).

A 17 KB 65000x2 JPEG took 32 s and 7.8 GB there, and a 400000x1 PNG ended in a raw MemoryError:
``square`` scaled the short side up with no bound on the long side. The hostile files are made
here; each is refused in a subprocess of its own, so its peak RSS (``getrusage``) is measured
alone.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog_ai.errors import ImageError
from catalog_ai.model.preprocess import square
from catalog_ai.settings import reset_settings

_MIB = 1024 * 1024

# Loads the photo as the predictor does (draft decoding to the square's side, then ``square``)
# and reports the outcome, the time and how much the peak RSS grew over the imports (torch
# alone takes ~500 MB, which is not the photo's doing).
_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from catalog_ai.errors import ImageError
    from catalog_ai.photos.decode import load_image
    from catalog_ai.model.preprocess import square

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        square(load_image(sys.argv[1], target_size=256), 256)
        outcome = "accepted"
    except ImageError as exc:
        outcome = "ImageError: " + exc.reason
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "seconds": seconds, "grew_kib": peak - base}))
    """
)


def _jpeg_65000x2() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (65000, 2), (200, 120, 40)).save(buf, "JPEG")
    return buf.getvalue()


def _png_400000x1() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (400000, 1), 0).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "size"),
    [("strip.jpg", _jpeg_65000x2, "65000x2"), ("line.png", _png_400000x1, "400000x1")],
)
def test_extreme_aspect_ratios_are_refused_fast_and_small(tmp_path, name, make, size):
    data = make()
    assert len(data) < 20_000  # tiny files: the danger is in the resize, not in the bytes
    path = tmp_path / name
    path.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CATALOG_AI_MAX_ASPECT_RATIO", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"].startswith(f"ImageError: image is {size}"), result
    assert "CATALOG_AI_MAX_ASPECT_RATIO" in result["outcome"]
    assert result["seconds"] < 1.0, result
    assert result["grew_kib"] * 1024 < 300 * _MIB, result


def test_square_bounds_an_image_handed_over_directly():
    # A caller that decoded the image itself (training, benchmarks) is guarded too.
    with pytest.raises(ImageError, match="long side is 400000 times its short side"):
        square(Image.new("RGB", (400000, 1)), 256, source="line.png")


def test_the_aspect_ratio_limit_is_a_setting(monkeypatch):
    wide = Image.new("RGB", (300, 10), (10, 20, 30))  # 30:1
    with pytest.raises(ImageError, match="raise CATALOG_AI_MAX_ASPECT_RATIO"):
        square(wide, 32)
    monkeypatch.setenv("CATALOG_AI_MAX_ASPECT_RATIO", "50")
    reset_settings()
    try:
        out = square(wide, 32)
    finally:
        monkeypatch.delenv("CATALOG_AI_MAX_ASPECT_RATIO")
        reset_settings()
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_ordinary_photos_are_unchanged():
    img = Image.new("RGB", (400, 20), (1, 2, 3))  # 20:1, the limit itself, is accepted
    assert square(img, 16).shape == (16, 16, 3)


def test_memory_error_while_resizing_is_an_image_error(monkeypatch):
    def no_memory(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image.Image, "resize", no_memory)
    with pytest.raises(ImageError, match="not enough memory to resize the 64x48 image"):
        square(Image.new("RGB", (64, 48)), 32, source="x.png")


def test_the_loader_refuses_the_strip_from_its_header(tmp_path: Path, monkeypatch):
    from catalog_ai.photos import decode as images

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(images, "_decode", no_decoding)
    with pytest.raises(ImageError, match="65000x2"):
        images.probe_header(_jpeg_65000x2(), source="strip.jpg")
    with pytest.raises(ImageError, match="65000x2"):
        images.load_image(_jpeg_65000x2(), name="strip.jpg")

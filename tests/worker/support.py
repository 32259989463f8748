"""Builders shared by the worker and classification tests: photos, bad files, a model.

The model is ``tiny-cnn`` with random weights (these tests are about the pipeline, not about
accuracy) and a low temperature, so its leaf decisions are confident; the auto-accept threshold
is the median confidence of its leaf decisions on the test photos, so about half of them are
accepted automatically and the rest wait for review.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "LEAVES",
    "activate",
    "bad_files",
    "make_bundle",
    "make_photos",
    "png_bytes",
    "shared_model",
]


def png_bytes(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 40) -> bytes:
    """A ``size``x``size`` PNG of noise around ``colour`` (different bytes every call)."""
    noise = rng.normal(0.0, 25.0, (size, size, 3))
    pixels = np.clip(np.asarray(colour, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_photos(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """``n`` distinct small PNG photos of random colours in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        path = folder / f"photo-{i:04d}.png"
        path.write_bytes(png_bytes(colour, rng))
        paths.append(path)
    return paths


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bad_files(folder: Path) -> dict[str, Path]:
    """One file of each kind of bad upload, by kind. ``corrupt`` has a sound header and broken
    image data, so only decoding it (in the worker) finds the damage."""
    folder.mkdir(parents=True, exist_ok=True)
    good = png_bytes((120, 60, 200), np.random.default_rng(99), size=64)
    # 100000 x 100000 pixels claimed by a 60-byte file: refused from the header.
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _chunk(b"IEND", b"")
    )
    files = {
        "empty": (folder / "empty.jpg", b""),
        "not_an_image": (folder / "notes.png", b"shopping list: apples, pears\n"),
        "bomb": (folder / "bomb.png", bomb),
        "corrupt": (folder / "cut-off.png", good[: len(good) // 2]),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {kind: path for kind, (path, _) in files.items()}


LEAVES = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]


def make_bundle(out_dir: Path, photos: list[Path], *, seed: int = 0):
    """A tiny-cnn bundle whose auto-accept threshold splits ``photos`` about in half."""
    from helpers import random_bundle

    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.decision import Thresholds

    bundle = random_bundle(
        out_dir,
        paths=LEAVES,
        seed=seed,
        temperature=0.05,
        thresholds=Thresholds(decision=0.5, auto_accept=1.01),
        metrics={},
        head_std=1.0,
        note="random weights for the worker tests",
    )
    predictions = Predictor(bundle).predict(photos)
    leaf_confidences = sorted(
        p.decision.confidence
        for p in predictions
        if p.decision is not None and p.decision.path == p.decision.leaf_path
    )
    if len(leaf_confidences) < 4:
        raise RuntimeError(
            f"the test model decides {len(leaf_confidences)} photos down to a leaf; change its seed"
        )
    median = leaf_confidences[len(leaf_confidences) // 2]
    bundle.thresholds = Thresholds(decision=0.5, auto_accept=median)
    bundle.save_manifest()
    return bundle


def activate(bundle_path: Path, *, dispatcher=None) -> str:
    """Register and activate the bundle in the configured catalog; its version. Re-classification
    and catalogue embedding go to ``dispatcher`` (None: nowhere)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model, register_model

    with unit_of_work() as session:
        row = register_model(session, bundle_path, add_categories=True)
        activate_model(session, row.version, dispatcher=dispatcher)
        return row.version


_CACHE: dict[int, tuple[list[Path], object]] = {}


def shared_model(tmp_path_factory, n: int = 40) -> tuple[list[Path], object]:
    """``n`` photos and a bundle made for them, built once per test session."""
    if n not in _CACHE:
        import torch

        base = tmp_path_factory.mktemp(f"worker-model-{n}")
        photos = make_photos(base / "photos", n)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny batches: more threads only fight over 2 shared cores
        try:
            _CACHE[n] = (photos, make_bundle(base / "bundle", photos))
        finally:
            torch.set_num_threads(previous)
    return _CACHE[n]


def hold_classification(monkeypatch) -> tuple[threading.Event, list[threading.Thread]]:
    """Hold every classification until the returned event is set; the list collects the threads
    it ran on (to show that work runs off the caller's thread)."""
    from catalog_ai.worker import pipeline

    release, threads = threading.Event(), []
    real = pipeline.classify_chunk

    def held_up(product_ids, **kwargs):
        threads.append(threading.current_thread())
        assert release.wait(60), "the test never released the classification"
        return real(product_ids, **kwargs)

    monkeypatch.setattr(pipeline, "classify_chunk", held_up)
    return release, threads

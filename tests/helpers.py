"""Shared builders for the training, bundle, predictor, model-service and CLI tests.

The tiny tree has variable depth: two depth-3 leaves under ``Fruit > Apple``, a depth-2 leaf
``Fruit > Banana`` and ``Veg > Carrot``. Each leaf's photos are 40x40 noise around one colour, so
the built-in ``tiny-cnn`` backbone (32 px input) learns them in a second of CPU time.

``trained_bundle`` trains one model per test session (in a ``tmp_path_factory`` directory) and
every test module that needs a trained bundle reuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

__all__ = [
    "LEAF_COLOURS",
    "LEAF_PATHS",
    "TrainedBundle",
    "isolated_home",
    "make_tree",
    "one_torch_thread",
    "random_bundle",
    "tiny_config",
    "torch_single_thread",
    "trained_bundle",
    "write_photo",
]

# Leaf path -> colour of its photos: one colour per leaf, far apart in RGB.
LEAF_COLOURS: dict[tuple[str, ...], tuple[int, int, int]] = {
    ("Fruit", "Apple", "Green"): (40, 190, 40),
    ("Fruit", "Apple", "Red"): (210, 30, 30),
    ("Fruit", "Banana"): (235, 220, 40),
    ("Veg", "Carrot"): (30, 60, 220),
}
LEAF_PATHS = [" > ".join(p) for p in LEAF_COLOURS]
INNER_COLOUR = (200, 110, 40)  # photos labelled only "Fruit > Apple" (between green and red)


def write_photo(
    path: Path, colour: tuple[int, int, int], rng: np.random.Generator, size: int = 40
) -> Path:
    """A ``size``x``size`` PNG of Gaussian noise around ``colour``."""
    noise = rng.normal(0.0, 20.0, (size, size, 3))
    pixels = np.clip(np.asarray(colour, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_tree(
    root: Path,
    *,
    per_class: int = 12,
    inner: int = 0,
    broken: bool = False,
    empty: tuple[str, ...] | None = None,
    seed: int = 0,
) -> Path:
    """Write the tiny tree under ``root``.

    ``inner``: photos put directly in ``Fruit/Apple/`` (labelled at the inner node);
    ``broken``: adds ``Veg/Carrot/broken.png`` that is not an image;
    ``empty``: an extra category folder without photos (e.g. ``("Veg", "Pepper")``).
    """
    rng = np.random.default_rng(seed)
    for path, colour in LEAF_COLOURS.items():
        for i in range(per_class):
            write_photo(root.joinpath(*path) / f"{path[-1].lower()}-{i:02d}.png", colour, rng)
    for i in range(inner):
        write_photo(root / "Fruit" / "Apple" / f"apple-{i:02d}.png", INNER_COLOUR, rng)
    if broken:
        (root / "Veg" / "Carrot" / "broken.png").write_bytes(b"this is not a PNG file")
    if empty:
        root.joinpath(*empty).mkdir(parents=True)
    return root


def tiny_config(**overrides):
    """A TrainConfig that trains ``tiny-cnn`` on the tiny tree in about a second on one CPU."""
    from catalog_ai.training.fit import TrainConfig

    settings = dict(
        backbone="tiny-cnn",
        epochs=8,
        image_size=32,
        batch_size=16,
        lr=0.03,
        frozen_groups=0,
        holdout=0.25,
        accelerator="cpu",
        devices="1",
        progress=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@contextmanager
def torch_single_thread() -> Iterator[None]:
    """Tiny batches on a shared 2-core machine: OpenMP threads spinning against other processes
    make them 10-100x slower than one thread (measured: 0.3 s vs 4 ms per tiny-cnn step)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Import into a test module (or conftest) to run its tests on one torch thread."""
    with torch_single_thread():
        yield


@contextmanager
def isolated_home(home: Path) -> Iterator[Path]:
    """CATALOG_AI_HOME pointed at ``home`` for the block (for session-scoped builders)."""
    from catalog_ai.settings import reset_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_AI_HOME", str(home))
        mp.setenv("CATALOG_AI_OFFLINE", "1")
        for var in ("CATALOG_AI_DATABASE_URL", "CATALOG_AI_MEDIA_DIR", "CATALOG_AI_MODEL_DIR"):
            mp.delenv(var, raising=False)
        reset_settings()
        try:
            yield home
        finally:
            reset_settings()
    reset_settings()


@dataclass(frozen=True)
class TrainedBundle:
    """One model trained on ``data`` (tiny tree + 2 inner-node photos + 1 unreadable photo)."""

    path: Path
    data: Path
    result: object  # catalog_ai.training.fit.TrainResult
    config: object  # catalog_ai.training.fit.TrainConfig


_SESSION_CACHE: dict[str, TrainedBundle] = {}


def build_trained_bundle(base: Path) -> TrainedBundle:
    from catalog_ai.training.fit import fit
    from catalog_ai.training.sources import load_folder_examples

    data = make_tree(base / "data", inner=2, broken=True)
    config = tiny_config()
    with isolated_home(base / "home"), torch_single_thread():
        taxonomy, examples, description = load_folder_examples(data)
        result = fit(
            config,
            taxonomy=taxonomy,
            examples=examples,
            out_dir=base / "bundle",
            data_description=description,
        )
    return TrainedBundle(path=base / "bundle", data=data, result=result, config=config)


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> TrainedBundle:
    """Trained once per session, whichever module asks first (fixtures imported into several
    modules are separate fixture definitions, hence the module-level cache)."""
    if "bundle" not in _SESSION_CACHE:
        _SESSION_CACHE["bundle"] = build_trained_bundle(tmp_path_factory.mktemp("trained"))
    return _SESSION_CACHE["bundle"]


def random_bundle(
    out_dir: Path,
    *,
    paths: list[str] | None = None,
    seed: int = 0,
    temperature: float = 1.5,
    thresholds=None,
    metrics: dict | None = None,
    head_std: float = 0.5,
    note: str = "random weights for tests",
):
    """A bundle for ``tiny-cnn`` with randomly initialised weights (no training): for tests of
    the bundle format, loading and the model services. ``head_std``: the head's weights are
    drawn wider than the near-zero default so that outputs differ between photos."""
    import torch

    from catalog_ai.backbones import create_backbone, get_backbone
    from catalog_ai.model.bundle import write_bundle
    from catalog_ai.model.decision import Thresholds
    from catalog_ai.model.network import HierarchicalClassifier
    from catalog_ai.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_paths(paths or LEAF_PATHS)
    spec = get_backbone("tiny-cnn")
    torch.manual_seed(seed)
    network = HierarchicalClassifier(
        create_backbone("tiny-cnn", pretrained=False), spec.embedding_dim, len(taxonomy.leaf_ids)
    )
    torch.nn.init.normal_(network.head.weight, std=head_std)
    return write_bundle(
        out_dir,
        state_dict=network.state_dict(),
        backbone="tiny-cnn",
        embedding_dim=spec.embedding_dim,
        preprocessing=spec.preprocessing,
        image_size=32,
        eval_crop_pct=1.0,
        temperature=temperature,
        thresholds=thresholds
        or Thresholds(
            decision=0.5,
            auto_accept=0.9,
            auto_accept_by_precision={"0.95": 0.8, "0.98": 0.9, "0.99": 1.01},
        ),
        taxonomy=taxonomy,
        metrics=metrics if metrics is not None else {"held_out": {"leaf_accuracy": 0.5}},
        training={"note": note},
    )


def image_row(key: str, *, fmt: str = "PNG", side: int = 4, size_bytes: int = 10):
    """A ProductImage row for tests that need a photo in the database but never read its file:
    ``key`` makes the content hash and the stored path unique."""
    from catalog_ai.db import ProductImage

    suffix = "jpg" if fmt == "JPEG" else fmt.lower()
    return ProductImage(
        content_hash=key.ljust(64, "0")[:64],
        stored_path=f"ab/{key}.{suffix}",
        width=side,
        height=side,
        size_bytes=size_bytes,
        format=fmt,
    )


# The public JSON contracts, written out once for the tests that pin them (a field renamed in
# the code must fail here, not follow silently).
DECISION_KEYS = frozenset(
    {
        "path",
        "depth",
        "confidence",
        "leaf_path",
        "leaf_confidence",
        "levels",
        "source",
        "model_version",
        "auto_accept",
        "open_set",
    }
)
METRIC_KEYS = (
    "leaf_accuracy",
    "depth_accuracy",
    "top5_accuracy",
    "hierarchical_f1",
    "ece",
    "coverage_at_precision",
    "n_images",
)

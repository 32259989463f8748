"""A small catalog for the dashboard tests, built through the services and ``unit_of_work``.

- the tiny tree (``Fruit > Apple > Green|Red``, ``Fruit > Banana``, ``Veg > Carrot``);
- two registered ``tiny-cnn`` bundles with random weights: ``m1`` active, ``m2`` not;
- imported products of every leaf (photos in the media store);
- a review queue of uploads with suggestions from ``m1`` (fixed confidences, see ``QUEUE``),
  each with a stored photo;
- reviewers ``alice`` and ``bob`` in ``CATALOG_AI_USERS`` (cheap hashes: tests run fast).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

__all__ = ["QUEUE", "PASSWORDS", "PATHS", "build_catalog", "png_bytes", "users_env"]

PATHS = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]
COLOURS = {
    "Fruit > Apple > Green": (40, 190, 40),
    "Fruit > Apple > Red": (210, 30, 30),
    "Fruit > Banana": (235, 220, 40),
    "Veg > Carrot": (30, 60, 220),
}
# title -> (suggested path, confidence, source, open_set); the queue shows them least confident first.
QUEUE = {
    "q-none": ("", 0.30, "abstain", False),
    "q-red": ("Fruit > Apple > Red", 0.40, "head", False),
    "q-odd": ("Fruit", 0.55, "head", True),
    "q-banana": ("Fruit > Banana", 0.80, "prototype", False),
    "q-green": ("Fruit > Apple > Green", 0.93, "head", False),
    "q-carrot": ("Veg > Carrot", 0.97, "head", False),
}
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


def png_bytes(colour: tuple[int, int, int], seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour, float) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def add_photos(product_id: int, n: int) -> None:
    """Give product ``product_id`` ``n`` more photos (positions 1..n), made here."""
    from catalog_ai.db import ProductImage, unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.settings import get_settings

    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as s:
        for k in range(n):
            data = png_bytes((30 * k, 200, 90), seed=500 + k)
            stored = media.put(data, image_format="PNG")
            s.add(ProductImage(product_id=product_id, content_hash=stored.content_hash,
                               stored_path=stored.relative_path, width=48, height=48,
                               size_bytes=len(data), format="PNG", position=k + 1))


def users_env() -> str:
    from argon2 import PasswordHasher, profiles

    from catalog_ai.auth import hash_password

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    return ";".join(f"{name}:{hash_password(pw, hasher=cheap)}" for name, pw in PASSWORDS.items())


def _levels(path: str, confidence: float) -> list:
    """Per-depth top-2 lists like a Decision's: the suggested prefix, then a rival."""
    if not path:
        return [[{"path": "Fruit", "probability": confidence}, {"path": "Veg", "probability": 1 - confidence}]]
    parts = path.split(" > ")
    levels = []
    for depth in range(1, len(parts) + 1):
        prefix = " > ".join(parts[:depth])
        p = min(1.0, confidence + 0.05 * (len(parts) - depth))
        rival = "Veg" if depth == 1 else ("Fruit > Banana" if depth == 2 else "Fruit > Apple > Green")
        if rival == prefix:
            rival = "Fruit > Apple > Red"
        levels.append([{"path": prefix, "probability": round(p, 4)},
                       {"path": rival, "probability": round(1 - p, 4)}])
    return levels


def build_catalog(base: Path) -> dict[str, int]:
    """Build the catalog in the current ``CATALOG_AI_HOME``; returns product ids by title."""
    from catalog_ai.db import Category, ModelVersion, Product, ProductImage, ProductStatus, Suggestion, migrate, unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.catalog_import import sync_taxonomy
    from catalog_ai.services.models import activate_model, register_model
    from catalog_ai.settings import get_settings
    from catalog_ai.taxonomy import Taxonomy
    from helpers import random_bundle

    migrate.upgrade()
    random_bundle(base / "m1", paths=PATHS, seed=1, metrics={
        "held_out": {"n_images": 40, "leaf_accuracy": 0.75, "top5_accuracy": 1.0, "hierarchical_f1": 0.8,
                     "ece": 0.05, "depth_accuracy": [0.9, 0.8, 0.7],
                     "coverage_at_precision": {"0.95": 0.5, "0.98": 0.25},
                     "reliability": [{"low": 0.5, "high": 0.6, "count": 4, "confidence": 0.55, "accuracy": 0.5}],
                     "confused_pairs": [{"true": "Fruit > Apple > Red", "predicted": "Fruit > Apple > Green", "count": 2}]}})
    random_bundle(base / "m2", paths=PATHS, seed=2)
    media = MediaStore(get_settings().media_dir)
    ids: dict[str, int] = {}
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        m1 = register_model(s, base / "m1")
        register_model(s, base / "m2")
        activate_model(s, m1.version, dispatcher=None)  # the catalog is built by hand
        cats = {c.path: c.id for c in s.scalars(select(Category))}

        def product(title: str, colour, seed: int, **fields) -> Product:
            data = png_bytes(colour, seed)
            stored = media.put(data, image_format="PNG")
            p = Product(title=title, **fields)
            p.images.append(ProductImage(content_hash=stored.content_hash, stored_path=stored.relative_path,
                                         width=48, height=48, size_bytes=len(data), format="PNG"))
            s.add(p)
            s.flush()
            ids[title] = p.id
            return p

        seed = 0
        for path, colour in COLOURS.items():
            for i in range(2):
                seed += 1
                product(f"imp-{path.split(' > ')[-1].lower()}-{i}", colour, seed, status=ProductStatus.ACCEPTED,
                        category_id=cats[path], label_source="import")
        for title, (path, conf, source, open_set) in QUEUE.items():
            seed += 1
            p = product(title, COLOURS.get(path, (128, 128, 128)), seed, status=ProductStatus.SUGGESTED)
            s.add(Suggestion(product_id=p.id, model_version_id=m1.id, category_id=cats.get(path), path=path,
                             levels=_levels(path, conf), confidence=conf, source=source, open_set=open_set))
        s.flush()
        assert s.scalar(select(ModelVersion.version).where(ModelVersion.is_active.is_(True))) == m1.version
    return ids

"""Few-shot categories: add or update categories from a few example photos, without retraining.

Two ways in:

- ``add_examples(bundle_dir, examples)``: a folder tree of example photos (``catalog-ai fewshot
  add``) goes into the model bundle's prototype memory; new paths extend the model's tree.
- reviews: products a reviewer accepted or corrected are examples too, recorded as numbered
  revisions of the active version's memory in the database (:mod:`catalog_ai.services.versions`),
  so a correction counts from the next photo a worker classifies; no file is rewritten per review.
  ``review_examples``/``memory_with_reviews`` read every reviewed product's embedding of a
  version (the same examples, without revision numbers).

``add_examples`` writes into the bundle it is given: ``catalog-ai fewshot add`` gives it a new
bundle derived from the model (a new version), never a registered one.

A failed add changes nothing: every photo is read and embedded before the memory is saved, and
the memory is saved atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    Embedding,
    LabelSource,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
)
from catalog_ai.db.models.embedding import decode_vectors
from catalog_ai.errors import ImageError
from catalog_ai.model.prototypes import PrototypeError, PrototypeMemory
from catalog_ai.photos.decode import read_bytes
from catalog_ai.photos.store import content_hash
from catalog_ai.taxonomy import SEPARATOR, Taxonomy, format_path

__all__ = [
    "FewshotResult",
    "add_examples",
    "check_new_paths",
    "memory_with_reviews",
    "review_examples",
]


@dataclass
class FewshotResult:
    added: list[str] = field(default_factory=list)  # new categories
    updated: list[str] = field(default_factory=list)  # existing categories with more examples
    photos: int = 0
    already_added: int = (
        0  # photos this memory already holds (same file content): not counted again
    )
    seconds: float = 0.0


def check_new_paths(head_tree: Taxonomy, memory: PrototypeMemory, paths: Sequence[str]) -> None:
    """Refuse paths that clash with what the model knows.

    - a path equal to a grouping of the head's tree (``Fruit > Apple`` above its varieties):
      examples belong to one of its categories, or to a new sub-category;
    - a path that differs from a known one only in letter case or spacing (a typo would
      otherwise create a second, competing category).
    """
    known = {n.text for n in head_tree} | set(memory.paths)
    folded = {_fold(p): p for p in known}
    for path in paths:
        node = head_tree.find(path)
        if node is not None and not head_tree.is_leaf(node.id):
            raise PrototypeError(
                f"{path!r} is a grouping of {len(head_tree.children(node.id))} categories in the "
                "model's tree; put the photos in one of its categories or in a new sub-category"
            )
        same = folded.get(_fold(path))
        if same is not None and same != path:
            raise PrototypeError(
                f"{path!r} clashes with the existing category {same!r} (same name, other "
                "spelling); use the existing path or choose a distinct name"
            )


def _fold(path: str) -> str:
    return " > ".join(" ".join(part.split()).casefold() for part in path.split(">"))


def add_examples(
    bundle_dir: Path, examples: Sequence[tuple[Path, tuple[str, ...]]], *, progress: bool = False
) -> FewshotResult:
    """Embed the example photos and add them to the bundle's prototype memory."""
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.bundle import BundleError, ModelBundle

    started = time.monotonic()
    if not examples:
        raise PrototypeError(
            "no example photos: give a folder whose sub-folders are categories holding photos"
        )
    bundle = ModelBundle.load(bundle_dir)
    memory = PrototypeMemory.load(bundle.path)
    if memory is None:
        raise BundleError(
            f"{bundle.path} has no prototype memory (made by an older catalog_ai); retrain it"
        )
    paths = sorted({format_path(p) for _, p in examples})
    check_new_paths(bundle.taxonomy, memory, paths)
    predictor = Predictor(bundle)
    squares, labels, digests, failed, files = [], [], [], [], []
    already, seen = 0, set(memory.example_hashes)
    for file, category in examples:
        try:  # the same checks as for uploads (size from stat, before reading)
            data = read_bytes(Path(file))
        except ImageError as exc:
            failed.append(f"{file}: {exc.reason}")
            continue
        digest = content_hash(data)
        if digest in seen:
            already += 1
            continue
        try:
            squares.append(predictor.prepare(data, name=str(file)))
        except ImageError as exc:
            failed.append(f"{file}: {exc.reason}")
            continue
        seen.add(digest)
        files.append(file)
        labels.append(format_path(category))
        digests.append(digest)
    # Each photo is embedded on its own if its batch fails, so a photo the network fails on
    # is named with its reason instead of failing the add with a traceback.
    rows: list[np.ndarray] = []
    for i in range(0, len(squares), predictor.batch_size):
        results = predictor.analyse_each(squares[i : i + predictor.batch_size])
        for k, res in enumerate(results):
            if isinstance(res, str):
                failed.append(f"{files[i + k]}: {res}")
            else:
                rows.append(res[0].embeddings[res[1]])
    if failed:
        also = "".join(f"; then: {f}" for f in failed[1:5])
        also += f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise PrototypeError(
            f"{len(failed)} example photos cannot be read, nothing was added (first: "
            f"{failed[0]}{also}); remove or replace them and run again"
        )
    result = FewshotResult(photos=len(labels), already_added=already)
    if not squares:  # every photo is already in the memory: nothing to do
        result.seconds = time.monotonic() - started
        return result
    embeddings = np.stack(rows)
    updated = memory.copy()
    for path in paths:
        sel = [i for i, label in enumerate(labels) if label == path]
        if not sel:
            continue
        (result.updated if path in updated else result.added).append(path)
        updated.add(path, embeddings[sel], source="fewshot")
    updated.example_hashes |= set(digests)
    updated.save(bundle.path)
    result.seconds = time.monotonic() - started
    return result


def review_examples(session: Session, model_version: str) -> tuple[list[str], np.ndarray]:
    """Category paths and embeddings (for ``model_version``) of products accepted by a reviewer."""
    rows = session.execute(
        select(Category.path, Embedding.dim, Embedding.vector)
        .join(Product, Product.category_id == Category.id)
        .join(ProductImage, ProductImage.product_id == Product.id)
        .join(Embedding, Embedding.image_id == ProductImage.id)
        .join(ModelVersion, Embedding.model_version_id == ModelVersion.id)
        .where(ModelVersion.version == model_version)
        .where(Product.status == ProductStatus.ACCEPTED)
        .where(Product.label_source == LabelSource.REVIEW)
        .order_by(Product.id)
    ).all()
    vectors = decode_vectors([d for _, d, _ in rows], [v for _, _, v in rows])
    return [p for p, _, _ in rows], vectors


def memory_with_reviews(
    base: PrototypeMemory, session: Session, model_version: str
) -> PrototypeMemory:
    """The bundle's memory plus every reviewer-accepted product as an example of its category.

    A product accepted only down to a grouping (``Fruit > Apple`` above known apple varieties)
    is not an example: as a category of its own it would compete with its own children, which
    ``fewshot add`` refuses too. It still trains the head at the next ``train --from-catalog``."""
    paths, vectors = review_examples(session, model_version)
    if not paths:
        return base
    memory = base.copy()
    known = set(base.paths)
    for path in sorted(set(paths)):
        if path not in known and any(k.startswith(path + SEPARATOR) for k in known):
            continue
        memory.add(path, vectors[[i for i, p in enumerate(paths) if p == path]], source="review")
    return memory

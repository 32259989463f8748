"""Where training photos come from: a labelled folder tree, or the catalog's accepted products
(those people labelled, unless asked otherwise)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from catalog_ai.db import (
    HUMAN_SOURCES,
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    unit_of_work,
)
from catalog_ai.errors import ImportFolderError
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR, Taxonomy, format_path, scan_folder
from catalog_ai.training.data import Example, TrainingDataError

__all__ = ["examples_from_catalog", "load_folder_examples", "split_rare_categories"]


def load_folder_examples(
    root: Path, *, taxonomy: Taxonomy | None = None
) -> tuple[Taxonomy, list[Example], str]:
    """A folder tree's photos; with ``taxonomy``, its labels must be categories of that tree."""
    root = Path(root)
    if not root.is_dir():
        raise ImportFolderError(
            f"{root} is not a folder of labelled photos (sub-folders are categories)"
        )
    scan = scan_folder(root)
    examples = [Example(file=f, label=format_path(p)) for f, p in scan.files]
    if not examples:
        raise TrainingDataError(f"{root} holds no photos in category sub-folders")
    if taxonomy is not None:
        known = {n.text for n in taxonomy}
        unknown = sorted({e.label for e in examples} - known)
        if unknown:
            raise TrainingDataError(
                f"{root}: {len(unknown)} categories are not in the training tree "
                f"(first: {unknown[0]!r}); "
                "the two folders must use the same category paths"
            )
    description = f"folder:{root.resolve()} ({len(examples)} photos)"
    return taxonomy or scan.taxonomy, examples, description


def split_rare_categories(
    examples: Sequence[Example], min_photos: int
) -> tuple[list[Example], list[Example]]:
    """``(for the head, for prototypes)``: categories with fewer than ``min_photos`` photos are
    left to the few-shot prototypes, which serve a category from one photo, instead of becoming
    head outputs trained on almost nothing.

    Only categories that are not above another label move, and only when what stays keeps them
    outside the head's leaves (a prototype category cannot hang below a head leaf)."""
    counts = Counter(e.label for e in examples)
    labels = set(counts)
    rare = {
        label
        for label, n in counts.items()
        if n < min_photos and not any(other.startswith(label + SEPARATOR) for other in labels)
    }
    staying = labels - rare
    for label in sorted(rare):
        parent = label.rsplit(SEPARATOR, 1)[0] if SEPARATOR in label else None
        # The parent would be a head leaf if it has photos and nothing below it stays.
        if parent in staying and not any(o.startswith(parent + SEPARATOR) for o in staying):
            rare.discard(label)
    return [e for e in examples if e.label not in rare], [e for e in examples if e.label in rare]


def examples_from_catalog(
    *, include_model_labels: bool = False
) -> tuple[Taxonomy, list[Example], str]:
    """Accepted products with a category whose label a person gave (imports, reviews, few-shot
    examples: :attr:`LabelSource.is_human`); with ``include_model_labels``, products a model
    auto-accepted too. Training on a model's own guesses by default would teach the next model
    the last one's mistakes as truth.

    The description says how many photos came from each source and how many were left out; it
    is printed by ``train`` and kept in the bundle's manifest. The tree is the part of the
    catalog's tree that has photos: categories nobody has labelled yet are left to the few-shot
    prototypes instead of becoming dead outputs of the head.
    """
    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as session:
        rows = session.execute(
            select(ProductImage.stored_path, Category.path, Product.label_source)
            .join(Product, ProductImage.product_id == Product.id)
            .join(Category, Product.category_id == Category.id)
            .where(Product.status == ProductStatus.ACCEPTED)
            .order_by(ProductImage.id)
        ).all()
    used: Counter[str] = Counter()
    left_out = 0
    examples = []
    for stored, path, source in rows:
        human = source is not None and LabelSource(source).is_human
        if human or include_model_labels:
            examples.append(Example(file=media.path(stored), label=path))
            used[str(source) if source is not None else "unknown"] += 1
        else:
            left_out += 1
    if not examples:
        hint = (
            f" ({left_out} photos auto-accepted from a model are left out: add "
            "--include-model-labels to train on them)"
            if left_out
            else ""
        )
        raise TrainingDataError(
            "the catalog has no accepted products labelled by people" + hint + "; import "
            "labelled photos (catalog-ai catalog import-folder DIR) or review suggestions first"
        )
    taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))
    return taxonomy, examples, "catalog (" + _describe(used, left_out) + ")"


def _describe(used: Counter[str], left_out: int) -> str:
    """``32 photos labelled by people (30 import, 2 review); 8 auto-accepted photos left out``."""
    human = {k: n for k, n in used.items() if k in {s.value for s in HUMAN_SOURCES}}
    by_people = sum(human.values())
    parts = ", ".join(f"{n} {k}" for k, n in sorted(human.items()))
    text = f"{by_people} photos labelled by people" + (f" ({parts})" if parts else "")
    others = {k: n for k, n in used.items() if k not in human}
    if others:
        text += (
            "; "
            + ", ".join(
                f"{n} "
                + ("auto-accepted from a model" if k == LabelSource.MODEL else "of unknown source")
                for k, n in sorted(others.items())
            )
            + " (--include-model-labels)"
        )
    if left_out:
        text += f"; {left_out} auto-accepted photos left out"
    return text

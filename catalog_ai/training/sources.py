"""Where training photos come from: a labelled folder tree, or the catalog's accepted products."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from catalog_ai.db import Category, Product, ProductImage, ProductStatus, unit_of_work
from catalog_ai.errors import ImportFolderError
from catalog_ai.media import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR, Taxonomy, format_path, scan_folder
from catalog_ai.training.data import Example, TrainingDataError

__all__ = ["load_folder_examples", "examples_from_catalog", "split_rare_categories"]


def load_folder_examples(root: Path, *, taxonomy: Taxonomy | None = None) -> tuple[Taxonomy, list[Example], str]:
    """A folder tree's photos; with ``taxonomy``, its labels must be categories of that tree."""
    root = Path(root)
    if not root.is_dir():
        raise ImportFolderError(f"{root} is not a folder of labelled photos (sub-folders are categories)")
    scan = scan_folder(root)
    examples = [Example(file=f, label=format_path(p)) for f, p in scan.files]
    if not examples:
        raise TrainingDataError(f"{root} holds no photos in category sub-folders")
    if taxonomy is not None:
        known = {n.text for n in taxonomy}
        unknown = sorted({e.label for e in examples} - known)
        if unknown:
            raise TrainingDataError(
                f"{root}: {len(unknown)} categories are not in the training tree (first: {unknown[0]!r}); "
                "the two folders must use the same category paths"
            )
    description = f"folder:{root.resolve()} ({len(examples)} photos)"
    return taxonomy or scan.taxonomy, examples, description


def split_rare_categories(examples: Sequence[Example], min_photos: int) -> tuple[list[Example], list[Example]]:
    """``(for the head, for prototypes)``: categories with fewer than ``min_photos`` photos are
    left to the few-shot prototypes, which serve a category from one photo, instead of becoming
    head outputs trained on almost nothing.

    Only categories that are not above another label move, and only when what stays keeps them
    outside the head's leaves (a prototype category cannot hang below a head leaf)."""
    counts = Counter(e.label for e in examples)
    labels = set(counts)
    rare = {
        label for label, n in counts.items()
        if n < min_photos and not any(other.startswith(label + SEPARATOR) for other in labels)
    }
    staying = labels - rare
    for label in sorted(rare):
        parent = label.rsplit(SEPARATOR, 1)[0] if SEPARATOR in label else None
        # The parent would be a head leaf if it has photos and nothing below it stays.
        if parent in staying and not any(o.startswith(parent + SEPARATOR) for o in staying):
            rare.discard(label)
    return [e for e in examples if e.label not in rare], [e for e in examples if e.label in rare]


def examples_from_catalog() -> tuple[Taxonomy, list[Example], str]:
    """Accepted products with a category (imported labels and staff reviews).

    The tree is the part of the catalog's tree that has photos: categories nobody has labelled
    yet are left to the few-shot prototypes instead of becoming dead outputs of the head.
    """
    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as session:
        rows = session.execute(
            select(ProductImage.stored_path, Category.path)
            .join(Product, ProductImage.product_id == Product.id)
            .join(Category, Product.category_id == Category.id)
            .where(Product.status == ProductStatus.ACCEPTED)
            .order_by(ProductImage.id)
        ).all()
    if not rows:
        raise TrainingDataError(
            "the catalog has no accepted products with a category; import labelled photos "
            "(catalog-ai catalog import-folder DIR) or review suggestions first"
        )
    examples = [Example(file=media.path(stored), label=path) for stored, path in rows]
    taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))
    return taxonomy, examples, f"catalog ({len(examples)} accepted photos)"

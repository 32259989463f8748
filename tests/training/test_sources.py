"""Which catalog categories get a head output and which are left to few-shot prototypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_photo
from sqlalchemy import select, update

from catalog_ai.db import LabelSource, Product, ProductImage, dispose_engines, migrate, unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.catalog_import import import_labelled_files, sync_taxonomy
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.data import Example, TrainingDataError
from catalog_ai.training.sources import examples_from_catalog, split_rare_categories


def _examples(counts: dict[str, int]) -> list[Example]:
    return [
        Example(Path(f"{label}-{i}.png"), label) for label, n in counts.items() for i in range(n)
    ]


def _labels(examples) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in examples:
        out[e.label] = out.get(e.label, 0) + 1
    return out


def test_rare_leaves_go_to_prototypes_frequent_ones_and_inner_labels_stay():
    head, rare = split_rare_categories(
        _examples(
            {
                # An inner label (photos labelled only down to Apple): trains the head.
                "Fruit > Apple": 2,
                "Fruit > Apple > Green": 9,
                "Fruit > Apple > Pink": 3,  # rare leaf
                "Fruit > Banana": 5,  # exactly the minimum: stays
                "Veg > Kale": 1,  # rare leaf under a branch with no other label
            }
        ),
        5,
    )
    assert _labels(head) == {"Fruit > Apple": 2, "Fruit > Apple > Green": 9, "Fruit > Banana": 5}
    assert _labels(rare) == {"Fruit > Apple > Pink": 3, "Veg > Kale": 1}


def test_a_rare_child_stays_when_its_parent_would_become_a_head_leaf():
    # Moving "Tea > Green" out would make "Tea" (it has photos of its own) a head leaf with a
    # prototype category below it: the tree could not hold both, so it stays in the head.
    head, rare = split_rare_categories(_examples({"Tea": 8, "Tea > Green": 2, "Coffee": 8}), 5)
    assert _labels(head) == {"Tea": 8, "Tea > Green": 2, "Coffee": 8}
    assert rare == []


def test_min_photos_of_one_keeps_everything_in_the_head():
    examples = _examples({"A > B": 1, "A > C": 7})
    head, rare = split_rare_categories(examples, 1)
    assert head == examples and rare == []


# --- the catalog as a source: only labels people gave, unless asked ----------------------------

SOURCES = {  # photo index -> who labelled it
    0: LabelSource.IMPORT,
    1: LabelSource.IMPORT,
    2: LabelSource.REVIEW,
    3: LabelSource.FEWSHOT,
    4: LabelSource.MODEL,
    5: LabelSource.MODEL,
    6: LabelSource.MODEL,
}


@pytest.fixture
def mixed_catalog(catalog_home, tmp_path) -> dict[LabelSource, set[str]]:
    """Seven accepted photos of ``Veg > Carrot``: four labelled by people, three auto-accepted.
    Returns the photos' titles per source."""
    rng = np.random.default_rng(0)
    files = [
        (write_photo(tmp_path / "photos" / f"p{i}.png", (200, 90, 30), rng), ("Veg", "Carrot"))
        for i in SOURCES
    ]
    migrate.upgrade()
    with unit_of_work() as session:
        sync_taxonomy(session, Taxonomy.from_paths(["Veg > Carrot"]), source="test")
        import_labelled_files(session, files, media=MediaStore(get_settings().media_dir))
        for product in session.scalars(select(Product)):
            product.label_source = SOURCES[int(product.title[1:])]
    yield
    dispose_engines()


def _titles(examples) -> list[str]:
    return sorted(e.file.name for e in examples)


def test_from_catalog_trains_on_labels_people_gave_only(mixed_catalog):
    taxonomy, examples, description = examples_from_catalog()
    assert len(examples) == 4 and [n.text for n in taxonomy][-1] == "Veg > Carrot"
    assert description == (
        "catalog (4 photos labelled by people (1 fewshot, 2 import, 1 review); "
        "3 auto-accepted photos left out)"
    )
    with unit_of_work() as session:
        human_files = {
            MediaStore(get_settings().media_dir).path(stored).name
            for stored in session.scalars(
                select(ProductImage.stored_path).join(Product).where(Product.labelled_by_person)
            )
        }
    assert _titles(examples) == sorted(human_files)


def test_from_catalog_takes_model_labels_only_when_asked(mixed_catalog):
    _, examples, description = examples_from_catalog(include_model_labels=True)
    assert len(examples) == 7
    assert description == (
        "catalog (4 photos labelled by people (1 fewshot, 2 import, 1 review); "
        "3 auto-accepted from a model (--include-model-labels))"
    )


def test_a_catalog_labelled_only_by_a_model_names_the_flag(mixed_catalog):
    with unit_of_work() as session:
        session.execute(update(Product).values(label_source=LabelSource.MODEL))
    with pytest.raises(
        TrainingDataError,
        match=r"no accepted products labelled by people \(7 "
        r"photos auto-accepted from a model are left out: add --include-model-",
    ):
        examples_from_catalog()

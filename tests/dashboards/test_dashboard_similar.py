"""Similar products (AppTest): by photo (cropped in the page), by product, by words; and the
review card's similar products. Embeddings come from real in-process classification."""

from __future__ import annotations

import pytest

from catalog_ai.db import unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.search_index import build_index
from catalog_ai.settings import get_settings
from catalog_ai.worker.dispatch import default_dispatcher
from catalog_builder import COLOURS, png_bytes


@pytest.fixture
def indexed(catalog):
    """Eight uploads classified with the active model (their embeddings stored), then indexed."""
    files = [(f"{path.split(' > ')[-1].lower()}-{i}.png", png_bytes(colour, 500 + 10 * n + i))
             for n, (path, colour) in enumerate(COLOURS.items()) for i in range(2)]
    with unit_of_work() as s:
        created = ingest_files(s, files, media=MediaStore(get_settings().media_dir),
                               dispatcher=default_dispatcher()).created
    default_dispatcher().drain()  # classified (their embeddings stored) off this thread
    with unit_of_work() as s:
        build_index(s, None)
    return created


def _result_captions(at) -> list[str]:
    return [c.value for c in at.caption if " · score " in c.value]


def test_missing_index_is_explained(catalog, open_app):
    at = open_app("similar")
    assert any("no search index yet" in w.value and "catalog-ai index build" in w.value for w in at.warning)
    at.radio(key="similar-mode").set_value("words only").run()
    at.text_input(key="similar-text").input("carrot").run()
    # Words match titles and category paths.
    assert sorted(c.split(" ")[1] for c in _result_captions(at)) == ["imp-carrot-0", "imp-carrot-1", "q-carrot"]


def test_search_by_product_photo_crop_and_text(indexed, open_app):
    at = open_app("similar")
    assert any("8 photos, up to date" in c.value for c in at.caption)
    at.radio(key="similar-mode").set_value("a catalog product").run()
    at.number_input(key="similar-product").set_value(indexed[0]).run()
    found = _result_captions(at)
    assert len(found) == 7  # every other indexed product; never the product itself
    assert not any(c.startswith(f"#{indexed[0]} ") for c in found)

    at.radio(key="similar-mode").set_value("a photo").run()
    at.file_uploader(key="similar-upload").set_value(("query.png", png_bytes((30, 60, 220), 999, size=96), "image/png")).run()
    assert len(_result_captions(at)) == 8
    at.slider(key="crop-x").set_value((25, 75))
    at.slider(key="crop-y").set_value((10, 60)).run()
    previews = [str(img.proto) for img in at.get("image")]
    assert any("query: 48×48 px of 96×96" in p for p in previews)  # the live preview
    assert len(_result_captions(at)) == 8
    at.text_input(key="similar-text").input("green").run()
    assert sorted(c.split(" ")[1] for c in _result_captions(at)) == ["green-0", "green-1"]


def test_review_card_shows_similar_catalog_products(catalog, indexed, open_app):
    from catalog_ai.db import Product
    from catalog_ai.services.review import correct, reject

    with unit_of_work() as s:
        for title in ("q-none", "q-red", "q-odd", "q-banana", "q-green", "q-carrot"):
            reject(s, catalog[title], reviewer="bob")  # leave only uploads with embeddings
        waiting = [pid for pid in indexed if str(s.get(Product, pid).status) == "suggested"]
        card_title = s.get(Product, waiting[0]).title if waiting else None
        for pid in waiting[1:]:  # label all but one: they become catalog products with a category
            title = s.get(Product, pid).title
            path = next(p for p in COLOURS if p.split(" > ")[-1].lower() == title.split("-")[0])
            correct(s, pid, reviewer="bob", category_path=path)
    assert waiting, "the random model auto-accepted every upload; change the seeds"
    with unit_of_work() as s:  # every other indexed product now has a category: all are candidates
        labelled = sum(1 for pid in indexed if pid != waiting[0] and s.get(Product, pid).category_id is not None)
    assert labelled == len(indexed) - 1
    at = open_app()
    assert at.subheader[0].value == card_title
    tiles = [c.value for c in at.caption if c.value.count(" · ") == 2 and c.value.rsplit(" · ", 1)[-1][-1].isdigit()]
    assert len(tiles) == min(6, labelled)  # the card shows at most 6
    assert all(t.split(" · ")[1] in COLOURS for t in tiles)  # each with its category
    assert not any("Similar products are not available" in i.value for i in at.info)

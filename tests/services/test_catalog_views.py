"""The dashboard's read-only catalog views: branch figures, product grids, history, progress."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    ModelVersion,
    Product,
    ProductImage,
    ProductStatus,
    Suggestion,
    migrate,
    unit_of_work,
)
from catalog_ai.services.catalog import sync_taxonomy
from catalog_ai.services.catalog_views import (
    CatalogViewError,
    branch_stats,
    category_paths,
    count_products_in_branch,
    model_progress,
    oldest_pending,
    product_history,
    product_states,
    products_in_branch,
)
from catalog_ai.services.review import accept, correct, reject
from catalog_ai.taxonomy import Taxonomy

PATHS = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]


def _product(s, title, status, *, category=None, label_source=None, photo=True):
    p = Product(title=title, status=status, category_id=category, label_source=label_source)
    if photo:
        p.images.append(
            ProductImage(content_hash=title.ljust(64, "0"), stored_path=f"ab/{title}.png", width=4,
                         height=4, size_bytes=10, format="PNG")
        )
    s.add(p)
    s.flush()
    return p


def _suggest(s, product, model, path, confidence, cats):
    s.add(Suggestion(product_id=product.id, model_version_id=model.id, category_id=cats.get(path),
                     path=path, levels=[], confidence=confidence, source="head"))
    s.flush()


@pytest.fixture
def catalog(catalog_home):
    """Imported products, an auto-accepted upload, and uploads a reviewer accepts, corrects,
    accepts partially and rejects; one still waiting and one pending."""
    migrate.upgrade()
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        cats = {c.path: c.id for c in s.scalars(select(Category))}
        m1 = ModelVersion(version="m1", backbone="tiny-cnn", bundle_path="/x", taxonomy_fingerprint="f", is_active=True)
        m2 = ModelVersion(version="m2", backbone="tiny-cnn", bundle_path="/y", taxonomy_fingerprint="f")
        s.add_all([m1, m2])
        s.flush()
        for i in range(3):
            _product(s, f"imp-green-{i}", ProductStatus.ACCEPTED, category=cats["Fruit > Apple > Green"], label_source="import")
        _product(s, "imp-carrot", ProductStatus.ACCEPTED, category=cats["Veg > Carrot"], label_source="import")
        auto = _product(s, "auto-red", ProductStatus.ACCEPTED, category=cats["Fruit > Apple > Red"], label_source="model")
        _suggest(s, auto, m1, "Fruit > Apple > Red", 0.97, cats)
        names = {}
        for title, path, conf in [
            ("ok-green", "Fruit > Apple > Green", 0.6),
            ("wrong-red", "Fruit > Apple > Red", 0.5),
            ("too-deep", "Fruit > Apple > Green", 0.4),
            ("junk", "Fruit > Banana", 0.3),
            ("waiting", "Veg > Carrot", 0.2),
        ]:
            p = _product(s, title, ProductStatus.SUGGESTED)
            _suggest(s, p, m1, path, conf, cats)
            names[title] = p.id
        names["pending"] = _product(s, "pending", ProductStatus.PENDING).id
    with unit_of_work() as s:
        accept(s, names["ok-green"], reviewer="alice")
        correct(s, names["wrong-red"], reviewer="bob", category_path="Fruit > Banana")
        accept(s, names["too-deep"], reviewer="alice", depth=2)
        reject(s, names["junk"], reviewer="bob")
    return names


def test_branch_stats_roll_up_the_tree(catalog):
    with unit_of_work() as s:
        stats = {b.path: b for b in branch_stats(s)}
    assert list(stats)[:4] == ["Fruit", "Fruit > Apple", "Fruit > Apple > Green", "Fruit > Apple > Red"]
    fruit, apple, green, red, banana, veg = (
        stats[p] for p in ["Fruit", "Fruit > Apple", "Fruit > Apple > Green", "Fruit > Apple > Red",
                           "Fruit > Banana", "Veg"]
    )
    # Products: 3 imports + ok-green in Green; auto-red in Red; too-deep at Apple; wrong-red moved to Banana.
    assert (green.products, red.products, apple.products, banana.products, fruit.products) == (4, 1, 6, 1, 7)
    assert veg.products == 1
    # Of those, the ones a person labelled (imports, reviews): all but auto-red.
    assert (green.labelled_by_people, red.labelled_by_people, apple.labelled_by_people) == (4, 0, 5)
    assert (banana.labelled_by_people, fruit.labelled_by_people, veg.labelled_by_people) == (1, 6, 1)
    # Suggestions in Fruit: auto-red, ok-green, wrong-red, too-deep, junk (all decided).
    assert (fruit.classified, fruit.decided, fruit.accepted_as_suggested) == (5, 5, 3)
    assert fruit.acceptance_rate == pytest.approx(3 / 5)
    # Reviewed in Fruit: ok-green (accept), wrong-red (correct), too-deep (partial), junk (reject).
    assert (fruit.reviewed, fruit.reviewed_correct) == (4, 1)
    assert fruit.accuracy == pytest.approx(0.25)
    assert (red.classified, red.decided, red.accepted_as_suggested, red.reviewed, red.reviewed_correct) == (2, 2, 1, 1, 0)
    assert (green.reviewed, green.reviewed_correct) == (2, 1)
    # Veg: one suggestion still waiting; nothing decided, so no rate.
    assert (veg.classified, veg.decided) == (1, 0)
    assert veg.acceptance_rate is None and veg.accuracy is None


def test_products_in_branch_and_counts(catalog):
    with unit_of_work() as s:
        assert count_products_in_branch(s, "Fruit > Apple") == 6
        assert count_products_in_branch(s, "Fruit > Apple", include_subcategories=False) == 1
        assert count_products_in_branch(s, None) == 8
        tiles = products_in_branch(s, "Fruit > Apple > Green", limit=2)
    assert [t.title for t in tiles] == ["ok-green", "imp-green-2"]  # newest first
    assert tiles[0].image_path == "ab/ok-green.png"
    assert tiles[0].category_path == "Fruit > Apple > Green"


def test_product_history_lists_suggestions_and_reviews(catalog):
    with unit_of_work() as s:
        h = product_history(s, catalog["wrong-red"])
        with pytest.raises(CatalogViewError, match="does not exist"):
            product_history(s, 10_000)
    assert (h.status, h.category_path, h.label_source) == ("accepted", "Fruit > Banana", "review")
    assert [(x.model_version, x.path, x.confidence) for x in h.suggestions] == [("m1", "Fruit > Apple > Red", 0.5)]
    assert [(r.reviewer, r.action, r.category_path) for r in h.reviews] == [("bob", "correct", "Fruit > Banana")]
    assert h.reviews[0].created_at is not None
    assert h.image_paths == ["ab/wrong-red.png"]


def test_states_oldest_pending_and_model_progress(catalog):
    with unit_of_work() as s:
        states = product_states(s, [catalog["pending"], catalog["waiting"], 99_999])
        oldest = oldest_pending(s)
        p1, p2 = model_progress(s, "m1"), model_progress(s, "m2")
        with pytest.raises(CatalogViewError):
            model_progress(s, "nope")
        assert category_paths(s)[:3] == ["Fruit", "Fruit > Apple", "Fruit > Apple > Green"]
    assert [(x.title, x.status, x.suggestion_path) for x in states] == [
        ("pending", "pending", None), ("waiting", "suggested", "Veg > Carrot")
    ]
    assert oldest is not None and oldest[0].title == "pending" and oldest[1] >= 0
    # m1 suggested for 6 products; only the pending one still needs it (reviewed ones are human-labelled).
    assert (p1.suggested, p1.remaining, p1.is_active) == (6, 1, True)
    # m2 has nothing yet: pending + the still-suggested one + the auto-accepted one.
    assert (p2.suggested, p2.remaining) == (0, 3)
    assert p2.fraction == 0.0

"""The review service on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    ModelVersion,
    Product,
    ProductStatus,
    Review,
    ReviewAction,
    Suggestion,
    migrate,
    unit_of_work,
)
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.review import (
    QueueFilter,
    ReviewConflict,
    ReviewError,
    accept,
    assign_new_category,
    bulk_accept,
    bulk_preview,
    correct,
    queue_count,
    reject,
    review_queue,
)
from catalog_ai.taxonomy import Taxonomy

PATHS = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]
# title -> (suggested path, confidence, source, open_set)
SUGGESTED = {
    "p-green": ("Fruit > Apple > Green", 0.95, "head", False),
    "p-red": ("Fruit > Apple > Red", 0.40, "head", False),
    "p-banana": ("Fruit > Banana", 0.80, "prototype", False),
    "p-carrot": ("Veg > Carrot", 0.99, "head", False),
    "p-odd": ("Fruit", 0.55, "head", True),
    "p-none": ("", 0.30, "abstain", False),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db(request, catalog_home, monkeypatch):
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        from catalog_ai.settings import reset_settings

        reset_settings()
    migrate.upgrade()
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(PATHS), source="import:test")
        model = ModelVersion(version="m1", backbone="tiny-cnn", bundle_path="/nowhere", taxonomy_fingerprint="x")
        s.add(model)
        s.flush()
        cats = {c.path: c.id for c in s.scalars(select(Category))}
        for title, (path, conf, source, open_set) in SUGGESTED.items():
            product = Product(title=title, status=ProductStatus.SUGGESTED)
            s.add(product)
            s.flush()
            s.add(Suggestion(product_id=product.id, model_version_id=model.id, category_id=cats.get(path),
                             path=path, levels=[], confidence=conf, source=source, open_set=open_set))
    return ids()


def ids() -> dict[str, int]:
    with unit_of_work() as s:
        return {p.title: p.id for p in s.scalars(select(Product))}


def product(pid: int) -> tuple[ProductStatus, str | None, str | None]:
    with unit_of_work() as s:
        p = s.get(Product, pid)
        return p.status, (p.category.path if p.category else None), p.label_source


def test_queue_is_least_confident_first_and_filterable(db):
    with unit_of_work() as s:
        titles = [i.title for i in review_queue(s)]
        assert titles == ["p-none", "p-red", "p-odd", "p-banana", "p-green", "p-carrot"]
        assert [i.title for i in review_queue(s, flt=QueueFilter(branch="Fruit > Apple"))] == ["p-red", "p-green"]
        assert [i.title for i in review_queue(s, flt=QueueFilter(source="prototype"))] == ["p-banana"]
        assert [i.title for i in review_queue(s, flt=QueueFilter(source="open_set"))] == ["p-odd"]
        assert queue_count(s, flt=QueueFilter(model_version="m1")) == 6
        assert queue_count(s, flt=QueueFilter(model_version="other")) == 0
        assert [i.title for i in review_queue(s, limit=2, offset=1)] == ["p-red", "p-odd"]


def test_accept_full_and_partial(db):
    with unit_of_work() as s:
        r = accept(s, db["p-green"], reviewer="alice")
        assert r.action == ReviewAction.ACCEPT
        accept(s, db["p-red"], reviewer="bob", depth=2)
    assert product(db["p-green"]) == (ProductStatus.ACCEPTED, "Fruit > Apple > Green", "review")
    assert product(db["p-red"]) == (ProductStatus.ACCEPTED, "Fruit > Apple", "review")
    with unit_of_work() as s:
        reviews = {(r.reviewer, r.action) for r in s.scalars(select(Review))}
    assert reviews == {("alice", ReviewAction.ACCEPT), ("bob", ReviewAction.ACCEPT_PARTIAL)}
    assert [i.title for i in review_queue_titles()] == ["p-none", "p-odd", "p-banana", "p-carrot"]


def review_queue_titles():
    with unit_of_work() as s:
        return review_queue(s)


def test_correct_new_category_and_reject(db):
    with unit_of_work() as s:
        correct(s, db["p-banana"], reviewer="alice", category_path="Veg > Carrot")
        assign_new_category(s, db["p-none"], reviewer="alice", new_path="Fruit > Kiwi > Gold")
        reject(s, db["p-odd"], reviewer="alice", note="a shopping bag")
    assert product(db["p-banana"]) == (ProductStatus.ACCEPTED, "Veg > Carrot", "review")
    assert product(db["p-none"]) == (ProductStatus.ACCEPTED, "Fruit > Kiwi > Gold", "review")
    assert product(db["p-odd"])[0] == ProductStatus.REJECTED
    with unit_of_work() as s:
        kiwi = s.scalar(select(Category).where(Category.path == "Fruit > Kiwi"))
        assert kiwi is not None and kiwi.depth == 2
        actions = sorted(r.action.value for r in s.scalars(select(Review)))
    assert actions == ["correct", "new_category", "reject"]


def test_bad_verdicts_are_refused_and_change_nothing(db):
    with pytest.raises(ReviewError, match="sign in"):
        with unit_of_work() as s:
            accept(s, db["p-green"], reviewer="  ")
    with pytest.raises(ReviewError, match="not in the catalog"):
        with unit_of_work() as s:
            correct(s, db["p-green"], reviewer="alice", category_path="Fruit > Durian")
    with pytest.raises(ReviewError, match="abstained"):
        with unit_of_work() as s:
            accept(s, db["p-none"], reviewer="alice")
    with pytest.raises(ReviewError, match="already exists"):
        with unit_of_work() as s:
            assign_new_category(s, db["p-none"], reviewer="alice", new_path="Fruit > Banana")
    with pytest.raises(ReviewError, match="depth must be"):
        with unit_of_work() as s:
            accept(s, db["p-green"], reviewer="alice", depth=4)
    assert product(db["p-green"]) == (ProductStatus.SUGGESTED, None, None)


def test_second_reviewer_gets_a_conflict(db):
    with unit_of_work() as s:
        accept(s, db["p-carrot"], reviewer="alice")
    with pytest.raises(ReviewConflict, match="no longer waiting"):
        with unit_of_work() as s:
            reject(s, db["p-carrot"], reviewer="bob")
    assert product(db["p-carrot"])[0] == ProductStatus.ACCEPTED


def test_bulk_preview_and_accept(db):
    with unit_of_work() as s:
        count, expected = bulk_preview(s, min_confidence=0.8)
        # p-carrot 0.99, p-green 0.95, p-banana 0.80 -> expected errors 0.01 + 0.05 + 0.20
        assert count == 3 and expected == pytest.approx(0.26)
        assert bulk_preview(s, min_confidence=0.2)[0] == 5  # the abstention is never bulk-accepted
    with unit_of_work() as s:
        assert bulk_accept(s, reviewer="alice", min_confidence=0.8) == 3
    assert product(db["p-banana"])[0] == ProductStatus.ACCEPTED
    assert product(db["p-red"])[0] == ProductStatus.SUGGESTED


def test_branch_filter_takes_percent_and_underscore_literally(db):
    """``%`` and ``_`` in a category name are characters, not LIKE wildcards: the branch
    ``Deals > 50%_off`` holds its own products and not those of its sibling ``Deals > 50xxoff``
    (which ``LIKE 'Deals > 50%_off > %'`` would match)."""
    paths = ["Deals > 50%_off > Shoes", "Deals > 50xxoff > Shoes", "Deals > 50%_off"]
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(paths), source="import:test")
        model = s.scalar(select(ModelVersion))
        for title, path in [("literal-child", paths[0]), ("sibling", paths[1]), ("own", paths[2])]:
            p = Product(title=title, status=ProductStatus.SUGGESTED)
            s.add(p)
            s.flush()
            s.add(Suggestion(product_id=p.id, model_version_id=model.id, path=path, levels=[],
                             confidence=0.5, source="head"))
    with unit_of_work() as s:
        branch = QueueFilter(branch="Deals > 50%_off")
        assert sorted(i.title for i in review_queue(s, flt=branch)) == ["literal-child", "own"]
        assert queue_count(s, flt=branch) == 2
        assert bulk_preview(s, min_confidence=0.0, flt=branch)[0] == 2
        sibling = QueueFilter(branch="Deals > 50xxoff")
        assert [i.title for i in review_queue(s, flt=sibling)] == ["sibling"]
        # "_" alone is no wildcard either: "Deals > 5_%" names no branch.
        assert queue_count(s, flt=QueueFilter(branch="Deals > 5_%")) == 0

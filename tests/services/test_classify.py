"""Claim, run and record on the embedded catalog (SQLite, tasks in-process), with a
real tiny-cnn bundle (random weights: these tests are about the pipeline, not accuracy)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from worker.support import LEAVES, activate, bad_files, make_bundle

from catalog_ai.db import (
    Category,
    Embedding,
    LabelSource,
    Product,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.inference.predictor import Predictor
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.classify import TransientStorageError, claim, record, run_model
from catalog_ai.services.health import status_counts
from catalog_ai.worker.pipeline import classify_chunk
from services.classify_support import all_products, ingest, model_id, suggestions_per_product


def test_claim_marks_processing_and_counts_the_attempt(catalog, model):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    ids = ingest(catalog, photos[:3])
    with unit_of_work() as session:
        work = claim(session, ids, model_version_id=version_id)
    assert [w.product_id for w in work] == ids
    products = all_products()
    assert {products[i].status for i in ids} == {ProductStatus.PROCESSING}
    assert {products[i].attempts for i in ids} == {1}


def test_a_redelivered_chunk_never_creates_a_second_suggestion(catalog, model):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    ids = ingest(catalog, photos[:4])
    predictor = Predictor.load(bundle.path)
    # Two workers got the same message: both claim before either records.
    with unit_of_work() as session:
        first = claim(session, ids, model_version_id=version_id)
    with unit_of_work() as session:
        second = claim(session, ids, model_version_id=version_id)
    assert len(first) == len(second) == 4
    outcomes = run_model(predictor, first, media=catalog)
    with unit_of_work() as session:
        done = record(session, outcomes, model_version_id=version_id)
    assert sorted(done.suggested + done.accepted) == ids
    with unit_of_work() as session:
        again = record(
            session, run_model(predictor, second, media=catalog), model_version_id=version_id
        )
    assert sorted(again.skipped) == ids and not again.suggested and not again.accepted
    assert suggestions_per_product(version_id) == {i: 1 for i in ids}
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Embedding)) == 4
        # Once recorded, the products are no longer claimable for this version.
        assert claim(session, ids, model_version_id=version_id) == []


def test_confident_leaf_decisions_are_accepted_the_rest_wait_for_review(catalog, model, runner):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    ids = ingest(catalog, photos, runner)  # classified in-process after the commit
    products = all_products()
    with unit_of_work() as session:
        suggestions = {s.product_id: s for s in session.scalars(select(Suggestion))}
        category_path = dict(session.execute(select(Category.id, Category.path)).all())
    accepted = [i for i in ids if products[i].status == ProductStatus.ACCEPTED]
    suggested = [i for i in ids if products[i].status == ProductStatus.SUGGESTED]
    assert len(accepted) + len(suggested) == len(ids) == len(suggestions)
    assert accepted and suggested  # the threshold splits the photos
    with unit_of_work() as session:
        counts = status_counts(session, ids[:10])
    assert counts["accepted"] + counts["suggested"] == 10 and counts["pending"] == 0
    assert set(counts) == {s.value for s in ProductStatus}
    threshold = bundle.thresholds.auto_accept
    for i in accepted:
        product, suggestion = products[i], suggestions[i]
        assert product.label_source == LabelSource.MODEL and suggestion.confidence >= threshold
        assert category_path[product.category_id] == suggestion.path
        assert suggestion.model_version_id == version_id
    for i in suggested:
        product, suggestion = products[i], suggestions[i]
        assert product.category_id is None and product.label_source is None
        assert suggestion.confidence < threshold or suggestion.path not in LEAVES
        assert suggestion.levels[0][0]["path"] in {"Fruit", "Veg"}


def test_without_an_active_model_products_wait_until_one_is_activated(catalog, model, runner):
    photos, bundle = model
    ids = ingest(catalog, photos[:6], runner)
    assert {p.status for p in all_products().values()} == {ProductStatus.PENDING}
    assert classify_chunk(ids).model_version is None
    version = activate(bundle.path, dispatcher=runner)
    runner.drain()
    assert {p.status for p in all_products().values()} <= {
        ProductStatus.SUGGESTED,
        ProductStatus.ACCEPTED,
    }
    assert suggestions_per_product(model_id(version)) == {i: 1 for i in ids}


def test_a_photo_that_cannot_be_decoded_fails_with_the_reason(catalog, model, tmp_path, runner):
    photos, bundle = model
    activate(bundle.path)
    corrupt = bad_files(tmp_path / "bad")["corrupt"]
    good, broken = ingest(catalog, [photos[0], corrupt], runner)
    products = all_products()
    assert products[good].status in {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}
    assert products[broken].status == ProductStatus.FAILED
    assert "truncated or corrupt PNG data" in products[broken].error


def test_missing_photo_file_fails_and_an_io_error_is_transient(catalog, model, monkeypatch):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    ids = ingest(catalog, photos[:2])
    predictor = Predictor.load(bundle.path)
    with unit_of_work() as session:
        work = claim(session, ids, model_version_id=version_id)
    catalog.path(work[0].stored_path).unlink()
    outcomes = run_model(predictor, work, media=catalog)
    assert "missing from the media store" in outcomes[0].error and outcomes[1].decision is not None

    def io_error(self, relative_path):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(MediaStore, "read", io_error)
    with pytest.raises(TransientStorageError, match="Input/output error"):
        run_model(predictor, work[1:], media=catalog)


def test_a_product_that_keeps_killing_its_worker_is_failed_after_max_attempts(catalog, model):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    [pid] = ingest(catalog, photos[:1])
    with unit_of_work() as session:
        session.execute(update(Product).where(Product.id == pid).values(attempts=5))
    with unit_of_work() as session:
        assert claim(session, [pid], model_version_id=version_id, max_attempts=5) == []
    product = all_products()[pid]
    assert product.status == ProductStatus.FAILED and f"catalog-ai retry {pid}" in product.error


def test_activating_a_new_model_reclassifies_model_labels_but_never_human_ones(
    catalog, model, tmp_path, runner
):
    photos, bundle = model
    first = model_id(activate(bundle.path))
    ids = ingest(catalog, photos[:8], runner)
    with unit_of_work() as session:  # a reviewer labelled the first product
        product = session.get(Product, ids[0])
        product.status, product.label_source = ProductStatus.ACCEPTED, "review"
        product.category_id = session.scalar(
            select(Category.id).where(Category.path == "Veg > Carrot")
        )
    second_bundle = make_bundle(tmp_path / "second", photos, seed=1)
    version = activate(second_bundle.path, dispatcher=runner)
    runner.drain()
    second = model_id(version)
    assert set(suggestions_per_product(second)) == set(ids[1:])
    assert suggestions_per_product(first) == {i: 1 for i in ids}
    products = all_products()
    assert (
        products[ids[0]].label_source == "review"
        and products[ids[0]].status == ProductStatus.ACCEPTED
    )
    assert {products[i].status for i in ids[1:]} <= {
        ProductStatus.SUGGESTED,
        ProductStatus.ACCEPTED,
    }


def _fewshot_examples(photos, root):
    """What ``fewshot add --catalog`` stores: the example photos as labelled products."""
    import shutil

    from catalog_ai.jobs.folder_import import import_folder

    for i, photo in enumerate(photos):
        target = root / "Veg" / "Carrot" / f"example-{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, target)
    assert import_folder(root, label_source=LabelSource.FEWSHOT).imported == len(photos)
    with unit_of_work() as session:
        return sorted(
            session.scalars(select(Product.id).where(Product.label_source == LabelSource.FEWSHOT))
        )


def test_a_new_model_never_reclassifies_or_overwrites_few_shot_examples(
    catalog, model, tmp_path, runner
):
    from catalog_ai.services.models import model_progress

    photos, bundle = model
    activate(bundle.path)
    examples = _fewshot_examples(photos[:10], tmp_path / "examples")
    uploads = ingest(catalog, photos[10:20], runner)  # classified by the first model
    second_bundle = make_bundle(tmp_path / "second", photos, seed=1)
    version = activate(second_bundle.path, dispatcher=runner)  # enqueues re-classification
    runner.drain()
    # The second model, confident about half of these photos, would auto-accept over them.
    assert set(suggestions_per_product(model_id(version))) == set(uploads)
    products = all_products()
    with unit_of_work() as session:
        carrot = session.scalar(select(Category.id).where(Category.path == "Veg > Carrot"))
        assert model_progress(session, version).remaining == 0
    for i in examples:
        assert (products[i].status, products[i].category_id, products[i].label_source) == (
            ProductStatus.ACCEPTED, carrot, LabelSource.FEWSHOT
        )


@pytest.mark.parametrize("source", [s for s in LabelSource if s.is_human])
def test_record_never_overwrites_a_label_a_person_gave_meanwhile(catalog, model, source):
    photos, bundle = model
    version_id = model_id(activate(bundle.path))
    ids = ingest(catalog, photos[:6])
    predictor = Predictor.load(bundle.path)
    with unit_of_work() as session:
        work = claim(session, ids, model_version_id=version_id)
    outcomes = run_model(predictor, work, media=catalog)
    assert any(o.decision.auto_accept for o in outcomes)  # the model would accept some of them
    with unit_of_work() as session:  # a person labels the photos while the model runs
        carrot = session.scalar(select(Category.id).where(Category.path == "Veg > Carrot"))
        session.execute(
            update(Product)
            .where(Product.id.in_(ids))
            .values(label_source=source, category_id=carrot)
        )
    with unit_of_work() as session:
        done = record(session, outcomes, model_version_id=version_id)
        # Nor may a later claim hand them to a model again.
        assert claim(session, ids, model_version_id=version_id) == []
    assert sorted(done.skipped) == ids and not done.accepted and not done.suggested
    assert suggestions_per_product(version_id) == {}
    assert {(p.category_id, p.label_source) for p in all_products().values()} == {(carrot, source)}

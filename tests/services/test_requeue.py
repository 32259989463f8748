"""Re-queueing on the embedded catalog (SQLite, tasks in-process): retrying failed products, and
the sweep that puts back what a lost message or a dead worker left behind."""

from __future__ import annotations

from click.testing import CliRunner
from worker.support import activate, bad_files

from catalog_ai.cli import cli
from catalog_ai.db import ProductStatus, unit_of_work
from catalog_ai.services.classify import claim
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.requeue import requeue_failed, requeue_stale
from catalog_ai.settings import reset_settings
from services.classify_support import all_products, ingest, model_id, suggestions_per_product


def test_retry_puts_failed_products_back_and_classifies_them(
    catalog, model, monkeypatch, tmp_path, runner
):
    photos, bundle = model
    ids = ingest(catalog, photos[:3], runner)  # pending: no model yet
    # A pixel limit below the photos' 40x40 makes the worker's decode refuse them.
    monkeypatch.setenv("CATALOG_AI_MAX_IMAGE_PIXELS", "1000")
    reset_settings()
    activate(bundle.path, dispatcher=runner)
    runner.drain()
    products = all_products()
    assert {products[i].status for i in ids} == {ProductStatus.FAILED}
    assert "raise CATALOG_AI_MAX_IMAGE_PIXELS" in products[ids[0]].error
    empty = bad_files(tmp_path / "bad")["empty"]
    with unit_of_work() as session:
        failed = ingest_files(session, [empty], media=catalog, dispatcher=None).failed
        no_photo = failed[0].product_id

    monkeypatch.delenv("CATALOG_AI_MAX_IMAGE_PIXELS")
    reset_settings()
    result = CliRunner().invoke(cli, ["retry", str(ids[0]), str(no_photo), "999"])
    assert result.exit_code == 0, result.output
    assert f"1 products enqueued again: {ids[0]}" in result.output
    assert (
        "no product 999" in result.output
        and f"product {no_photo} failed at ingest" in result.output
    )
    assert all_products()[ids[0]].status in {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}

    result = CliRunner().invoke(cli, ["retry", "--failed"])
    assert result.exit_code == 0 and "2 products enqueued again" in result.output
    products = all_products()
    assert {products[i].status for i in ids} <= {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}
    assert products[no_photo].status == ProductStatus.FAILED
    assert all(products[i].attempts == 1 and products[i].error is None for i in ids)


def test_retry_requeues_only_failed_products(catalog, model, runner):
    photos, bundle = model
    [pid] = ingest(catalog, photos[:1], runner)
    with unit_of_work() as session:
        summary = requeue_failed(session, [pid], dispatcher=runner)
    assert summary.requeued == [] and summary.not_failed == [(pid, "pending")]


def test_sweep_requeues_stale_work_only_with_an_active_model(catalog, model, runner):
    photos, bundle = model
    ids = ingest(catalog, photos[:4], runner)
    with unit_of_work() as session:
        # no model: nothing to gain
        assert requeue_stale(session, older_than_s=0, dispatcher=runner) == []
    version_id = model_id(activate(bundle.path))
    with unit_of_work() as session:
        claim(session, ids[:2], model_version_id=version_id)  # a worker took two, then died
    with unit_of_work() as session:
        assert requeue_stale(session, older_than_s=3600, dispatcher=runner) == []  # not stale yet
    with unit_of_work() as session:
        assert requeue_stale(session, older_than_s=0, dispatcher=runner) == ids
    runner.drain()  # classified after the commit
    assert suggestions_per_product(version_id) == {i: 1 for i in ids}
    assert {p.status for p in all_products().values()} <= {
        ProductStatus.SUGGESTED,
        ProductStatus.ACCEPTED,
    }

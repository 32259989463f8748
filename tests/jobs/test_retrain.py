"""The opt-in retraining: not due, due (a new version trained with the recent products held
out, registered, kept inactive with its reason when it cannot be shown better), not due again
right after, and one retraining at a time."""

from __future__ import annotations

import time

import pytest
from helpers import make_tree, one_torch_thread, tiny_config  # noqa: F401 (autouse fixture)
from sqlalchemy import select

from catalog_ai.db import ModelVersion, Product, Review, ReviewAction, migrate, unit_of_work
from catalog_ai.db.models.audit import PromotionRecord
from catalog_ai.jobs.folder_import import import_folder
from catalog_ai.jobs.retrain import LOCK_NAME, retrain_if_due, reviews_since_training
from catalog_ai.settings import get_settings


@pytest.fixture
def active_catalog(catalog_home, tmp_path):
    """A catalog of imported photos with a tiny model trained on them, active; then 12 newer
    labelled products, two of them reviewed."""
    from catalog_ai.services.models import activate_model, register_model
    from catalog_ai.training.fit import fit
    from catalog_ai.training.sources import examples_from_catalog

    migrate.upgrade()
    import_folder(make_tree(tmp_path / "old", per_class=6))
    taxonomy, examples, _ = examples_from_catalog()
    fit(tiny_config(epochs=2), taxonomy=taxonomy, examples=examples, out_dir=tmp_path / "m1")
    with unit_of_work() as s:
        version = register_model(s, tmp_path / "m1").version
        activate_model(s, version, dispatcher=None)
    time.sleep(1.1)  # the bundle's created_at is in whole seconds: label strictly after it
    import_folder(make_tree(tmp_path / "new", per_class=3, seed=9))
    with unit_of_work() as s:
        newest = s.scalars(select(Product).order_by(Product.id.desc()).limit(2)).all()
        for p in newest:
            s.add(
                Review(
                    product_id=p.id,
                    reviewer="ann",
                    action=ReviewAction.ACCEPT,
                    category_id=p.category_id,
                )
            )
    return version


def test_not_due_without_the_setting_or_below_the_threshold(active_catalog) -> None:
    with unit_of_work() as s:
        assert reviews_since_training(s) == 2
    assert get_settings().retrain_after_reviews is None
    assert retrain_if_due(dispatcher=None) is None
    assert retrain_if_due(dispatcher=None, threshold=3) is None


def test_due_trains_registers_and_keeps_an_unproven_version_inactive(active_catalog) -> None:
    decision = retrain_if_due(dispatcher=None, threshold=2, config=tiny_config(epochs=2))
    assert decision is not None and not decision.promoted
    assert decision.against == active_catalog
    # the 12 newer products were held out and compared on: too few to tell two models apart
    assert "only 12 products" in decision.reason
    with unit_of_work() as s:
        rows = {m.version: m.is_active for m in s.scalars(select(ModelVersion))}
        assert rows == {active_catalog: True, decision.candidate: False}
        record = s.scalar(select(PromotionRecord))
        assert len(record.comparison["held_out_products"]) == 12
        assert reviews_since_training(s) == 0  # counted from this decision on
    assert retrain_if_due(dispatcher=None, threshold=2) is None
    assert not (get_settings().model_dir / LOCK_NAME).exists()


def test_one_retraining_at_a_time(active_catalog) -> None:
    folder = get_settings().model_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text("12345")
    assert retrain_if_due(dispatcher=None, threshold=1) is None


def test_the_beat_checks_only_when_opted_in() -> None:
    from catalog_ai.settings import Settings
    from catalog_ai.worker.app import RETRAIN_TASK, celery_config

    assert "retrain-if-due" not in celery_config(Settings.from_env({}))["beat_schedule"]
    on = celery_config(Settings.from_env({"CATALOG_AI_RETRAIN_AFTER_REVIEWS": "50"}))
    assert on["beat_schedule"]["retrain-if-due"]["task"] == RETRAIN_TASK

"""Model versions in the catalog: register, activate, list; on SQLite and on the real PostgreSQL.

Bundles here hold randomly initialised ``tiny-cnn`` weights: the services only read manifests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog_ai.bundle import BundleError, ModelBundle
from catalog_ai.db import Category, ModelVersion, dispose_engines, unit_of_work
from catalog_ai.db.migrate import upgrade
from catalog_ai.services.catalog import sync_taxonomy
from catalog_ai.services.models import (
    activate_model,
    active_model,
    list_models,
    missing_categories,
    register_model,
)
from catalog_ai.settings import reset_settings
from catalog_ai.taxonomy import Taxonomy
from helpers import LEAF_PATHS, random_bundle


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def catalog_db(
    request: pytest.FixtureRequest, catalog_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated, empty catalog database: the embedded SQLite one, then a fresh PostgreSQL one."""
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    upgrade()
    yield request.param
    dispose_engines()


@pytest.fixture
def bundles(tmp_path: Path) -> tuple[Path, Path]:
    a = random_bundle(tmp_path / "a", seed=1)
    b = random_bundle(tmp_path / "b", seed=2)
    assert a.version != b.version
    return a.path, b.path


def _import_tree() -> None:
    with unit_of_work() as session:
        sync_taxonomy(session, Taxonomy.from_paths(LEAF_PATHS), source="test")


def test_register_is_idempotent(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        first = register_model(session, bundles[0])
        first_id, version = first.id, first.version
        assert register_model(session, bundles[0]).id == first_id
    with unit_of_work() as session:
        again = register_model(session, bundles[0])
        assert (again.id, again.version) == (first_id, version)
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
        row = list_models(session)[0]
        assert row.backbone == "tiny-cnn" and not row.is_active
        assert row.bundle_path == str(bundles[0].resolve())
        assert row.metrics == {"held_out": {"leaf_accuracy": 0.5}}
        assert row.taxonomy_fingerprint == Taxonomy.from_paths(LEAF_PATHS).fingerprint()


def test_register_refuses_a_model_with_categories_missing_from_the_catalog(catalog_db, bundles):
    with unit_of_work() as session:
        sync_taxonomy(
            session, Taxonomy.from_paths(LEAF_PATHS[:2]), source="test"
        )  # only the apples
    with pytest.raises(BundleError, match="--add-categories") as info:
        with unit_of_work() as session:
            register_model(session, bundles[0])
    assert "'Fruit > Banana'" in str(info.value)
    with unit_of_work() as session:
        assert list_models(session) == []
        assert missing_categories(session, ModelBundle.load(bundles[0])) == [
            "Fruit > Banana",
            "Veg",
            "Veg > Carrot",
        ]


def test_register_with_add_categories_adds_them(catalog_db, bundles):
    with unit_of_work() as session:
        row = register_model(session, bundles[0], add_categories=True)
        version = row.version
    with unit_of_work() as session:
        paths = set(session.scalars(select(Category.path)))
        assert paths == {n.text for n in Taxonomy.from_paths(LEAF_PATHS)}
        assert [m.version for m in list_models(session)] == [version]


def test_activating_b_after_a_leaves_only_b_active(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        a = register_model(session, bundles[0]).version
        b = register_model(session, bundles[1]).version
    with unit_of_work() as session:
        row = activate_model(session, a)
        assert row.is_active and row.activated_at is not None
    with unit_of_work() as session:
        assert active_model(session).version == a
        activate_model(session, b)
    with unit_of_work() as session:
        assert {m.version: m.is_active for m in list_models(session)} == {a: False, b: True}
        assert active_model(session).version == b
        activate_model(session, b)  # activating the active one again changes nothing
    with unit_of_work() as session:
        assert session.scalars(
            select(ModelVersion.version).where(ModelVersion.is_active.is_(True))
        ).all() == [b]


def test_activating_an_unknown_version_is_a_clear_error(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        known = register_model(session, bundles[0]).version
    with pytest.raises(BundleError, match="no registered model version 'nope'") as info:
        with unit_of_work() as session:
            activate_model(session, "nope")
    assert "catalog-ai models register" in str(info.value) and known in str(info.value)


def test_activating_a_model_whose_bundle_is_gone_is_refused(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        version = register_model(session, bundles[0]).version
    shutil.rmtree(bundles[0])
    with pytest.raises(BundleError, match="not a model bundle"):
        with unit_of_work() as session:
            activate_model(session, version)
    with unit_of_work() as session:
        assert active_model(session) is None

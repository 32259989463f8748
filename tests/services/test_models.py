"""Model versions in the catalog: register, activate, list; on SQLite and on the real PostgreSQL.

Bundles here hold randomly initialised ``tiny-cnn`` weights: the services only read manifests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import LEAF_PATHS, random_bundle
from sqlalchemy import func, select

from catalog_ai.db import Category, ModelVersion, dispose_engines, unit_of_work
from catalog_ai.db.migrate import upgrade
from catalog_ai.db.queries import ModelVersionNotFound
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.models import (
    activate_model,
    active_model,
    list_models,
    missing_categories,
    register_model,
)
from catalog_ai.settings import reset_settings
from catalog_ai.taxonomy import Taxonomy


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
        row = activate_model(session, a, dispatcher=None)
        assert row.is_active and row.activated_at is not None
    with unit_of_work() as session:
        assert active_model(session).version == a
        activate_model(session, b, dispatcher=None)
    with unit_of_work() as session:
        assert {m.version: m.is_active for m in list_models(session)} == {a: False, b: True}
        assert active_model(session).version == b
        activate_model(session, b, dispatcher=None)  # activating the active one: no change
    with unit_of_work() as session:
        assert session.scalars(
            select(ModelVersion.version).where(ModelVersion.is_active.is_(True))
        ).all() == [b]


def test_activating_an_unknown_version_is_a_clear_error(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        known = register_model(session, bundles[0]).version
    with pytest.raises(ModelVersionNotFound, match="no registered model version 'nope'") as info:
        with unit_of_work() as session:
            activate_model(session, "nope", dispatcher=None)
    assert "catalog-ai models register" in str(info.value) and known in str(info.value)


def test_activating_a_model_whose_bundle_is_gone_is_refused(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        version = register_model(session, bundles[0]).version
    shutil.rmtree(bundles[0])
    with pytest.raises(BundleError, match="not a model bundle"):
        with unit_of_work() as session:
            activate_model(session, version, dispatcher=None)
    with unit_of_work() as session:
        assert active_model(session) is None


class _Recorder:
    """A dispatcher that only writes down what it was asked, and when."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, bool]] = []  # (method, argument, committed yet?)

    def _note(self, method: str, argument: object) -> None:
        with unit_of_work() as session:  # a new session: sees committed rows only
            committed = active_model(session) is not None
        self.calls.append((method, argument, committed))

    def classify(self, product_ids) -> None:
        self._note("classify", list(product_ids))

    def reclassify(self, version: str) -> None:
        self._note("reclassify", version)

    def embed_catalogue(self, version: str) -> None:
        self._note("embed_catalogue", version)

    def deliver(self, delivery_ids) -> None:
        self._note("deliver", list(delivery_ids))


def test_activation_enqueues_reclassification_and_embedding_after_the_commit(catalog_db, bundles):
    _import_tree()
    with unit_of_work() as session:
        a = register_model(session, bundles[0]).version
    recorder = _Recorder()
    with unit_of_work() as session:
        activate_model(session, a, dispatcher=recorder)
        assert recorder.calls == []  # nothing before the commit
    assert recorder.calls == [("reclassify", a, True), ("embed_catalogue", a, True)]
    # Again for the active version: both are idempotent, so activating again re-runs whatever
    # a lost message left unfinished.
    with unit_of_work() as session:
        activate_model(session, a, dispatcher=recorder)
    assert [c[0] for c in recorder.calls[2:]] == ["reclassify", "embed_catalogue"]
    with pytest.raises(RuntimeError), unit_of_work() as session:
        activate_model(session, a, dispatcher=recorder)
        raise RuntimeError("rolled back")
    assert len(recorder.calls) == 4


def test_every_entry_point_activates_through_the_one_service():
    """No caller flips ``is_active`` or enqueues re-classification on its own."""
    import ast

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("catalog_ai", "dashboards"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.name == "models.py" and path.parent.name == "services":
                continue
            text = path.read_text()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                    node.func, "id", None
                )) == "activate_model":
                    if not any(k.arg == "dispatcher" for k in node.keywords):
                        offenders.append(f"{path.relative_to(root)}:{node.lineno}")
                # Re-classifying is part of activating: only the dispatch code names it.
                if isinstance(node, ast.Attribute) and node.attr == "reclassify":
                    if path.parent.name != "worker" and path.name != "dispatch.py":
                        offenders.append(f"{path.relative_to(root)}:{node.lineno} (reclassify)")
    assert offenders == []


def test_model_progress_counts_what_the_classifier_may_still_do(reviewed_catalog):
    from catalog_ai.services.models import model_progress

    with unit_of_work() as s:
        p1, p2 = model_progress(s, "m1"), model_progress(s, "m2")
        with pytest.raises(ModelVersionNotFound, match="'nope'.*catalog-ai models list"):
            model_progress(s, "nope")
    # m1 suggested for 6 products; only the pending one still needs it (reviewed ones are
    # human-labelled).
    assert (p1.suggested, p1.remaining, p1.is_active) == (6, 1, True)
    # m2 has nothing yet: pending + the still-suggested one + the auto-accepted one.
    assert (p2.suggested, p2.remaining) == (0, 3)
    assert p2.fraction == 0.0

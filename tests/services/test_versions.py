"""Immutable model versions (issue 13, finding 6): calibration derives a new version and leaves
the parent's files byte-identical; suggestions name the version that made them; a running
worker's model cache picks up a newly activated version between chunks; a review adds a numbered
revision of the active version's prototype memory, recorded on the next suggestion; and a
suggestion is reproduced from its (version, memory revision). SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from worker.support import LEAVES, activate, shared_model

from catalog_ai.cli import cli
from catalog_ai.db import (
    ModelVersion,
    Product,
    ProductStatus,
    PrototypeRevision,
    Suggestion,
    dispose_engines,
    migrate,
    unit_of_work,
)
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import ModelBundle, derive_bundle
from catalog_ai.model.decision import Thresholds
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.photos.store import MediaStore
from catalog_ai.services import review
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.versions import memory_at, predictor_at
from catalog_ai.settings import get_settings, reset_settings
from catalog_ai.worker import model_cache
from catalog_ai.worker.pipeline import classify_chunk


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db(request, catalog_home, monkeypatch) -> Iterator[str]:
    if request.param == "postgresql":
        monkeypatch.setenv("CATALOG_AI_DATABASE_URL", request.getfixturevalue("postgres_url"))
        reset_settings()
    migrate.upgrade()
    yield request.param
    dispose_engines()
    model_cache.reset()


@pytest.fixture
def model(tmp_path, tmp_path_factory) -> tuple[list[Path], Path]:
    """The shared worker-test photos and a copy of its bundle with a prototype memory."""
    photos, shared = shared_model(tmp_path_factory)
    bundle_dir = Path(shutil.copytree(shared.path, tmp_path / "models" / "base"))
    embeddings = np.stack([p.embedding for p in Predictor.load(bundle_dir).predict(photos[:8])])
    labels = [LEAVES[i % len(LEAVES)] for i in range(8)]
    PrototypeMemory.from_examples(embeddings, labels, source="train").save(bundle_dir)
    return photos, bundle_dir


def hashes(directory: Path) -> dict[str, str]:
    return {str(f.relative_to(directory)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(directory.rglob("*")) if f.is_file()}


def ingest(photos: list[Path]) -> list[int]:
    """Ingest; with an active model and no broker the products are classified in-process (this
    waits for it)."""
    from catalog_ai.worker.dispatch import default_dispatcher, drain

    dispatcher = default_dispatcher()
    with unit_of_work() as session:
        ids = ingest_files(
            session, photos, media=MediaStore(get_settings().media_dir), dispatcher=dispatcher
        ).created
    drain(dispatcher)
    return ids


def suggestions(ids: list[int]) -> dict[int, tuple[str, int | None]]:
    """Per product, (version, memory revision) of its newest suggestion."""
    with unit_of_work() as session:
        rows = session.execute(
            select(Suggestion.product_id, ModelVersion.version, Suggestion.memory_revision)
            .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
            .where(Suggestion.product_id.in_(ids)).order_by(Suggestion.id)
        ).all()
    return {pid: (version, revision) for pid, version, revision in rows}


def waiting(ids: list[int]) -> list[int]:
    with unit_of_work() as session:
        return list(session.scalars(
            select(Product.id).where(Product.id.in_(ids), Product.status == ProductStatus.SUGGESTED)
            .order_by(Product.id)))


def test_calibrate_from_reviews_derives_an_active_version_leaving_the_parent_intact(db, model):
    photos, bundle_dir = model
    parent = activate(bundle_dir)
    first = ingest(photos[10:26])
    assert {v for v, _ in suggestions(first).values()} == {parent}
    todo = waiting(first)
    assert len(todo) >= 4
    with unit_of_work() as session:
        for pid in todo:
            review.accept(session, pid, reviewer="tester")
    before = hashes(bundle_dir)

    result = CliRunner().invoke(cli, ["calibrate", "--from-reviews", "--min-photos", "4"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output

    assert hashes(bundle_dir) == before  # the registered bundle's files are never rewritten
    with unit_of_work() as session:
        old = session.scalar(select(ModelVersion).where(ModelVersion.version == parent))
        new = session.scalar(select(ModelVersion).where(ModelVersion.parent_id == old.id))
        assert new is not None and new.version != parent and new.is_active and not old.is_active
        derived = ModelBundle.load(new.bundle_path)
    assert derived.parent["version"] == parent and Path(new.bundle_path).parent == bundle_dir.parent
    assert derived.parent["memory_revision"] == len(todo)  # the accepted reviews taught the parent
    assert f"active model: {new.version}" in result.output
    later = ingest(photos[26:30])
    assert {v for v, _ in suggestions(later).values()} == {new.version}


def test_no_activate_registers_the_derived_version_but_keeps_the_active_one(db, model, tmp_path):
    photos, bundle_dir = model
    parent = activate(bundle_dir)
    data = tmp_path / "held-out"
    for i, photo in enumerate(photos[10:22]):
        folder = data.joinpath(*LEAVES[i % len(LEAVES)].split(" > "))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / photo.name)
    result = CliRunner().invoke(cli, ["calibrate", "--model", str(bundle_dir), "--data", str(data),
                                      "--min-photos", "4", "--no-activate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with unit_of_work() as session:
        rows = {m.version: m for m in session.scalars(select(ModelVersion))}
        assert rows[parent].is_active and len(rows) == 2
        [new] = [m for m in rows.values() if m.version != parent]
        assert new.parent_id == rows[parent].id and not new.is_active
    assert f"activate with: catalog-ai models activate {new.version}" in result.output
    listed = CliRunner().invoke(cli, ["models", "list"], catch_exceptions=False).output.splitlines()
    assert f"* {parent}  tiny-cnn" in listed[0] and f"(derived from {parent})" in listed[1]


class ActivatesOnFirstRead(MediaStore):
    """A media store that, while the worker reads the first chunk's photos, activates another
    version: as `catalog-ai models activate` in another process would."""

    def __init__(self, root: Path, bundle_dir: Path) -> None:
        super().__init__(root)
        self.bundle_dir, self.done = bundle_dir, False

    def read(self, stored_path: str) -> bytes:
        if not self.done:
            self.done = True
            activate(self.bundle_dir)
        return super().read(stored_path)


def test_a_running_worker_picks_up_a_newly_activated_version_between_chunks(db, model, monkeypatch):
    photos, bundle_dir = model
    ids = ingest(photos[10:16])  # no active model yet: they wait
    monkeypatch.setenv("CATALOG_AI_CLASSIFY_CHUNK", "2")
    reset_settings()
    parent = activate(bundle_dir)
    derived = derive_bundle(ModelBundle.load(bundle_dir), change="stricter thresholds",
                            thresholds=Thresholds(decision=0.6, auto_accept=1.01))
    media = ActivatesOnFirstRead(get_settings().media_dir, derived.path)

    classify_chunk(ids, media=media)  # one task, three chunks; the process is never restarted

    made = suggestions(ids)
    assert [made[i][0] for i in ids] == [parent, parent] + [derived.version] * 4


def test_a_review_adds_a_revision_that_the_next_suggestion_records_and_reproduces(db, model):
    photos, bundle_dir = model
    version = activate(bundle_dir)
    first = ingest(photos[10:22])
    assert {r for _, r in suggestions(first).values()} == {0}  # the bundle's memory as shipped
    target, second = waiting(first)[:2]
    _, predictor = model_cache.current()
    carrots = predictor.prototypes.count("Veg > Carrot")

    with unit_of_work() as session:
        verdict = review.correct(session, target, reviewer="tester", category_path="Veg > Carrot")
        review_id = verdict.id
    with unit_of_work() as session:
        [rev] = session.scalars(select(PrototypeRevision)).all()
        assert (rev.revision, rev.path, rev.review_id) == (1, "Veg > Carrot", review_id)
    [taught] = ingest(photos[22:23])
    assert suggestions([taught])[taught] == (version, 1)
    _, same = model_cache.current()
    assert same is predictor and predictor.memory_revision == 1
    assert predictor.prototypes.count("Veg > Carrot") == carrots + 1
    at_one = predictor.prototypes.sums.copy()

    with unit_of_work() as session:  # a second correction: revision 2
        review.correct(session, second, reviewer="tester", category_path="Veg > Carrot")
    [later] = ingest(photos[23:24])
    assert suggestions([later])[later] == (version, 2)

    with unit_of_work() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        base = PrototypeMemory.load(bundle_dir)
        # The memory at revision 1 is rebuilt exactly, though revision 2 exists now.
        assert np.array_equal(memory_at(session, row.id, 1, base).sums, at_one)
        assert memory_at(session, row.id, 0, base).count("Veg > Carrot") == carrots
        for pid, photo in [(first[0], photos[10]), (taught, photos[22]), (later, photos[23])]:
            stored = session.scalar(select(Suggestion).where(Suggestion.product_id == pid))
            again = predictor_at(session, stored.model_version.version, stored.memory_revision)
            decision = again.predict([photo])[0].decision
            assert decision.path == stored.path and decision.source == stored.source
            # One photo at a time, not in the worker's batch: float32 convolutions differ in their
            # last bits with the batch size, nothing more.
            assert decision.confidence == pytest.approx(stored.confidence, abs=1e-6)
            levels = decision.to_dict()["levels"]
            assert [[c["path"] for c in level] for level in levels] == [
                [c["path"] for c in level] for level in stored.levels]


def test_a_derivation_that_cannot_be_written_is_one_clear_error(tmp_path, tmp_path_factory):
    from catalog_ai.model.bundle import BundleError

    _, shared = shared_model(tmp_path_factory)
    parent = ModelBundle.load(shared.path)
    blocker = tmp_path / "models"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(BundleError, match="cannot write the new model version into"):
        derive_bundle(parent, change="test", out_dir=blocker / "new")
    with pytest.raises(BundleError, match="already exists"):
        derive_bundle(parent, change="test", out_dir=shared.path)


def test_changing_thresholds_makes_a_new_active_version(db, model):
    photos, bundle_dir = model
    parent = activate(bundle_dir)
    before = hashes(bundle_dir)
    result = CliRunner().invoke(cli, ["models", "thresholds", "--no-auto-accept"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert hashes(bundle_dir) == before
    with unit_of_work() as session:
        new = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
        assert new.version != parent
        assert new.parent_id == session.scalar(select(ModelVersion.id).where(ModelVersion.version == parent))
    assert not ModelBundle.load(new.bundle_path).thresholds.auto_accept_enabled
    ids = ingest(photos[10:14])
    assert {v for v, _ in suggestions(ids).values()} == {new.version}
    with unit_of_work() as session:  # nothing is auto-accepted by the new version
        accepted = select(Product).where(Product.id.in_(ids), Product.status == ProductStatus.ACCEPTED)
        assert not session.scalars(accepted).all()
    bad = CliRunner().invoke(cli, ["models", "thresholds", "--auto-accept", "0"])
    assert bad.exit_code == 2 and "--auto-accept 0.0 is not a probability in (0, 1]" in bad.output

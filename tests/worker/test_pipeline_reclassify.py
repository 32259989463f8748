"""Re-classification as a chain of chunks (worker.pipeline.reclassify): each link hands over its
chunk and then the next link, a killed or stopped chain resumes, people's labels stay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import image_row
from sqlalchemy import func, select, update

from catalog_ai.db import (
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    dispose_engines,
    migrate,
    unit_of_work,
)
from catalog_ai.photos.store import MediaStore
from catalog_ai.services import reclassify as reclassify_chunks
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.models import model_progress
from catalog_ai.settings import get_settings
from catalog_ai.worker import pipeline
from worker.support import activate, make_bundle, shared_model


@pytest.fixture
def media(catalog_home) -> Iterator[MediaStore]:
    migrate.upgrade()
    yield MediaStore(get_settings().media_dir)
    dispose_engines()


class Recorder:
    """A dispatcher that writes down the work it is handed, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def classify(self, product_ids) -> None:
        self.calls.append(("classify", list(product_ids)))

    def reclassify(self, version: str, after_id: int = 0) -> None:
        self.calls.append(("reclassify", version, after_id))

    def embed_catalogue(self, version: str) -> None:
        self.calls.append(("embed_catalogue", version))

    def deliver(self, delivery_ids) -> None:
        self.calls.append(("deliver", list(delivery_ids)))


def _pending_catalogue(n: int, *, active: bool = True) -> list[int]:
    with unit_of_work() as s:
        s.add(
            ModelVersion(
                version="v2",
                backbone="tiny-cnn",
                bundle_path="/x",
                taxonomy_fingerprint="f",
                is_active=active,
            )
        )
        products = [Product(title=f"p{i}", images=[image_row(f"q{i:03d}x")]) for i in range(n)]
        s.add_all(products)
        s.flush()
        return [p.id for p in products]


def test_each_link_hands_over_its_chunk_then_the_next_link_behind_it(media):
    ids = _pending_catalogue(8)
    recorder = Recorder()
    cursor, links = 0, 0
    while True:
        before = len(recorder.calls)
        handed = pipeline.reclassify("v2", dispatcher=recorder, after_id=cursor, chunk=3)
        links += 1
        calls = recorder.calls[before:]
        assert calls[0] == ("classify", ids[cursor and ids.index(cursor) + 1 :][:3])
        assert handed == len(calls[0][1])
        if len(calls) == 1:
            break  # the last link sends no next one
        # The next link goes after the chunk's own messages, with the chunk's last id.
        assert calls[1] == ("reclassify", "v2", calls[0][1][-1])
        cursor = calls[1][2]
    assert links == 3
    assert [i for c in recorder.calls if c[0] == "classify" for i in c[1]] == ids


def test_a_link_for_a_version_no_longer_active_does_nothing(media):
    _pending_catalogue(4, active=False)
    recorder = Recorder()
    assert pipeline.reclassify("v2", dispatcher=recorder, after_id=0, chunk=3) == 0
    assert recorder.calls == []


def test_a_link_killed_before_its_commit_runs_again_from_the_same_cursor(media, monkeypatch):
    ids = _pending_catalogue(5)
    with unit_of_work() as s:
        s.execute(update(Product).values(status=ProductStatus.SUGGESTED, attempts=1))
    real = reclassify_chunks.next_chunk

    def killed(session, **kwargs):
        real(session, **kwargs)
        raise SystemExit("worker killed")

    monkeypatch.setattr(reclassify_chunks, "next_chunk", killed)
    recorder = Recorder()
    with pytest.raises(SystemExit):
        pipeline.reclassify("v2", dispatcher=recorder, after_id=ids[0], chunk=2)
    assert recorder.calls == []
    with unit_of_work() as s:  # rolled back: nothing was marked
        assert set(s.scalars(select(Product.status))) == {ProductStatus.SUGGESTED}
    monkeypatch.setattr(reclassify_chunks, "next_chunk", real)
    # The message comes back to another worker: the same link, the same cursor.
    assert pipeline.reclassify("v2", dispatcher=recorder, after_id=ids[0], chunk=2) == 2
    assert recorder.calls == [("classify", ids[1:3]), ("reclassify", "v2", ids[2])]


def test_a_new_model_reclassifies_in_chunks_and_a_stopped_chain_resumes(
    media, runner, tmp_path, tmp_path_factory, monkeypatch
):
    photos, bundle = shared_model(tmp_path_factory)
    activate(bundle.path)
    with unit_of_work() as s:
        ids = ingest_files(s, photos[:20], media=media, dispatcher=runner).created
    runner.drain()
    with unit_of_work() as s:  # a reviewer's label, and an import's
        s.execute(
            update(Product)
            .where(Product.id.in_(ids[3:5]))
            .values(status=ProductStatus.ACCEPTED, label_source=LabelSource.REVIEW)
        )
        s.execute(
            update(Product)
            .where(Product.id == ids[11])
            .values(status=ProductStatus.ACCEPTED, label_source=LabelSource.IMPORT)
        )
    people = {ids[3], ids[4], ids[11]}
    monkeypatch.setattr(reclassify_chunks, "RECLASSIFY_CHUNK", 4)
    second = make_bundle(tmp_path / "second", photos, seed=1)
    # The chain stops after its second link: the third could not be sent (the broker was down).
    real_link, sent = runner.reclassify, []

    def broker_down_once(version: str, after_id: int = 0) -> None:
        sent.append(after_id)
        if len(sent) != 3:
            real_link(version, after_id)

    monkeypatch.setattr(runner, "reclassify", broker_down_once)
    version = activate(second.path, dispatcher=runner)
    runner.drain()
    monkeypatch.setattr(runner, "reclassify", real_link)
    assert len(sent) == 3 and sent[0] == 0
    with unit_of_work() as s:
        stopped = model_progress(s, version)
    assert stopped.suggested == 8 and stopped.remaining == len(ids) - len(people) - 8
    assert stopped.queued == 0 and stopped.not_yet_queued == stopped.remaining
    # Activating again resumes: what the version did is skipped, nothing is done twice.
    activate(second.path, dispatcher=runner)
    runner.drain()
    with unit_of_work() as s:
        done = model_progress(s, version)
        v2 = s.scalar(select(ModelVersion.id).where(ModelVersion.version == version))
        per_product = dict(
            s.execute(
                select(Suggestion.product_id, func.count())
                .where(Suggestion.model_version_id == v2)
                .group_by(Suggestion.product_id)
            ).all()
        )
        labels = {
            p.id: (p.status, p.label_source) for p in s.scalars(select(Product)) if p.id in people
        }
    assert (done.remaining, done.queued) == (0, 0)
    assert per_product == {i: 1 for i in ids if i not in people}
    assert labels == {
        ids[3]: (ProductStatus.ACCEPTED, LabelSource.REVIEW),
        ids[4]: (ProductStatus.ACCEPTED, LabelSource.REVIEW),
        ids[11]: (ProductStatus.ACCEPTED, LabelSource.IMPORT),
    }

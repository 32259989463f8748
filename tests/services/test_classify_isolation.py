"""One hostile photo fails alone (issue 13, finding 1): a photo that fails in decoding,
preprocessing or the network, or that kills its worker, marks only its own product failed and
counts attempts only against itself; its chunk-mates get their suggestions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update
from worker.support import activate, shared_model

from catalog_ai.db import Product, ProductStatus, unit_of_work
from catalog_ai.inference.predictor import Predictor
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.classify import claim
from catalog_ai.services.embed import compute_embeddings
from catalog_ai.services.ingest import ingest_files
from catalog_ai.services.requeue import mark_for_reclassification
from catalog_ai.settings import reset_settings
from catalog_ai.worker.pipeline import classify_chunk

DONE = {ProductStatus.SUGGESTED, ProductStatus.ACCEPTED}


@pytest.fixture
def model(tmp_path_factory):
    return shared_model(tmp_path_factory)


def _black_png() -> bytes:
    """The hostile photo of these tests: sound bytes, recognised by its all-black square."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (0, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def _network_rejects_hostile_photos(monkeypatch) -> None:
    """The network fails every batch that holds a hostile photo (as a kernel might)."""
    real = Predictor.analyse

    def analyse(self, squares):
        if any(_is_hostile(sq) for sq in squares):
            raise RuntimeError("kernel rejected the input")
        return real(self, squares)

    monkeypatch.setattr(Predictor, "analyse", analyse)


def _is_hostile(square: np.ndarray) -> bool:
    return int(square.max()) == 0


def _chunk_of_four(media: MediaStore, photos) -> tuple[list[int], int]:
    """Three good photos and the hostile one, in one chunk (the hostile one second)."""
    files = [photos[0], ("hostile.png", _black_png()), photos[1], photos[2]]
    with unit_of_work() as session:
        ids = ingest_files(session, files, media=media, dispatcher=None).created
    assert len(ids) == 4
    return [i for i in ids if i != ids[1]], ids[1]


def _products() -> dict[int, Product]:
    with unit_of_work() as session:
        return {p.id: p for p in session.scalars(select(Product))}


def test_a_photo_the_network_fails_on_fails_alone(catalog, model, monkeypatch):
    photos, bundle = model
    activate(bundle.path)
    good, hostile = _chunk_of_four(catalog, photos)
    _network_rejects_hostile_photos(monkeypatch)
    summary = classify_chunk([*good, hostile])
    assert summary.failed == 1 and summary.suggested + summary.accepted == 3
    products = _products()
    assert {products[i].status for i in good} <= DONE
    assert products[hostile].status == ProductStatus.FAILED
    assert "the model failed on this photo (kernel rejected the input)" in products[hostile].error
    assert {products[i].attempts for i in good} == {1}


def test_a_memory_error_in_preprocessing_fails_only_that_photo(catalog, model, monkeypatch):
    photos, bundle = model
    activate(bundle.path)
    good, hostile = _chunk_of_four(catalog, photos)
    import catalog_ai.inference.predictor as predictor_module

    real = predictor_module.square

    def square(img, size, interpolation="bicubic", *, crop_pct=1.0, source=None):
        if img.getextrema() == ((0, 0), (0, 0), (0, 0)):
            raise MemoryError
        return real(img, size, interpolation, crop_pct=crop_pct, source=source)

    monkeypatch.setattr(predictor_module, "square", square)
    classify_chunk([*good, hostile])
    products = _products()
    assert {products[i].status for i in good} <= DONE
    assert products[hostile].status == ProductStatus.FAILED
    assert "cannot prepare the photo for the model (MemoryError)" in products[hostile].error


class WorkerKilled(BaseException):
    """Stands for the worker process dying (the OOM killer, a crash in a decoder): nothing of
    the chunk is recorded, as when the process is gone."""


def test_a_photo_that_kills_its_worker_does_not_fail_its_chunk_mates(catalog, model, monkeypatch):
    photos, bundle = model
    activate(bundle.path)
    good, hostile = _chunk_of_four(catalog, photos)
    hostile_bytes = _black_png()
    real = Predictor.prepare

    def prepare(self, source, *, name=None):
        if source == hostile_bytes:
            raise WorkerKilled
        return real(self, source, name=name)

    monkeypatch.setattr(Predictor, "prepare", prepare)
    max_attempts = 5
    for _ in range(max_attempts + 2):  # the sweep enqueues the chunk again each time
        try:
            classify_chunk([*good, hostile])
        except WorkerKilled:
            pass
    products = _products()
    assert {products[i].status for i in good} <= DONE, {i: products[i].error for i in good}
    assert all(products[i].error is None for i in good)
    assert {products[i].attempts for i in good} == {2}  # the killed chunk, then alone
    assert products[hostile].status == ProductStatus.FAILED
    assert f"classification started {max_attempts} times" in products[hostile].error


def test_attempts_count_one_round_so_reclassification_never_fails_a_product(
    catalog, model, monkeypatch
):
    # A product classified by one model, then by the next, ... was failed as "started 5 times
    # without finishing" by the fifth model: its finished classifications counted as attempts.
    monkeypatch.setenv("CATALOG_AI_MAX_ATTEMPTS", "1")
    reset_settings()
    photos, bundle = model
    version_id = _model_version_id(activate(bundle.path))
    with unit_of_work() as session:
        [pid, other] = ingest_files(session, photos[:2], media=catalog, dispatcher=None).created
    classify_chunk([pid, other])
    assert {p.status for p in _products().values()} <= DONE
    next_version = version_id + 1000  # only the id matters to claim
    with unit_of_work() as session:  # re-classification by the next model
        assert pid in mark_for_reclassification(session, model_version_id=next_version)
        session.execute(
            update(Product).where(Product.id == other).values(status=ProductStatus.SUGGESTED)
        )
    with unit_of_work() as session:
        work = claim(session, [pid, other], model_version_id=next_version, max_attempts=1)
    assert sorted(w.product_id for w in work) == sorted([pid, other])
    assert {p.attempts for p in _products().values()} == {1}
    reset_settings()


def _model_version_id(version: str) -> int:
    from catalog_ai.db import ModelVersion

    with unit_of_work() as session:
        return session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))


def test_embedding_skips_only_the_photo_the_network_fails_on(catalog, model, monkeypatch):
    photos, bundle = model
    _, hostile = _chunk_of_four(catalog, photos)
    with unit_of_work() as session:
        rows = sorted(
            (img.id, img.stored_path)
            for p in session.scalars(select(Product))
            for img in p.images
        )
        hostile_image = next(img.id for img in session.get(Product, hostile).images)
    predictor = Predictor.load(bundle.path)
    _network_rejects_hostile_photos(monkeypatch)
    vectors = compute_embeddings(predictor, catalog, rows)
    assert sorted(i for i, _ in vectors) == sorted(i for i, _ in rows if i != hostile_image)


def test_ingest_refuses_an_extreme_strip_from_its_header(catalog):
    # On main this 17 KB file was accepted, then took 32 s and 7.8 GB in the worker.
    buf = io.BytesIO()
    Image.new("RGB", (65000, 2), (200, 120, 40)).save(buf, "JPEG")
    with unit_of_work() as session:
        result = ingest_files(session, [("strip.jpg", buf.getvalue())], media=catalog, dispatcher=None)
    assert not result.created and len(result.failed) == 1
    assert "65000x2" in result.failed[0].reason
    assert "CATALOG_AI_MAX_ASPECT_RATIO" in result.failed[0].reason

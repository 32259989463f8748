"""Re-classification chunks (services.reclassify.next_chunk) and the progress they show
(services.models.model_progress), on SQLite and on the real PostgreSQL.

The catalogue mixes every kind of product: labelled by the old model (suggested, auto-accepted),
labelled by a person (import, review, few-shot), waiting uploads, failed and rejected products,
and some the new version has classified already.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helpers import image_row
from sqlalchemy import select, update

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Suggestion,
    unit_of_work,
)
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.models import model_progress
from catalog_ai.services.reclassify import next_chunk
from catalog_ai.taxonomy import Taxonomy

S, A, P, F, R = (
    ProductStatus.SUGGESTED,
    ProductStatus.ACCEPTED,
    ProductStatus.PENDING,
    ProductStatus.FAILED,
    ProductStatus.REJECTED,
)
# (status, label source, suggested by the new version already), repeated over the id range so
# every chunk boundary falls among mixed kinds.
KINDS = [
    (S, None, False),  # the old model's suggestion: to re-classify
    (A, LabelSource.MODEL, False),  # auto-accepted by the old model: to re-classify
    (A, LabelSource.IMPORT, False),  # a person's: never
    (P, None, False),  # an upload waiting: handed over as it is
    (A, LabelSource.REVIEW, False),  # a person's: never
    (F, None, False),  # failed: only a person's retry brings it back
    (S, None, True),  # the new version did it already
    (R, LabelSource.REVIEW, False),  # a person's: never
    (A, LabelSource.FEWSHOT, False),  # a person's: never
    (A, LabelSource.MODEL, True),  # the new version did it already
]


@dataclass
class Catalogue:
    new_version: str
    new_id: int
    ids: list[int]
    kinds: dict[int, tuple]  # product id -> its KINDS entry

    def to_reclassify(self) -> list[int]:
        return [i for i in self.ids if self.kinds[i][0] in (S, A, P) and self._free(i)]

    def model_labelled(self) -> list[int]:
        return [i for i in self.to_reclassify() if self.kinds[i][0] in (S, A)]

    def _free(self, i: int) -> bool:
        _, source, done = self.kinds[i]
        return not done and (source is None or not source.is_human)


def _suggestion(session, product_id: int, version_id: int, category_id: int) -> None:
    session.add(
        Suggestion(
            product_id=product_id,
            model_version_id=version_id,
            category_id=category_id,
            path="Fruit > Banana",
            levels=[],
            confidence=0.7,
            source="head",
        )
    )


@pytest.fixture
def catalogue(any_catalog) -> Catalogue:
    with unit_of_work() as s:
        sync_taxonomy(s, Taxonomy.from_paths(["Fruit > Banana", "Veg"]), source="import:test")
        banana = s.scalar(select(Category.id).where(Category.path == "Fruit > Banana"))
        old, new = (
            ModelVersion(version=v, backbone="tiny-cnn", bundle_path="/x", taxonomy_fingerprint="f")
            for v in ("old", "new")
        )
        new.is_active = True
        s.add_all([old, new])
        s.flush()
        kinds = {}
        for n in range(3 * len(KINDS) + 3):
            status, source, done = kind = KINDS[n % len(KINDS)]
            p = Product(
                title=f"p{n}",
                status=status,
                label_source=source,
                category_id=banana if status == A else None,
                attempts=2 if status == S else 0,  # the old round's claims
            )
            p.images.append(image_row(f"p{n:03d}x"))
            s.add(p)
            s.flush()
            kinds[p.id] = kind
            if status in (S, A) and source in (None, LabelSource.MODEL):
                _suggestion(s, p.id, old.id, banana)
            if done:
                _suggestion(s, p.id, new.id, banana)
        s.flush()
        return Catalogue("new", new.id, sorted(kinds), kinds)


def _state(ids) -> dict[int, tuple]:
    with unit_of_work() as s:
        rows = s.scalars(select(Product).where(Product.id.in_(ids)))
        return {p.id: (p.status, p.label_source, p.category_id, p.attempts) for p in rows}


def _run(cat: Catalogue, size: int, *, after_id: int = 0, stop_after: int | None = None):
    """Chunks from ``after_id`` until the last (or ``stop_after`` of them); each committed."""
    chunks = []
    cursor: int | None = after_id
    while cursor is not None and (stop_after is None or len(chunks) < stop_after):
        with unit_of_work() as s:
            chunk = next_chunk(s, model_version_id=cat.new_id, after_id=cursor, size=size)
        chunks.append(chunk)
        cursor = chunk.next_after_id
    return chunks


@pytest.mark.parametrize("size", [1, 3, 4, 7, 1000])
def test_chunks_cover_exactly_what_the_version_should_classify_in_id_order(catalogue, size):
    people = [i for i in catalogue.ids if (catalogue.kinds[i][1] or LabelSource.MODEL).is_human]
    before = _state(catalogue.ids)
    chunks = _run(catalogue, size)
    handed = [i for c in chunks for i in c.product_ids]
    assert handed == catalogue.to_reclassify()  # each once, in id order, nothing else
    for c in chunks:
        assert 0 < len(c.product_ids) <= size or c is chunks[-1]
        assert all(i > c.after_id for i in c.product_ids)
        # A full chunk names the cursor of the next; the last one says there is none.
        assert c.next_after_id == (c.product_ids[-1] if len(c.product_ids) == size else None)
    assert chunks[-1].next_after_id is None
    assert sum(c.marked for c in chunks) == len(catalogue.model_labelled())
    after = _state(catalogue.ids)
    for i in catalogue.model_labelled():
        status, source, category, attempts = after[i]
        # Back in the queue, its earlier round's claims forgotten; the old label stays visible
        # until the new version records its own.
        assert (status, attempts) == (P, 0) and (source, category) == before[i][1:3]
    untouched = set(catalogue.ids) - set(catalogue.model_labelled())
    assert {i: after[i] for i in untouched} == {i: before[i] for i in untouched}
    assert all(before[i] == after[i] for i in people)


def test_a_run_stopped_midway_resumes_from_its_cursor_and_marks_nothing_twice(catalogue):
    first = _run(catalogue, 4, stop_after=2)  # the worker was killed after two chunks
    resumed = _run(catalogue, 4, after_id=first[-1].next_after_id)
    handed = [i for c in first + resumed for i in c.product_ids]
    assert handed == catalogue.to_reclassify()
    assert sum(c.marked for c in first + resumed) == len(catalogue.model_labelled())


def test_a_run_restarted_from_the_start_skips_what_the_version_has_done(catalogue):
    first = _run(catalogue, 4, stop_after=2)
    done = [i for c in first for i in c.product_ids]
    with unit_of_work() as s:  # the workers classified the first two chunks
        banana = s.scalar(select(Category.id).where(Category.path == "Fruit > Banana"))
        for i in done:
            _suggestion(s, i, catalogue.new_id, banana)
        s.execute(update(Product).where(Product.id.in_(done)).values(status=S))
    again = _run(catalogue, 4)  # activated again: a new chain from the start
    assert [i for c in again for i in c.product_ids] == [
        i for i in catalogue.to_reclassify() if i not in done
    ]
    assert sum(c.marked for c in first + again) == len(catalogue.model_labelled())


def test_a_label_a_person_gives_between_chunks_is_never_touched(catalogue):
    first = _run(catalogue, 3, stop_after=1)
    later = [i for i in catalogue.model_labelled() if i > first[-1].next_after_id]
    reviewed = later[0]
    with unit_of_work() as s:
        s.execute(
            update(Product)
            .where(Product.id == reviewed)
            .values(status=A, label_source=LabelSource.REVIEW)
        )
    before = _state([reviewed])
    rest = _run(catalogue, 3, after_id=first[-1].next_after_id)
    assert reviewed not in [i for c in rest for i in c.product_ids]
    assert _state([reviewed]) == before


def test_progress_shows_what_is_queued_and_what_is_not_yet(catalogue):
    total = len(catalogue.to_reclassify())
    waiting = sum(1 for i in catalogue.to_reclassify() if catalogue.kinds[i][0] == P)
    already = sum(1 for k in catalogue.kinds.values() if k[2])
    with unit_of_work() as s:
        p = model_progress(s, catalogue.new_version)
    assert (p.suggested, p.remaining, p.queued, p.not_yet_queued) == (
        already,
        total,
        waiting,
        total - waiting,
    )
    first = _run(catalogue, 4, stop_after=1)
    with unit_of_work() as s:
        p = model_progress(s, catalogue.new_version)
    assert (p.remaining, p.queued) == (total, waiting + first[0].marked)
    _run(catalogue, 4, after_id=first[0].next_after_id)
    with unit_of_work() as s:
        p = model_progress(s, catalogue.new_version)
    assert (p.remaining, p.queued, p.not_yet_queued) == (total, total, 0)
    assert p.fraction == already / (already + total)


def test_a_chunk_needs_a_size(catalogue):
    with unit_of_work() as s, pytest.raises(ValueError, match="at least one"):
        next_chunk(s, model_version_id=catalogue.new_id, size=0)


def test_the_rule_for_an_id_range_is_the_rule_restricted_to_that_range(catalogue):
    from catalog_ai.services.classifiable import classifiable, classifiable_in_range

    ids = catalogue.ids
    ranges = [(0, None), (ids[3], None), (ids[3], ids[17]), (ids[-1], None), (0, ids[0])]
    with unit_of_work() as s:
        for after, up_to in ranges:
            plain = select(Product.id).where(Product.id > after, classifiable(catalogue.new_id))
            if up_to is not None:
                plain = plain.where(Product.id <= up_to)
            ranged = select(Product.id).where(classifiable_in_range(catalogue.new_id, after, up_to))
            assert sorted(s.scalars(ranged)) == sorted(s.scalars(plain))

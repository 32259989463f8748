"""Re-classification for a newly active model, one chunk at a time: which products come next
after a cursor, put back in the queue in the caller's (short) transaction.

Why chunks and a cursor, not one pass over the catalogue: at a million products one pass is one
transaction that locks every model-labelled row for minutes (reviewers wait on it) and one
message of a million ids. A chunk is found by keyset (``id > after_id ORDER BY id LIMIT n``), so
its cost does not grow with the catalogue or with how far the run got (the range is repeated
inside the suggestion check: :func:`~catalog_ai.services.classifiable.classifiable_in_range`),
and the caller commits it before the next one. The worker chains the chunks
(:func:`catalog_ai.worker.pipeline.reclassify`): each link marks one chunk, enqueues it, and
enqueues the next link behind it.

Resuming is idempotent because the rule is re-applied to every chunk
(:mod:`catalog_ai.services.classifiable`): products this version has classified
already, and products a person labelled, are never in a chunk, whatever cursor a resumed or
duplicated link starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from catalog_ai.db import Product, ProductStatus, utc_now
from catalog_ai.services.classifiable import MODEL_LABELLED, classifiable_in_range

__all__ = ["RECLASSIFY_CHUNK", "ReclassifyChunk", "next_chunk"]

#: Products per link of the chain: a transaction of a few hundred milliseconds at most, and few
#: enough that the products marked ahead of the workers stay a small share of the queue.
RECLASSIFY_CHUNK = 2_000


@dataclass(frozen=True)
class ReclassifyChunk:
    after_id: int  # the cursor this chunk started after
    product_ids: list[int]  # to hand to the workers, in id order
    marked: int  # of which labelled by an earlier model and put back to ``pending`` now
    next_after_id: int | None  # the cursor of the next chunk; None: this was the last one


def next_chunk(
    session: Session, *, model_version_id: int, after_id: int = 0, size: int = RECLASSIFY_CHUNK
) -> ReclassifyChunk:
    """The next ``size`` products after ``after_id`` (by id) that this version should classify;
    those labelled by an earlier model go back to ``pending`` with ``attempts`` 0 (their last
    classification finished; a new round counts afresh), so a lost message is found by the
    sweep like any other. Waiting products are handed over as they are."""
    if size < 1:
        raise ValueError(f"a chunk needs at least one product, not {size}")
    ids = list(
        session.scalars(
            select(Product.id)
            .where(classifiable_in_range(model_version_id, after_id))
            .order_by(Product.id)
            .limit(size)
        )
    )
    if not ids:
        return ReclassifyChunk(after_id, [], 0, None)
    # The id range, not an IN-list of the chunk: one index range scan. The rule is checked again
    # under the row locks the update takes (a reviewer may have labelled one meanwhile).
    result = session.execute(
        update(Product)
        .where(
            Product.status.in_(MODEL_LABELLED),
            classifiable_in_range(model_version_id, after_id, ids[-1]),
        )
        .values(status=ProductStatus.PENDING, status_changed_at=utc_now(), attempts=0)
        .execution_options(synchronize_session=False)
    )
    marked = cast(CursorResult, result).rowcount  # an UPDATE's result is a cursor result
    return ReclassifyChunk(
        after_id=after_id,
        product_ids=ids,
        marked=int(marked or 0),
        next_after_id=ids[-1] if len(ids) == size else None,
    )

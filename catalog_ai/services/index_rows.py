"""The reads a host's index cache makes of the ``embeddings`` table (the truth it copies).

Each is one statement on ``embeddings`` restricted to one model version, designed so that a
catch-up costs what changed, not what is there:

- :func:`newest_id`: ``max(id)``, the freshness probe every search makes;
- :func:`rows_after`: the rows above the index's watermark (the largest ``embeddings.id`` it
  holds), by keyset pages in id order: O(new rows);
- :func:`totals_upto`: ``count(*)`` and ``sum(id)`` of the rows at or below the watermark. The
  index keeps the same two numbers of what it holds, so rows deleted since (a product deleted:
  its photos' embeddings go by cascade) or committed late below the watermark (two
  transactions commit out of id order) show as a difference without reading a single vector;
- :func:`bucket_totals` and :func:`ids_in_bucket`: only when those differ, the same two numbers
  per bucket of 65,536 ids, then the ids of the buckets that differ, to find exactly which rows
  are missing or gone (100 products deleted among a million: one grouped scan and one bucket).

An index ``(model_version_id, id)`` on embeddings serves all four from the index alone; without
it PostgreSQL uses the primary key or ``ix_embeddings_model_version_id`` (see
``benchmarks/vector_cache.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Embedding, ModelVersion
from catalog_ai.db.models.embedding import decode_vectors
from catalog_ai.db.queries import in_chunks

__all__ = [
    "Rows",
    "bucket_totals",
    "decode_rows",
    "embedding_rows",
    "fit_pool",
    "ids_in_bucket",
    "keys_upto",
    "newest_id",
    "rows_after",
    "rows_by_id",
    "totals",
    "totals_upto",
]

PAGE = 5_000  # embeddings decoded per page (5,000 x 1,280 float32: 25 MB)
_COLUMNS = (Embedding.id, Embedding.image_id, Embedding.dim, Embedding.vector)

#: (embedding ids, image ids, vectors) of some rows.
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def decode_rows(rows: Iterable[Any]) -> Rows:
    """(embedding ids, image ids, vectors) from ``(id, image_id, dim, vector)`` rows."""
    rows = list(rows)
    emb_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    image_ids = np.fromiter((r[1] for r in rows), np.int64, len(rows))
    vectors = decode_vectors([r[2] for r in rows], [r[3] for r in rows], emb_ids.tolist())
    return emb_ids, image_ids, vectors


def embedding_rows() -> Select[int, int, int, bytes]:
    """``SELECT`` of the columns :func:`decode_rows` reads; add the ``WHERE``."""
    return select(*_COLUMNS)


def newest_id(session: Session, mv: ModelVersion) -> int:
    """The largest embedding id of the model version (0: none)."""
    return int(
        session.scalar(select(func.max(Embedding.id)).where(Embedding.model_version_id == mv.id))
        or 0
    )


def rows_after(
    session: Session,
    mv: ModelVersion,
    after: int,
    *,
    upto: int | None = None,
    page: int | None = None,
) -> Iterator[Rows]:
    """Pages of the rows with ``after < id (<= upto)``, in id order (keyset: each page is one
    range read of the ids after the last one seen); ``page`` rows each (default :data:`PAGE`)."""
    page = page or PAGE
    while True:
        where = [Embedding.model_version_id == mv.id, Embedding.id > after]
        if upto is not None:
            where.append(Embedding.id <= upto)
        rows = session.execute(
            embedding_rows().where(*where).order_by(Embedding.id).limit(page)
        ).all()
        if not rows:
            return
        part = decode_rows(rows)
        yield part
        after = int(part[0][-1])
        if len(rows) < page:
            return


def rows_by_id(session: Session, emb_ids: Iterable[int]) -> Iterator[Rows]:
    """The rows of these embedding ids (those that still exist), in pages."""
    for chunk in in_chunks(int(i) for i in emb_ids):
        part = decode_rows(session.execute(embedding_rows().where(Embedding.id.in_(chunk))))
        if len(part[0]):
            yield part


def totals(session: Session, mv: ModelVersion) -> int:
    """How many embeddings the model version has."""
    return int(
        session.scalar(
            select(func.count()).select_from(Embedding).where(Embedding.model_version_id == mv.id)
        )
        or 0
    )


def totals_upto(session: Session, mv: ModelVersion, upto: int) -> tuple[int, int]:
    """``(count, sum of ids)`` of the model version's embeddings with ``id <= upto``."""
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Embedding.id), 0)).where(
            Embedding.model_version_id == mv.id, Embedding.id <= upto
        )
    ).one()
    return int(count), int(total)


def bucket_totals(
    session: Session, mv: ModelVersion, upto: int, width: int
) -> dict[int, tuple[int, int]]:
    """``{id // width: (count, sum of ids)}`` of the rows with ``id <= upto``: one grouped
    scan, a few numbers per bucket, so that only the buckets that differ are read id by id."""
    bucket = (Embedding.id // width).label("bucket")
    rows = session.execute(
        select(bucket, func.count(), func.sum(Embedding.id))
        .where(Embedding.model_version_id == mv.id, Embedding.id <= upto)
        .group_by(bucket)
    ).all()
    return {int(b): (int(c), int(t)) for b, c, t in rows}


def ids_in_bucket(
    session: Session, mv: ModelVersion, bucket: int, width: int, upto: int
) -> np.ndarray:
    """The embedding ids of one bucket of :func:`bucket_totals` (ids only, no vectors)."""
    ids = session.scalars(
        select(Embedding.id).where(
            Embedding.model_version_id == mv.id,
            Embedding.id >= bucket * width,
            Embedding.id < (bucket + 1) * width,
            Embedding.id <= upto,
        )
    ).all()
    return np.asarray(ids, dtype=np.int64)


def keys_upto(session: Session, mv: ModelVersion, upto: int) -> tuple[np.ndarray, np.ndarray]:
    """``(embedding ids, image ids)`` of every row with ``id <= upto`` (ids only, no vectors)."""
    rows = session.execute(
        select(Embedding.id, Embedding.image_id).where(
            Embedding.model_version_id == mv.id, Embedding.id <= upto
        )
    ).all()
    return (
        np.fromiter((r[0] for r in rows), np.int64, len(rows)),
        np.fromiter((r[1] for r in rows), np.int64, len(rows)),
    )


def fit_pool(session: Session, mv: ModelVersion, size: int) -> np.ndarray:
    """The ids of the model version's ``size`` oldest embeddings (the descriptor's fit pool)."""
    ids = session.scalars(
        select(Embedding.id)
        .where(Embedding.model_version_id == mv.id)
        .order_by(Embedding.id)
        .limit(size)
    ).all()
    return np.asarray(ids, dtype=np.int64)

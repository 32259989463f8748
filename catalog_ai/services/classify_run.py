"""The middle step of classifying: every photo of the claimed products through the model.

Needs no database session (see :mod:`catalog_ai.services.classify` for the three steps). A
product's decision uses all its photos: each photo is read and decoded on its own, the photos
that work are fused into one decision (:meth:`Predictor.decide_product`), and a photo that
cannot be read or decoded is left out with its reason. Only a product with no usable photo
fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.inference.products import predict_products
from catalog_ai.photos.store import MediaStore

if TYPE_CHECKING:
    import numpy as np

    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.decision import Decision

__all__ = ["Outcome", "TransientStorageError", "Work", "WorkPhoto", "run_model"]

log = logging.getLogger(__name__)


class TransientStorageError(CatalogAIError):
    """The media store could not be read for a reason that may pass (I/O error, stale NFS
    handle, too many open files): the task retries. A missing file is not transient."""


@dataclass(frozen=True)
class WorkPhoto:
    image_id: int
    stored_path: str  # relative to the media store


@dataclass(frozen=True)
class Work:
    """One claimed product: the photos the model will see, in the order the shop shows them."""

    product_id: int
    photos: tuple[WorkPhoto, ...]

    @property
    def image_id(self) -> int:
        """The first photo's id."""
        return self.photos[0].image_id

    @property
    def stored_path(self) -> str:
        """The first photo's path in the media store."""
        return self.photos[0].stored_path


@dataclass
class Outcome:
    """The model's result for one product: a decision and embeddings, or why there is none.

    ``image_id``/``embedding``: the first photo used (the near-duplicate check compares it);
    ``embeddings``: every photo used, by image id; ``photo_errors``: the photos left out and
    why. The photos used are exactly those with an embedding of the model version afterwards.
    """

    product_id: int
    image_id: int | None
    decision: Decision | None = None
    embedding: np.ndarray | None = None
    error: str | None = None
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    photo_errors: dict[int, str] = field(default_factory=dict)
    photos_total: int = 1

    @property
    def photos_used(self) -> int:
        return len(self.embeddings) or int(self.embedding is not None)

    def vectors(self) -> dict[int, np.ndarray]:
        """Every photo's embedding to store, by image id."""
        if self.embeddings:
            return self.embeddings
        if self.embedding is not None and self.image_id is not None:
            return {self.image_id: self.embedding}
        return {}


def run_model(predictor: Predictor, work: Sequence[Work], *, media: MediaStore) -> list[Outcome]:
    """Read every photo of every product, then decode, embed and decide in the predictor's
    batches (whatever decision logic the Predictor has, the worker gets).

    A photo that cannot be read, decoded, prepared or run through the network is left out of
    its product's decision (``Outcome.photo_errors``); a product none of whose photos works
    gets ``error`` with every photo's reason, and its chunk-mates go on. A media read that may
    succeed later raises :class:`TransientStorageError` (the task retries the whole chunk).
    """
    outcomes = [Outcome(w.product_id, None, photos_total=len(w.photos)) for w in work]
    batch: list[tuple[Outcome, Work, list[WorkPhoto], list[bytes]]] = []
    for w, outcome in zip(work, outcomes, strict=True):
        readable, data = [], []
        for photo in w.photos:
            try:
                data.append(_read_photo(media, photo.stored_path))
            except ImageError as exc:
                outcome.photo_errors[photo.image_id] = exc.reason
                continue
            readable.append(photo)
        if readable:
            batch.append((outcome, w, readable, data))
        else:
            outcome.error = _no_photo(w.photos, outcome.photo_errors)
    predictions = predict_products(
        predictor,
        [data for *_, data in batch],
        names=[[p.stored_path for p in photos] for _, _, photos, _ in batch],
    )
    for (outcome, w, photos, _), prediction in zip(batch, predictions, strict=True):
        for photo, result in zip(photos, prediction.photos, strict=True):
            if result.embedding is not None:
                outcome.embeddings[photo.image_id] = result.embedding
            elif result.error is not None:
                outcome.photo_errors[photo.image_id] = result.error
        if prediction.decision is None:
            outcome.error = (
                _no_photo(w.photos, outcome.photo_errors)
                if not outcome.embeddings
                else prediction.error or "the model returned no decision"
            )
            outcome.embeddings = {}
            continue
        outcome.decision = prediction.decision
        outcome.image_id, outcome.embedding = next(iter(outcome.embeddings.items()))
        if outcome.photo_errors:
            log.warning(
                "product %d decided on %d of its %d photos; left out: %s",
                outcome.product_id,
                outcome.photos_used,
                outcome.photos_total,
                "; ".join(f"image {k}: {v}" for k, v in outcome.photo_errors.items()),
            )
    return outcomes


def _no_photo(photos: Sequence[WorkPhoto], errors: dict[int, str]) -> str:
    """Why a product has no decision: its one photo's reason, or every photo's."""
    if len(photos) == 1:
        return errors.get(photos[0].image_id) or "the photo could not be used"
    reasons = "; ".join(f"{p.stored_path}: {errors.get(p.image_id, 'not used')}" for p in photos)
    return f"none of the {len(photos)} photos could be used ({reasons})"


def _read_photo(media: MediaStore, stored_path: str) -> bytes:
    try:
        return media.read(stored_path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(
            f"the photo file {stored_path} is missing from the media store; restore it from a "
            "backup or ingest the photo again"
        ) from None
    except IsADirectoryError:
        raise ImageError(f"{stored_path} in the media store is a folder, not a photo") from None
    except OSError as exc:
        raise TransientStorageError(
            f"cannot read {stored_path} from the media store at {media.root}: {exc.strerror or exc}"
        ) from exc
    except CatalogAIError as exc:  # a stored path that leaves the media store
        raise ImageError(str(exc)) from None

"""Reading an uploaded photo within the size limit, and the active model for it.

An upload is read in pieces and refused with ``413`` as soon as it passes
``CATALOG_AI_MAX_IMAGE_BYTES``, so a huge body is never held in memory whole; what it holds is
then checked by the safe loader (:mod:`catalog_ai.photos.decode`) where it is used, whose refusals
become ``413`` (over the pixel limit) or ``415`` (not a photo) through
:func:`catalog_ai.api.problems.photo_problem`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fastapi import UploadFile

from catalog_ai.api.problems import Problem
from catalog_ai.photos.messages import human_bytes
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.worker.model_cache import ActiveModel

__all__ = ["MODEL_LOCK", "active_predictor", "read_photo"]

_CHUNK = 1 << 20

#: Held while a request runs the model (finding the active one included): one forward pass at a
#: time per API process. torch already spreads one pass over every core, so parallel passes
#: would only fight over them; and the model cache may swap the prototype memory of the shared
#: Predictor when a review was recorded, which must not happen under a running pass.
MODEL_LOCK = threading.Lock()


def read_photo(upload: UploadFile, *, field: str = "photo", max_bytes: int | None = None) -> bytes:
    """The bytes of ``upload``; ``413`` past the byte limit, ``415`` when it is empty."""
    limit = max_bytes or get_settings().max_image_bytes
    name = upload.filename or field
    upload.file.seek(0)
    parts: list[bytes] = []
    size = 0
    while chunk := upload.file.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise Problem(
                413,
                "photo-too-large",
                f"{name}: the file is larger than the {human_bytes(limit)} limit; send a smaller "
                "photo, or raise CATALOG_AI_MAX_IMAGE_BYTES to accept it",
                field=field,
            )
        parts.append(chunk)
    if not size:
        raise Problem(
            415, "not-a-photo", f"{name}: file is empty; send the photo's bytes", field=field
        )
    return b"".join(parts)


def active_predictor() -> tuple[ActiveModel, Predictor]:
    """The active model and its Predictor (loaded once per process); ``409`` when none is
    active. Call it, and use the Predictor, holding :data:`MODEL_LOCK`."""
    from catalog_ai.worker import model_cache

    loaded = model_cache.current()
    if loaded is None:
        raise Problem(
            409,
            "no-active-model",
            "no model is active; register and activate one (catalog-ai models register DIR "
            "--activate, or POST /v1/models/{version}/activate)",
        )
    return loaded

"""``POST /v1/classify``: a photo in, the active model's Decision out; nothing is stored.

For a shop editor's "suggest a category" button: the same safe loader and limits as an upload
(``413`` too large, ``415`` not a photo), the same model, prototype memory and thresholds a worker
would use, so the answer is the suggestion the product would get.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from catalog_ai.api.deps import ReadKey
from catalog_ai.api.metrics import CLASSIFY_SECONDS
from catalog_ai.api.problems import Problem, keyed_responses, photo_problem
from catalog_ai.api.schemas.classify import ClassifyOut
from catalog_ai.api.schemas.common import DecisionOut
from catalog_ai.api.uploads import MODEL_LOCK, active_predictor, read_photo
from catalog_ai.errors import ImageError

__all__ = ["router"]

router = APIRouter(prefix="/v1/classify", tags=["classify"])


@router.post(
    "",
    response_model=ClassifyOut,
    summary="Classify one photo with the active model (nothing is stored)",
    responses=keyed_responses(409, 413, 415, 422, 503),
)
def classify(
    key: ReadKey,
    photo: Annotated[UploadFile, File(description="a JPEG, PNG, WebP, ... product photo")],
) -> ClassifyOut:
    data = read_photo(photo)
    with MODEL_LOCK:
        model, predictor = active_predictor()
        start = time.perf_counter()
        try:
            square = predictor.prepare(data, name=photo.filename or "photo")
        except ImageError as exc:
            raise photo_problem(exc) from None
        result = predictor.analyse_each([square])[0]
        if isinstance(result, str):
            raise Problem(
                503,
                "model-failed",
                f"model {model.version} failed on this photo ({result}); try again, or report it",
            )
        analysis, row = result
        decision = predictor.decide(analysis, row)
        revision = predictor.memory_revision
    CLASSIFY_SECONDS.observe(time.perf_counter() - start)
    return ClassifyOut(
        decision=DecisionOut.model_validate(decision.to_dict()),
        memory_revision=revision,
    )

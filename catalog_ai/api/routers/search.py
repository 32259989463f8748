"""``POST /v1/search``: catalog products that look like a photo or like a stored product,
optionally only those whose title or category holds some words; or words alone.

A multipart form, because a photo may be part of it: ``photo`` or ``product_id`` (not both), and
``text``. Visual search uses the active model's search index (``catalog-ai index update``);
words alone are a text search (:mod:`catalog_ai.services.text_search`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from catalog_ai.api.deps import ReadKey, SessionDep
from catalog_ai.api.problems import Problem, from_error, keyed_responses, photo_problem
from catalog_ai.api.schemas.common import HitOut
from catalog_ai.api.schemas.search import SearchOut
from catalog_ai.api.uploads import MODEL_LOCK, active_predictor, read_photo
from catalog_ai.errors import ImageError
from catalog_ai.index import SearchError
from catalog_ai.services.similar import similar_products
from catalog_ai.services.text_search import Hit, text_search

__all__ = ["router"]

router = APIRouter(prefix="/v1/search", tags=["search"])


def _hits(hits: list[Hit]) -> list[HitOut]:
    return [HitOut.model_validate(h.to_dict()) for h in hits]


@router.post(
    "",
    response_model=SearchOut,
    summary="Products that look like a photo or a product, or match words",
    responses=keyed_responses(409, 413, 415, 422, 503),
)
def search(
    session: SessionDep,
    key: ReadKey,
    photo: Annotated[UploadFile | None, File(description="find products that look like it")] = None,
    product_id: Annotated[
        int | None, Form(ge=1, le=2**31 - 1, description="find products that look like it")
    ] = None,
    text: Annotated[
        str | None,
        Form(max_length=500, description="only products whose title or category holds them"),
    ] = None,
    limit: Annotated[int, Form(ge=1, le=100, description="at most this many hits")] = 10,
) -> SearchOut:
    words = text if text is not None and text.strip() else None
    if photo is not None and product_id is not None:
        raise Problem(
            422,
            "search-refused",
            "give a photo or a product_id, not both; send one of them",
            field="product_id",
        )
    if photo is None and product_id is None:
        if words is None:
            raise Problem(
                422,
                "search-refused",
                "nothing to search for; send a photo, a product_id or some words (text)",
                field="text",
            )
        try:
            return SearchOut(
                mode="text",
                model_version=None,
                hits=_hits(text_search(session, words, limit=limit)),
            )
        except SearchError as exc:
            raise from_error(exc, field="text") from None
    if photo is not None:
        data = read_photo(photo)
        with MODEL_LOCK:
            model, predictor = active_predictor()
            try:
                square = predictor.prepare(data, name=photo.filename or "photo")
            except ImageError as exc:
                raise photo_problem(exc) from None
            vector = predictor.forward([square])[0][0]
        try:
            hits = similar_products(
                session, model_version=model.version, query_vector=vector, k=limit, text=words
            )
        except SearchError as exc:
            raise from_error(exc, field="photo") from None
        return SearchOut(mode="photo", model_version=model.version, hits=_hits(hits))
    try:
        hits = similar_products(
            session, model_version=None, product_id=product_id, k=limit, text=words
        )
    except SearchError as exc:
        raise from_error(exc, field="product_id") from None
    from catalog_ai.services.models import active_model

    mv = active_model(session)
    return SearchOut(mode="product", model_version=mv.version if mv else None, hits=_hits(hits))

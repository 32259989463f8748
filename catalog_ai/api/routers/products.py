"""``/v1/products``: create a product from its photos, read it in full, list the catalogue, and
serve every photo's bytes.

``POST /v1/products`` (scope ``write``) answers ``202`` with the product's id and URL (also in
``Location``): classification runs in the background; GET the URL to follow it. It is idempotent
twice over: by ``external_id`` (the shop's product id; a second POST returns that product with
``created: false`` and changes nothing) and by the ``Idempotency-Key`` header (the same key with
the same request is answered again with the same product, with ``Idempotent-Replayed: true``;
with a different request it is a ``422``). Photos are checked one by one with the ingest's safe
loader and limits; a bad photo fails alone and is listed in ``photos`` with its ``problem``.
When **no** photo is usable nothing is stored and the request is refused: ``413`` when a photo
is too large (a smaller one may work), else ``415`` when one is not a photo, else ``409`` (every
photo is already another product's, named in ``errors``). Refusing, rather than recording a
failed product as a feed import does, lets a client fix the request and send it again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from catalog_ai.api.deps import DispatcherDep, MediaDep, ReadKey, SessionDep, WriteKey
from catalog_ai.api.problems import Problem, from_error, keyed_responses, register_error
from catalog_ai.api.schemas.products import (
    ProductAcceptedOut,
    ProductOut,
    ProductPageOut,
    accepted_out,
    product_out,
    summary_out,
)
from catalog_ai.services.idempotency import (
    IdempotencyError,
    IdempotencyKeyReused,
    claim_key,
    remember_product,
    request_fingerprint,
)
from catalog_ai.services.ingest import Upload
from catalog_ai.services.product_photos import DUPLICATE, NOT_A_PHOTO, TOO_LARGE, Unread
from catalog_ai.services.products import (
    PhotosRefused,
    ProductError,
    create_product,
    product_answer,
)
from catalog_ai.services.products_query import (
    MAX_PAGE,
    ProductNotFound,
    ProductQueryError,
    list_products,
    product_detail,
    product_photo,
)
from catalog_ai.settings import get_settings

__all__ = ["MAX_PHOTOS", "router"]

router = APIRouter(prefix="/v1/products", tags=["products"])

register_error(ProductError, 422, "product-refused")
register_error(ProductNotFound, 404, "product-not-found")
register_error(ProductQueryError, 422, "invalid-query")
register_error(IdempotencyError, 422, "invalid-idempotency-key")
register_error(IdempotencyKeyReused, 422, "idempotency-key-reused")

MAX_PHOTOS = 50  # photos in one request (Shopify allows 250 a product; 50 covers a listing)
_CHUNK = 1 << 20
_MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "AVIF": "image/avif",
}

ProductId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the product's id")]


@router.post(
    "",
    status_code=202,
    response_model=ProductAcceptedOut,
    summary="Create a product from one or more photos (classified in the background)",
    responses={
        202: {
            "description": "the product (new, or the one this request made or names already)",
            "headers": {
                "Location": {"description": "the product's URL", "schema": {"type": "string"}},
                "Idempotent-Replayed": {
                    "description": "'true' when an Idempotency-Key seen before was answered again",
                    "schema": {"type": "string"},
                },
            },
        },
        **keyed_responses(409, 413, 415, 422),
    },
)
def create(
    response: Response,
    session: SessionDep,
    key: WriteKey,
    dispatcher: DispatcherDep,
    media: MediaDep,
    photos: Annotated[
        list[UploadFile], File(description="one or more photos of the product, first one first")
    ],
    title: Annotated[str, Form(max_length=512, description="default: the first photo's name")] = "",
    description: Annotated[str, Form(max_length=65536)] = "",
    external_id: Annotated[
        str | None,
        Form(min_length=1, max_length=255, description="the shop's id: a second POST is a no-op"),
    ] = None,
    attributes: Annotated[
        str | None, Form(max_length=65536, description="a JSON object kept with the product")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=255, description="a new key per request"),
    ] = None,
) -> ProductAcceptedOut:
    if len(photos) > MAX_PHOTOS:
        raise Problem(
            422,
            "too-many-photos",
            f"{len(photos)} photos; send at most {MAX_PHOTOS}",
            field="photos",
        )
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "external_id": external_id,
        "attributes": _attributes(attributes),
    }
    uploads, digests = _read_all(photos)
    replay = None
    if idempotency_key is not None:
        fingerprint = request_fingerprint(fields, digests)
        replay = claim_key(session, key.id, idempotency_key, fingerprint)
    if replay is not None:
        result = product_answer(session, replay, uploads)
        response.headers["Idempotent-Replayed"] = "true"
    else:
        try:
            result = create_product(
                session, uploads, media=media, dispatcher=dispatcher, keep_failed=False, **fields
            )
        except PhotosRefused as exc:
            raise _refused(exc) from None
        except ProductError as exc:
            raise from_error(exc, field=exc.field) from None
        assert result.product_id is not None  # keep_failed=False: a product or a refusal
        if idempotency_key is not None:
            remember_product(session, key.id, idempotency_key, result.product_id)
    out = accepted_out(result)
    response.headers["Location"] = out.url
    return out


@router.get(
    "/{product_id}",
    response_model=ProductOut,
    summary="A product in full: status, photos, newest decision, final label, history",
    responses=keyed_responses(404, 422),
)
def get_product(product_id: ProductId, session: SessionDep, key: ReadKey) -> ProductOut:
    return product_out(product_detail(session, product_id))


@router.get(
    "/{product_id}/photos/{image_id}",
    summary="The bytes of one of a product's photos",
    response_class=FileResponse,
    responses={
        200: {"content": {m: {} for m in sorted(set(_MIME.values()))}, "description": "the photo"},
        **keyed_responses(404, 422),
    },
)
def get_photo(
    product_id: ProductId,
    image_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
    key: ReadKey,
    media: MediaDep,
) -> FileResponse:
    photo = product_photo(session, product_id, image_id)
    path = media.path(photo.stored_path)
    if not path.is_file():
        raise Problem(
            404,
            "photo-file-missing",
            f"photo {image_id} is not in the media store; ask the operator to restore "
            "the media directory",
        )
    return FileResponse(
        path,
        media_type=_MIME.get(photo.format.upper(), "application/octet-stream"),
        headers={"ETag": f'"{photo.content_hash}"', "Cache-Control": "private, max-age=31536000"},
    )


@router.get(
    "",
    response_model=ProductPageOut,
    summary="The catalogue a page at a time (keyset pages in id order; follow 'next')",
    responses=keyed_responses(422),
)
def list_all(
    request: Request,
    response: Response,
    session: SessionDep,
    key: ReadKey,
    status: Annotated[
        str | None,
        Query(
            max_length=32,
            description="pending | processing | suggested | accepted | rejected | failed",
        ),
    ] = None,
    branch: Annotated[
        str | None,
        Query(max_length=4096, description="the final (else suggested) category is this or below"),
    ] = None,
    source: Annotated[
        str | None,
        Query(
            max_length=32,
            description="head | prototype | abstain | open_set (the newest "
            "suggestion's) or import | review | fewshot | model (the label's)",
        ),
    ] = None,
    model_version: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=512, description="from 'next'")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> ProductPageOut:
    page = list_products(
        session,
        status=status,
        branch=branch,
        source=source,
        model_version=model_version,
        after=cursor,
        limit=limit,
    )
    next_url = None
    if page.next_cursor is not None:
        next_url = str(request.url.include_query_params(cursor=page.next_cursor))
        next_url = next_url.removeprefix(str(request.base_url).rstrip("/"))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return ProductPageOut(items=[summary_out(item) for item in page.items], next=next_url)


# --- helpers -----------------------------------------------------------------------------------


def _attributes(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Problem(
            422,
            "invalid-attributes",
            'attributes is not a JSON object; send e.g. {"vendor": "Acme"}',
            field="attributes",
        )
    return value


def _read_all(photos: list[UploadFile]) -> tuple[list[Upload | Unread], list[tuple[str, str]]]:
    """Each upload's bytes, or :class:`Unread` past the byte limit (never held in memory
    whole); and each one's ``(name, sha256)`` for the request's fingerprint."""
    limit = get_settings().max_image_bytes
    uploads: list[Upload | Unread] = []
    digests: list[tuple[str, str]] = []
    for i, photo in enumerate(photos):
        name = photo.filename or f"photo-{i}"
        photo.file.seek(0)
        digest, parts, size = hashlib.sha256(), [], 0
        while chunk := photo.file.read(_CHUNK):
            size += len(chunk)
            digest.update(chunk)
            if size <= limit:
                parts.append(chunk)
        uploads.append(Unread(name, size) if size > limit else (name, b"".join(parts)))
        digests.append((name, digest.hexdigest()))
    return uploads, digests


_FIX = {
    413: "send a smaller photo (or raise CATALOG_AI_MAX_IMAGE_BYTES or _PIXELS on the server)",
    415: "send at least one JPEG, PNG or WebP photo the loader accepts",
    409: "send the product's own photos, or GET the product named in errors",
}


def _refused(exc: PhotosRefused) -> Problem:
    problems = {p.problem for p in exc.photos}
    if TOO_LARGE in problems:
        status, slug, problem = 413, "photo-too-large", TOO_LARGE
    elif NOT_A_PHOTO in problems:
        status, slug, problem = 415, "not-a-photo", NOT_A_PHOTO
    else:
        status, slug, problem = 409, "duplicate-photos", DUPLICATE
    errors = [
        {
            "field": f"photos[{i}]",
            "in": "body",
            "msg": p.error,
            "name": p.name,
            "problem": p.problem,
            "duplicate_of": p.duplicate_of,
        }
        for i, p in enumerate(exc.photos)
    ]
    first = next(e for e in errors if e["problem"] == problem)
    detail = f"no photo of the product can be used; {first['name']}: {first['msg']}"
    return Problem(status, slug, detail, field=str(first["field"]), fix=_FIX[status], errors=errors)

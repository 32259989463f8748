"""Idempotency-Key claims (services.idempotency) on SQLite and PostgreSQL: the first request
claims, the same one again gets its product, another request is refused, a rollback frees it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from catalog_ai.db import IdempotencyKey, Product, ProductStatus, unit_of_work
from catalog_ai.services.api_keys import create_key
from catalog_ai.services.idempotency import (
    IdempotencyError,
    IdempotencyKeyReused,
    claim_key,
    remember_product,
    request_fingerprint,
)


def _key(name: str = "shop") -> int:
    with unit_of_work() as session:
        return create_key(session, name, scope="write").key.id


def _product() -> int:
    with unit_of_work() as session:
        product = Product(title="p", status=ProductStatus.PENDING)
        session.add(product)
        session.flush()
        return product.id


def test_fingerprints_tell_requests_apart():
    photos = [("a.png", "1" * 64), ("b.png", "2" * 64)]
    same = request_fingerprint({"title": "T", "external_id": None}, photos)
    assert same == request_fingerprint({"external_id": None, "title": "T"}, photos)
    assert same != request_fingerprint({"title": "T", "external_id": None}, photos[::-1])
    assert same != request_fingerprint({"title": "U", "external_id": None}, photos)


def test_claim_replay_and_refusal(any_catalog):
    api_key, other_key, pid = _key(), _key("other"), _product()
    fingerprint = request_fingerprint({"title": "T"}, [("a.png", "1" * 64)])
    with unit_of_work() as session:
        assert claim_key(session, api_key, "k-1", fingerprint) is None  # first: create it
        remember_product(session, api_key, "k-1", pid)
    with unit_of_work() as session:
        assert claim_key(session, api_key, "k-1", fingerprint) == pid
    with unit_of_work() as session, pytest.raises(IdempotencyKeyReused, match="new key"):
        claim_key(session, api_key, "k-1", request_fingerprint({"title": "U"}, []))
    with unit_of_work() as session:  # another API key's own "k-1"
        assert claim_key(session, other_key, "k-1", fingerprint) is None
        remember_product(session, other_key, "k-1", pid)
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 2


def test_a_rolled_back_claim_leaves_the_key_free(any_catalog):
    api_key = _key()

    class Refused(Exception):
        pass

    with pytest.raises(Refused), unit_of_work() as session:
        assert claim_key(session, api_key, "k-2", "a" * 64) is None
        raise Refused  # the photos were refused: nothing of the request stays
    with unit_of_work() as session:
        assert claim_key(session, api_key, "k-2", "b" * 64) is None  # a corrected request


@pytest.mark.parametrize("key", ["", "   ", "x" * 256])
def test_keys_that_cannot_be_used(any_catalog, key):
    api_key = _key()
    with unit_of_work() as session, pytest.raises(IdempotencyError, match="1 to 255"):
        claim_key(session, api_key, key, "a" * 64)

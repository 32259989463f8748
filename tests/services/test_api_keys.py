"""API keys: tokens shown once and stored hashed, scopes ordered, revocation, and the per-key
fixed-window rate limit counted in the database (exact under concurrent requests)."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from catalog_ai.db import ApiKey, dispose_engines, migrate, unit_of_work
from catalog_ai.services.api_keys import (
    SCOPE_ORDER,
    ApiKeyError,
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidToken,
    RevokedKey,
    authenticate,
    create_key,
    list_keys,
    revoke_key,
    scope_allows,
)
from catalog_ai.settings import reset_settings


@pytest.fixture
def db(catalog_home):
    migrate.upgrade()
    yield
    dispose_engines()


def test_the_token_is_returned_once_and_only_its_hash_is_stored(db):
    with unit_of_work() as session:
        new = create_key(session, "shop", scope="write")
    assert new.token.startswith(f"cai_{new.key.prefix}_")
    with unit_of_work() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == "shop"))
        stored = {c.name: getattr(row, c.key) for c in ApiKey.__table__.columns}
    assert new.token not in {str(v) for v in stored.values()}
    assert stored["token_hash"] == hashlib.sha256(new.token.encode()).hexdigest()
    assert stored["owner"] == "shop"  # the owner defaults to the name


def test_authenticate_finds_the_key_and_records_its_use(db):
    with unit_of_work() as session:
        new = create_key(session, "shop", scope="review", owner="alice", rate_limit=7)
    now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    with unit_of_work() as session:
        access = authenticate(session, new.token, now=now)
    assert (access.key.name, access.key.scope, access.key.owner) == ("shop", "review", "alice")
    assert (access.limit, access.used, access.remaining, access.exceeded) == (7, 1, 6, False)
    assert access.reset_after_s == 30
    with unit_of_work() as session:
        (key,) = list_keys(session)
    assert key.last_used_at == now


@pytest.mark.parametrize(
    "token",
    [
        "",
        "nonsense",
        "cai_0123456789ab_" + "x" * 43,  # well-formed, no such key
    ],
)
def test_malformed_and_unknown_tokens_are_refused(db, token):
    with unit_of_work() as session:
        create_key(session, "shop", scope="read")
    with pytest.raises(InvalidToken, match="api-keys create"), unit_of_work() as session:
        authenticate(session, token)


def test_a_token_with_a_known_prefix_but_another_secret_is_refused(db):
    with unit_of_work() as session:
        new = create_key(session, "shop", scope="read")
    forged = new.token[:-4] + ("AAAA" if not new.token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidToken), unit_of_work() as session:
        authenticate(session, forged)


def test_a_revoked_key_is_refused_and_revoking_twice_keeps_the_first_time(db):
    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with unit_of_work() as session:
        new = create_key(session, "shop", scope="admin")
    with unit_of_work() as session:
        assert revoke_key(session, "shop", now=first).revoked_at == first
    with unit_of_work() as session:
        assert revoke_key(session, "shop").revoked_at == first
    with pytest.raises(RevokedKey, match="'shop' was revoked"), unit_of_work() as session:
        authenticate(session, new.token)
    with unit_of_work() as session:
        assert [k.active for k in list_keys(session)] == [False]
        assert list_keys(session, include_revoked=False) == []


def test_creating_refuses_a_taken_name_an_unknown_scope_and_bad_limits(db):
    with unit_of_work() as session:
        create_key(session, "shop", scope="read")
    with pytest.raises(ApiKeyExists, match="exists already"), unit_of_work() as session:
        create_key(session, "shop", scope="read")
    for kwargs, message in (
        ({"name": "x", "scope": "owner"}, "scope 'owner' is unknown"),
        ({"name": "x", "scope": "read", "rate_limit": 0}, "at least 1"),
        ({"name": "has space", "scope": "read"}, "not allowed"),
        ({"name": "x", "scope": "read", "owner": " "}, "owner"),
    ):
        with pytest.raises(ApiKeyError, match=message), unit_of_work() as session:
            create_key(session, **kwargs)
    with pytest.raises(ApiKeyNotFound), unit_of_work() as session:
        revoke_key(session, "nobody")


def test_each_scope_includes_the_ones_before_it():
    assert [s.value for s in SCOPE_ORDER] == ["read", "write", "review", "admin"]
    for i, have in enumerate(SCOPE_ORDER):
        for j, needed in enumerate(SCOPE_ORDER):
            assert scope_allows(have, needed) is (i >= j), (have, needed)


def test_the_window_counts_within_a_minute_and_starts_again_in_the_next(db, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_API_RATE_LIMIT", "3")
    reset_settings()
    with unit_of_work() as session:
        token = create_key(session, "shop", scope="read").token
    start = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    used = []
    for second in (0, 10, 20, 59):
        with unit_of_work() as session:
            access = authenticate(session, token, now=start + timedelta(seconds=second))
        used.append((access.used, access.exceeded, access.reset_after_s))
    assert used == [(1, False, 60), (2, False, 50), (3, False, 40), (4, True, 1)]
    with unit_of_work() as session:
        access = authenticate(session, token, now=start + timedelta(seconds=60))
    assert (access.used, access.exceeded, access.limit) == (1, False, 3)


@pytest.mark.integration
def test_concurrent_requests_are_counted_exactly_on_postgresql(
    catalog_home, postgres_url, monkeypatch
):
    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    reset_settings()
    migrate.upgrade()
    with unit_of_work() as session:
        token = create_key(session, "shop", scope="read", rate_limit=1000).token
    now = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
    seen: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(10):
            with unit_of_work() as session:
                used = authenticate(session, token, now=now, durable=False).used
            with lock:
                seen.append(used)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every request got its own count: no two saw the same number, none was lost.
    assert sorted(seen) == list(range(1, 81))
    with unit_of_work() as session:
        assert session.scalar(select(ApiKey.window_requests)) == 80

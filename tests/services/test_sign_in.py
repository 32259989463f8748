"""Lockout after repeated failed sign-ins, per name and per address, in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog_ai.db import migrate, unit_of_work
from catalog_ai.services.sign_in import SignInGuard


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


def _fail(guard: SignInGuard, name: str, address: str, times: int = 1):
    started = None
    for _ in range(times):
        with unit_of_work() as s:
            assert guard.refused(s, name, address) is None
            started = guard.failed(s, name, address)
    return started


def _refused(guard: SignInGuard, name: str, address: str):
    with unit_of_work() as s:
        return guard.refused(s, name, address)


def test_five_failures_lock_the_name_out_with_a_doubling_delay(catalog):
    clock = Clock()
    guard = SignInGuard(clock=clock)
    assert _fail(guard, "alice", "10.0.0.1", 4) is None
    started = _fail(guard, "alice", "10.0.0.2")  # the fifth within 15 minutes, from elsewhere
    assert started is not None and started.retry_after == timedelta(minutes=1)
    refusal = _refused(guard, "alice", "10.9.9.9")  # any address: the name is locked
    assert refusal.kind == "name" and refusal.message == (
        "Too many failed sign-ins for this name; try again in 60 seconds.")
    assert _refused(guard, "bob", "10.9.9.9") is None
    clock.advance(seconds=61)
    assert _refused(guard, "alice", "10.9.9.9") is None
    assert _fail(guard, "alice", "10.0.0.3", 5).retry_after == timedelta(minutes=2)  # doubles
    clock.advance(minutes=3)
    assert _fail(guard, "alice", "10.0.0.4", 5).retry_after == timedelta(minutes=4)
    assert "try again in 4 minutes" in _refused(guard, "alice", "x").message


def test_failures_spread_over_more_than_the_window_do_not_lock(catalog):
    clock = Clock()
    guard = SignInGuard(clock=clock)
    for _ in range(8):
        assert _fail(guard, "alice", "10.0.0.1", 2) is None
        clock.advance(minutes=16)


def test_one_address_guessing_many_names_is_locked_out(catalog):
    guard = SignInGuard(clock=Clock())
    for i in range(4):
        _fail(guard, f"user{i}", "198.51.100.7")
    assert _fail(guard, "user-x", "198.51.100.7").kind == "address"
    refusal = _refused(guard, "alice", "198.51.100.7")
    assert refusal.kind == "address" and "from this address" in refusal.message
    assert _refused(guard, "alice", "10.0.0.1") is None


def test_success_clears_the_name_not_the_address(catalog):
    guard = SignInGuard(clock=Clock())
    _fail(guard, "alice", "10.0.0.1", 4)
    with unit_of_work() as s:
        guard.succeeded(s, "alice", "10.0.0.1")
    assert _fail(guard, "alice", "10.0.0.2", 4) is None  # alice's count started again
    assert _fail(guard, "mallory", "10.0.0.1").kind == "address"  # 4 + 1 from 10.0.0.1


@pytest.mark.integration
def test_every_process_sees_the_lockout_on_postgresql(postgres_url, monkeypatch):
    from catalog_ai.db import dispose_engines
    from catalog_ai.settings import reset_settings

    monkeypatch.setenv("CATALOG_AI_DATABASE_URL", postgres_url)
    reset_settings()
    migrate.upgrade(postgres_url)
    clock = Clock()
    first, second = SignInGuard(clock=clock), SignInGuard(clock=clock)  # two dashboard processes
    _fail(first, "alice", "10.0.0.1", 3)
    assert _fail(second, "alice", "10.0.0.1", 2) is not None
    assert _refused(first, "alice", "10.0.0.1").kind in {"name", "address"}
    dispose_engines()
    reset_settings()

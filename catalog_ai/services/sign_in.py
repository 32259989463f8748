"""Back-off after repeated failed sign-ins, per reviewer name and per client address.

After ``max_failures`` failures within ``window`` for one name (known or not: the answer must
not tell them apart) or from one address, sign-in is refused for ``base_delay``, doubling with
each further lockout up to ``max_delay``. The counts live in the database (table
``sign_in_throttles``), so every dashboard process behind a load balancer sees the same ones,
on the embedded set-up and in production alike (Redis exists only in production).

A lockout is checked before the password is, so a locked-out guesser learns nothing from the
answer. A successful sign-in clears the name's record, not the address's: otherwise signing in
with one's own account would reset a guessing run against others from the same address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog_ai.db.models import SignInThrottle
from catalog_ai.db.types import utc_now

__all__ = ["Refusal", "SignInGuard"]

_FORGET_AFTER = timedelta(days=1)  # quiet this long: strikes start again from zero


@dataclass(frozen=True)
class Refusal:
    kind: str  # "name" | "address"
    retry_after: timedelta

    @property
    def message(self) -> str:
        seconds = max(1, round(self.retry_after.total_seconds()))
        wait = f"{seconds} seconds" if seconds < 120 else f"{-(-seconds // 60)} minutes"
        whose = "for this name" if self.kind == "name" else "from this address"
        return f"Too many failed sign-ins {whose}; try again in {wait}."


def _key(kind: str, value: str) -> str:
    key = f"{kind}:{value}"
    if len(key) > 200 or not key.isprintable():
        key = f"{kind}:sha256:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"
    return key


class SignInGuard:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_failures: int = 5,
        window: timedelta = timedelta(minutes=15),
        base_delay: timedelta = timedelta(minutes=1),
        max_delay: timedelta = timedelta(hours=1),
    ) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay

    def _keys(self, name: str, address: str | None) -> list[tuple[str, str]]:
        return [
            ("name", _key("name", name.strip())),
            ("address", _key("address", address or "unknown")),
        ]

    def refused(self, session: Session, name: str, address: str | None) -> Refusal | None:
        """Why a sign-in for ``name`` from ``address`` is refused now (the longest wait), if so."""
        now = self.clock()
        worst: Refusal | None = None
        for kind, key in self._keys(name, address):
            row = session.get(SignInThrottle, key)
            if row is not None and row.locked_until is not None and row.locked_until > now:
                wait = row.locked_until - now
                if worst is None or wait > worst.retry_after:
                    worst = Refusal(kind, wait)
        return worst

    def _row(self, session: Session, key: str, now: datetime) -> SignInThrottle:
        """The row of ``key``, locked for this transaction (PostgreSQL), created if missing;
        two processes creating it at once: the loser reads the winner's row."""
        query = select(SignInThrottle).where(SignInThrottle.key == key).with_for_update()
        row = session.scalars(query).one_or_none()
        if row is not None:
            return row
        try:
            with session.begin_nested():
                row = SignInThrottle(
                    key=key, failures=0, window_started_at=now, strikes=0, updated_at=now
                )
                session.add(row)
        except IntegrityError:
            row = session.scalars(query.execution_options(populate_existing=True)).one()
        return row

    def failed(self, session: Session, name: str, address: str | None) -> Refusal | None:
        """Count a failed sign-in; the refusal it started, if this failure was one too many."""
        now = self.clock()
        started: Refusal | None = None
        for kind, key in self._keys(name, address):
            row = self._row(session, key, now)
            if now - row.updated_at > _FORGET_AFTER:
                row.strikes = 0
            if now - row.window_started_at > self.window:
                row.failures, row.window_started_at = 0, now
            row.failures += 1
            row.updated_at = now
            if row.failures >= self.max_failures:
                row.strikes += 1
                delay = min(self.base_delay * 2 ** min(row.strikes - 1, 30), self.max_delay)
                row.locked_until = now + delay
                row.failures, row.window_started_at = 0, now
                if started is None or delay > started.retry_after:
                    started = Refusal(kind, delay)
        session.execute(  # keep the table small: records nobody has touched for a day
            delete(SignInThrottle).where(SignInThrottle.updated_at < now - _FORGET_AFTER)
        )
        session.flush()
        return started

    def succeeded(self, session: Session, name: str, address: str | None) -> None:
        key = _key("name", name.strip())
        session.execute(delete(SignInThrottle).where(SignInThrottle.key == key))

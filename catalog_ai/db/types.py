"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = ["JSONType", "UTCDateTime", "str_enum", "utc_now"]

# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC text
    and given ``tzinfo=UTC`` again when read. Naive datetimes are refused because their zone is a
    guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None:
            raise TypeError(
                f"naive datetime {value.isoformat()} has no time zone; "
                "use datetime.now(UTC) or catalog_ai.db.utc_now()"
            )
        value = value.astimezone(UTC)
        # SQLite's DATETIME ignores tzinfo; storing the UTC wall time keeps text ordering right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum_values(enum_cls: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_cls]


def str_enum(enum_cls: type[enum.StrEnum], name: str, length: int = 16) -> sa.Enum:
    """A StrEnum column stored as its lower-case value in a VARCHAR guarded by a CHECK constraint.

    Not a native PostgreSQL ENUM: adding a value later is then a plain CHECK change, the same
    migration on both databases. ``name`` names the CHECK constraint (``ck_<table>_<name>``).
    """
    too_long = [v for v in _enum_values(enum_cls) if len(v) > length]
    if too_long:
        raise ValueError(f"{enum_cls.__name__} values {too_long} are longer than {length}")
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=_enum_values,
        validate_strings=True,
    )

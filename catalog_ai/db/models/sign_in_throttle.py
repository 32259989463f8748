"""Failed sign-ins per reviewer name and per client address, shared by every dashboard process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog_ai.db.base import Base

__all__ = ["SignInThrottle"]


class SignInThrottle(Base):
    __tablename__ = "sign_in_throttles"

    # "name:<reviewer name>" or "address:<client address>" (long values as a sha256 digest)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in the current window
    window_started_at: Mapped[datetime]
    strikes: Mapped[int] = mapped_column(Integer, default=0)  # lockouts so far: the delay doubles
    locked_until: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(index=True)

    def __repr__(self) -> str:
        return (
            f"SignInThrottle(key={self.key!r}, failures={self.failures!r}, "
            f"locked_until={self.locked_until!r})"
        )

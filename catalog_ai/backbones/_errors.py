"""How an exception from someone else's code is quoted in a catalog_ai error message."""

from __future__ import annotations

__all__ = ["cause_of"]


def cause_of(exc: BaseException) -> str:
    """``"ImportError: No module named 'x'"``: the type and the first line of the message."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__

"""Fixtures of the model service tests: one torch thread."""

from __future__ import annotations

from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

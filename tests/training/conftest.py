"""Fixtures of the training tests: one torch thread, the shared trained bundle."""

from __future__ import annotations

from helpers import one_torch_thread, trained_bundle  # noqa: F401 (fixtures)

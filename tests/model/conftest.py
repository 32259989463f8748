"""Fixtures of the model tests: the shared trained bundle."""

from __future__ import annotations

from helpers import trained_bundle  # noqa: F401 (a fixture, used by name)

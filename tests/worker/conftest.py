"""Fixtures of the worker tests: one torch thread, fresh engines and model cache per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    yield
    from catalog_ai.db import dispose_engines
    from catalog_ai.worker import model_cache

    dispose_engines()
    model_cache.reset()

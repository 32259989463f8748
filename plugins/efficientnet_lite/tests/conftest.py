"""Fixtures for running this plugin's tests on their own (``pytest plugins/efficientnet_lite``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The Grocery Store photos sit in ../shared beside a catalog_ai checkout.
_SHARED_DATA = Path(
    os.environ.get(
        "CATALOG_AI_SHARED_DATA",
        Path(__file__).resolve().parents[4] / "shared" / "datasets" / "grocery-store",
    )
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: real weights on real photos")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (_SHARED_DATA / "train").is_dir():
        pytest.skip(f"Grocery Store photos not found at {_SHARED_DATA}; set CATALOG_AI_SHARED_DATA")
    return _SHARED_DATA


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny batches gain nothing from threads; on a busy machine spinning threads cost 10x."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

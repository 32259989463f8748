"""The active model's Predictor, loaded once per process and reloaded when another is activated.

Loading a bundle builds the network and reads its weights (a second for a real backbone); a
task only runs one cheap query to learn which version is active.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalog_ai.db import unit_of_work
from catalog_ai.services.models import active_model
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor

__all__ = ["ActiveModel", "active", "current", "predictor_for", "reset"]


@dataclass(frozen=True)
class ActiveModel:
    id: int
    version: str
    bundle_path: str


_lock = threading.Lock()
_loaded: tuple[ActiveModel, Predictor] | None = None


def active() -> ActiveModel | None:
    """The active model version, or None when no model has been activated."""
    with unit_of_work() as session:
        row = active_model(session)
        return None if row is None else ActiveModel(row.id, row.version, row.bundle_path)


def current() -> tuple[ActiveModel, Predictor] | None:
    """The active model and its Predictor (loaded on first use), or None without one."""
    model = active()
    return None if model is None else (model, predictor_for(model))


def predictor_for(model: ActiveModel) -> Predictor:
    global _loaded
    with _lock:
        if _loaded is None or _loaded[0] != model:
            _loaded = None  # let the old network go before the new one is built
            threads = get_settings().torch_threads
            if threads:
                import torch

                torch.set_num_threads(threads)
            from catalog_ai.inference.predictor import Predictor

            _loaded = (model, Predictor.load(model.bundle_path))
        return _loaded[1]


def reset() -> None:
    """Forget the loaded model (a forked process, tests)."""
    global _loaded
    with _lock:
        _loaded = None

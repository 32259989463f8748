"""The active model's Predictor, loaded once per process and kept current.

Loading a bundle builds the network and reads its weights (a second for a real backbone); a
task only runs one cheap query to learn which version is active and whether reviewers have
taught it since. The Predictor is rebuilt when another version is activated; its prototype
memory (few-shot categories) is refreshed when the bundle's prototype files change
(``catalog-ai fewshot add``) or a review was recorded, so that a correction counts from the
next photo a worker classifies.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from catalog_ai.db import Review, unit_of_work
from catalog_ai.prototypes import ARRAYS, META
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
_memory_stamp: tuple | None = None  # what the loaded predictor's prototype memory reflects


def active() -> ActiveModel | None:
    """The active model version, or None when no model has been activated."""
    with unit_of_work() as session:
        row = active_model(session)
        return None if row is None else ActiveModel(row.id, row.version, row.bundle_path)


def current() -> tuple[ActiveModel, Predictor] | None:
    """The active model and its Predictor (loaded on first use, kept current), or None."""
    global _memory_stamp
    with unit_of_work() as session:
        row = active_model(session)
        if row is None:
            return None
        model = ActiveModel(row.id, row.version, row.bundle_path)
        last_review = session.scalar(select(func.max(Review.id)))
    predictor = predictor_for(model)
    stamp = (model, _files_stamp(model.bundle_path), last_review)
    with _lock:
        if stamp != _memory_stamp:
            _refresh_prototypes(predictor, model)
            _memory_stamp = stamp
    return model, predictor


def predictor_for(model: ActiveModel) -> Predictor:
    global _loaded
    with _lock:
        if _loaded is None or _loaded[0] != model:
            _loaded = None  # let the old network go before the new one is built
            threads = get_settings().torch_threads
            if threads:
                import torch

                torch.set_num_threads(threads)
            from catalog_ai.bundle import BundleError
            from catalog_ai.inference.predictor import Predictor

            try:
                _loaded = (model, Predictor.load(model.bundle_path))
            except BundleError as exc:
                # The bundle changed on disk after activation (or its plugin did): the typed
                # error names the model, and the uploads stay pending until it is fixed.
                raise BundleError(
                    f"the active model {model.version} cannot be loaded: {exc}; or activate "
                    "another version (catalog-ai models activate VERSION)"
                ) from exc
        return _loaded[1]


def reset() -> None:
    """Forget the loaded model (a forked process, tests)."""
    global _loaded, _memory_stamp
    with _lock:
        _loaded = None
        _memory_stamp = None


def _files_stamp(bundle_path: str) -> tuple[int, int]:
    stamps = []
    for name in (ARRAYS, META):
        try:
            stamps.append((Path(bundle_path) / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return stamps[0], stamps[1]


def _refresh_prototypes(predictor: Predictor, model: ActiveModel) -> None:
    """The bundle's prototype memory plus every product a reviewer accepted as an example."""
    from catalog_ai.prototypes import PrototypeMemory
    from catalog_ai.services.fewshot import memory_with_reviews

    memory = PrototypeMemory.load(Path(model.bundle_path))
    if memory is not None:
        with unit_of_work() as session:
            memory = memory_with_reviews(memory, session, model.version)
    predictor.set_prototypes(memory)

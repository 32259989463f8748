"""The active model's Predictor, loaded once per process and kept current.

Loading a bundle builds the network and reads its weights (a second for a real backbone); a
task only runs one cheap query per chunk to learn which version is active and which revision of
its prototype memory is the newest. The Predictor is rebuilt when another version is activated
(a calibration or ``fewshot add`` makes a new version, so a running worker picks it up from the
next chunk, without a restart); its prototype memory is brought to the newest revision when a
review was recorded, so that a correction counts from the next photo a worker classifies.
Bundle files never change once registered, so nothing here watches them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from catalog_ai.db import unit_of_work
from catalog_ai.services.models import active_model
from catalog_ai.services.versions import latest_revision, memory_at
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor
    from catalog_ai.model.prototypes import PrototypeMemory

__all__ = ["ActiveModel", "current", "reset"]


@dataclass(frozen=True)
class ActiveModel:
    id: int
    version: str
    bundle_path: str


_lock = threading.Lock()
_loaded: tuple[ActiveModel, Predictor] | None = None
_base: tuple[ActiveModel, PrototypeMemory | None] | None = None  # the bundle's memory (revision 0)
_memory_stamp: tuple | None = None  # (model, revision) the loaded predictor's memory reflects


def current() -> tuple[ActiveModel, Predictor] | None:
    """The active model and its Predictor (loaded on first use, kept current), or None.

    ``predictor.memory_revision`` is the memory revision it serves. A worker process runs one
    task at a time (prefork), so the memory cannot change between this call and the chunk's
    suggestions being recorded."""
    global _memory_stamp
    with unit_of_work() as session:
        row = active_model(session)
        if row is None:
            return None
        model = ActiveModel(row.id, row.version, row.bundle_path)
        revision = latest_revision(session, row.id)
    predictor = _predictor_for(model)
    with _lock:
        if (model, revision) != _memory_stamp:
            _refresh_prototypes(predictor, model, revision)
            _memory_stamp = (model, revision)
    return model, predictor


def _predictor_for(model: ActiveModel) -> Predictor:
    global _loaded, _base
    with _lock:
        if _loaded is None or _loaded[0] != model:
            _loaded = None  # let the old network go before the new one is built
            threads = get_settings().torch_threads
            if threads:
                import torch

                torch.set_num_threads(threads)
            from catalog_ai.inference.predictor import Predictor
            from catalog_ai.model.bundle import BundleError

            try:
                predictor = Predictor.load(model.bundle_path)
            except BundleError as exc:
                # The bundle changed on disk after activation (or its plugin did): the typed
                # error names the model, and the uploads stay pending until it is fixed.
                raise BundleError(
                    f"the active model {model.version} cannot be loaded: {exc}; or activate "
                    "another version (catalog-ai models activate VERSION)"
                ) from exc
            base = predictor.prototypes
            _base = (model, None if base is None else base.copy())
            predictor.memory_revision = None if base is None else 0
            _loaded = (model, predictor)
        return _loaded[1]


def reset() -> None:
    """Forget the loaded model (a forked process, tests)."""
    global _loaded, _memory_stamp, _base
    with _lock:
        _loaded = None
        _base = None
        _memory_stamp = None


def _refresh_prototypes(predictor: Predictor, model: ActiveModel, revision: int) -> None:
    """The bundle's prototype memory plus the version's revisions up to ``revision``."""
    base = _base[1] if _base is not None and _base[0] == model else None
    if base is None:  # a bundle without prototype memory: reviews cannot teach it
        predictor.memory_revision = None
        return
    with unit_of_work() as session:
        memory = memory_at(session, model.id, revision, base)
    predictor.set_prototypes(memory)
    predictor.memory_revision = revision

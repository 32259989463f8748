"""The port through which services ask for background work: :class:`Dispatcher`.

Services decide *what* must happen once their transaction commits (classify these products,
re-classify for this model, embed the catalogue); each entry point decides *how*: the worker
and a command with a broker configured send Celery messages (:mod:`catalog_ai.worker.tasks`),
the embedded set-up runs the work on a background thread of the same process. So services never
import the worker or Celery, and nothing runs the network inside a commit hook.

Work is handed over only after the commit (:func:`after_commit`): a message sent earlier could
reach a worker before the rows it names are visible, and one sent before a rollback would name
rows that never existed. Each kind of background work is a method here, implemented by both
dispatchers: classification, re-classification, catalogue embedding, webhook deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from catalog_ai.db.session import on_commit

__all__ = ["Dispatcher", "after_commit"]


@runtime_checkable
class Dispatcher(Protocol):
    """Where background work goes. Every method returns at once; the work runs elsewhere.

    Each is a hint, never the only record: the database is the truth, and a sweep finds what a
    lost hint left behind (products still ``pending``, photos without an embedding).
    """

    def classify(self, product_ids: Sequence[int]) -> None:
        """Classify these products with the active model."""

    def reclassify(self, version: str, after_id: int = 0) -> None:
        """Give every product that no person labelled a suggestion of model ``version``: the
        products after ``after_id`` (a chunk at a time, each link enqueueing the next)."""

    def embed_catalogue(self, version: str) -> None:
        """Embed every catalogue photo with model ``version`` (search, near-duplicates)."""

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        """Send these webhook deliveries (each signed, retried with back-off until delivered or
        given up; see :mod:`catalog_ai.services.webhook_delivery`)."""


class _AfterCommit:
    """A :class:`Dispatcher` that hands each call to ``target`` once ``session`` commits."""

    def __init__(self, session: Session, target: Dispatcher) -> None:
        self._session = session
        self._target = target

    def classify(self, product_ids: Sequence[int]) -> None:
        ids = list(product_ids)
        if ids:
            on_commit(self._session, lambda: self._target.classify(ids))

    def reclassify(self, version: str, after_id: int = 0) -> None:
        if after_id:
            on_commit(self._session, lambda: self._target.reclassify(version, after_id))
        else:  # the first link: dispatchers that only know reclassify(version) keep working
            on_commit(self._session, lambda: self._target.reclassify(version))

    def embed_catalogue(self, version: str) -> None:
        on_commit(self._session, lambda: self._target.embed_catalogue(version))

    def deliver(self, delivery_ids: Sequence[int]) -> None:
        ids = list(delivery_ids)
        if ids:
            on_commit(self._session, lambda: self._target.deliver(ids))


def after_commit(session: Session, dispatcher: Dispatcher) -> Dispatcher:
    """``dispatcher``, with every call deferred until ``session``'s transaction commits (and
    dropped if it rolls back)."""
    return _AfterCommit(session, dispatcher)

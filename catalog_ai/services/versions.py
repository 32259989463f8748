"""Immutable model versions: derived versions, and the numbered revisions of a version's
prototype memory learnt from single reviews.

A registered bundle's files are never rewritten. What changes how a model decides in bulk
(calibration, thresholds, few-shot examples) makes a new bundle and version derived from its
parent (:func:`catalog_ai.model.bundle.derive_bundle`, :func:`adopt_derived`). What one review
teaches (this photo is a carrot) is a new revision of the active version's memory, stored in the
database: the memory at revision ``R`` of version ``V`` is ``V``'s prototype files plus its
revisions ``1..R`` applied in order (:func:`memory_at`), and every suggestion records ``(V, R)``,
so any suggestion can be explained and reproduced (:func:`predictor_at`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Embedding, ModelVersion, PrototypeRevision, Review
from catalog_ai.db.models.embedding import decode_vectors
from catalog_ai.db.queries import find_model_version, first_photo_id, model_version_by_name
from catalog_ai.dispatch import Dispatcher
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.services.models import activate_model, active_model, register_model
from catalog_ai.taxonomy import SEPARATOR

if TYPE_CHECKING:
    from catalog_ai.inference.predictor import Predictor

__all__ = [
    "adopt_derived",
    "apply_revisions",
    "current_memory",
    "derivation_base",
    "latest_revision",
    "memory_at",
    "predictor_at",
    "record_review_revision",
]

log = logging.getLogger(__name__)


def latest_revision(session: Session, model_version_id: int) -> int:
    """The newest memory revision of a version (0: its bundle's memory as shipped)."""
    return int(
        session.scalar(
            select(func.coalesce(func.max(PrototypeRevision.revision), 0)).where(
                PrototypeRevision.model_version_id == model_version_id
            )
        )
        or 0
    )


def apply_revisions(base: PrototypeMemory, rows: Sequence[PrototypeRevision]) -> PrototypeMemory:
    """``base`` plus each revision's example, in revision order (``base`` is not modified).

    An example filed under a grouping of the memory's categories (accepted only down to
    ``Fruit > Apple`` above its varieties) teaches nothing here: as a category of its own it
    would compete with its own children, which ``fewshot add`` refuses too."""
    memory = base.copy()
    for row in sorted(rows, key=lambda r: r.revision):
        if row.dim != memory.dim:
            raise BundleError(
                f"memory revision {row.revision} holds a {row.dim}-dim embedding, the model's are "
                f"{memory.dim}-dim; the revision does not belong to this model"
            )
        if row.path not in memory and any(k.startswith(row.path + SEPARATOR) for k in memory.paths):
            continue
        memory.add(row.path, decode_vectors([row.dim], [row.vector]), source="review")
    return memory


def memory_at(
    session: Session, model_version_id: int, revision: int, base: PrototypeMemory
) -> PrototypeMemory:
    """The memory of a version at ``revision``, from its bundle's memory ``base``."""
    rows = session.scalars(
        select(PrototypeRevision)
        .where(
            PrototypeRevision.model_version_id == model_version_id,
            PrototypeRevision.revision <= revision,
        )
        .order_by(PrototypeRevision.revision)
    ).all()
    return apply_revisions(base, rows)


def current_memory(
    session: Session | None, row: ModelVersion | None, bundle: ModelBundle
) -> tuple[PrototypeMemory | None, int | None]:
    """The memory a bundle serves now and its revision: its files plus, when it is a registered
    version (``row``), every revision recorded so far. What a derived version starts from."""
    base = PrototypeMemory.load(bundle.path)
    if base is None or row is None or session is None:
        return base, None
    revision = latest_revision(session, row.id)
    return memory_at(session, row.id, revision, base), revision


def derivation_base(
    session: Session | None, model_dir: Path | None
) -> tuple[ModelBundle, PrototypeMemory | None, int | None]:
    """What a new version derives from: the bundle at ``model_dir`` (default: the active
    model's), with the memory it serves now and that memory's revision (see
    :func:`current_memory`). ``session`` is None when there is no catalog yet."""
    if model_dir is None:
        active = None if session is None else active_model(session)
        if active is None:
            raise BundleError("no active model: give --model DIR")
        model_dir = Path(active.bundle_path)
    parent = ModelBundle.load(model_dir)
    row = None if session is None else find_model_version(session, parent.version)
    memory, revision = current_memory(session, row, parent)
    return parent, memory, revision


def record_review_revision(session: Session, review: Review) -> PrototypeRevision | None:
    """Teach the active model this review's verdict at once: the product's photo, as the active
    model embedded it, becomes an example of the chosen category in a new memory revision.

    Nothing is recorded without a category (a rejection), without an active model, or when the
    active model has not embedded the photo (it was classified by another version and not yet
    re-embedded): the next ``train --from-catalog`` still learns it."""
    category = review.category
    if review.category_id is None or category is None:
        return None
    # The row lock serialises the numbering: two reviews cannot both take revision R + 1.
    model = session.scalar(
        select(ModelVersion).where(ModelVersion.is_active.is_(True)).with_for_update()
    )
    if model is None:
        return None
    image_id = first_photo_id(session, review.product_id)
    embedding = (
        None
        if image_id is None
        else session.scalar(
            select(Embedding).where(
                Embedding.image_id == image_id, Embedding.model_version_id == model.id
            )
        )
    )
    if embedding is None:
        log.info(
            "review %s: model %s has no embedding of product %s's photo; no memory revision",
            review.id,
            model.version,
            review.product_id,
        )
        return None
    row = PrototypeRevision(
        model_version_id=model.id,
        revision=latest_revision(session, model.id) + 1,
        path=category.path,
        category_id=review.category_id,
        review_id=review.id,
        dim=embedding.dim,
        vector=embedding.vector,
    )
    session.add(row)
    session.flush()
    return row


def adopt_derived(
    session: Session,
    bundle: ModelBundle,
    *,
    dispatcher: Dispatcher | None,
    activate: bool = True,
    add_categories: bool = False,
) -> tuple[ModelVersion | None, bool]:
    """Register a derived bundle when its parent is registered, and activate it when the parent
    is the active model (calibrating the active model is meant to change what it decides) and
    ``activate``. Returns the new row (None when the parent is not registered: nothing to
    inherit) and whether it was activated; activation hands re-classification and catalogue
    embedding to ``dispatcher`` after the commit."""
    parent_version = (bundle.parent or {}).get("version")
    parent = find_model_version(session, parent_version) if parent_version else None
    if parent is None:
        return None, False
    row = register_model(session, bundle.path, add_categories=add_categories)
    if activate and parent.is_active:
        activate_model(session, row.version, dispatcher=dispatcher)
        return row, True
    return row, False


def predictor_at(session: Session, version: str, revision: int | None, **kwargs) -> Predictor:
    """A Predictor exactly as version ``version`` was at memory ``revision`` (as recorded on a
    suggestion): to explain or reproduce what it suggested."""
    from catalog_ai.inference.predictor import Predictor

    row = model_version_by_name(session, version)
    predictor = Predictor.load(Path(row.bundle_path), **kwargs)
    if predictor.prototypes is not None and revision:
        predictor.set_prototypes(memory_at(session, row.id, revision, predictor.prototypes))
    predictor.memory_revision = None if predictor.prototypes is None else (revision or 0)
    return predictor

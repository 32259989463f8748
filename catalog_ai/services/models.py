"""Model versions: register a bundle with the catalog, activate one, list them, resolve one.

Activating is one service, :func:`activate_model`, because a model made active without its
follow-up work is half active: products labelled by the previous model keep its suggestions and
search has no vectors for the catalogue. It enqueues both re-classification and catalogue
embedding, after the commit, through the dispatcher the caller supplies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from catalog_ai.db import Category, ModelVersion, Product, Suggestion, utc_now
from catalog_ai.db.queries import find_model_version, model_version_by_name
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.classifiable import WAITING, classifiable
from catalog_ai.services.webhook_payloads import emit_model_activated

__all__ = [
    "ModelProgress",
    "activate_model",
    "active_model",
    "list_models",
    "missing_categories",
    "model_progress",
    "register_model",
    "resolve_model_version",
]


@dataclass(frozen=True)
class ModelProgress:
    version: str
    is_active: bool
    suggested: int  # products with a suggestion from this version
    remaining: int  # products this version should still classify (what activation enqueues)
    # Of ``remaining``, those waiting for a worker now (pending, processing); the rest still
    # carry an earlier model's label, for the next chunks of the re-classification to hand over.
    queued: int = 0

    @property
    def not_yet_queued(self) -> int:
        return self.remaining - self.queued

    @property
    def total(self) -> int:
        return self.suggested + self.remaining

    @property
    def fraction(self) -> float:
        return self.suggested / self.total if self.total else 1.0


def missing_categories(session: Session, bundle: ModelBundle) -> list[str]:
    """Category paths the model can predict that the catalog does not have."""
    known = set(session.scalars(select(Category.path)))
    return [n.text for n in bundle.taxonomy if n.text not in known]


def register_model(
    session: Session, bundle_dir: str | Path, *, add_categories: bool = False
) -> ModelVersion:
    """Record a bundle as a ModelVersion (idempotent: the same version is returned again).

    The model's categories must exist in the catalog, because its suggestions point at them;
    ``add_categories`` adds the missing ones instead of refusing. The bundle is checked first:
    its manifest against the schema, then its weights loaded and run on a generated photo;
    a bundle that cannot classify is refused before anything is recorded.
    """
    from catalog_ai.inference.check import check_bundle

    bundle = check_bundle(bundle_dir)
    existing = find_model_version(session, bundle.version)
    if existing is not None:
        return existing
    missing = missing_categories(session, bundle)
    parent_version = (bundle.parent or {}).get("version")
    parent = find_model_version(session, parent_version) if parent_version else None
    if missing:
        if not add_categories:
            raise BundleError(
                f"the model knows {len(missing)} categories the catalog does not have (first: "
                f"{missing[0]!r}); import the matching category tree, or register with "
                "--add-categories"
            )
        sync_taxonomy(session, bundle.taxonomy, source=f"import:model {bundle.version}")
    row = ModelVersion(
        version=bundle.version,
        backbone=bundle.backbone,
        bundle_path=str(Path(bundle.path).resolve()),
        metrics=bundle.metrics,
        taxonomy_fingerprint=bundle.taxonomy.fingerprint(),
        # A derived bundle names its parent; an unregistered parent leaves no link.
        parent_id=None if parent is None else parent.id,
    )
    session.add(row)
    session.flush()
    return row


def activate_model(
    session: Session, version: str, *, dispatcher: Dispatcher | None
) -> ModelVersion:
    """Make ``version`` the one active model (the previous one is deactivated first), and once
    the caller's transaction commits, have ``dispatcher`` re-classify every product no person
    labelled and embed the catalogue with it.

    Both are enqueued even when ``version`` was active already: both are idempotent (only what
    this version has not done yet is done), so activating again re-runs what a lost message or a
    stopped process left unfinished. ``dispatcher=None`` only flips the flag (tests, benchmarks
    that enqueue their own work; the ``model.activated`` webhook event is then sent by the
    sweep).
    """
    row = model_version_by_name(session, version)
    from catalog_ai.inference.check import check_bundle

    check_bundle(row.bundle_path)  # still there, intact, and able to classify?
    if not row.is_active:
        session.execute(
            update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False)
        )
        session.flush()
        row.is_active = True
        row.activated_at = utc_now()
        session.flush()
        # Only when it becomes active: activating the active version again is no new event.
        emit_model_activated(session, row, dispatcher=dispatcher)
    if dispatcher is not None:
        later = after_commit(session, dispatcher)
        later.reclassify(row.version)
        # The labelled catalogue is never re-classified, but search and near-duplicate checks
        # need its photos embedded by this model too.
        later.embed_catalogue(row.version)
    return row


def active_model(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def resolve_model_version(
    session: Session, model: ModelVersion | str | Path | None
) -> ModelVersion:
    """A registered model version from a row, a version name, a bundle directory, or None (the
    active one)."""
    if isinstance(model, ModelVersion):
        return model
    if model is None:
        row = active_model(session)
        if row is None:
            raise BundleError(
                "no model is active; give a model version or bundle directory (--model)"
            )
        return row
    text = str(model)
    row = find_model_version(session, text)
    if row is not None or not Path(text).is_dir():
        return row or model_version_by_name(session, text)
    bundle = ModelBundle.load(text)
    row = find_model_version(session, bundle.version)
    if row is None:
        raise BundleError(
            f"model {bundle.version} ({text}) is not registered in the catalog; register it "
            f"first: catalog-ai models register {text}"
        )
    return row


def list_models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def model_progress(session: Session, version: str) -> ModelProgress:
    """How far ``version`` got: products it suggested for, and products it should still classify
    (:func:`catalog_ai.services.classifiable.classifiable`: what activating it enqueues), of which
    ``queued`` wait for a worker now (the chunks handed over so far and new uploads)."""
    mv = model_version_by_name(session, version)
    # One suggestion per (product, version) (a unique key): a plain count is the product count.
    suggested = (
        session.scalar(
            select(func.count()).select_from(Suggestion).where(Suggestion.model_version_id == mv.id)
        )
        or 0
    )
    waiting = Product.status.in_(WAITING)
    remaining, queued = session.execute(
        select(func.count(), func.count().filter(waiting))
        .select_from(Product)
        .where(classifiable(mv.id))
    ).one()
    return ModelProgress(
        version=mv.version,
        is_active=bool(mv.is_active),
        suggested=suggested,
        remaining=remaining or 0,
        queued=queued or 0,
    )

"""Model versions: register a bundle with the catalog, activate one, list them.

Activating is one service, :func:`activate_model`, because a model made active without its
follow-up work is half active: products labelled by the previous model keep its suggestions and
search has no vectors for the catalogue. It enqueues both re-classification and catalogue
embedding, after the commit, through the dispatcher the caller supplies.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog_ai.db import Category, ModelVersion, utc_now
from catalog_ai.dispatch import Dispatcher, after_commit
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.services.catalog import sync_taxonomy

__all__ = ["activate_model", "active_model", "list_models", "missing_categories", "register_model"]


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
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version == bundle.version))
    if existing is not None:
        return existing
    missing = missing_categories(session, bundle)
    if missing:
        if not add_categories:
            raise BundleError(
                f"the model knows {len(missing)} categories the catalog does not have (first: "
                f"{missing[0]!r}); import the matching category tree, or register with --add-categories"
            )
        sync_taxonomy(session, bundle.taxonomy, source=f"import:model {bundle.version}")
    row = ModelVersion(
        version=bundle.version,
        backbone=bundle.backbone,
        bundle_path=str(Path(bundle.path).resolve()),
        metrics=bundle.metrics,
        taxonomy_fingerprint=bundle.taxonomy.fingerprint(),
        # A derived bundle names its parent; an unregistered parent leaves no link.
        parent_id=session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.version == (bundle.parent or {}).get("version")
            )
        )
        if bundle.parent
        else None,
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
    that enqueue their own work).
    """
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        known = session.scalars(
            select(ModelVersion.version).order_by(ModelVersion.id.desc()).limit(5)
        ).all()
        raise BundleError(
            f"no registered model version {version!r}; register it first (catalog-ai models register DIR)"
            + (f"; known: {', '.join(known)}" if known else "")
        )
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
    if dispatcher is not None:
        later = after_commit(session, dispatcher)
        later.reclassify(row.version)
        # The labelled catalogue is never re-classified, but search and near-duplicate checks
        # need its photos embedded by this model too.
        later.embed_catalogue(row.version)
    return row


def active_model(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def list_models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))

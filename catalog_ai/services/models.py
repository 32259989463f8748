"""Model versions: register a bundle with the catalog, activate one, list them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog_ai.bundle import BundleError, ModelBundle
from catalog_ai.db import Category, ModelVersion, utc_now
from catalog_ai.services.catalog import sync_taxonomy

__all__ = ["register_model", "activate_model", "active_model", "list_models", "missing_categories"]


def missing_categories(session: Session, bundle: ModelBundle) -> list[str]:
    """Category paths the model can predict that the catalog does not have."""
    known = set(session.scalars(select(Category.path)))
    return [n.text for n in bundle.taxonomy if n.text not in known]


def register_model(session: Session, bundle_dir: str | Path, *, add_categories: bool = False) -> ModelVersion:
    """Record a bundle as a ModelVersion (idempotent: the same version is returned again).

    The model's categories must exist in the catalog, because its suggestions point at them;
    ``add_categories`` adds the missing ones instead of refusing.
    """
    bundle = ModelBundle.load(bundle_dir)
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
            select(ModelVersion.id).where(ModelVersion.version == (bundle.parent or {}).get("version"))
        ) if bundle.parent else None,
    )
    session.add(row)
    session.flush()
    return row


def activate_model(session: Session, version: str) -> ModelVersion:
    """Make ``version`` the one active model (the previous one is deactivated first)."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        known = session.scalars(select(ModelVersion.version).order_by(ModelVersion.id.desc()).limit(5)).all()
        raise BundleError(
            f"no registered model version {version!r}; register it first (catalog-ai models register DIR)"
            + (f"; known: {', '.join(known)}" if known else "")
        )
    ModelBundle.load(row.bundle_path)  # still there and intact?
    if not row.is_active:
        session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False))
        session.flush()
        row.is_active = True
        row.activated_at = utc_now()
        session.flush()
    return row


def active_model(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def list_models(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))

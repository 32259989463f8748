"""``GET /v1/models`` and ``POST /v1/models/{version}/activate`` (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from catalog_ai.api.deps import AdminKey, DispatcherDep, ReadKey, SessionDep
from catalog_ai.api.problems import keyed_responses
from catalog_ai.api.schemas.models import ModelListOut, ModelOut
from catalog_ai.db import ModelVersion
from catalog_ai.services.models import activate_model, list_models, model_progress

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])

Version = Annotated[str, Path(min_length=1, max_length=64, description="a model version")]


def _out(session: Session, row: ModelVersion, versions: dict[int, str]) -> ModelOut:
    progress = model_progress(session, row.version)
    held = (row.metrics or {}).get("held_out", {})
    accuracy = held.get("leaf_accuracy") if isinstance(held, dict) else None
    return ModelOut(
        version=row.version,
        backbone=row.backbone,
        is_active=bool(row.is_active),
        parent_version=versions.get(row.parent_id) if row.parent_id is not None else None,
        created_at=row.created_at,
        activated_at=row.activated_at,
        held_out_leaf_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
        suggested=progress.suggested,
        remaining=progress.remaining,
    )


@router.get(
    "",
    response_model=ModelListOut,
    summary="Registered model versions, the active one marked",
    responses=keyed_responses(),
)
def get_models(session: SessionDep, key: ReadKey) -> ModelListOut:
    rows = list_models(session)
    versions = {m.id: m.version for m in rows}
    active = next((m.version for m in rows if m.is_active), None)
    return ModelListOut(models=[_out(session, m, versions) for m in rows], active=active)


@router.post(
    "/{version}/activate",
    response_model=ModelOut,
    summary="Make a version the active model (re-classification and embedding are enqueued)",
    responses=keyed_responses(404, 409, 422),
)
def activate(
    version: Version, session: SessionDep, key: AdminKey, dispatcher: DispatcherDep
) -> ModelOut:
    row = activate_model(session, version, dispatcher=dispatcher)
    versions = {m.id: m.version for m in list_models(session)}
    return _out(session, row, versions)

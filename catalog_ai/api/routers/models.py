"""``GET /v1/models`` (with each version's live precision), ``POST /v1/models/{version}/activate``
(admin), ``POST /v1/models/compare`` and ``POST /v1/models/{version}/promote-if-better`` (admin:
both run the two versions on recent labelled products, seconds to minutes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from catalog_ai.api.deps import AdminKey, DispatcherDep, ReadKey, SessionDep
from catalog_ai.api.problems import keyed_responses, register_error
from catalog_ai.api.schemas.models import (
    CompareIn,
    CompareOut,
    FigureOut,
    LiveOut,
    ModelListOut,
    ModelOut,
    PromoteIn,
    PromotionOut,
    ProportionOut,
)
from catalog_ai.db import ModelVersion
from catalog_ai.services.live_precision import Proportion, live_precision
from catalog_ai.services.model_compare import CompareError, Comparison, Figure, compare_versions
from catalog_ai.services.models import activate_model, list_models, model_progress
from catalog_ai.services.promotion import latest_promotion, promote_if_better

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["models"])

# Nothing labelled after both versions were made: a state of the catalogue, not a bad request.
register_error(CompareError, 409, "nothing-to-compare")

Version = Annotated[str, Path(min_length=1, max_length=64, description="a model version")]


def _share(p: Proportion | None) -> ProportionOut | None:
    return None if p is None else ProportionOut(estimate=p.estimate, low=p.low, high=p.high, n=p.n)


def _out(session: Session, row: ModelVersion, versions: dict[int, str]) -> ModelOut:
    progress = model_progress(session, row.version)
    held = (row.metrics or {}).get("held_out", {})
    accuracy = held.get("leaf_accuracy") if isinstance(held, dict) else None
    live = live_precision(session, row.version)
    record = latest_promotion(session, row.id)
    return ModelOut(
        version=row.version,
        backbone=row.backbone,
        is_active=bool(row.is_active),
        parent_version=versions.get(row.parent_id) if row.parent_id is not None else None,
        created_at=row.created_at,
        activated_at=row.activated_at,
        live=LiveOut(
            auto_accept_precision=_share(live.auto_accept),
            leaf_accuracy=_share(live.leaf_accuracy),
            auto_accepted=live.auto_accepted,
            audited=live.audited,
            audits_resolved=live.audits_resolved,
            sent_to_review=live.sent_to_review,
            reviewed=live.reviewed,
        ),
        held_out_leaf_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
        promotion=None
        if record is None
        else PromotionOut(
            version=row.version,
            against=versions.get(record.against_id) if record.against_id is not None else None,
            promoted=record.promoted,
            reason=record.reason,
            decided_at=record.created_at,
        ),
        suggested=progress.suggested,
        remaining=progress.remaining,
    )


@router.get(
    "",
    response_model=ModelListOut,
    summary="Registered model versions, the active one marked, with live precision",
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


def _figure(f: Figure) -> FigureOut:
    return FigureOut(estimate=f.estimate, low=f.low, high=f.high)


def _compare_out(c: Comparison) -> CompareOut:
    return CompareOut(
        a=c.a,
        b=c.b,
        n=c.n,
        failed=c.failed,
        labelled_after=c.labelled_after,
        leaf_accuracy_a=_figure(c.leaf_accuracy_a),
        leaf_accuracy_b=_figure(c.leaf_accuracy_b),
        difference=_figure(c.difference),
        auto_accept_precision_a=_figure(c.auto_accept_precision_a),
        auto_accept_precision_b=_figure(c.auto_accept_precision_b),
        coverage_a=_figure(c.coverage_a),
        coverage_b=_figure(c.coverage_b),
    )


@router.post(
    "/compare",
    response_model=CompareOut,
    summary="Two versions on recent products people labelled that neither trained on",
    responses=keyed_responses(404, 409, 422),
)
def compare(body: CompareIn, session: SessionDep, key: AdminKey) -> CompareOut:
    comparison = compare_versions(
        session, body.a, body.b, n_recent=body.recent, bootstrap=body.bootstrap, seed=body.seed
    )
    return _compare_out(comparison)


@router.post(
    "/{version}/promote-if-better",
    response_model=PromotionOut,
    summary="Activate a registered version only if it beats the active one by the margin",
    responses=keyed_responses(404, 409, 422),
)
def promote(
    version: Version,
    body: PromoteIn,
    session: SessionDep,
    key: AdminKey,
    dispatcher: DispatcherDep,
) -> PromotionOut:
    decision = promote_if_better(
        session,
        version,
        margin=body.margin,
        dispatcher=dispatcher,
        n_recent=body.recent,
        bootstrap=body.bootstrap,
    )
    return PromotionOut(
        version=decision.candidate,
        against=decision.against,
        promoted=decision.promoted,
        reason=decision.reason,
    )

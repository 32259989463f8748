"""``GET /v1/categories``: the category tree with each branch's figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from catalog_ai.api.deps import ReadKey, SessionDep
from catalog_ai.api.problems import Problem, keyed_responses
from catalog_ai.api.schemas.categories import CategoryOut, CategoryTreeOut
from catalog_ai.services.category_tree import CategoryNode, category_tree
from catalog_ai.taxonomy import SEPARATOR

__all__ = ["router"]

router = APIRouter(prefix="/v1/categories", tags=["categories"])


def _out(node: CategoryNode) -> CategoryOut:
    b = node.stats
    return CategoryOut(
        id=node.id,
        external_id=node.external_id,
        path=b.path,
        name=b.name,
        depth=b.depth,
        parent_path=b.path.rpartition(SEPARATOR)[0] or None,
        products=b.products,
        labelled_by_people=b.labelled_by_people,
        classified=b.classified,
        decided=b.decided,
        accepted_as_suggested=b.accepted_as_suggested,
        reviewed=b.reviewed,
        reviewed_correct=b.reviewed_correct,
        acceptance_rate=b.acceptance_rate,
        accuracy=b.accuracy,
    )


@router.get(
    "",
    response_model=CategoryTreeOut,
    summary="The category tree, each category with its branch's counts",
    responses=keyed_responses(404, 422),
)
def list_categories(
    session: SessionDep,
    key: ReadKey,
    branch: Annotated[
        str | None,
        Query(max_length=4096, description="only this category and those below it (its path)"),
    ] = None,
    max_depth: Annotated[
        int | None, Query(ge=1, le=64, description="only categories down to this depth")
    ] = None,
) -> CategoryTreeOut:
    nodes = category_tree(session)
    if branch is not None:
        wanted = branch.strip()
        nodes = [
            n
            for n in nodes
            if n.stats.path == wanted or n.stats.path.startswith(wanted + SEPARATOR)
        ]
        if not nodes:
            raise Problem(
                404,
                "category-not-found",
                f"no category has the path {wanted!r}; list them with GET /v1/categories",
                field="branch",
            )
    if max_depth is not None:
        nodes = [n for n in nodes if n.stats.depth <= max_depth]
    out = [_out(n) for n in nodes]
    return CategoryTreeOut(categories=out, total=len(out))

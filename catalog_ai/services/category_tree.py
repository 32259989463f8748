"""The category tree as the API lists it: each category's ids beside its branch's figures
(:func:`catalog_ai.services.browse.branch_stats`). Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category
from catalog_ai.services.browse import BranchStats, branch_stats

__all__ = ["CategoryNode", "category_tree"]


@dataclass(frozen=True)
class CategoryNode:
    id: int
    external_id: str | None  # the Google product category id, the Shopify GID, a CSV's id
    stats: BranchStats


def category_tree(session: Session) -> list[CategoryNode]:
    """Every category in tree order (a parent right before its children), with its figures."""
    refs = {
        path: (cid, external_id)
        for cid, path, external_id in session.execute(
            select(Category.id, Category.path, Category.external_id)
        )
    }
    return [
        CategoryNode(id=refs[b.path][0], external_id=refs[b.path][1], stats=b)
        for b in branch_stats(session)
        if b.path in refs
    ]

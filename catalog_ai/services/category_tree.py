"""The category tree as the API lists it: each category's ids beside its branch's figures
(:func:`catalog_ai.services.browse.branch_stats`). Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category
from catalog_ai.db.queries import categories_stamp
from catalog_ai.services.browse import BranchStats, branch_figures

__all__ = ["CategoryNode", "category_tree"]


@dataclass(frozen=True)
class CategoryNode:
    id: int
    external_id: str | None  # the Google product category id, the Shopify GID, a CSV's id
    stats: BranchStats


_cache: dict[str, tuple[tuple[Any, ...], list[CategoryNode]]] = {}


def category_tree(session: Session) -> list[CategoryNode]:
    """Every category in tree order (a parent right before its children), with its figures.
    Figures read from the refreshed summary (a large catalogue) are reused, with the ids, while
    neither the summary nor the tree changed."""
    figures = branch_figures(session)
    stamp = categories_stamp(session)
    key = (figures.as_of, *stamp)
    cached = _cache.get(stamp[0])
    if not figures.live and cached is not None and cached[0] == key:
        return list(cached[1])
    refs = {
        path: (cid, external_id)
        for cid, path, external_id in session.execute(
            select(Category.id, Category.path, Category.external_id)
        )
    }
    nodes = [
        CategoryNode(id=refs[b.path][0], external_id=refs[b.path][1], stats=b)
        for b in figures.stats
        if b.path in refs
    ]
    if not figures.live:
        _cache[stamp[0]] = (key, nodes)
    return nodes

"""Catalog: the category tree with figures per branch, a product grid per category, and a
product's page with its history (suggestions with their model versions, reviews: who and when)."""

from __future__ import annotations

import streamlit as st

from catalog_ai.services.browse import (
    branch_figures,
    count_products_in_branch,
    products_in_branch,
)
from catalog_ai.services.history import product_history
from catalog_ai.services.review_queue import COUNT_CAP
from catalog_ai.settings import get_settings
from dashboards import ui

PAGE_SIZE = 24
INDENT = "\u2003"  # an em space: indents the tree in the table
DEFINITIONS = (
    "**products**: products whose final category is in the branch · **by people**: of those, "
    "the ones whose category a person gave (import, review, few-shot example), not a model · "
    "**classified**: uploads "
    "whose newest suggestion points into the branch · **acceptance rate**: of those with a final "
    "verdict, the share accepted as suggested (automatically or by a reviewer, fully or down to a "
    "shallower depth; corrections, new categories and rejections count against) · **accuracy**: "
    "of the reviewer verdicts on suggestions in the branch, the share that accepted the suggested "
    "path exactly."
)


def _tree() -> list[str]:
    figures = ui.read(branch_figures)
    stats = figures.stats
    st.subheader("Category tree")
    st.caption(DEFINITIONS)
    if not figures.live:  # a large catalogue: the summary the worker's beat refreshes
        st.caption(
            f"Figures as of {figures.as_of:%Y-%m-%d %H:%M:%S} UTC (refreshed every "
            f"{get_settings().figures_interval} s by `catalog-ai worker --beat`)."
        )
    st.dataframe(
        [
            {
                "category": INDENT * (b.depth - 1) + b.name,
                "path": b.path,
                "products": b.products,
                "by people": b.labelled_by_people,
                "classified": b.classified,
                "decided": b.decided,
                "acceptance rate": ui.percent(b.acceptance_rate),
                "reviewed": b.reviewed,
                "accuracy": ui.percent(b.accuracy),
            }
            for b in stats
        ],
        hide_index=True,
        column_order=[
            "category",
            "products",
            "by people",
            "classified",
            "decided",
            "acceptance rate",
            "reviewed",
            "accuracy",
            "path",
        ],
        key="tree",
        height=420,
    )
    return [b.path for b in stats]


def _grid(paths: list[str]) -> None:
    st.subheader("Products of a category")
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    path = c1.selectbox(
        "Category",
        paths,
        index=0 if paths else None,
        key="grid-category",
        placeholder="Type to search the category tree…",
    )
    below = c2.checkbox("Include subcategories", value=True, key="grid-below")
    if path is None:
        st.caption("The catalog has no categories yet.")
        return
    total = ui.read(lambda s: count_products_in_branch(s, path, include_subcategories=below))
    pages = max(1, -(-total // PAGE_SIZE))
    page = (
        st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"grid-page-{path}-{below}")
        if pages > 1
        else 1
    )
    tiles = ui.read(
        lambda s: products_in_branch(
            s, path, include_subcategories=below, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    )
    shown = f"{COUNT_CAP:,}+" if total > COUNT_CAP else f"{total:,}"  # counted up to COUNT_CAP
    st.caption(f"{shown} products in {ui.plain(path)}" + (" and below" if below else ""))
    ui.tile_grid(
        tiles,
        columns=6,
        size=150,
        key="grid",
        image=lambda t: ui.media_file(t.image_path),
        caption=lambda t: f"#{t.product_id} {t.title} · {t.category_path}",
        open_button=True,
    )


def _product() -> None:
    st.subheader("Product")
    pid = st.number_input(
        "Product id",
        min_value=1,
        step=1,
        value=None,
        key=ui.PRODUCT_KEY,
        placeholder="Open a product from the grid, or type its id",
    )
    if pid is None:
        return
    h = ui.read(lambda s: product_history(s, int(pid)))
    left, right = st.columns([1, 2])
    with left:
        for stored in h.image_paths[:3]:
            ui.show_photo(ui.media_file(stored), size=300)
        if not h.image_paths:
            st.caption("(no photo stored)")
    with right:
        st.markdown(f"### {ui.plain(h.title) if h.title else '(untitled)'}")
        st.markdown(
            f"product **{h.product_id}** · status **{ui.plain(h.status)}** · category "
            f"**{ui.plain(h.category_path or '–')}** · "
            f"labelled by **{ui.plain(h.label_source or '–')}**"
            + (f" · external id {ui.plain(h.external_id)}" if h.external_id else "")
        )
        st.caption(
            f"created {h.created_at:%Y-%m-%d %H:%M} · "
            f"status since {h.status_changed_at:%Y-%m-%d %H:%M} · "
            f"classification attempts {h.attempts}"
        )
        if h.error:
            st.error(f"Failed: {ui.plain(h.error)}")
        st.markdown("**Suggestions**")
        if h.suggestions:
            st.dataframe(
                [
                    {
                        "when": f"{x.created_at:%Y-%m-%d %H:%M:%S}",
                        "model version": x.model_version,
                        "suggested": x.path or "(abstained)",
                        "confidence": round(x.confidence, 3),
                        "source": x.source,
                        "possibly new": x.open_set,
                    }
                    for x in h.suggestions
                ],
                hide_index=True,
                key="history-suggestions",
            )
        else:
            st.caption(
                "No model has classified this product "
                "(imported with its category, or still waiting)."
            )
        st.markdown("**Reviews**")
        if h.reviews:
            st.dataframe(
                [
                    {
                        "when": f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                        "reviewer": r.reviewer,
                        "action": r.action,
                        "category": r.category_path or "–",
                        "note": r.note or "",
                    }
                    for r in h.reviews
                ],
                hide_index=True,
                key="history-reviews",
            )
        else:
            st.caption("No reviews yet.")


def render() -> None:
    st.title("Catalog")
    paths = _tree()
    _grid(paths)
    _product()


render()

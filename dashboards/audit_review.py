"""The review queue's ``audits`` view: auto-accepted products drawn at random for a person to
check (:mod:`catalog_ai.services.audits`). The product is already accepted; the verdict says
whether the model was right, and either way makes the label a person's."""

from __future__ import annotations

import streamlit as st

from catalog_ai.services.audits import AuditItem, open_audit_count, open_audits, resolve_audit
from catalog_ai.services.product_gallery import photo_paths
from catalog_ai.worker.dispatch import default_dispatcher
from dashboards import ui
from dashboards.access import Viewer

AUDIT = "audit"  # the review page's source filter value for this view


def _card(item: AuditItem, paths: list[str], viewer: Viewer) -> None:
    pid, locked = item.product_id, not viewer.can_act
    left, right = st.columns([2, 3])
    with left:
        stored = ui.read(lambda s: photo_paths(s, [pid])).get(pid) or [item.image_path]
        ui.show_photo(ui.media_file(stored[0]), size=380)
    with right:
        st.subheader(ui.plain(item.title) if item.title else "(untitled)")
        st.info(
            f"Audit: auto-accepted as **{ui.plain(item.path)}** by model "
            f"{ui.plain(item.model_version)} at confidence {ui.percent(item.confidence)}. It is "
            "already in the catalogue; your answer measures how often auto-accept is right."
        )
        ui.depth_bars(item.path, item.levels, item.confidence)
    c1, c2, c3 = st.columns([2, 4, 2], vertical_alignment="bottom")
    if c1.button("Right", key=f"audit-ok-{pid}", type="primary", disabled=locked):
        ui.perform(
            "Audit",
            lambda s, who: (
                resolve_audit(s, pid, reviewer=who, dispatcher=default_dispatcher()),
                f"Audit of {item.title!r}: right ({item.path}).",
            )[1],
        )
    target = c2.selectbox(
        "Wrong: the right category",
        [p for p in paths if p != item.path],
        index=None,
        key=f"audit-pick-{pid}",
        placeholder="Type to search the category tree…",
        disabled=locked,
    )
    if (
        c3.button("Wrong: move it", key=f"audit-fix-{pid}", disabled=locked or target is None)
        and target is not None
    ):
        ui.perform(
            "Audit",
            lambda s, who: (
                resolve_audit(
                    s, pid, reviewer=who, category_path=target, dispatcher=default_dispatcher()
                ),
                f"Audit of {item.title!r}: wrong, moved to {target}.",
            )[1],
        )


def render_audits(paths: list[str], viewer: Viewer) -> None:
    """The open audits, oldest first: one card, the count."""
    total = ui.read(open_audit_count)
    items = ui.read(lambda s: open_audits(s, limit=1))
    st.caption(
        f"{total:,} open audits: auto-accepted products drawn at random "
        "(CATALOG_AI_AUDIT_RATE) for a person to check"
    )
    if not items:
        st.success("No audit waiting.")
        return
    with st.container(border=True):
        _card(items[0], paths, viewer)

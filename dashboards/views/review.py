"""Review queue: suggestions waiting for a reviewer, least confident first, one card at a time.

Keyboard: A accept · D accept down to the chosen depth · O move to the category picked in the
tree picker · N create the typed new category · X reject · S skip. Enter submits the sign-in
form. After an action the app reruns and the next card replaces this one (no page reload).
"""

from __future__ import annotations

import streamlit as st

from catalog_ai.errors import CatalogAIError
from catalog_ai.services.browse import category_paths
from catalog_ai.services.models import list_models
from catalog_ai.services.product_gallery import photo_paths
from catalog_ai.services.review import (
    BULK_LIMIT,
    COUNT_CAP,
    WHOLE_QUEUE,
    QueueFilter,
    QueueItem,
    accept,
    assign_new_category,
    bulk_accept,
    bulk_preview,
    correct,
    queue_count,
    reject,
    review_queue,
)
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR
from catalog_ai.worker.dispatch import default_dispatcher
from dashboards import ui
from dashboards.access import Viewer, current_viewer
from dashboards.audit_review import AUDIT, render_audits

ALL = "(all)"
SOURCES = {
    ALL: None,
    "head (trained classifier)": "head",
    "few-shot (prototype match)": "prototype",
    "abstained": "abstain",
    "possibly a new category": "open_set",
    "audits (auto-accepted, drawn for checking)": AUDIT,
}
SOURCE_LABEL = {"head": "head", "prototype": "few-shot", "abstain": "abstained"}
_SKIP = "review.skip"


def _filters(paths: list[str], versions: list[str]) -> QueueFilter:
    c1, c2, c3 = st.columns([3, 2, 2])
    branch = c1.selectbox("Branch of the tree", [ALL, *paths], key="q-branch")
    version = c2.selectbox("Model version", [ALL, *versions], key="q-model")
    source = c3.selectbox("Source", list(SOURCES), key="q-source")
    flt = QueueFilter(
        branch=None if branch == ALL else branch,
        model_version=None if version == ALL else version,
        source=SOURCES[source],
    )
    if st.session_state.get("review.filter") != flt:  # a new filter starts at its first card
        st.session_state["review.filter"] = flt
        st.session_state[_SKIP] = 0
    return flt


@st.cache_data(ttl=60, show_spinner=False, max_entries=512)
def _similar(product_id: int, version: str, database: str) -> tuple[list, str | None]:
    """Up to 6 catalog products (with a category) that look like the product; or why none.
    ``database`` keeps catalogs apart in the cache (one process can serve several in tests)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.similar import similar_products

    try:
        with unit_of_work() as session:
            hits = similar_products(session, model_version=version, product_id=product_id, k=18)
    except CatalogAIError as exc:
        return [], str(exc)
    return [h for h in hits if h.category_path][:6], None


def _show_similar(item: QueueItem) -> None:
    st.markdown("**Visually similar products in the catalog**")
    hits, why = _similar(item.product_id, item.model_version, get_settings().database_url)
    if why:
        st.info(f"Similar products are not available: {ui.plain(why)}")
        return
    if not hits:
        st.caption("No similar product with a category yet.")
        return
    ui.tile_grid(
        hits,
        columns=6,
        size=140,
        key=f"similar-{item.product_id}",
        image=lambda h: h.image_path,
        caption=lambda h: f"{h.title} · {h.category_path} · {h.score:.2f}",
    )


def _card(item: QueueItem, paths: list[str], viewer: Viewer) -> None:
    left, right = st.columns([2, 3])
    with left:
        _photos(item)
    with right:
        st.subheader(ui.plain(item.title) if item.title else "(untitled)")
        st.caption(
            f"product {item.product_id} · model {ui.plain(item.model_version)} · "
            f"source {SOURCE_LABEL.get(item.source, item.source)} · "
            f"confidence {ui.percent(item.confidence)}"
        )
        if item.open_set:
            st.warning(
                "Possibly a new category: this photo is far from every category the model knows."
            )
        if item.path:
            st.markdown(f"**Suggested:** {ui.plain(item.path)}")
        ui.depth_bars(item.path, item.levels, item.confidence)
        alts = ui.alternatives(item.path, item.levels)
        if alts:
            st.markdown("**Top alternatives**")
            st.dataframe(alts, hide_index=True, key=f"alts-{item.product_id}")
    _actions(item, paths, viewer)
    _show_similar(item)


def _photos(item: QueueItem) -> None:
    """Every photo of the product, in the shop's order: the first one large, the others as
    thumbnails below it (the model decided on all of them)."""
    stored = ui.read(lambda s: photo_paths(s, [item.product_id])).get(item.product_id)
    stored = stored or ([item.image_path] if item.image_path else [None])
    ui.show_photo(ui.media_file(stored[0]), size=380)
    rest = stored[1:]
    if not rest:
        return
    st.caption(f"{len(stored)} photos; the suggestion uses all of them")
    for start in range(0, len(rest), 4):
        for col, path in zip(st.columns(4), rest[start : start + 4], strict=False):
            with col:
                ui.show_photo(ui.media_file(path), size=90)


def _actions(item: QueueItem, paths: list[str], viewer: Viewer) -> None:
    pid, locked = item.product_id, not viewer.can_act
    parts = item.path.split(SEPARATOR) if item.path else []
    c1, c2, c3, c4 = st.columns([2, 4, 2, 2], vertical_alignment="bottom")
    if c1.button(
        "Accept",
        key=f"accept-{pid}",
        type="primary",
        shortcut="A",
        disabled=locked or not parts,
        width="stretch",
    ):
        ui.perform(
            "Accept",
            lambda s, who: (
                accept(s, pid, reviewer=who, dispatcher=default_dispatcher()),
                f"Accepted {item.title!r} as {item.path}.",
            )[1],
        )
    with c2:
        depths = list(range(1, len(parts)))
        sub1, sub2 = st.columns([3, 2], vertical_alignment="bottom")
        depth = sub1.selectbox(
            "Accept only down to",
            depths,
            index=len(depths) - 1 if depths else None,
            format_func=lambda d: SEPARATOR.join(parts[:d]),
            key=f"depth-{pid}",
            disabled=locked or not depths,
            placeholder="(suggestion has one level)",
        )
        if sub2.button(
            "Accept to depth",
            key=f"partial-{pid}",
            shortcut="D",
            disabled=locked or depth is None,
            width="stretch",
        ):
            ui.perform(
                "Accept to depth",
                lambda s, who: (
                    accept(s, pid, reviewer=who, depth=depth, dispatcher=default_dispatcher()),
                    f"Accepted {item.title!r} down to {SEPARATOR.join(parts[:depth])}.",
                )[1],
            )
    if c3.button(
        "Reject",
        key=f"reject-{pid}",
        shortcut="X",
        disabled=locked,
        width="stretch",
        help="The product belongs nowhere in the tree",
    ):
        ui.perform(
            "Reject", lambda s, who: (reject(s, pid, reviewer=who), f"Rejected {item.title!r}.")[1]
        )
    if c4.button(
        "Skip", key=f"skip-{pid}", shortcut="S", width="stretch", help="Look at the next card"
    ):
        st.session_state[_SKIP] = st.session_state.get(_SKIP, 0) + 1
        st.rerun()

    c5, c6 = st.columns([5, 2], vertical_alignment="bottom")
    target = c5.selectbox(
        "Another category (type to search the tree)",
        paths,
        index=None,
        key=f"pick-{pid}",
        placeholder="Type to search the category tree…",
        disabled=locked,
    )
    if (
        c6.button(
            "Move to this category",
            key=f"correct-{pid}",
            shortcut="O",
            disabled=locked or target is None,
            width="stretch",
        )
        and target is not None
    ):
        ui.perform(
            "Correct",
            lambda s, who: (
                correct(
                    s, pid, reviewer=who, category_path=target, dispatcher=default_dispatcher()
                ),
                f"Moved {item.title!r} to {target}.",
            )[1],
        )

    c7, c8 = st.columns([5, 2], vertical_alignment="bottom")
    parent = SEPARATOR.join(parts[:-1]) if len(parts) > 1 else (parts[0] if parts else "")
    new_path = c7.text_input(
        "Needs a new category (full path; missing parents are created too)",
        value=f"{parent}{SEPARATOR}" if parent else "",
        key=f"new-{pid}",
        disabled=locked,
    )
    if c8.button(
        "Create category and assign",
        key=f"newcat-{pid}",
        shortcut="N",
        disabled=locked or not new_path.strip(" >"),
        width="stretch",
    ):
        ui.perform(
            "New category",
            lambda s, who: (
                assign_new_category(
                    s, pid, reviewer=who, new_path=new_path, dispatcher=default_dispatcher()
                ),
                f"Created {new_path.strip()} with {item.title!r} as its first example.",
            )[1],
        )


def _bulk(flt: QueueFilter, viewer: Viewer) -> None:
    with st.expander("Bulk accept above a confidence", expanded=False):
        threshold = st.slider(
            "Accept every waiting suggestion at or above this confidence",
            0.0,
            1.0,
            0.9,
            0.01,
            key="bulk-threshold",
        )
        n, expected = ui.read(lambda s: bulk_preview(s, min_confidence=threshold, flt=flt))
        taken = min(n, BULK_LIMIT)
        rate = f" ({expected / taken:.1%} of them)" if taken else ""
        reach = (
            f"More than **{BULK_LIMIT:,}** suggestions in this view reach {threshold:.2f}; a "
            f"click accepts the {BULK_LIMIT:,} most confident"
            if n > BULK_LIMIT
            else f"**{n}** suggestions in this view reach {threshold:.2f}"
        )
        st.markdown(
            f"{reach}; expected to be wrong: **{expected:.1f}**{rate} (the sum of "
            "1 − confidence: confidences are calibrated)."
        )
        if st.button(
            f"Accept these {taken} suggestions",
            key="bulk-accept",
            type="primary",
            disabled=not viewer.can_act or taken == 0,
        ):

            def run(s, who) -> str:
                n = bulk_accept(
                    s,
                    reviewer=who,
                    min_confidence=threshold,
                    flt=flt,
                    dispatcher=default_dispatcher(),
                )
                return f"Accepted {n} suggestions at or above {threshold:.2f}."

            ui.perform("Bulk accept", run)


def _up_next(items: list[QueueItem]) -> None:
    if not items:
        return
    st.markdown("**Up next**")
    st.dataframe(
        [
            {
                "product": i.product_id,
                "title": i.title,
                "suggested": i.path or "(abstained)",
                "confidence": round(i.confidence, 3),
                "source": SOURCE_LABEL.get(i.source, i.source),
            }
            for i in items
        ],
        hide_index=True,
        key="up-next",
    )


def render() -> None:
    viewer = current_viewer()
    st.title("Review queue")
    ui.show_flash()
    paths = ui.read(category_paths)
    versions = ui.read(lambda s: [m.version for m in reversed(list_models(s))])
    flt = _filters(paths, versions)
    if flt.source == AUDIT:  # auto-accepted products to check: not suggestions, another view
        render_audits(paths, viewer)
        return
    total = ui.read(lambda s: queue_count(s, flt=flt))
    skip = st.session_state.get(_SKIP, 0)
    if total and skip >= total:
        skip = st.session_state[_SKIP] = 0
    items = ui.read(lambda s: review_queue(s, flt=flt, limit=11, offset=skip))
    # A filtered view is counted up to COUNT_CAP (services.review_queue.queue_count).
    shown = f"{COUNT_CAP:,}+" if flt != WHOLE_QUEUE and total > COUNT_CAP else f"{total:,}"
    st.caption(
        f"{shown} waiting for review in this view, least confident first"
        + (f" · skipped {skip}" if skip else "")
        + " · keys: A accept, D accept to depth, O move, N new category, X reject, S skip"
    )
    if not items:
        st.success("Nothing waiting for review here.")
    else:
        with st.container(border=True):
            _card(items[0], paths, viewer)
        _up_next(items[1:])
    _bulk(flt, viewer)


render()

"""The Models page's live parts: each version's precision from audits and reviews (headlined,
with 95 % intervals), why a version was not promoted, and the champion/challenger comparison
and promote-if-better buttons."""

from __future__ import annotations

import streamlit as st

from catalog_ai.errors import CatalogAIError
from catalog_ai.services.live_precision import LivePrecision, Proportion, live_precision
from catalog_ai.services.model_compare import Comparison, Figure, compare_versions
from catalog_ai.services.promotion import latest_promotion, promote_if_better
from catalog_ai.worker.dispatch import default_dispatcher
from dashboards import ui


def interval(p: Proportion | None) -> str:
    """``97 % (83–99 %, 30)``; a dash before any verdict."""
    if p is None:
        return "–"
    return f"{ui.percent(p.estimate)} ({100 * p.low:.0f}–{100 * p.high:.0f} %, n={p.n})"


def live_of(version: str) -> LivePrecision:
    live: LivePrecision = ui.read(lambda s: live_precision(s, version))
    return live


def headline(version: str, version_id: int) -> None:
    """The live figures first: what people found on this version's real uploads."""
    live = live_of(version)
    st.markdown("**Live, from people's checks** (95 % intervals)")
    cols = st.columns(4)
    cols[0].metric("Auto-accept precision (audits)", interval(live.auto_accept))
    cols[1].metric("Leaf accuracy (audits and reviews)", interval(live.leaf_accuracy))
    cols[2].metric("Auto-accepted", live.auto_accepted)
    cols[3].metric("Audited / resolved", f"{live.audited} / {live.audits_resolved}")
    st.caption(
        "Audits are a random share of this version's auto-accepts (CATALOG_AI_AUDIT_RATE) that "
        "a person checks in the review queue's audit filter: their share confirmed is the "
        "precision of auto-accept. Leaf accuracy weighs audits and reviews by the part of the "
        "uploads each stands for (auto-accepted, or sent to review by confidence band), so the "
        "hard photos people review do not drag it down unfairly. A dash: not measured yet."
    )
    record = ui.read(lambda s: latest_promotion(s, version_id))
    if record is not None and not record.promoted:
        st.warning(f"Not promoted: {record.reason}")
    elif record is not None:
        st.success(f"Promoted: {record.reason}")


def _fig(f: Figure) -> str:
    if f.estimate is None:
        return "–"
    if f.low is None or f.high is None:
        return ui.percent(f.estimate)
    return f"{ui.percent(f.estimate)} ({100 * f.low:.0f}–{100 * f.high:.0f} %)"


def _show(c: Comparison) -> None:
    st.dataframe(
        [
            {"figure": "leaf accuracy", c.a: _fig(c.leaf_accuracy_a), c.b: _fig(c.leaf_accuracy_b)},
            {
                "figure": "auto-accept precision",
                c.a: _fig(c.auto_accept_precision_a),
                c.b: _fig(c.auto_accept_precision_b),
            },
            {"figure": "auto-accept coverage", c.a: _fig(c.coverage_a), c.b: _fig(c.coverage_b)},
        ],
        hide_index=True,
        key="comparison",
    )
    d = c.difference
    st.caption(
        f"On {c.n} products people labelled after both versions were made ({c.failed} left out); "
        f"leaf accuracy {ui.plain(c.b)} − {ui.plain(c.a)}: "
        + (
            f"{100 * d.estimate:+.1f} points (95 % paired bootstrap {100 * d.low:+.1f} to "
            f"{100 * d.high:+.1f})"
            if d.estimate is not None and d.low is not None and d.high is not None
            else "–"
        )
    )


def compare_and_promote(
    version: str, versions: list[str], active: str | None, locked: bool
) -> None:
    """Compare ``version`` with another; for an inactive one, activate it only if it is better."""
    others = [v for v in versions if v != version]
    if not others:
        return
    st.markdown("**Champion and challenger**")
    default = others.index(active) if active in others else 0
    other = st.selectbox("Compare with", others, index=default, key=f"compare-with-{version}")
    if st.button("Compare", key=f"compare-{version}", disabled=locked):
        try:
            with st.spinner("Both versions classify the recent labelled products…"):
                comparison = ui.read(lambda s: compare_versions(s, other, version, n_recent=500))
        except CatalogAIError as exc:
            st.warning(str(exc))
        else:
            _show(comparison)
    if active is not None and version != active:
        margin = st.number_input(
            "Margin (leaf-accuracy points it must win by)",
            min_value=0.0,
            max_value=20.0,
            value=1.0,
            step=0.5,
            key=f"margin-{version}",
        )
        if st.button(
            f"Activate {ui.plain(version)} only if it beats {ui.plain(active)}",
            key=f"promote-{version}",
            disabled=locked,
        ):

            def action(session, who: str) -> str:
                decision = promote_if_better(
                    session, version, margin=margin / 100, dispatcher=default_dispatcher()
                )
                verb = "activated" if decision.promoted else "kept inactive"
                return f"{version} {verb} (by {who}): {decision.reason}"

            with st.spinner("Comparing with the active version…"):
                ui.perform("Promote if better", action)

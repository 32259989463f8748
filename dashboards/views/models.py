"""Models: every registered version with its live precision (audits and reviews, headlined) and
its train hold-out metrics and plots (labelled as such); compare two versions, activate one (which
enqueues the re-classification of every product without a human label) or activate it only if
it beats the active one, and follow its progress."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from catalog_ai.services.models import activate_model, list_models, model_progress
from catalog_ai.worker.dispatch import default_dispatcher
from dashboards import ui
from dashboards.access import current_viewer
from dashboards.live_figures import compare_and_promote, headline, interval, live_of

REPORT_PLOTS = [
    ("reliability.png", "Reliability diagram"),
    ("coverage_precision.png", "Coverage vs precision"),
    ("accuracy_by_branch.png", "Accuracy by branch"),
    ("confused_pairs.png", "Most confused pairs"),
]


def _held_out(metrics: dict) -> dict:
    return metrics.get("held_out") or {}


def _table(models) -> None:
    rows = []
    for m in models:
        h = _held_out(m.metrics or {})
        cov = h.get("coverage_at_precision") or {}
        live = live_of(m.version)
        rows.append(
            {
                "version": m.version,
                "active": "active" if m.is_active else "",
                "backbone": m.backbone,
                "registered": f"{m.created_at:%Y-%m-%d %H:%M}" if m.created_at else "",
                "live auto-accept precision": interval(live.auto_accept),
                "live leaf accuracy": interval(live.leaf_accuracy),
                "train hold-out leaf accuracy": ui.percent(h.get("leaf_accuracy")),
                "train hold-out ECE": (
                    f"{h['ece']:.3f}" if isinstance(h.get("ece"), int | float) else "–"
                ),
                "train hold-out coverage at 98 % precision": ui.percent(cov.get("0.98")),
            }
        )
    st.dataframe(rows, hide_index=True, key="models-table")


def _progress(version: str) -> None:
    p = ui.read(lambda s: model_progress(s, version))
    st.progress(
        p.fraction,
        text=(
            f"{p.suggested} of {p.total} products have a suggestion from this model; "
            f"{p.remaining} still to classify"
        ),
    )


def _activate(version: str, locked: bool) -> None:
    st.info(
        "Activating this version makes it classify every new upload, and re-classifies every "
        "product that no person has labelled (imports and reviews are kept)."
    )
    if st.button(
        f"Activate {ui.plain(version)}", key=f"activate-{version}", type="primary", disabled=locked
    ):

        def action(session, who: str) -> str:
            # Re-classification and catalogue embedding are enqueued once this unit of work
            # commits, and run off this request (workers, or this process's background thread).
            activate_model(session, version, dispatcher=default_dispatcher())
            return f"{version} is active; re-classification was enqueued (by {who})."

        with st.spinner("Activating…"):
            ui.perform("Activate", action)


def _charts(h: dict) -> None:
    depth = h.get("depth_accuracy") or []
    if depth:
        st.markdown("**Accuracy per depth**")
        st.bar_chart(
            {"depth": [f"depth {i + 1}" for i in range(len(depth))], "accuracy": depth},
            x="depth",
            y="accuracy",
            height=220,
        )
    cov = h.get("coverage_at_precision") or {}
    if cov:
        st.markdown("**Coverage at target precision** (share of photos decided automatically)")
        st.dataframe(
            [
                {
                    "target precision": k,
                    "coverage": ui.percent(v),
                    "precision reached": ui.percent((h.get("precision_at_threshold") or {}).get(k)),
                    "threshold": round(
                        float((h.get("thresholds_used") or {}).get(k, float("nan"))), 3
                    ),
                }
                for k, v in sorted(cov.items())
            ],
            hide_index=True,
            key="coverage",
        )
    bins = [b for b in (h.get("reliability") or []) if b.get("count")]
    if bins:
        st.markdown("**Reliability** (per confidence bin: stated confidence vs observed accuracy)")
        st.line_chart(
            {
                "confidence": [b["confidence"] for b in bins],
                "observed accuracy": [b["accuracy"] for b in bins],
                "perfect calibration": [b["confidence"] for b in bins],
            },
            x="confidence",
            y=["observed accuracy", "perfect calibration"],
            height=240,
        )
    pairs = h.get("confused_pairs") or []
    if pairs:
        st.markdown("**Most confused pairs**")
        st.dataframe(pairs[:10], hide_index=True, key="confused")


def _report(bundle_path: str) -> None:
    report = Path(bundle_path) / "report"
    found = [(report / name, title) for name, title in REPORT_PLOTS if (report / name).is_file()]
    if not found:
        st.caption(
            f"No report plots in {ui.plain(report)} "
            "(bundles trained before plots were written have none)."
        )
        return
    st.markdown("**Report plots** (from the bundle)")
    for start in range(0, len(found), 2):
        for col, (path, title) in zip(st.columns(2), found[start : start + 2], strict=False):
            col.image(str(path), caption=title)


def render() -> None:
    viewer = current_viewer()
    st.title("Models")
    ui.show_flash()
    models = ui.read(list_models)
    if not models:
        st.info(
            "No model is registered. Train one (`catalog-ai train --data DIR --out MODEL`) and "
            "register it (`catalog-ai models register MODEL --activate`)."
        )
        return
    _table(models)
    versions = [m.version for m in reversed(models)]
    active = next((m.version for m in models if m.is_active), None)
    version = st.selectbox(
        "Version", versions, index=versions.index(active) if active else 0, key="model-version"
    )
    m = next(x for x in models if x.version == version)
    st.subheader(ui.plain(version))
    st.caption(
        f"backbone {ui.plain(m.backbone)} · bundle {ui.plain(m.bundle_path)}"
        + (
            f" · active since {m.activated_at:%Y-%m-%d %H:%M}"
            if m.is_active and m.activated_at
            else ""
        )
    )
    remaining = ui.read(lambda s: model_progress(s, version)).remaining
    if m.is_active and remaining:
        # Refreshes on its own while separate workers re-classify.
        st.fragment(run_every=5)(_progress)(version)
    else:
        _progress(version)
    headline(version, m.id)
    if not m.is_active:
        _activate(version, locked=not viewer.can_act)
    compare_and_promote(version, versions, active, locked=not viewer.can_act)
    h = _held_out(m.metrics or {})
    if h:
        st.markdown("**Train hold-out** (photos held out of its training set)")
        cols = st.columns(5)
        cols[0].metric("Held-out photos", h.get("n_images", "–"))
        cols[1].metric("Train hold-out leaf accuracy", ui.percent(h.get("leaf_accuracy")))
        cols[2].metric("Top-5 accuracy", ui.percent(h.get("top5_accuracy")))
        cols[3].metric("Hierarchical F1", ui.percent(h.get("hierarchical_f1")))
        cols[4].metric("ECE", f"{h['ece']:.3f}" if isinstance(h.get("ece"), int | float) else "–")
        # Held-out photos come from the same photo sessions as the training photos: honest about
        # what that means for new uploads (on the Grocery Store data: 97 % here, 67 % on val).
        st.caption(
            "Measured on photos held out of this version's training set. They come from the "
            "same photo sessions as its training photos, so new uploads usually score lower; "
            "`catalog-ai evaluate --model MODEL --data DIR` measures on independent photos."
        )
        _charts(h)
    else:
        st.caption("This version recorded no held-out metrics.")
    _report(m.bundle_path)


render()

"""Health: queue depth and workers (from the broker), products per status and the oldest pending
item (from the database, the truth), recent failures. Refreshes every 10 seconds."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from catalog_ai.services.health import catalog_counts, oldest_pending, pipeline_status
from catalog_ai.settings import get_settings
from dashboards import ui


@st.cache_data(ttl=5, show_spinner=False)
def _broker(broker_url: str | None) -> dict:
    # Asking the broker pings the workers (up to a second): at most every 5 s per process.
    from catalog_ai.worker.queue import broker_status

    return broker_status().to_dict()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return str(timedelta(seconds=round(seconds)))


def _panel() -> None:
    status = ui.read(pipeline_status)
    counts = ui.read(catalog_counts)
    broker = _broker(get_settings().broker_url)
    st.subheader("Queue")
    c1, c2, c3, c4 = st.columns(4)
    if broker["broker"] == "in-process":
        c1.metric("Broker", "in-process")
        c2.metric("Queue depth", 0)
        c3.metric("Workers seen", "this process")
        st.caption(
            "No broker is configured (embedded set-up): tasks run inside the process that "
            "creates them. Set CATALOG_AI_BROKER_URL and run `catalog-ai worker` for production."
        )
    else:
        c1.metric("Broker", broker["broker"])
        c2.metric(
            "Queue depth",
            "?" if broker["queued"] is None else broker["queued"],
            help="messages waiting in the queue",
        )
        c3.metric(
            "Taken, not finished",
            "–" if broker["unacknowledged"] is None else broker["unacknowledged"],
        )
        c4.metric("Workers seen", len(broker["workers"]))
        if broker["workers"]:
            st.caption("Workers: " + ui.plain(", ".join(broker["workers"])))
        if broker["error"]:
            st.error(f"The broker could not be asked: {ui.plain(broker['error'])}")
        elif not broker["workers"]:
            st.warning("No worker answered: uploads wait until one runs (`catalog-ai worker`).")

    st.subheader("Products per status")
    by_status = status["by_status"]
    cols = st.columns(len(by_status) + 1)
    cols[0].metric("all", status["products"])
    for col, (name, n) in zip(cols[1:], by_status.items(), strict=True):
        col.metric(name, n)
    st.caption(
        f"{counts['categories']} categories · {counts['images']} photos"
        + (f" (as of {counts['as_of'][:19].replace('T', ' ')} UTC)" if counts["as_of"] else "")
        + f" · active model: {ui.plain(status['active_model'] or 'none')}"
    )

    st.subheader("Oldest pending item")
    oldest = ui.read(oldest_pending)
    if oldest is None:
        st.success("Nothing is waiting for a worker.")
    else:
        state, age = oldest
        st.metric("Waiting for", _age(age))
        st.markdown(
            f"product **#{state.product_id}** {ui.plain(state.title or '(untitled)')} · "
            "pending since "
            f"{state.status_changed_at:%Y-%m-%d %H:%M:%S} UTC"
        )

    if status["recent_failures"]:
        st.subheader("Recent failures")
        st.dataframe(status["recent_failures"], hide_index=True, key="failures")


def render() -> None:
    st.title("Health")
    st.fragment(run_every=10)(_panel)()


render()

"""Upload: drop product photos (several at once) with optional titles; they are ingested and
classified off the request (by a background thread of this process on the embedded set-up, by
the workers in production), and their status is shown live; failed ones show their reason and
can be retried."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from catalog_ai.photos.store import MediaStore
from catalog_ai.services.history import product_states
from catalog_ai.services.ingest import IngestResult, ingest_files
from catalog_ai.services.requeue import requeue_failed
from catalog_ai.settings import get_settings
from catalog_ai.worker.dispatch import default_dispatcher
from dashboards import ui
from dashboards.access import current_viewer

BATCH_KEY = "upload.batch"  # product ids of this browser session's latest upload
_ROUND = "upload.round"  # a new uploader widget after each upload empties it
MAX_TITLES = 50  # beyond this many files, titles come from the file names
WAITING = ("pending", "processing")


def _ingest(files, titles: list[str], out: dict):
    def action(session, who: str) -> str:
        media = MediaStore(get_settings().media_dir)
        # Classification is handed over after the commit and runs off this request.
        dispatcher = default_dispatcher()
        result = IngestResult()
        untitled = [(f.name, f.getvalue()) for f, t in zip(files, titles, strict=True) if not t]
        if untitled:
            result.merge(ingest_files(session, untitled, media=media, dispatcher=dispatcher))
        for f, t in zip(files, titles, strict=True):
            if t:
                result.merge(
                    ingest_files(
                        session,
                        [(f.name, f.getvalue())],
                        media=media,
                        dispatcher=dispatcher,
                        title=t,
                    )
                )
        out["ids"] = (
            result.created
            + [pid for _, pid in result.duplicates]
            + [x.product_id for x in result.failed]
        )
        return (
            f"Uploaded {len(files)} photos: {len(result.created)} new products, "
            f"{len(result.duplicates)} already in the catalog, {len(result.failed)} refused."
        )

    return action


def _retry(ids: list[int]):
    def action(session, who: str) -> str:
        done = requeue_failed(session, ids, dispatcher=default_dispatcher())
        text = f"{len(done.requeued)} failed products queued again."
        if done.no_photo:
            text += (
                f" {len(done.no_photo)} cannot be retried: their file was refused at upload "
                "(not a usable photo); upload a proper photo instead."
            )
        return text

    return action


def _status(ids: list[int], locked: bool) -> None:
    states = ui.read(lambda s: product_states(s, ids))
    counts: dict[str, int] = {}
    for x in states:
        counts[x.status] = counts.get(x.status, 0) + 1
    cols = st.columns(6)
    for col, status in zip(
        cols, ["pending", "processing", "suggested", "accepted", "rejected", "failed"], strict=True
    ):
        col.metric(status, counts.get(status, 0))
    st.dataframe(
        [
            {
                "product": x.product_id,
                "title": x.title,
                "status": x.status,
                "category / suggestion": x.category_path or x.suggestion_path or "",
                "confidence": None if x.confidence is None else round(x.confidence, 3),
                "reason": x.error or "",
            }
            for x in states
        ],
        hide_index=True,
        key="upload-status",
    )
    failed = [x for x in states if x.status == "failed"]
    if failed:
        st.error(
            "Failed:\n"
            + "\n".join(
                f"- #{x.product_id} {ui.plain(x.title)}: {ui.plain(x.error)}" for x in failed
            )
        )
        if st.button(f"Retry {len(failed)} failed", key="upload-retry", disabled=locked):
            ui.perform("Retry", _retry([x.product_id for x in failed]))
    if any(x.status in WAITING for x in states):
        st.caption("Waiting to be classified; this list refreshes every 2 seconds.")


def render() -> None:
    viewer = current_viewer()
    locked = not viewer.can_act
    st.title("Upload")
    ui.show_flash()
    settings = get_settings()
    round_ = st.session_state.get(_ROUND, 0)
    files = st.file_uploader(
        "Product photos: drag and drop, several at once",
        accept_multiple_files=True,
        key=f"upload-files-{round_}",
        disabled=locked,
        help=(
            "Each photo becomes one product; at most "
            f"{settings.max_image_bytes // 2**20} MiB per photo."
        ),
    )
    if files:
        st.markdown("**Titles** (optional; empty: the file name)")
        titles = []
        for i, f in enumerate(files):
            if i < MAX_TITLES:
                titles.append(
                    st.text_input(
                        ui.plain(f.name), key=f"title-{round_}-{i}", placeholder=Path(f.name).stem
                    ).strip()
                )
            else:
                titles.append("")
        if st.button(
            f"Upload {len(files)} photos", key="upload-go", type="primary", disabled=locked
        ):
            out: dict = {}
            with st.spinner("Uploading…"):
                ok = ui.perform("Upload", _ingest(files, titles, out), rerun=False)
            if ok:  # only what was committed
                st.session_state[BATCH_KEY] = out["ids"]
                st.session_state[_ROUND] = round_ + 1  # a fresh, empty uploader
            st.rerun()
    ids = st.session_state.get(BATCH_KEY)
    if ids:
        st.subheader("Your latest upload")
        waiting = any(x.status in WAITING for x in ui.read(lambda s: product_states(s, ids)))
        st.fragment(run_every=2 if waiting else None)(_status)(ids, locked)


render()

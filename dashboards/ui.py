"""Helpers every page uses: actions in one unit of work, messages that survive the rerun,
photos as cached thumbnails, confidence bars and product tiles."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from catalog_ai.db import unit_of_work
from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.taxonomy import SEPARATOR
from dashboards.access import current_viewer
from dashboards.markup import plain

__all__ = [
    "PRODUCT_KEY",
    "alternatives",
    "depth_bars",
    "flash",
    "media_file",
    "open_product",
    "percent",
    "perform",
    "plain",
    "read",
    "show_flash",
    "show_photo",
    "thumbnail",
    "tile_grid",
]

_FLASH_KEY = "catalog_ai.flash"
PRODUCT_KEY = "product-id"  # the catalog page's product id input


def flash(kind: str, text: str) -> None:
    """A message (``success``/``info``/``warning``/``error``) shown after the next rerun, as
    plain text (messages quote titles, paths and error reasons)."""
    st.session_state.setdefault(_FLASH_KEY, []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop(_FLASH_KEY, []):
        getattr(st, kind)(plain(text))


def perform(what: str, action: Callable[[Session, str], str], *, rerun: bool = True) -> bool:
    """Run ``action(session, reviewer)`` in one unit of work as the signed-in reviewer.

    The viewer is checked again here, not only by disabled buttons: nothing changes without a
    signed-in reviewer. The outcome becomes a message shown after the rerun. Returns whether the
    action succeeded (when ``rerun`` is False).
    """
    from catalog_ai.services.review import ReviewConflict

    name = current_viewer().name  # None: not signed in (Viewer.can_act)
    ok = False
    if name is None:
        flash("error", f"{what}: sign in first; nothing was changed.")
    else:
        try:
            with unit_of_work() as session:
                message = action(session, name)
        except ReviewConflict as exc:
            flash("warning", f"{what}: {exc}")
        except CatalogAIError as exc:
            flash("error", f"{what} failed: {exc}")
        else:
            flash("success", message)
            ok = True
    if rerun:
        st.rerun()
    return ok


def read(fn: Callable[[Session], object]):
    """``fn(session)`` in a short read-only unit of work."""
    with unit_of_work() as session:
        return fn(session)


def media_file(stored_path: str | None) -> Path | None:
    """The absolute path of a photo in the media store (None when there is none)."""
    if not stored_path:
        return None
    try:
        return MediaStore(get_settings().media_dir).path(stored_path)
    except CatalogAIError:
        return None


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(path: str, size: int, mtime: float) -> bytes | None:
    from catalog_ai.photos import decode as images

    try:
        img = images.load_image(path, target_size=size)
    except (CatalogAIError, OSError):
        return None
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def thumbnail(path: str | Path | None, size: int = 256) -> bytes | None:
    """A JPEG thumbnail of a photo file (cached by path and modification time)."""
    if path is None:
        return None
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return None
    return _thumbnail(str(p), size, mtime)


def show_photo(path: str | Path | None, *, size: int = 256, caption: str | None = None) -> None:
    data = thumbnail(path, size)
    if data is None:
        st.caption("(photo missing from the media store)")
        if caption:
            st.caption(plain(caption))
        return
    st.image(data, caption=None if caption is None else plain(caption), width=size)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def depth_bars(path: str, levels: list, confidence: float) -> None:
    """One bar per depth of the suggested path: the calibrated probability of each ancestor
    (from the suggestion's per-depth top-k; a depth whose ancestor is missing from it says so)."""
    if not path:
        st.warning(
            f"The model abstained: no top-level category reached the threshold "
            f"(best {percent(confidence)})."
        )
        return
    parts = path.split(SEPARATOR)
    for depth in range(1, len(parts) + 1):
        prefix = SEPARATOR.join(parts[:depth])
        level = levels[depth - 1] if depth - 1 < len(levels) else []
        prob = next((float(c["probability"]) for c in level if c.get("path") == prefix), None)
        if prob is None and depth == len(parts):
            prob = float(confidence)
        label = f"{'  ' * (depth - 1)}{plain(parts[depth - 1])}"
        if prob is None:
            st.caption(f"{label}: probability not recorded")
        else:
            st.progress(min(max(prob, 0.0), 1.0), text=f"depth {depth} · {label} · {percent(prob)}")


def alternatives(path: str, levels: list, *, k: int = 4) -> list[dict]:
    """The best other categories: at the suggested depth (or the top level when abstaining)."""
    depth = len(path.split(SEPARATOR)) if path else 1
    out: list[dict] = []
    for d in sorted({depth, len(levels)}):
        if d - 1 >= len(levels):
            continue
        for c in levels[d - 1]:
            if c.get("path") != path and c.get("path") not in {o["category"] for o in out}:
                out.append(
                    {
                        "category": c.get("path"),
                        "probability": percent(float(c.get("probability", 0.0))),
                    }
                )
    return out[:k]


def open_product(product_id: int) -> None:
    """Show ``product_id`` on the catalog page's product view."""
    st.session_state[PRODUCT_KEY] = int(product_id)


class _Tile(Protocol):
    @property
    def product_id(self) -> int: ...


_T = TypeVar("_T", bound=_Tile)


def tile_grid(
    tiles: Sequence[_T],
    *,
    columns: int = 6,
    size: int = 160,
    caption: Callable[[_T], str],
    image: Callable[[_T], str | Path | None],
    key: str,
    open_button: bool = False,
) -> None:
    """Products as a grid of thumbnails with a caption (and an "open" button per tile)."""
    for start in range(0, len(tiles), columns):
        cols = st.columns(columns)
        for col, tile in zip(cols, tiles[start : start + columns], strict=False):
            with col:
                show_photo(image(tile), size=size)
                st.caption(plain(caption(tile)))
                if open_button and st.button("Open", key=f"{key}-open-{tile.product_id}"):
                    open_product(tile.product_id)
                    st.switch_page("views/catalog.py")

"""Similar products: look for catalog products like an uploaded photo (or a region of it, cropped
here), like a catalog product, or by words; an optional text filter narrows any of them.

The photo is embedded with the active model (the one page that imports torch, and only when a
photo is given); the search itself goes through :mod:`catalog_ai.services.similar`.
"""

from __future__ import annotations

import hashlib
import io

import streamlit as st

from catalog_ai.errors import CatalogAIError
from catalog_ai.photos.types import PHOTO_SUFFIXES
from catalog_ai.services.models import active_model
from catalog_ai.services.search_index import index_status
from catalog_ai.services.similar import similar_products
from catalog_ai.services.text_search import text_search
from dashboards import ui

MODES = ["a photo", "a catalog product", "words only"]
PHOTO_TYPES = [suffix.lstrip(".") for suffix in PHOTO_SUFFIXES]  # the one list of photo types


@st.cache_resource(max_entries=1, show_spinner="Loading the model…")
def _predictor(bundle_path: str, version: str):
    from catalog_ai.inference.predictor import Predictor

    return Predictor.load(bundle_path)


@st.cache_data(max_entries=64, show_spinner=False)
def _embed(bundle_path: str, version: str, digest: str, _data: bytes, name: str):
    # ``_data`` is not hashed by the cache (leading underscore): ``digest`` stands for it.
    prediction = _predictor(bundle_path, version).predict([_data], names=[name])[0]
    if prediction.error:
        raise CatalogAIError(f"{name}: {prediction.error}")
    return prediction.embedding


def _model():
    mv = ui.read(active_model)
    if mv is None:
        st.info(
            "No model is active, so there is nothing to search visually yet: register and "
            "activate one (Models page or `catalog-ai models register DIR --activate`). "
            "Search by words still works."
        )
        return None
    try:
        status = ui.read(lambda s: index_status(s, mv.version))
    except CatalogAIError as exc:
        st.warning(ui.plain(exc))
        return mv
    if not status.exists:
        st.warning(
            f"Model {ui.plain(mv.version)} has no search index yet ({status.n_embeddings} photo "
            f"embeddings stored): build it with `catalog-ai index build`."
        )
    else:
        state = (
            "up to date"
            if status.up_to_date
            else f"{status.n_pending} newer embeddings: run `catalog-ai index update`"
        )
        st.caption(
            f"Searching the {status.kind} index of model {ui.plain(mv.version)}: "
            f"{status.n_indexed} photos, {state}."
        )
    return mv


def _crop_photo(upload) -> tuple[bytes, str] | None:
    """The uploaded photo cropped with four edges chosen here, with a live preview."""
    from catalog_ai.photos import decode as images

    data = upload.getvalue()
    try:
        img = images.load_image(data, name=upload.name)
    except CatalogAIError as exc:
        st.error(ui.plain(exc))
        return None
    c1, c2 = st.columns([2, 3])
    with c2:
        st.markdown("**Crop a region** (percent of the photo; search uses the region only)")
        x0, x1 = st.slider("Left and right edges", 0, 100, (0, 100), key="crop-x")
        y0, y1 = st.slider("Top and bottom edges", 0, 100, (0, 100), key="crop-y")
    if x1 - x0 < 5 or y1 - y0 < 5:
        st.warning("The crop is too small; widen it.")
        return None
    w, h = img.size
    box = (round(w * x0 / 100), round(h * y0 / 100), round(w * x1 / 100), round(h * y1 / 100))
    crop = img.crop(box) if box != (0, 0, w, h) else img
    with c1:
        st.image(crop, caption=f"query: {crop.size[0]}×{crop.size[1]} px of {w}×{h}", width=320)
    if crop is img:
        return data, upload.name
    out = io.BytesIO()
    crop.save(out, format="PNG")
    return out.getvalue(), f"{upload.name} (crop)"


def _results(hits: list, title: str) -> None:
    st.markdown(f"**{ui.plain(title)}**")
    if not hits:
        st.caption("No products found.")
        return
    ui.tile_grid(
        hits,
        columns=6,
        size=150,
        key="similar-results",
        image=lambda h: h.image_path,
        caption=lambda h: (
            f"#{h.product_id} {h.title} · {h.category_path or 'no category yet'} · "
            f"score {h.score:.3f}"
        ),
        open_button=True,
    )


def render() -> None:
    st.title("Similar products")
    mv = _model()
    mode = st.radio("Search by", MODES, horizontal=True, key="similar-mode")
    c1, c2 = st.columns([3, 1])
    text = c1.text_input(
        "Only products whose title or category contains these words (optional)", key="similar-text"
    )
    k = c2.slider("How many", 4, 30, 12, key="similar-k")
    words = text.strip() or None
    try:
        if mode == "words only":
            if words:
                _results(
                    ui.read(lambda s: text_search(s, words, limit=k)),
                    f"Products matching {words!r}",
                )
            else:
                st.caption("Type some words above.")
        elif mv is None:
            return
        elif mode == "a photo":
            upload = st.file_uploader(
                "Photo to search with", type=PHOTO_TYPES, key="similar-upload"
            )
            if upload is None:
                st.caption("Drop a photo here; then crop it to search by a region.")
                return
            query = _crop_photo(upload)
            if query is None:
                return
            data, name = query
            with st.spinner("Embedding the photo…"):
                vector = _embed(
                    mv.bundle_path, mv.version, hashlib.sha256(data).hexdigest(), data, name
                )
            hits = ui.read(
                lambda s: similar_products(
                    s, model_version=mv.version, query_vector=vector, k=k, text=words
                )
            )
            _results(hits, f"Products that look like {name}")
        else:
            pid = st.number_input(
                "Product id",
                min_value=1,
                step=1,
                value=None,
                key="similar-product",
                placeholder="A catalog product's id (see the Catalog page)",
            )
            if pid is None:
                return
            hits = ui.read(
                lambda s: similar_products(
                    s, model_version=mv.version, product_id=int(pid), k=k, text=words
                )
            )
            _results(hits, f"Products that look like product {int(pid)}")
    except CatalogAIError as exc:
        st.warning(ui.plain(exc))


render()

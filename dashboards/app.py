"""The catalog_ai review dashboard: ``catalog-ai dashboard`` (``streamlit run dashboards/app.py``).

Every run: who is looking (sign-in, proxy header or anonymous), then the page they chose. All
configuration comes from the environment (``catalog_ai.settings``, ``catalog_ai.auth``), so the
same app serves the embedded set-up and production.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit runs this file as a script, not as part of a package: make ``dashboards`` importable.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from catalog_ai.auth import load_auth_config  # noqa: E402
from catalog_ai.errors import CatalogAIError  # noqa: E402
from dashboards.access import NOT_CONFIGURED, current_viewer, render_sign_in  # noqa: E402
from dashboards.markup import plain  # noqa: E402

# The page scripts live in views/, not pages/: Streamlit treats a pages/ folder beside the entry
# script as an old-style multipage app and runs a page's script without this one, which would
# skip the sign-in.
PAGES = [
    ("views/review.py", "Review queue", ":material/fact_check:", "review"),
    ("views/catalog.py", "Catalog", ":material/account_tree:", "catalog"),
    ("views/similar.py", "Similar products", ":material/image_search:", "similar"),
    ("views/models.py", "Models", ":material/model_training:", "models"),
    ("views/upload.py", "Upload", ":material/upload:", "upload"),
    ("views/health.py", "Health", ":material/monitor_heart:", "health"),
]


def main() -> None:
    st.set_page_config(page_title="catalog_ai", page_icon=":material/category:", layout="wide")
    try:
        auth = load_auth_config()
    except CatalogAIError as exc:
        st.error(f"The reviewer configuration cannot be read: {plain(exc)}")
        st.stop()
    viewer = current_viewer(auth)
    if not viewer.can_view:
        st.title("catalog_ai")
        if auth.configured:
            st.info("Sign in to review the catalog.")
            render_sign_in(auth, viewer)
        else:
            st.error(NOT_CONFIGURED)
        st.stop()

    pages = [
        st.Page(path, title=title, icon=icon, url_path=url, default=(url == "review"))
        for path, title, icon, url in PAGES
    ]
    page = st.navigation(pages)
    with st.sidebar:
        render_sign_in(auth, viewer)
        if not viewer.can_act:
            st.caption("Read-only: sign in to make changes.")
    try:
        page.run()
    except CatalogAIError as exc:
        # A clear message (a missing schema, an unreadable bundle) instead of a traceback.
        st.error(plain(exc))


main()

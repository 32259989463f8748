"""Who is looking at the dashboard, and whether they may change anything.

A reviewer is signed in by a password checked against the configured users
(``CATALOG_AI_USERS`` / ``CATALOG_AI_USERS_FILE``), or by the identity header a trusted reverse
proxy sets (``CATALOG_AI_AUTH_HEADER``). Everybody else is anonymous: they see the dashboard only
when ``CATALOG_AI_READ_ONLY_VIEWING=1``, and never change anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from catalog_ai.auth import AuthConfig, load_auth_config

__all__ = [
    "SIGNED_IN_KEY",
    "NOT_CONFIGURED",
    "Viewer",
    "resolve_viewer",
    "current_viewer",
    "render_sign_in",
]

SIGNED_IN_KEY = "catalog_ai.reviewer"

NOT_CONFIGURED = (
    "No reviewers are configured, so nobody can sign in. Create one with "
    "`catalog-ai users hash-password alice`, then start the dashboard with "
    "`CATALOG_AI_USERS='alice:pbkdf2_sha256$…'` (several users: separate them with `;`) or put "
    "one `name:hash` line per user in a file named by `CATALOG_AI_USERS_FILE`. Behind a proxy "
    "that signs staff in, set `CATALOG_AI_AUTH_HEADER` (e.g. `X-Forwarded-User`) instead. "
    "`CATALOG_AI_READ_ONLY_VIEWING=1` lets people look without signing in."
)


@dataclass(frozen=True)
class Viewer:
    name: str | None  # the signed-in reviewer; None: anonymous
    method: str  # "password" | "header" | "anonymous"
    can_view: bool

    @property
    def can_act(self) -> bool:
        """Only a signed-in reviewer changes anything (every review records the name)."""
        return self.name is not None


def resolve_viewer(auth: AuthConfig, headers: Mapping[str, str], signed_in: str | None) -> Viewer:
    """The viewer of one request: the proxy's header first, then a password sign-in that still
    names a configured user (a user removed from the configuration is signed out), else anonymous."""
    from_header = auth.user_from_headers(headers)
    if from_header:
        return Viewer(from_header, "header", True)
    if signed_in and signed_in in auth.users:
        return Viewer(signed_in, "password", True)
    return Viewer(None, "anonymous", auth.read_only_viewing)


def _headers() -> Mapping[str, str]:
    try:
        return dict(st.context.headers)
    except Exception:  # noqa: BLE001 - no browser request (bare script, tests): no headers
        return {}


def current_viewer(auth: AuthConfig | None = None) -> Viewer:
    """The viewer of the current run (the configuration is read again: it is cheap)."""
    return resolve_viewer(auth or load_auth_config(), _headers(), st.session_state.get(SIGNED_IN_KEY))


def render_sign_in(auth: AuthConfig, viewer: Viewer) -> None:
    """The sign-in form, or who is signed in with a sign-out button, in the current container."""
    if viewer.method == "header":
        st.markdown(f"Signed in as **{viewer.name}** (by the proxy)")
        return
    if viewer.method == "password":
        st.markdown(f"Signed in as **{viewer.name}**")
        if st.button("Sign out", key="sign-out"):
            st.session_state.pop(SIGNED_IN_KEY, None)
            st.rerun()
        return
    if not auth.users:
        st.warning(NOT_CONFIGURED)
        return
    # A form: Enter in either field submits, and typing reruns nothing.
    with st.form("sign-in", clear_on_submit=False):
        st.markdown("**Sign in to review**")
        name = st.text_input("Name", key="sign-in-name")
        password = st.text_input("Password", type="password", key="sign-in-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        user = auth.authenticate(name, password)
        if user is None:
            st.error("Wrong name or password.")
        else:
            st.session_state[SIGNED_IN_KEY] = user
            st.rerun()

"""Who is looking at the dashboard, and whether they may change anything.

A reviewer is signed in by a password checked against the configured users
(``CATALOG_AI_USERS`` / ``CATALOG_AI_USERS_FILE``), or by the identity header a trusted reverse
proxy sets (``CATALOG_AI_AUTH_HEADER``, believed only on connections from
``CATALOG_AI_TRUSTED_PROXIES``). Everybody else is anonymous: they see the dashboard only when
``CATALOG_AI_READ_ONLY_VIEWING=1``, and never change anything. Repeated failed sign-ins lock the
name and the client address out for a while (:mod:`catalog_ai.services.sign_in`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from catalog_ai.auth import AuthConfig, client_address, load_auth_config
from catalog_ai.services.sign_in import SignInGuard
from dashboards.markup import plain

__all__ = [
    "GUARD",
    "NOT_CONFIGURED",
    "SIGNED_IN_KEY",
    "Viewer",
    "current_viewer",
    "render_sign_in",
    "resolve_viewer",
]

SIGNED_IN_KEY = "catalog_ai.reviewer"
_REHASH_KEY = "catalog_ai.rehash-notice"
GUARD = SignInGuard()  # tests replace its clock

NOT_CONFIGURED = (
    "No reviewers are configured, so nobody can sign in. Create one with "
    "`catalog-ai users hash-password alice`, then start the dashboard with "
    "`CATALOG_AI_USERS='alice:$argon2id$…'` (several users: separate them with `;`) or put "
    "one `name:hash` line per user in a file named by `CATALOG_AI_USERS_FILE`. Behind a proxy "
    "that signs staff in, set `CATALOG_AI_AUTH_HEADER` (e.g. `X-Forwarded-User`) and "
    "`CATALOG_AI_TRUSTED_PROXIES` (the proxy's address) instead. "
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


def resolve_viewer(
    auth: AuthConfig, headers: Mapping[str, str], signed_in: str | None, peer: str | None = None
) -> Viewer:
    """The viewer of one request: the proxy's header first (only when ``peer``, the connection's
    address, is a trusted proxy), then a password sign-in that still names a configured user (a
    user removed from the configuration is signed out), else anonymous."""
    from_header = auth.user_from_headers(headers, peer)
    if from_header:
        return Viewer(from_header, "header", True)
    if signed_in and signed_in in auth.users:
        return Viewer(signed_in, "password", True)
    return Viewer(None, "anonymous", auth.read_only_viewing)


def _headers() -> Mapping[str, str]:
    try:
        return dict(st.context.headers)
    except Exception:
        return {}


def _peer() -> str | None:
    """The TCP peer of this browser session's connection (a proxy's address behind one).

    ``st.context.ip_address`` reports loopback as None, and a proxy on the same host is the common
    case, so the raw peer comes from Streamlit's client context (internal; None if it moves)."""
    try:
        from streamlit.runtime.context import _get_client_context

        context = _get_client_context()
        if context is not None:
            return context.remote_ip
    except Exception:
        pass
    try:
        return st.context.ip_address
    except Exception:
        return None


def current_viewer(auth: AuthConfig | None = None) -> Viewer:
    """The viewer of the current run (the configuration is read again: it is cheap)."""
    signed_in = st.session_state.get(SIGNED_IN_KEY)
    return resolve_viewer(auth or load_auth_config(), _headers(), signed_in, _peer())


def _sign_in(auth: AuthConfig, name: str, password: str) -> None:
    """Check a submitted name and password against the lockout, then the configuration."""
    from catalog_ai.db import unit_of_work

    address = client_address(_peer(), _headers(), auth.trusted_proxies)
    with unit_of_work() as session:
        refusal = GUARD.refused(session, name, address)
    if refusal is not None:
        st.error(refusal.message)
        return
    done = auth.sign_in(name, password)
    with unit_of_work() as session:
        if done is None:
            refusal = GUARD.failed(session, name, address)
        else:
            GUARD.succeeded(session, done.name, address)
    if done is None:
        st.error("Wrong name or password." + (f" {refusal.message}" if refusal else ""))
        return
    st.session_state[SIGNED_IN_KEY] = done.name
    if done.new_hash and not done.saved:  # saved: the users file holds the new hash already
        st.session_state[_REHASH_KEY] = True
    st.rerun()


def render_sign_in(auth: AuthConfig, viewer: Viewer) -> None:
    """The sign-in form, or who is signed in with a sign-out button, in the current container."""
    if viewer.method == "header":
        st.markdown(f"Signed in as **{plain(viewer.name)}** (by the proxy)")
        return
    if auth.header_warning:
        st.warning(plain(auth.header_warning))
    if viewer.method == "password":
        st.markdown(f"Signed in as **{plain(viewer.name)}**")
        if st.session_state.get(_REHASH_KEY):
            st.info(
                "Your password is stored with an outdated hash. The dashboard's log has the "
                "new line for the configuration; please tell the administrator."
            )
        if st.button("Sign out", key="sign-out"):
            st.session_state.pop(SIGNED_IN_KEY, None)
            st.session_state.pop(_REHASH_KEY, None)
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
        _sign_in(auth, name, password)

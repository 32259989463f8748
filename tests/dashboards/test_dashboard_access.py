"""Sign-in, the identity header, read-only viewing and the no-users message."""

from __future__ import annotations

from catalog_ai.auth import AuthConfig, hash_password
from catalog_ai.db import Review, unit_of_work
from conftest import APP
from dashboards.access import SIGNED_IN_KEY, resolve_viewer


def test_bad_password_is_refused_and_good_one_signs_in(catalog, open_app):
    at = open_app(user=None)
    assert not at.title or at.title[0].value == "catalog_ai"
    assert not [t for t in at.title if t.value == "Review queue"]  # nothing visible before sign-in
    at.text_input(key="sign-in-name").input("alice")
    at.text_input(key="sign-in-password").input("wrong")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong name or password."]
    assert SIGNED_IN_KEY not in at.session_state
    at.text_input(key="sign-in-password").input("alice-secret")
    at.button[0].click().run()
    assert at.session_state[SIGNED_IN_KEY] == "alice"
    assert [t.value for t in at.title] == ["Review queue"]
    assert any("Signed in as **alice**" in m.value for m in at.sidebar.markdown)


def test_a_page_address_does_not_skip_the_sign_in(catalog, open_app):
    at = open_app(user=None)
    for page in ("upload", "models", "catalog"):
        at.switch_page(f"views/{page}.py").run()
        assert not [t for t in at.title if t.value != "catalog_ai"], page
        assert at.text_input(key="sign-in-name")
    assert not (APP.parent / "pages").exists()  # see dashboards/app.py: it would bypass app.py


def test_unknown_user_is_refused(catalog, open_app):
    at = open_app(user=None)
    at.text_input(key="sign-in-name").input("mallory")
    at.text_input(key="sign-in-password").input("alice-secret")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong name or password."]


def test_read_only_viewing_disables_every_action(catalog, open_app, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_READ_ONLY_VIEWING", "1")
    at = open_app(user=None)
    assert [t.value for t in at.title] == ["Review queue"]
    buttons = {b.key: b for b in at.button if b.key}
    actions = [k for k in buttons if k.split("-")[0] in {"accept", "partial", "reject", "correct", "newcat", "bulk"}]
    assert len(actions) == 6
    assert all(buttons[k].disabled for k in actions)
    assert at.text_input(key=f"new-{catalog['q-none']}").disabled
    assert any("Read-only" in c.value for c in at.sidebar.caption)
    at.switch_page("views/upload.py").run()
    assert at.file_uploader[0].disabled
    at.switch_page("views/models.py").run()
    inactive = at.selectbox(key="model-version").options[0]  # newest first: m2, not active
    at.selectbox(key="model-version").set_value(inactive).run()
    assert at.button(key=f"activate-{inactive}").disabled
    with unit_of_work() as s:
        assert s.query(Review).count() == 0


def test_no_users_configured_says_how_to_add_one(catalog, open_app, monkeypatch):
    monkeypatch.delenv("CATALOG_AI_USERS")
    at = open_app(user=None)
    text = " ".join(e.value for e in at.error)
    assert "catalog-ai users hash-password" in text and "CATALOG_AI_USERS" in text
    assert not at.text_input  # no sign-in form: it could never succeed


def test_a_signed_in_name_no_longer_configured_is_signed_out(catalog, open_app):
    at = open_app(user="carol")  # e.g. removed from CATALOG_AI_USERS since she signed in
    assert not [t for t in at.title if t.value == "Review queue"]


def test_viewer_from_header_password_or_anonymous():
    from argon2 import PasswordHasher, profiles

    from catalog_ai.settings import parse_networks

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    proxy = parse_networks({"P": "10.0.0.5"}, "P")
    auth = AuthConfig(users={"alice": hash_password("pw", hasher=cheap)}, header="X-Forwarded-User",
                      trusted_proxies=proxy)
    assert resolve_viewer(auth, {"x-forwarded-user": "dora"}, None, "10.0.0.5").name == "dora"
    assert resolve_viewer(auth, {"x-forwarded-user": "dora"}, "alice", "10.0.0.5").method == "header"
    assert resolve_viewer(auth, {}, "alice", "10.0.0.5").can_act
    anonymous = resolve_viewer(auth, {"x-forwarded-user": "  "}, "zed", "10.0.0.5")
    assert (anonymous.can_act, anonymous.can_view) == (False, False)
    read_only = AuthConfig(read_only_viewing=True)
    assert resolve_viewer(read_only, {"X-Forwarded-User": "dora"}, None).can_act is False  # no header configured


def test_header_from_an_untrusted_client_signs_nobody_in():
    auth = AuthConfig(header="X-Forwarded-User")  # no CATALOG_AI_TRUSTED_PROXIES
    for peer in ("203.0.113.9", "127.0.0.1", None):
        assert resolve_viewer(auth, {"X-Forwarded-User": "mallory"}, None, peer).name is None
    from catalog_ai.settings import parse_networks

    behind = AuthConfig(header="X-Forwarded-User", trusted_proxies=parse_networks({"P": "127.0.0.1"}, "P"))
    assert resolve_viewer(behind, {"X-Forwarded-User": "mallory"}, None, "203.0.113.9").name is None
    assert resolve_viewer(behind, {"X-Forwarded-User": "carol"}, None, "127.0.0.1").name == "carol"


def test_header_without_trusted_proxies_is_ignored_in_the_app(catalog, open_app, monkeypatch):
    # AppTest has no connection (no peer address): like a client that is not a trusted proxy.
    monkeypatch.setenv("CATALOG_AI_AUTH_HEADER", "X-Forwarded-User")
    at = open_app(user=None)
    assert not [t for t in at.title if t.value == "Review queue"]
    assert any("CATALOG_AI_TRUSTED_PROXIES" in w.value.replace("\\", "") for w in at.warning)


def test_repeated_failures_lock_the_name_out(catalog, open_app, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from dashboards import access

    now = [datetime(2026, 12, 1, 10, 0, tzinfo=UTC)]
    monkeypatch.setattr(access.GUARD, "clock", lambda: now[0])
    at = open_app(user=None)
    at.text_input(key="sign-in-name").input("alice")
    for _ in range(4):
        at.text_input(key="sign-in-password").input("wrong")
        at.button[0].click().run()
        assert [e.value for e in at.error] == ["Wrong name or password."]
    at.text_input(key="sign-in-password").input("wrong")
    at.button[0].click().run()
    assert [e.value for e in at.error] == [
        "Wrong name or password. Too many failed sign-ins for this name; try again in 60 seconds."]
    at.text_input(key="sign-in-password").input("alice-secret")  # right, but locked out
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Too many failed sign-ins for this name; try again in 60 seconds."]
    assert SIGNED_IN_KEY not in at.session_state
    now[0] += timedelta(seconds=61)
    at.button[0].click().run()
    assert at.session_state[SIGNED_IN_KEY] == "alice"


def test_signing_in_with_an_old_pbkdf2_hash_tells_the_new_line(catalog, open_app, monkeypatch, caplog):
    import logging

    from catalog_ai.auth import legacy_pbkdf2_hash

    monkeypatch.setenv("CATALOG_AI_USERS", f"alice:{legacy_pbkdf2_hash('alice-secret', iterations=1000)}")
    at = open_app(user=None)
    at.text_input(key="sign-in-name").input("alice")
    at.text_input(key="sign-in-password").input("alice-secret")
    with caplog.at_level(logging.WARNING, logger="catalog_ai.auth"):
        at.button[0].click().run()
    assert at.session_state[SIGNED_IN_KEY] == "alice"
    assert any("outdated hash" in i.value for i in at.sidebar.info)
    assert "with: alice:$argon2id$" in caplog.text

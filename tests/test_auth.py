from __future__ import annotations

import logging
import statistics
import time

import pytest
from argon2 import PasswordHasher, profiles

from catalog_ai.auth import (
    MIN_PASSWORD_LENGTH,
    AuthConfig,
    check_new_password,
    client_address,
    hash_password,
    legacy_pbkdf2_hash,
    load_auth_config,
    needs_rehash,
    verify_password,
)
from catalog_ai.errors import ConfigError
from catalog_ai.settings import parse_networks

CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)
# Costly enough (~10-20 ms) that a skipped hash shows, cheap enough for a unit test.
TIMED = PasswordHasher(time_cost=1, memory_cost=16 * 1024, parallelism=1)


def test_hash_is_argon2id_and_verifies():
    encoded = hash_password("s3cret-s3cret", hasher=CHEAP)
    assert encoded.startswith("$argon2id$")
    assert verify_password("s3cret-s3cret", encoded)
    assert not verify_password("S3cret-s3cret", encoded)
    assert hash_password("s3cret-s3cret", hasher=CHEAP) != encoded  # random salt
    assert hash_password("x").startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # the default profile


def test_legacy_pbkdf2_hash_is_accepted_and_flagged_with_its_replacement(caplog):
    old = legacy_pbkdf2_hash("a-long-password", iterations=1000)
    auth = load_auth_config({"CATALOG_AI_USERS": f"alice:{old}"})
    assert needs_rehash(old)
    with caplog.at_level(logging.WARNING, logger="catalog_ai.auth"):
        done = auth.sign_in("alice", "a-long-password")
    assert done is not None and done.name == "alice"
    assert done.new_hash.startswith("$argon2id$") and verify_password(
        "a-long-password", done.new_hash
    )
    assert not needs_rehash(done.new_hash)
    assert done.config_line in caplog.text  # the administrator is told the line to put in
    assert auth.sign_in("alice", "wrong") is None


def test_legacy_hash_in_the_users_file_is_rewritten_on_sign_in(tmp_path, caplog):
    old = legacy_pbkdf2_hash("a-long-password", iterations=1000)
    bob = hash_password("b-long-password", hasher=CHEAP)
    users = tmp_path / "reviewers.txt"
    users.write_text(f"# reviewers\n  alice:{old}\nbob:{bob}\n")
    users.chmod(0o640)
    env = {"CATALOG_AI_USERS_FILE": str(users)}
    with caplog.at_level(logging.INFO, logger="catalog_ai.auth"):
        done = load_auth_config(env).sign_in("alice", "a-long-password")
    assert done is not None and done.saved and done.new_hash.startswith("$argon2id$")
    lines = users.read_text().splitlines()
    assert lines == ["# reviewers", f"  alice:{done.new_hash}", f"bob:{bob}"]  # one line changed
    assert users.stat().st_mode & 0o777 == 0o640
    assert "outdated" not in caplog.text  # nothing left for the administrator to do
    again = load_auth_config(env).sign_in("alice", "a-long-password")
    assert again is not None and again.new_hash is None  # the file now holds a current hash


def test_legacy_hash_from_the_environment_is_not_written_anywhere(tmp_path, caplog):
    old = legacy_pbkdf2_hash("a-long-password", iterations=1000)
    users = tmp_path / "reviewers.txt"
    users.write_text(f"bob:{hash_password('b-long-password', hasher=CHEAP)}\n")
    before = users.read_text()
    env = {"CATALOG_AI_USERS": f"alice:{old}", "CATALOG_AI_USERS_FILE": str(users)}
    with caplog.at_level(logging.WARNING, logger="catalog_ai.auth"):
        done = load_auth_config(env).sign_in("alice", "a-long-password")
    assert done is not None and not done.saved and done.config_line in caplog.text
    assert users.read_text() == before


def test_a_users_file_edited_meanwhile_is_left_alone(tmp_path):
    old = legacy_pbkdf2_hash("a-long-password", iterations=1000)
    users = tmp_path / "reviewers.txt"
    users.write_text(f"alice:{old}\n")
    auth = load_auth_config({"CATALOG_AI_USERS_FILE": str(users)})
    edited = f"alice:{legacy_pbkdf2_hash('another-password', iterations=1000)}\n"
    users.write_text(edited)  # the administrator changed alice's password after it was read
    done = auth.sign_in("alice", "a-long-password")
    assert done is not None and not done.saved
    assert users.read_text() == edited


def test_current_hash_is_not_rehashed():
    auth = AuthConfig(users={"bob": hash_password("b-long-password", hasher=CHEAP)}, hasher=CHEAP)
    assert auth.sign_in("bob", "b-long-password").new_hash is None


def test_config_from_env_and_file(tmp_path):
    alice = hash_password("a-pass", hasher=CHEAP)
    bob = legacy_pbkdf2_hash("b-pass", iterations=1000)
    users = tmp_path / "users"
    users.write_text(f"# reviewers\nbob:{bob}\n")
    config = load_auth_config(
        {"CATALOG_AI_USERS": f"alice:{alice}", "CATALOG_AI_USERS_FILE": str(users)}
    )
    assert config.authenticate("alice", "a-pass") == "alice"
    assert config.authenticate("bob", "b-pass") == "bob"
    assert config.authenticate("bob", "a-pass") is None
    assert config.authenticate("mallory", "x") is None
    assert not config.read_only_viewing


def _median_seconds(fn, tries: int = 5) -> float:
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("scheme", ["argon2", "pbkdf2"])
def test_unknown_name_costs_as_much_as_a_known_one(scheme):
    encoded = (
        hash_password("alice-password", hasher=TIMED)
        if scheme == "argon2"
        else legacy_pbkdf2_hash("alice-password", iterations=60_000)
    )
    auth = AuthConfig(users={"alice": encoded})
    auth.sign_in("nobody", "warm-up")  # the dummy hash is made once per process
    ratios = []
    for _ in range(3):  # interleaved, medians: robust to a busy machine
        known = _median_seconds(lambda: auth.sign_in("alice", "wrong-password"))
        unknown = _median_seconds(lambda: auth.sign_in("nobody", "wrong-password"))
        ratios.append(unknown / known)
    assert 0.5 < statistics.median(ratios) < 2, ratios


def test_minimum_password_length():
    with pytest.raises(ConfigError, match=f"at least {MIN_PASSWORD_LENGTH}"):
        check_new_password("x")
    check_new_password("x" * MIN_PASSWORD_LENGTH)


def test_identity_header_needs_a_trusted_proxy(caplog, monkeypatch):
    import catalog_ai.auth

    monkeypatch.setattr(catalog_ai.auth, "_warned", set())  # warned once per process: start afresh
    env = {"CATALOG_AI_AUTH_HEADER": "X-Forwarded-User"}
    with caplog.at_level(logging.WARNING, logger="catalog_ai.auth"):
        untrusted = load_auth_config(env)
    assert untrusted.user_from_headers({"X-Forwarded-User": "mallory"}, "203.0.113.9") is None
    assert untrusted.user_from_headers({"X-Forwarded-User": "mallory"}, None) is None
    assert "CATALOG_AI_TRUSTED_PROXIES" in untrusted.header_warning
    assert "CATALOG_AI_TRUSTED_PROXIES" in caplog.text

    config = load_auth_config({**env, "CATALOG_AI_TRUSTED_PROXIES": "127.0.0.1, 10.1.0.0/16"})
    assert config.header_warning is None
    assert (
        config.user_from_headers({"x-forwarded-user": "carol"}, "127.0.0.1") == "carol"
    )  # any case
    assert config.user_from_headers({"x-forwarded-user": "carol"}, "10.1.2.3") == "carol"
    assert config.user_from_headers({"x-forwarded-user": "carol"}, "::ffff:10.1.2.3") == "carol"
    assert config.user_from_headers({"x-forwarded-user": "mallory"}, "10.2.0.1") is None
    assert config.user_from_headers({"other": "carol"}, "127.0.0.1") is None
    assert config.user_from_headers({"x-forwarded-user": "bad\x1bname"}, "127.0.0.1") is None
    assert config.user_from_headers({"x-forwarded-user": "x" * 300}, "127.0.0.1") is None


def test_trusted_proxies_setting_names_a_bad_entry():
    with pytest.raises(ConfigError, match=r"CATALOG_AI_TRUSTED_PROXIES: 'proxy\.local'"):
        parse_networks(
            {"CATALOG_AI_TRUSTED_PROXIES": "127.0.0.1,proxy.local"}, "CATALOG_AI_TRUSTED_PROXIES"
        )


def test_client_address_believes_forwarded_for_only_from_trusted_proxies():
    trusted = parse_networks({"P": "127.0.0.1,10.0.0.0/8"}, "P")
    forwarded = {"X-Forwarded-For": "1.2.3.4, 198.51.100.7, 10.0.0.2"}
    assert (
        client_address("127.0.0.1", forwarded, trusted) == "198.51.100.7"
    )  # nearest untrusted hop
    assert (
        client_address("203.0.113.9", forwarded, trusted) == "203.0.113.9"
    )  # a client's own header
    assert client_address("127.0.0.1", {}, trusted) == "127.0.0.1"
    assert client_address(None, {}, ()) == "unknown"


def test_malformed_user_line_names_the_fix():
    with pytest.raises(ConfigError, match="hash-password"):
        load_auth_config({"CATALOG_AI_USERS": "alice:plaintext"})

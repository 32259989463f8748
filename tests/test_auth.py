from __future__ import annotations

import pytest

from catalog_ai.auth import hash_password, load_auth_config, verify_password
from catalog_ai.errors import ConfigError


def test_hash_and_verify():
    encoded = hash_password("s3cret", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("S3cret", encoded)
    assert hash_password("s3cret", iterations=1000) != encoded  # random salt


def test_config_from_env_and_file(tmp_path):
    alice = hash_password("a-pass", iterations=1000)
    bob = hash_password("b-pass", iterations=1000)
    users = tmp_path / "users"
    users.write_text(f"# reviewers\nbob:{bob}\n")
    config = load_auth_config({"CATALOG_AI_USERS": f"alice:{alice}", "CATALOG_AI_USERS_FILE": str(users)})
    assert config.authenticate("alice", "a-pass") == "alice"
    assert config.authenticate("bob", "b-pass") == "bob"
    assert config.authenticate("bob", "a-pass") is None
    assert config.authenticate("mallory", "x") is None
    assert not config.read_only_viewing


def test_identity_header_is_case_insensitive():
    config = load_auth_config({"CATALOG_AI_AUTH_HEADER": "X-Forwarded-User"})
    assert config.user_from_headers({"x-forwarded-user": "carol"}) == "carol"
    assert config.user_from_headers({"other": "carol"}) is None


def test_malformed_user_line_names_the_fix():
    with pytest.raises(ConfigError, match="hash-password"):
        load_auth_config({"CATALOG_AI_USERS": "alice:plaintext"})

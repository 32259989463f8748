"""Who may change things: reviewers with hashed passwords from configuration, or an identity
header set by a reverse proxy that already authenticated them.

| variable | meaning |
| --- | --- |
| ``CATALOG_AI_USERS`` | ``name:hash`` pairs separated by ``;`` (hashes from ``catalog-ai users hash-password``) |
| ``CATALOG_AI_USERS_FILE`` | a file with one ``name:hash`` per line (``#`` comments) |
| ``CATALOG_AI_AUTH_HEADER`` | trust this request header as the signed-in user (e.g. ``X-Forwarded-User``); only behind a proxy that sets it |
| ``CATALOG_AI_READ_ONLY_VIEWING`` | ``1``: people who are not signed in may look (never change) |

Passwords are stored as PBKDF2-HMAC-SHA256 hashes with a random salt (standard library only) and
compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog_ai.errors import ConfigError

__all__ = ["AuthConfig", "hash_password", "verify_password", "load_auth_config"]

_SCHEME = "pbkdf2_sha256"
_ITERATIONS = 310_000


def hash_password(password: str, *, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    if not password:
        raise ConfigError("an empty password cannot be hashed; choose a password")
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{_SCHEME}${iterations}${b64(salt)}${b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class AuthConfig:
    users: Mapping[str, str] = field(default_factory=dict)  # name -> password hash
    header: str | None = None
    read_only_viewing: bool = False

    def authenticate(self, name: str, password: str) -> str | None:
        """The user's name when the password is right, else None."""
        encoded = self.users.get(name.strip())
        if encoded is None:
            verify_password(password, hash_password("timing-equaliser", iterations=1000))
            return None
        return name.strip() if verify_password(password, encoded) else None

    def user_from_headers(self, headers: Mapping[str, str]) -> str | None:
        if not self.header:
            return None
        for key, value in headers.items():
            if key.lower() == self.header.lower() and value.strip():
                return value.strip()
        return None

    @property
    def configured(self) -> bool:
        return bool(self.users) or bool(self.header)


def _parse_pairs(lines: list[str], source: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        if not sep or not name.strip() or not encoded.strip().startswith(_SCHEME + "$"):
            raise ConfigError(
                f"{source}:{number}: expected 'name:{_SCHEME}$...' (make the hash with `catalog-ai users hash-password`)"
            )
        users[name.strip()] = encoded.strip()
    return users


def load_auth_config(env: Mapping[str, str] | None = None) -> AuthConfig:
    env = os.environ if env is None else env
    users: dict[str, str] = {}
    if env.get("CATALOG_AI_USERS"):
        users.update(_parse_pairs(env["CATALOG_AI_USERS"].split(";"), "CATALOG_AI_USERS"))
    if env.get("CATALOG_AI_USERS_FILE"):
        path = Path(env["CATALOG_AI_USERS_FILE"]).expanduser()
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"CATALOG_AI_USERS_FILE={path}: cannot read it ({exc.strerror})") from exc
        users.update(_parse_pairs(lines, str(path)))
    read_only = env.get("CATALOG_AI_READ_ONLY_VIEWING", "").strip().lower() in {"1", "true", "yes", "on"}
    return AuthConfig(users=users, header=env.get("CATALOG_AI_AUTH_HEADER") or None, read_only_viewing=read_only)

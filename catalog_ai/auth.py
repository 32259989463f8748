"""Who may change things: reviewers with hashed passwords from configuration, or an identity
header set by a reverse proxy that already authenticated them.

They are configured with ``CATALOG_AI_USERS`` (``name:hash`` pairs separated by ``;``; hashes
from ``catalog-ai users hash-password``), ``CATALOG_AI_USERS_FILE`` (one ``name:hash`` per line,
``#`` comments), ``CATALOG_AI_AUTH_HEADER``, ``CATALOG_AI_TRUSTED_PROXIES`` and
``CATALOG_AI_READ_ONLY_VIEWING``, read by :mod:`catalog_ai.settings` with everything else (the
README's configuration table says what each means).

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher``, its RFC 9106 low-memory
profile). Hashes of the earlier PBKDF2-HMAC-SHA256 scheme (``pbkdf2_sha256$...``) are still
accepted and re-hashed on a successful sign-in: a user from ``CATALOG_AI_USERS_FILE`` gets the
Argon2 hash written into that line of the file (atomically, under a lock; nothing else in the
file changes); a user from the ``CATALOG_AI_USERS`` variable cannot be rewritten by a process,
so the line to put in is logged (``catalog_ai.auth``, level WARNING).

A name that is not configured costs the same as a wrong password for a known one: it is
checked against a dummy hash with the same scheme and parameters as the configured users'.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from filelock import FileLock

from catalog_ai.errors import ConfigError
from catalog_ai.settings import Network, Settings

__all__ = [
    "DEFAULT_HASHER",
    "MIN_PASSWORD_LENGTH",
    "AuthConfig",
    "SignIn",
    "check_new_password",
    "client_address",
    "hash_password",
    "legacy_pbkdf2_hash",
    "load_auth_config",
    "needs_rehash",
    "replace_hash_in_file",
    "verify_password",
]

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_HEADER_NAME = 255  # reviews.reviewer is a String(255)
# argon2-cffi's defaults: RFC 9106's low-memory profile (t=3, 64 MiB, p=4; ~0.1 s on one core).
DEFAULT_HASHER = PasswordHasher()

_PBKDF2 = "pbkdf2_sha256"
_ARGON2 = "$argon2"


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """An Argon2id hash of ``password`` (``hasher``: other parameters, e.g. cheap ones in tests)."""
    if not password:
        raise ConfigError("an empty password cannot be hashed; choose a password")
    return (hasher or DEFAULT_HASHER).hash(password)


def check_new_password(password: str) -> None:
    """Refuse a password too short to resist guessing (for new hashes, not for sign-in)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH} "
            "(a few unrelated words make a long password easy to remember)"
        )


def legacy_pbkdf2_hash(
    password: str, *, iterations: int = 310_000, salt: bytes | None = None
) -> str:
    """A hash of the earlier PBKDF2 scheme: only to build old configurations (tests, dummies)."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"{_PBKDF2}${iterations}${b64(salt)}${b64(digest)}"


def _verify_pbkdf2(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != _PBKDF2:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (Argon2, or the earlier PBKDF2 scheme)."""
    if encoded.startswith(_ARGON2):
        try:
            return DEFAULT_HASHER.verify(encoded, password)  # the parameters come from the hash
        except (VerificationError, InvalidHashError):
            return False
    return _verify_pbkdf2(password, encoded)


def needs_rehash(encoded: str, hasher: PasswordHasher | None = None) -> bool:
    """Whether ``encoded`` is of an older scheme or weaker parameters than ``hasher``'s."""
    if not encoded.startswith(_ARGON2):
        return True
    try:
        return (hasher or DEFAULT_HASHER).check_needs_rehash(encoded)
    except InvalidHashError:
        return True


def _cost(encoded: str) -> tuple:
    """What a verification of ``encoded`` costs: its scheme and parameters."""
    if encoded.startswith(_ARGON2):
        try:
            return ("argon2", *astuple(extract_parameters(encoded)))
        except InvalidHashError:
            return ("invalid",)
    try:
        return ("pbkdf2", int(encoded.split("$")[1]))
    except (IndexError, ValueError):
        return ("invalid",)


@lru_cache(maxsize=8)
def _dummy_for(cost: tuple) -> str:
    """A hash of a random password that costs ``cost`` to verify (made once per process)."""
    secret = base64.b64encode(os.urandom(18)).decode("ascii")
    if cost[0] == "argon2":
        from argon2 import Parameters

        names = (
            "type",
            "version",
            "salt_len",
            "hash_len",
            "time_cost",
            "memory_cost",
            "parallelism",
        )
        params = Parameters(**dict(zip(names, cost[1:], strict=True)))
        return PasswordHasher.from_parameters(params).hash(secret)
    if cost[0] == "pbkdf2":
        return legacy_pbkdf2_hash(secret, iterations=cost[1])
    return DEFAULT_HASHER.hash(secret)


@dataclass(frozen=True)
class SignIn:
    name: str
    new_hash: str | None = None  # set when the stored hash should be replaced by this one
    saved: bool = False  # the new hash is written into the users file already

    @property
    def config_line(self) -> str | None:
        return f"{self.name}:{self.new_hash}" if self.new_hash else None


def _in(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 from a dual-stack socket
    return any(ip.version == net.version and ip in net for net in networks)


def client_address(
    peer: str | None, headers: Mapping[str, str], trusted: tuple[Network, ...]
) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not itself a trusted proxy (entries further left
    are set by the client and could be anything)."""
    if not _in(peer, trusted):
        return peer or "unknown"
    forwarded = next((v for k, v in headers.items() if k.lower() == "x-forwarded-for"), "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop[:64]
    return peer or "unknown"


@dataclass(frozen=True)
class AuthConfig:
    users: Mapping[str, str] = field(default_factory=dict)  # name -> password hash
    header: str | None = None
    read_only_viewing: bool = False
    trusted_proxies: tuple[Network, ...] = ()
    users_file: Path | None = None
    file_users: frozenset[str] = frozenset()  # names whose hash comes from users_file
    hasher: PasswordHasher = field(default=DEFAULT_HASHER, compare=False, repr=False)

    def _dummy(self) -> str:
        # The parameters most users' hashes have: with one scheme in use (the normal case) an
        # unknown name costs exactly what a known one does.
        costs = Counter(_cost(encoded) for encoded in self.users.values())
        return _dummy_for(costs.most_common(1)[0][0] if costs else ("default",))

    def sign_in(self, name: str, password: str) -> SignIn | None:
        """The signed-in user when the password is right (with a new hash to configure when the
        stored one is outdated), else None. Unknown names cost the same as known ones."""
        name = name.strip()
        encoded = self.users.get(name)
        if encoded is None:
            verify_password(password, self._dummy())
            return None
        if not verify_password(password, encoded):
            return None
        if not needs_rehash(encoded, self.hasher):
            return SignIn(name)
        new_hash = hash_password(password, hasher=self.hasher)
        users_file = self.users_file if name in self.file_users else None
        if users_file is not None and replace_hash_in_file(users_file, name, encoded, new_hash):
            log.info(
                "re-hashed %r's password in %s (was %s)",
                name,
                self.users_file,
                encoded.split("$")[0] or encoded[:9],
            )
            return SignIn(name, new_hash, saved=True)
        done = SignIn(name, new_hash)
        log.warning(
            "reviewer %r signed in with an outdated password hash (%s); replace the line for %r "
            "in CATALOG_AI_USERS / CATALOG_AI_USERS_FILE with: %s",
            name,
            encoded.split("$")[0] or encoded[:9],
            name,
            done.config_line,
        )
        return done

    def authenticate(self, name: str, password: str) -> str | None:
        """The user's name when the password is right, else None."""
        done = self.sign_in(name, password)
        return done.name if done else None

    def header_trusted(self, peer: str | None) -> bool:
        """Whether a request from ``peer`` (the TCP peer address) may name its user by header."""
        return bool(self.header) and _in(peer, self.trusted_proxies)

    def user_from_headers(self, headers: Mapping[str, str], peer: str | None = None) -> str | None:
        """The user the proxy's header names, only on a request from a trusted proxy."""
        if not self.header or not self.header_trusted(peer):
            return None
        for key, value in headers.items():
            if key.lower() == self.header.lower():
                value = value.strip()
                if not value or len(value) > MAX_HEADER_NAME or not value.isprintable():
                    log.warning(
                        "ignored %s header: empty, over %d characters or not printable",
                        self.header,
                        MAX_HEADER_NAME,
                    )
                    return None
                return value
        return None

    @property
    def header_warning(self) -> str | None:
        """Why the configured header is never used, if it is not."""
        if self.header and not self.trusted_proxies:
            return (
                f"CATALOG_AI_AUTH_HEADER={self.header} is ignored: no proxy is trusted to set "
                "it. Set CATALOG_AI_TRUSTED_PROXIES to the proxy's address (e.g. 127.0.0.1 or "
                "10.0.0.0/24)."
            )
        return None

    @property
    def configured(self) -> bool:
        return bool(self.users) or bool(self.header)


def replace_hash_in_file(path: Path, name: str, old_hash: str, new_hash: str) -> bool:
    """Replace ``name:old_hash`` with ``name:new_hash`` in the users file; False (and the file
    untouched) when the line is no longer there (someone edited it meanwhile) or the file
    cannot be written. Atomic (a temporary file renamed over it, same permissions), under a
    lock beside the file so two dashboards signing the same user in do not both rewrite it."""
    try:
        with FileLock(f"{path}.lock", timeout=5):
            lines = path.read_text("utf-8").splitlines(keepends=True)
            for i, raw in enumerate(lines):
                key, sep, value = raw.strip().partition(":")
                if sep and key.strip() == name and value.strip() == old_hash:
                    indent = raw[: len(raw) - len(raw.lstrip())]
                    ending = "\n" if raw.endswith("\n") else ""
                    lines[i] = f"{indent}{name}:{new_hash}{ending}"
                    break
            else:
                return False
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_text("".join(lines), "utf-8")
            os.chmod(temporary, path.stat().st_mode & 0o7777)
            os.replace(temporary, path)
            return True
    except OSError as exc:
        log.warning("could not rewrite %s with %r's new password hash: %s", path, name, exc)
        return False


def _parse_pairs(lines: list[str], source: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        encoded = encoded.strip()
        known = encoded.startswith(_ARGON2) or encoded.startswith(_PBKDF2 + "$")
        if not sep or not name.strip() or not known:
            raise ConfigError(
                f"{source}:{number}: expected 'name:$argon2id$...' (make the hash with "
                "`catalog-ai users hash-password`)"
            )
        users[name.strip()] = encoded
    return users


_warned: set[str] = set()


def load_auth_config(env: Mapping[str, str] | None = None) -> AuthConfig:
    """The access configuration from ``env`` (default: ``os.environ``, read afresh: the
    dashboard calls this on every run), through :class:`catalog_ai.settings.Settings`."""
    settings = Settings.from_env(env)
    users: dict[str, str] = {}
    path, from_file = None, {}
    if settings.users:
        users.update(_parse_pairs(settings.users.split(";"), "CATALOG_AI_USERS"))
    if settings.users_file:
        path = settings.users_file.expanduser()
        try:
            lines = path.read_text("utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"CATALOG_AI_USERS_FILE={path}: cannot read it ({exc.strerror})"
            ) from exc
        from_file = _parse_pairs(lines, str(path))
        users.update(from_file)
    config = AuthConfig(
        users=users,
        header=settings.auth_header,
        read_only_viewing=settings.read_only_viewing,
        trusted_proxies=settings.trusted_proxies,
        users_file=path if settings.users_file else None,
        file_users=frozenset(from_file) if settings.users_file else frozenset(),
    )
    warning = config.header_warning
    if warning and warning not in _warned:  # once per process: the config is read every run
        _warned.add(warning)
        log.warning(warning)
    return config

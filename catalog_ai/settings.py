"""All configuration in one place: one pydantic-settings class read from ``CATALOG_AI_*``
environment variables (the README's configuration table lists them; a test keeps the two equal).

A bad value is one :class:`~catalog_ai.errors.ConfigError` line naming the variable, the value
and the fix; an empty variable means its default.

The visibility timeout must stay well above one task's length (seconds for a chunk) and short
enough that a killed worker's chunk comes back soon; the sweep covers messages that are lost
altogether. ``MAX_ATTEMPTS`` stops a photo that kills its worker every time from returning for ever.

``MAX_ASPECT_RATIO``: the network sees the centre square of a photo, so of a 20:1 strip it sees
a twentieth; beyond that it is a banner or a hostile file (a 17 KB 65000x2 JPEG), not a product
photo, and scaling its short side up to the network's input would need gigabytes. Checked on the
file header before decoding; it also bounds the resized image to ratio x side² pixels.

The reviewers (``CATALOG_AI_USERS``, ``CATALOG_AI_USERS_FILE``), the identity header and
read-only viewing are read here too; :mod:`catalog_ai.auth` turns them into an ``AuthConfig``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from catalog_ai.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "Network",
    "Settings",
    "env_name",
    "get_settings",
    "parse_networks",
    "reset_settings",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ENV_PREFIX = "CATALOG_AI_"


def _split_networks(raw: str, name: str) -> tuple[Network, ...]:
    out: list[Network] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name}: {item!r} is not an IP address or network; use e.g. 127.0.0.1,10.0.0.0/24"
            ) from None
    return tuple(out)


def parse_networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses or CIDR networks (an address is a network of one)."""
    return _split_networks(env.get(name) or "", name)


# The mapping Settings.from_env reads instead of os.environ (None: os.environ).
_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("catalog_ai_settings_env", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``
    (the same override pydantic-settings' own dotenv source makes)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._mapping, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def env_name(field_name: str, info: FieldInfo) -> str:
    """The environment variable a field is read from."""
    alias = info.validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field_name.upper()


def _config_error(exc: ValidationError) -> ConfigError:
    """The first validation error as one line naming the variable, its value and the fix."""
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    info = Settings.model_fields.get(key)
    name = env_name(key, info) if info is not None else key
    raw = error.get("input")
    kind = error["type"]
    if kind == "int_parsing":
        fix = "is not a whole number; use a whole number greater than zero"
    elif kind == "greater_than":
        fix = "must be greater than zero"
    elif kind == "bool_parsing":
        fix = "is not a yes/no value; use 1 or 0"
    else:
        fix = f"is not valid ({error['msg']})"
    default = info.default if info is not None else None
    if default is not None and kind != "bool_parsing":
        fix += f" (default {default})"
    return ConfigError(f"{name}={raw!r} {fix}")


class Settings(BaseSettings):
    """The process's configuration; read it with :func:`get_settings` (or :meth:`from_env`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    home: Path = Field(Path(".catalog_ai"), description="data directory of the embedded set-up")
    # Default: sqlite:///$CATALOG_AI_HOME/catalog.db (filled in by _derive).
    database_url: str = Field("", description="SQLAlchemy URL")
    broker_url: str | None = Field(None, description="Celery broker; none: tasks run in-process")
    # Default: the broker URL.
    result_backend: str | None = Field(None, description="Celery result backend")
    # Defaults: $CATALOG_AI_HOME/media and $CATALOG_AI_HOME/models.
    media_dir: Path = Field(Path("media"), description="content-addressed photo store")
    model_dir: Path = Field(Path("models"), description="model bundles")
    # Default: $CATALOG_AI_HOME/cache/index. This machine's own copy of the search indexes, a
    # cache of the database's embeddings: keep it on a local disk, not a shared volume.
    index_cache_dir: Path = Field(Path("cache/index"), description="search index cache")
    # ``offline`` is either of the two.
    offline_flag: bool = Field(False, validation_alias="CATALOG_AI_OFFLINE", repr=False)
    hf_hub_offline: bool = Field(False, validation_alias="HF_HUB_OFFLINE", repr=False)
    max_image_bytes: PositiveInt = 50 * 1024 * 1024
    max_image_pixels: PositiveInt = 80_000_000
    max_aspect_ratio: PositiveInt = 20
    # Seconds one photo download of a shop feed may take in all (catalog import-shopify-csv).
    fetch_timeout: PositiveInt = 20
    classify_chunk: PositiveInt = 16
    visibility_timeout: PositiveInt = 300
    stale_after: PositiveInt = 600
    sweep_interval: PositiveInt = 60
    index_interval: PositiveInt = 300
    # The catalogue tree's figures: refreshed by the beat every figures_interval seconds;
    # computed on every read instead while that takes under figures_live_ms (or when the
    # summary is missing or older than three intervals).
    figures_interval: PositiveInt = 300
    figures_live_ms: NonNegativeInt = 50
    max_attempts: PositiveInt = 5
    torch_threads: PositiveInt | None = None  # None: torch's own (workers: cores / concurrency)
    freeze_network: bool = True
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = ()
    # SHA-256 the example dataset's archive must have (datasets.fetch); none: not checked.
    grocery_store_sha256: str | None = None
    # Reviewers and access (parsed into an AuthConfig by catalog_ai.auth).
    users: str | None = None
    users_file: Path | None = None
    auth_header: str | None = None
    read_only_viewing: bool = False
    # Webhooks (catalog_ai.services.webhooks): per-operation HTTP timeout, the first retry delay
    # (doubling up to the maximum), and how long a delivery is retried before it is failed.
    webhook_timeout: PositiveInt = 10
    webhook_backoff_ms: PositiveInt = 10_000
    webhook_backoff_max: PositiveInt = 3_600
    webhook_retry_for: PositiveInt = 86_400
    # The HTTP API (catalog-ai api): requests per minute per key (a key's own limit wins).
    api_rate_limit: PositiveInt = 600
    # The largest request body the API reads (all photos of one POST together): a bigger one is
    # refused with 413 before it is spooled to disk.
    api_max_request_bytes: PositiveInt = 200 * 1024 * 1024
    # Browser origins (https://admin.shop.example) allowed to call the API; none: no CORS.
    api_cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # The share of auto-accepted products also sent to the review queue as audits (drawn at
    # random per product): what makes the live precision of auto-accept measurable. 0: none.
    audit_rate: float = Field(0.03, ge=0.0, le=1.0)
    # Opt-in: the beat retrains from the catalog (and promotes only if better) once this many
    # reviews arrived since the active version was made; none: never.
    retrain_after_reviews: PositiveInt | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only keyword arguments and the environment: no .env file, no secrets directory.
        env = _ENV.get()
        return (init_settings, env_settings if env is None else _MappingEnvSource(cls, env))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: ``os.environ``), read afresh."""
        token = _ENV.set(env)
        try:
            return cls()
        finally:
            _ENV.reset(token)

    @field_validator("grocery_store_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ConfigError(
                f"CATALOG_AI_GROCERY_STORE_SHA256={value!r} is not a SHA-256 digest; use the 64 "
                "hexadecimal characters sha256sum prints"
            )
        return value.lower() if value else value

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ConfigError(
                    f"CATALOG_AI_API_CORS_ORIGINS: {origin!r} is not an origin; use scheme and "
                    "host, e.g. https://admin.shop.example,http://localhost:3000"
                )
        return origins

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            return _split_networks(value, ENV_PREFIX + "TRUSTED_PROXIES")
        return value

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        """Defaults that follow other settings: paths under the home, the result backend."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        home = Path(data.get("home") or ".catalog_ai").expanduser().resolve()
        data["home"] = home
        data["database_url"] = data.get("database_url") or f"sqlite:///{home / 'catalog.db'}"
        for key, under in (
            ("media_dir", "media"),
            ("model_dir", "models"),
            ("index_cache_dir", "cache/index"),
        ):
            data[key] = Path(data.get(key) or home / under).expanduser().resolve()
        data["result_backend"] = data.get("result_backend") or data.get("broker_url")
        return data

    @property
    def offline(self) -> bool:
        """Never try to download weights or datasets."""
        return self.offline_flag or self.hf_hub_offline


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()

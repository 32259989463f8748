"""All configuration in one place, read from environment variables.

| variable | default | meaning |
| --- | --- | --- |
| ``CATALOG_AI_HOME`` | ``./.catalog_ai`` | data directory of the embedded set-up |
| ``CATALOG_AI_DATABASE_URL`` | ``sqlite:///$CATALOG_AI_HOME/catalog.db`` | SQLAlchemy URL |
| ``CATALOG_AI_BROKER_URL`` | empty: tasks run in-process | Celery broker, e.g. ``redis://host:6379/0`` |
| ``CATALOG_AI_RESULT_BACKEND`` | the broker URL | Celery result backend |
| ``CATALOG_AI_MEDIA_DIR`` | ``$CATALOG_AI_HOME/media`` | content-addressed photo store |
| ``CATALOG_AI_MODEL_DIR`` | ``$CATALOG_AI_HOME/models`` | trained model bundles |
| ``CATALOG_AI_OFFLINE`` | ``0`` (``HF_HUB_OFFLINE=1`` also counts) | never try to download weights |
| ``CATALOG_AI_MAX_IMAGE_BYTES`` | ``52428800`` (50 MiB) | largest photo file accepted |
| ``CATALOG_AI_MAX_IMAGE_PIXELS`` | ``80000000`` | largest photo (width x height) decoded |
| ``CATALOG_AI_MAX_ASPECT_RATIO`` | ``20`` | longest side / shortest side of a photo accepted (see below) |
| ``CATALOG_AI_CLASSIFY_CHUNK`` | ``16`` | products per classification task (one batched forward) |
| ``CATALOG_AI_VISIBILITY_TIMEOUT`` | ``300`` | seconds until a dead worker's task is re-delivered |
| ``CATALOG_AI_STALE_AFTER`` | ``600`` | seconds pending/processing before the sweep re-enqueues |
| ``CATALOG_AI_SWEEP_INTERVAL`` | ``60`` | seconds between sweeps (``catalog-ai worker --beat``) |
| ``CATALOG_AI_INDEX_INTERVAL`` | ``300`` | seconds between search-index refreshes (``--beat``) |
| ``CATALOG_AI_MAX_ATTEMPTS`` | ``5`` | unfinished claims of one product (per model) before it is marked failed |
| ``CATALOG_AI_TORCH_THREADS`` | torch's own; workers: cores / concurrency | threads per process |
| ``CATALOG_AI_TRUSTED_PROXIES`` | none | comma-separated addresses or networks (``127.0.0.1,10.0.0.0/24``) of the reverse proxies allowed to set ``CATALOG_AI_AUTH_HEADER``; none: the header is ignored |
| ``CATALOG_AI_FREEZE_NETWORK`` | ``1`` | serve the backbone as a frozen TorchScript graph on the CPU (1.2–1.6× faster); also after CPU training, for calibration and prototypes |

The visibility timeout must stay well above one task's length (seconds for a chunk) and short
enough that a killed worker's chunk comes back soon; the sweep covers messages that are lost
altogether. ``MAX_ATTEMPTS`` stops a photo that kills its worker every time from returning for ever.

``MAX_ASPECT_RATIO``: the network sees the centre square of a photo, so of a 20:1 strip it sees
a twentieth; beyond that it is a banner or a hostile file (a 17 KB 65000x2 JPEG), not a product
photo, and scaling its short side up to the network's input would need gigabytes. Checked on the
file header before decoding; it also bounds the resized image to ratio x side² pixels.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from catalog_ai.errors import ConfigError

__all__ = ["Network", "Settings", "get_settings", "parse_networks", "reset_settings"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than zero")
    return value


def parse_networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses or CIDR networks (an address is a network of one)."""
    out: list[Network] = []
    for item in (env.get(name) or "").split(","):
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


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    broker_url: str | None
    result_backend: str | None
    media_dir: Path
    model_dir: Path
    offline: bool
    max_image_bytes: int
    max_image_pixels: int
    max_aspect_ratio: int = 20
    classify_chunk: int = 16
    visibility_timeout: int = 300
    stale_after: int = 600
    sweep_interval: int = 60
    index_interval: int = 300
    max_attempts: int = 5
    torch_threads: int | None = None
    freeze_network: bool = True
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("CATALOG_AI_HOME") or ".catalog_ai").expanduser().resolve()
        database_url = env.get("CATALOG_AI_DATABASE_URL") or f"sqlite:///{home / 'catalog.db'}"
        broker_url = env.get("CATALOG_AI_BROKER_URL") or None
        result_backend = env.get("CATALOG_AI_RESULT_BACKEND") or broker_url
        media_dir = Path(env.get("CATALOG_AI_MEDIA_DIR") or home / "media").expanduser().resolve()
        model_dir = Path(env.get("CATALOG_AI_MODEL_DIR") or home / "models").expanduser().resolve()
        offline = _flag(env, "CATALOG_AI_OFFLINE", False) or _flag(env, "HF_HUB_OFFLINE", False)
        return cls(
            home=home,
            database_url=database_url,
            broker_url=broker_url,
            result_backend=result_backend,
            media_dir=media_dir,
            model_dir=model_dir,
            offline=offline,
            max_image_bytes=_positive_int(env, "CATALOG_AI_MAX_IMAGE_BYTES", 50 * 1024 * 1024),
            max_image_pixels=_positive_int(env, "CATALOG_AI_MAX_IMAGE_PIXELS", 80_000_000),
            max_aspect_ratio=_positive_int(env, "CATALOG_AI_MAX_ASPECT_RATIO", 20),
            classify_chunk=_positive_int(env, "CATALOG_AI_CLASSIFY_CHUNK", 16),
            visibility_timeout=_positive_int(env, "CATALOG_AI_VISIBILITY_TIMEOUT", 300),
            stale_after=_positive_int(env, "CATALOG_AI_STALE_AFTER", 600),
            sweep_interval=_positive_int(env, "CATALOG_AI_SWEEP_INTERVAL", 60),
            index_interval=_positive_int(env, "CATALOG_AI_INDEX_INTERVAL", 300),
            max_attempts=_positive_int(env, "CATALOG_AI_MAX_ATTEMPTS", 5),
            torch_threads=_positive_int(env, "CATALOG_AI_TORCH_THREADS", 0) or None,
            freeze_network=_flag(env, "CATALOG_AI_FREEZE_NETWORK", True),
            trusted_proxies=parse_networks(env, "CATALOG_AI_TRUSTED_PROXIES"),
        )

    @property
    def uses_broker(self) -> bool:
        return self.broker_url is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()

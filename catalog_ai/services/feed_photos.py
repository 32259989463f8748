"""Photos a shop feed names: local paths, ``file://`` and ``http(s)`` URLs, with limits.

A URL is fetched only when online (``CATALOG_AI_OFFLINE`` unset), streamed and stopped at the
byte limit (``CATALOG_AI_MAX_IMAGE_BYTES``) and at the time limit (``CATALOG_AI_FETCH_TIMEOUT``,
for the whole download, not only between two packets); a photo that cannot be had fails alone
with its reason. Local photos are handed on as paths: the photo checks read them under the same
limits as any upload.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from catalog_ai.errors import CatalogAIError
from catalog_ai.services.ingest import Upload

if TYPE_CHECKING:
    from catalog_ai.services.shopify_import import FeedProduct

__all__ = ["PhotoFetchError", "fetch_photos"]


class PhotoFetchError(CatalogAIError):
    """One photo of a feed cannot be had (offline, unreachable, too large, too slow)."""


def fetch_photos(
    product: FeedProduct,
    *,
    base_dir: Path,
    client: httpx.Client | None,
    max_bytes: int,
    timeout_s: float,
) -> tuple[list[Upload], list[str | None], list[tuple[str, str]]]:
    """(uploads, source URLs, failures) for the product's photos, in order; ``client=None``:
    offline, every http(s) photo fails with that reason."""
    uploads: list[Upload] = []
    urls: list[str | None] = []
    failures: list[tuple[str, str]] = []
    for photo in product.ordered_photos():
        try:
            upload, url = _photo(photo.src, base_dir, client, max_bytes, timeout_s)
        except PhotoFetchError as exc:
            failures.append((photo.src, str(exc)))
            continue
        uploads.append(upload)
        urls.append(url)
    return uploads, urls, failures


def _photo(
    src: str, base_dir: Path, client: httpx.Client | None, max_bytes: int, timeout_s: float
) -> tuple[Upload, str | None]:
    scheme = urlsplit(src).scheme.lower()
    if scheme in ("http", "https"):
        if client is None:
            raise PhotoFetchError(
                "not downloaded: offline (CATALOG_AI_OFFLINE or HF_HUB_OFFLINE is set); unset "
                "it to fetch http(s) photos, or give local paths in Image Src"
            )
        return (_file_name(src), _download(client, src, max_bytes, timeout_s)), src
    if scheme == "file":
        return Path(url2pathname(unquote(urlsplit(src).path))), None
    if scheme and len(scheme) > 1:  # "C:" of a Windows path is not a scheme
        raise PhotoFetchError(f"unsupported address {scheme}://; use http(s), file:// or a path")
    path = Path(src).expanduser()
    return (path if path.is_absolute() else base_dir / path), None


def _file_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or "photo"


def _download(client: httpx.Client, url: str, max_bytes: int, timeout_s: float) -> bytes:
    """The body, streamed: stopped at ``max_bytes`` and after ``timeout_s`` seconds in all."""
    deadline = time.monotonic() + timeout_s
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise PhotoFetchError(
                    f"HTTP {response.status_code} {response.reason_phrase}; check the URL"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PhotoFetchError(_too_large(int(declared), max_bytes))
            data = bytearray()
            # As the network gives it (no chunk size: one would wait for a full chunk, and a
            # photo dripping in would never reach the deadline check).
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise PhotoFetchError(_too_large(None, max_bytes))
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("deadline")
            return bytes(data)
    except httpx.TimeoutException:
        raise PhotoFetchError(
            f"no complete answer within {timeout_s:g} s (CATALOG_AI_FETCH_TIMEOUT); "
            "try again or raise the limit"
        ) from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise PhotoFetchError(f"cannot fetch: {reason}; check the URL and the network") from None


def _too_large(size: int | None, max_bytes: int) -> str:
    what = f"{size} bytes, over" if size is not None else "larger than"
    return (
        f"photo is {what} CATALOG_AI_MAX_IMAGE_BYTES={max_bytes}; use a smaller photo or "
        "raise the limit"
    )

"""Checked downloads, over real HTTP from a server in this process."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from catalog_ai.datasets import fetch
from catalog_ai.datasets.download import Artefact, download
from catalog_ai.errors import ConfigError, DatasetError
from catalog_ai.settings import Settings, reset_settings


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # never through a configured proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _zip_of_dataset(path: Path) -> bytes:
    with zipfile.ZipFile(path, "w") as zf:
        for rel in ("train/Fruit/Kiwi/Kiwi_001.jpg", "val/Fruit/Kiwi/Kiwi_002.jpg", "test.txt"):
            zf.writestr(f"GroceryStoreDataset-master/dataset/{rel}", b"x")
    return path.read_bytes()


def test_a_download_with_the_pinned_digest_is_kept(served, tmp_path):
    root, base = served
    data = b"some archive bytes" * 100_000  # several chunks of the streamed hash
    (root / "master.zip").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    target = tmp_path / "got.zip"
    assert download(Artefact("master.zip", f"{base}/master.zip", digest), target) == digest
    assert target.read_bytes() == data


def test_a_download_with_another_digest_is_removed_and_named(served, tmp_path):
    root, base = served
    (root / "master.zip").write_bytes(b"tampered")
    expected = "0" * 64
    target = tmp_path / "got.zip"
    artefact = Artefact(
        "master.zip", f"{base}/master.zip", expected, pin_setting="CATALOG_AI_GROCERY_STORE_SHA256"
    )
    with pytest.raises(DatasetError) as caught:
        download(artefact, target)
    message = str(caught.value)
    assert "\n" not in message
    assert "master.zip" in message and expected in message
    assert hashlib.sha256(b"tampered").hexdigest() in message  # the actual digest
    assert "download it again" in message and "CATALOG_AI_GROCERY_STORE_SHA256" in message
    assert not target.exists()


def test_an_unpinned_download_says_its_digest(served, tmp_path, caplog):
    root, base = served
    (root / "master.zip").write_bytes(b"bytes")
    with caplog.at_level(logging.WARNING, logger="catalog_ai.datasets.download"):
        download(Artefact("master.zip", f"{base}/master.zip", pin_setting="PIN"), tmp_path / "z")
    assert hashlib.sha256(b"bytes").hexdigest() in caplog.text and "set PIN" in caplog.text


def test_a_failed_download_leaves_no_file(served, tmp_path):
    _, base = served
    target = tmp_path / "got.zip"
    with pytest.raises(DatasetError, match=r"could not download missing\.zip .*--from DIR"):
        download(Artefact("missing.zip", f"{base}/missing.zip"), target)
    assert not target.exists()


def test_a_malformed_digest_is_refused():
    with pytest.raises(DatasetError, match="PIN='abc' is not a SHA-256"):
        Artefact("a.zip", "http://x", "abc", pin_setting="PIN")
    with pytest.raises(ConfigError, match="CATALOG_AI_GROCERY_STORE_SHA256='abc'"):
        Settings.from_env({"CATALOG_AI_GROCERY_STORE_SHA256": "abc"})


@pytest.fixture
def online(tmp_path, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    reset_settings()
    yield
    reset_settings()


def test_fetch_extracts_a_checked_archive(served, tmp_path, online):
    root, base = served
    data = _zip_of_dataset(root / "master.zip")
    source = Artefact("master.zip", f"{base}/master.zip", hashlib.sha256(data).hexdigest())
    dest = fetch.fetch_grocery_store(dest=tmp_path / "gs", source=source)
    assert (dest / "train" / "Fruit" / "Kiwi" / "Kiwi_001.jpg").is_file()
    assert not (dest / "test.txt").exists()


def test_fetch_refuses_an_archive_that_differs_from_the_pinned_digest(
    served, tmp_path, online, monkeypatch
):
    root, base = served
    _zip_of_dataset(root / "master.zip")
    monkeypatch.setenv("CATALOG_AI_GROCERY_STORE_SHA256", "AB" * 32)  # case does not matter
    reset_settings()
    pinned = fetch.grocery_store_artefact()
    assert pinned.sha256 == "ab" * 32 and pinned.url == fetch.GROCERY_STORE_URL
    source = Artefact(pinned.name, f"{base}/master.zip", pinned.sha256, pinned.pin_setting)
    with pytest.raises(DatasetError, match="expected " + "ab" * 32):
        fetch.fetch_grocery_store(dest=tmp_path / "gs", source=source)
    assert not (tmp_path / "gs").exists()

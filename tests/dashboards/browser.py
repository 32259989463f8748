"""Drive the dashboard in headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright's
Python client; never ``playwright install``): start it as a real server, sign in, open pages,
take screenshots.

Used by ``test_dashboard_browser.py``, and as a script to take the README screenshots from a
real catalog (use a copy: the dashboard changes nothing unless you act, but be safe)::

    cp -r .catalog_ai /tmp/catalog-copy
    .venv/bin/python tests/dashboards/browser.py --home /tmp/catalog-copy --out docs/screenshots \\
        [--similar-photo PHOTO] [--product ID]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "PAGES",
    "chromium",
    "copy_screenshots",
    "dashboard_server",
    "open_page",
    "screenshot_pages",
    "settle",
    "sign_in",
]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# (sidebar link title, screenshot file stem)
PAGES = [
    ("Review queue", "1-review-queue"),
    ("Catalog", "2-catalog"),
    ("Similar products", "3-similar-products"),
    ("Models", "4-models"),
    ("Upload", "5-upload"),
    ("Health", "6-health"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard_server(env: dict[str, str], *, timeout: float = 120.0) -> Iterator[str]:
    """``catalog-ai dashboard`` on a free port with ``env``; yields its URL, stops it after."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="dashboard-", suffix=".log", delete=False)
    command = [sys.executable, "-m", "catalog_ai", "dashboard", "--port", str(port), "--address", "127.0.0.1",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {proc.returncode}:\n{Path(log.name).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not answer within {timeout:.0f} s:\n"
                                   f"{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        Path(log.name).unlink(missing_ok=True)


@contextmanager
def chromium(*, width: int = 1440, height: int = 1000) -> Iterator[object]:
    """A page in headless Chromium (``/usr/bin/chromium``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def settle(page, *, pause: float = 0.4) -> None:
    """Wait until the script run triggered last has finished (Streamlit marks the app root)."""
    time.sleep(pause)  # the run a click triggers may not have started yet
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.wait_for_load_state("networkidle")


def sign_in(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill(user)
    password_field = page.get_by_role("textbox", name="Password")
    password_field.fill(password)
    password_field.press("Enter")  # Enter submits the form
    page.get_by_text(f"Signed in as {user}").wait_for()
    settle(page)


def open_page(page, title: str) -> None:
    """Open a page through the sidebar (a client-side switch: the session, and sign-in, stay)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()
    settle(page)


def screenshot_pages(page, out_dir: Path, *, before=None) -> list[Path]:
    """A full-page screenshot of every page, in sidebar order; ``before(page, title)`` may act
    on a page (search, open a product) before its screenshot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    for title, stem in PAGES:
        open_page(page, title)
        if before is not None:
            before(page, title)
            settle(page)
        path = out_dir / f"{stem}.png"
        _screenshot_whole_app(page, path)
        shots.append(path)
    return shots


def _screenshot_whole_app(page, path: Path) -> None:
    """Streamlit scrolls inside its main container, so a "full page" shot is only the window:
    grow the window to the content's height for the shot, then put it back."""
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], section.main, "
        "[data-testid=stAppViewContainer]')].map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], int(height) + 40), 6000)})
    settle(page, pause=0.8)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def copy_screenshots(shots: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in shots:
        shutil.copy2(path, dest / path.name)


def _real_catalog_actions(similar_photo: Path | None, product: int | None):
    def before(page, title: str) -> None:
        if title == "Catalog" and product is not None:
            page.get_by_label("Product id").fill(str(product))
            page.get_by_label("Product id").press("Enter")
        if title == "Similar products" and similar_photo is not None:
            page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(similar_photo))
            page.get_by_text("Products that look like").wait_for()

    return before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of every dashboard page, from a catalog.")
    parser.add_argument("--home", type=Path, required=True, help="CATALOG_AI_HOME of the catalog (use a copy)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--similar-photo", type=Path, help="a photo to search with on the similar-products page")
    parser.add_argument("--product", type=int, help="a product to open on the catalog page")
    args = parser.parse_args(argv)
    from argon2 import PasswordHasher, profiles

    from catalog_ai.auth import hash_password

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_AI_")}
    env.update(CATALOG_AI_HOME=str(args.home.resolve()), CATALOG_AI_OFFLINE="1",
               CATALOG_AI_USERS=f"alice:{hash_password('screenshots', hasher=cheap)}")
    with dashboard_server(env) as url, chromium() as page:
        sign_in(page, url, "alice", "screenshots")
        shots = screenshot_pages(page, args.out, before=_real_catalog_actions(args.similar_photo, args.product))
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())

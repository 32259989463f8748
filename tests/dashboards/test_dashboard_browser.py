"""End to end: the dashboard as a real server, driven in headless Chromium.

Sign in, accept a suggestion with the keyboard, correct another with the tree picker, bulk
accept; then the database rows are checked, and every page is saved as a screenshot under
``test-artifacts/screenshots/`` (``CATALOG_AI_UPDATE_SCREENSHOTS=1`` also copies them to
``docs/screenshots/``; the README's set comes from the main job's catalog, see browser.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog_ai.db import Product, Review, unit_of_work
from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts" / "screenshots"
_IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _need_browser() -> None:
    problem = None
    from browser import CHROMIUM

    if not CHROMIUM.is_file():
        problem = (f"{CHROMIUM} is missing: install Debian's chromium "
                   "(apt-get install -y --no-install-recommends chromium; `make test` runs scripts/browser.sh)")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is missing: pip install -e '.[test]'"
    if problem:
        if _IN_CI:
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)


def _verdicts(pid: int) -> list[tuple[str, str, str | None]]:
    with unit_of_work() as s:
        p = s.get(Product, pid)
        category = p.category.path if p.category else None
        return [(r.reviewer, str(r.action), category) for r in s.scalars(select(Review).where(Review.product_id == pid))]


def test_review_flow_in_chromium(catalog):
    _need_browser()
    from browser import chromium, copy_screenshots, dashboard_server, open_page, screenshot_pages, settle, sign_in

    env = dict(os.environ)
    with dashboard_server(env) as url, chromium() as page:
        sign_in(page, url, "alice", "alice-secret")
        page.get_by_role("heading", name="Review queue").wait_for()
        assert page.get_by_role("heading", name="q-none").is_visible()  # least confident first
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

        # Keyboard: S skips the abstained card, A accepts the next one.
        page.get_by_role("heading", name="Review queue").click()  # focus the page, not a field
        page.keyboard.press("s")
        page.get_by_role("heading", name="q-red").wait_for()
        settle(page)
        page.screenshot(path=str(ARTIFACTS / "review-card.png"), full_page=True)
        page.keyboard.press("a")
        page.get_by_text("Accepted 'q-red' as Fruit > Apple > Red.").wait_for()
        settle(page)

        # The tree picker: type to search, Enter picks, then move.
        page.get_by_role("heading", name="q-odd").wait_for()
        picker = page.get_by_label("Another category (type to search the tree)")
        picker.click()
        page.keyboard.type("Carrot")
        page.keyboard.press("Enter")
        settle(page)
        page.get_by_role("button", name="Move to this category").click()
        page.get_by_text("Moved 'q-odd' to Veg > Carrot.").wait_for()
        settle(page)

        # Bulk accept: the preview shows how many and the expected errors before confirming.
        page.get_by_text("Bulk accept above a confidence").click()
        page.get_by_text("suggestions in this view reach 0.90").wait_for()
        page.get_by_role("button", name="Accept these 2 suggestions").click()
        page.get_by_text("Accepted 2 suggestions at or above 0.90.").wait_for()
        settle(page)

        open_page(page, "Catalog")
        page.get_by_label("Product id").fill(str(catalog["q-odd"]))
        page.get_by_label("Product id").press("Enter")
        page.get_by_text("Reviews").wait_for()
        settle(page)
        shots = screenshot_pages(page, ARTIFACTS)

    assert _verdicts(catalog["q-red"]) == [("alice", "accept", "Fruit > Apple > Red")]
    assert _verdicts(catalog["q-odd"]) == [("alice", "correct", "Veg > Carrot")]
    assert _verdicts(catalog["q-green"]) == [("alice", "accept", "Fruit > Apple > Green")]
    assert _verdicts(catalog["q-carrot"]) == [("alice", "accept", "Veg > Carrot")]
    assert _verdicts(catalog["q-banana"]) == []  # 0.80: below the bulk threshold
    assert [p.name for p in shots] == ["1-review-queue.png", "2-catalog.png", "3-similar-products.png",
                                       "4-models.png", "5-upload.png", "6-health.png"]
    assert all(p.stat().st_size > 10_000 for p in shots)
    if os.environ.get("CATALOG_AI_UPDATE_SCREENSHOTS") == "1":
        copy_screenshots(shots, REPO / "docs" / "screenshots")


def test_a_multi_photo_product_shows_every_photo_in_chromium(catalog):
    _need_browser()
    from browser import chromium, dashboard_server, settle, sign_in
    from catalog_builder import add_photos

    add_photos(catalog["q-none"], 2)  # the first card: 3 photos now
    with dashboard_server(dict(os.environ)) as url, chromium() as page:
        sign_in(page, url, "alice", "alice-secret")
        page.get_by_role("heading", name="q-none").wait_for()
        page.get_by_text("3 photos; the suggestion uses all of them").wait_for()
        settle(page)
        images = page.locator('[data-testid="stMain"] img')
        assert images.count() == 3
        # Each one really loaded in the browser (not a broken-image placeholder).
        assert all(images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(3))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-card-photos.png"), full_page=True)


def test_browser_is_there_under_ci():
    """Under CI=true a missing Chromium fails the run instead of skipping it."""
    if not _IN_CI:
        pytest.skip("only checked under CI=true")
    _need_browser()
    assert Path("/usr/bin/chromium").is_file()


def test_markdown_in_a_title_makes_the_browser_fetch_nothing(catalog):
    """A title ``![x](http://127.0.0.1:PORT/p.png)`` is shown as that text: the browser never
    asks the address (a local server counts the requests) and the page has no such image."""
    _need_browser()
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from browser import chromium, dashboard_server, open_page, settle, sign_in

    hits: list[str] = []

    class Counter(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    title = f"![x]({base}/p.png) <img src={base}/q.png> [link]({base}/r)"
    with unit_of_work() as s:
        s.get(Product, catalog["q-none"]).title = title  # the least confident: the first card
    try:
        with dashboard_server(dict(os.environ)) as url, chromium() as page:
            sign_in(page, url, "alice", "alice-secret")
            heading = page.get_by_role("heading", name="Review queue")
            heading.wait_for()
            page.get_by_text(title, exact=True).first.wait_for()  # the title, as text
            assert page.locator(f'img[src^="{base}"]').count() == 0
            page.get_by_role("button", name="Reject").click()
            page.get_by_text(f"Rejected {title!r}.").wait_for()  # the message quotes it as text
            settle(page)
            open_page(page, "Catalog")
            page.get_by_label("Product id").fill(str(catalog["q-none"]))
            page.get_by_label("Product id").press("Enter")
            page.get_by_text("Reviews").wait_for()
            settle(page)
            assert page.locator(f'img[src^="{base}"]').count() == 0
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []

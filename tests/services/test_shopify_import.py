"""A Shopify product export into the catalog (services.shopify_import, jobs.shopify_import):
several photos per handle, labels from Product Category, re-runs, bad photos, URL photos."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog_ai.db import Category, LabelSource, Product, ProductImage, ProductStatus, unit_of_work
from catalog_ai.jobs.shopify_import import import_shopify_csv
from catalog_ai.services.shopify_import import (
    ShopifyImportError,
    html_to_text,
    read_shopify_csv,
)
from catalog_ai.settings import reset_settings
from services.feeds_support import (
    ACTIVEWEAR,
    CAT_TOYS,
    G,
    Recorder,
    photo,
    photo_server,
    row,
    shop_export,
    shopify_tree,
    write_csv,
)


def _products() -> dict[str, Product]:
    with unit_of_work() as session:
        products = session.scalars(select(Product)).all()
        for p in products:
            _ = [(i.position, i.source_url, i.content_hash) for i in p.images]
            _ = p.category.path if p.category else None
        session.expunge_all()
    return {p.external_id: p for p in products if p.external_id}


def _count(model) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_several_photos_per_handle_make_one_multi_photo_product(catalog, tmp_path: Path) -> None:
    shopify_tree()
    export = shop_export(tmp_path / "shop")
    recorder = Recorder()
    summary = import_shopify_csv(export, dispatcher=recorder)

    products = _products()
    assert sorted(products) == ["classic-tee", "mouse-toy", "warm-hoodie"]
    tee = products["classic-tee"]
    assert len(tee.images) == 3  # the variant row added no photo
    by_position = sorted(tee.images, key=lambda i: i.position)
    stored = {i.content_hash for i in by_position}
    assert len(stored) == 3
    # Image Position decides the order, not the rows' order (tee-2 was the first row).
    first = (tmp_path / "shop/images/tee-1.png").read_bytes()
    from catalog_ai.photos.store import content_hash

    assert by_position[0].content_hash == content_hash(first)
    assert [i.source_url for i in by_position] == [None, None, None]  # local photos
    assert tee.title == "Classic Tee"
    assert tee.description == "Soft cotton tee & more.\nMachine wash"
    assert tee.attributes == {
        "source": "shopify-csv",
        "handle": "classic-tee",
        "vendor": "Acme",
        "type": "Shirts",
        "tags": ["cotton", "summer"],
        "product_category": ACTIVEWEAR,
    }
    assert len(products["mouse-toy"].images) == 2
    assert summary.rows == 8 and len(summary.created) == 3 and not summary.failed


def test_a_filled_product_category_is_a_persons_label(catalog, tmp_path: Path) -> None:
    shopify_tree()
    recorder = Recorder()
    import_shopify_csv(shop_export(tmp_path / "shop"), dispatcher=recorder)
    products = _products()
    tee, hoodie, toy = products["classic-tee"], products["warm-hoodie"], products["mouse-toy"]
    assert tee.status == ProductStatus.ACCEPTED and tee.label_source == LabelSource.IMPORT
    assert tee.category is not None and tee.category.path == ACTIVEWEAR
    assert tee.labelled_by_person
    # A GID in the cell is matched to the category that holds it.
    assert hoodie.category is not None and hoodie.category.external_id == G + "aa-1-13-13"
    assert hoodie.category.path == "Apparel & Accessories > Clothing > Clothing Tops > Hoodies"
    # Only the unlabelled product is sent to be classified.
    assert toy.status == ProductStatus.PENDING and toy.label_source is None
    assert recorder.classified == [toy.id]


def test_a_rerun_adds_nothing(catalog, tmp_path: Path) -> None:
    shopify_tree()
    export = shop_export(tmp_path / "shop")
    import_shopify_csv(export, dispatcher=Recorder())
    counts = (_count(Product), _count(ProductImage))
    recorder = Recorder()
    again = import_shopify_csv(export, dispatcher=recorder)
    assert (_count(Product), _count(ProductImage)) == counts == (3, 6)
    assert not again.created and len(again.existing) == 3 and not again.failed
    assert recorder.classified == []
    assert again.problems() == []  # the missing photo is not reported again for a known product


def test_a_bad_photo_fails_alone(catalog, tmp_path: Path) -> None:
    shopify_tree()
    summary = import_shopify_csv(shop_export(tmp_path / "shop"), dispatcher=Recorder())
    hoodie = _products()["warm-hoodie"]
    assert len(hoodie.images) == 1 and hoodie.status == ProductStatus.ACCEPTED
    [problem] = summary.problems()
    assert problem.startswith("warm-hoodie (line 8): photo ")
    assert "missing.png" in problem
    # A product none of whose photos can be used fails alone: a failed product with the reason.
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/not-a-photo.png").write_text("hello")
    photo(tmp_path / "bad/ok.png", 20)
    export = write_csv(
        tmp_path / "bad/export.csv",
        [row("broken", "not-a-photo.png", "1", Title="Broken"), row("fine", "ok.png", "1")],
    )
    summary = import_shopify_csv(export, dispatcher=Recorder())
    [failed] = summary.failed
    assert failed.handle == "broken" and "not-a-photo.png" in (failed.error or "")
    assert [o.handle for o in summary.created] == ["fine"]
    assert _products()["broken"].status == ProductStatus.FAILED
    # Run again as it is: still failed, and said so; with the photo fixed, the product is retried.
    again = import_shopify_csv(export, dispatcher=Recorder())
    assert [o.handle for o in again.failed] == ["broken"] and [
        o.handle for o in again.existing
    ] == ["fine"]
    photo(tmp_path / "bad/not-a-photo.png", 21)
    recorder = Recorder()
    fixed = import_shopify_csv(export, dispatcher=recorder)
    assert not fixed.failed
    broken = _products()["broken"]
    assert broken.status == ProductStatus.PENDING and len(broken.images) == 1
    assert recorder.classified == [broken.id]


def test_an_unknown_category_fails_that_product_with_the_fix(catalog, tmp_path: Path) -> None:
    shopify_tree()
    photo(tmp_path / "a.png", 1)
    photo(tmp_path / "b.png", 2)
    export = write_csv(
        tmp_path / "export.csv",
        [
            row(
                "odd", "a.png", "1", Product_Category="Apparel & Accessories > Clothing > Activwear"
            ),
            row("toy", "b.png", "1", Product_Category=CAT_TOYS),
        ],
    )
    summary = import_shopify_csv(export, dispatcher=Recorder())
    [failed] = summary.failed
    assert failed.handle == "odd" and failed.product_id is None
    assert "not in the catalog's tree; import the shop's taxonomy first" in (failed.error or "")
    assert "did you mean 'Apparel & Accessories > Clothing > Activewear'" in (failed.error or "")
    assert sorted(_products()) == ["toy"]
    # Once the category exists, the re-run labels it (nothing half-made stood in its way).
    with unit_of_work() as session:
        cid = session.scalar(select(Category.id).where(Category.path == ACTIVEWEAR))
    fixed = write_csv(
        tmp_path / "export.csv", [row("odd", "a.png", "1", Product_Category=ACTIVEWEAR)]
    )
    assert not import_shopify_csv(fixed, dispatcher=Recorder()).failed
    assert _products()["odd"].category_id == cid


def test_url_photos_are_refused_offline_with_the_reason(catalog, tmp_path: Path) -> None:
    shopify_tree()
    photo(tmp_path / "local.png", 3)
    export = write_csv(
        tmp_path / "export.csv",
        [
            row("mixed", "https://cdn.shopify.example/p/1.png", "1", Title="Mixed"),
            row("mixed", "local.png", "2"),
            row("remote", "https://cdn.shopify.example/p/2.png", "1"),
        ],
    )
    summary = import_shopify_csv(export, dispatcher=Recorder())  # catalog_home sets OFFLINE=1
    mixed = _products()["mixed"]
    assert len(mixed.images) == 1  # the local photo; the URL failed alone
    assert any("offline (CATALOG_AI_OFFLINE" in line for line in summary.problems())
    [failed] = summary.failed
    assert failed.handle == "remote" and "no photo could be had" in (failed.error or "")
    assert "remote" not in _products()  # nothing to store: the re-run online will fetch it


def test_url_photos_are_fetched_online_within_the_limits(
    catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "0")
    monkeypatch.setenv("CATALOG_AI_MAX_IMAGE_BYTES", "20000")
    reset_settings()
    shopify_tree()
    served = tmp_path / "cdn"
    photo(served / "one.png", 4)
    photo(served / "two.png", 5)
    (served / "big.png").write_bytes(b"\x89PNG" + b"\0" * 30000)
    with photo_server(served) as base:
        export = write_csv(
            tmp_path / "export.csv",
            [
                row("net", f"{base}/one.png", "1", Title="Net", Product_Category=CAT_TOYS),
                row("net", f"{base}/two.png", "2"),
                row("net", f"{base}/nowhere.png", "3"),
                row("net", f"{base}/big.png", "4"),
                row("gone", "http://127.0.0.1:9/x.png", "1"),  # the discard port: refused
            ],
        )
        summary = import_shopify_csv(export, dispatcher=Recorder())
    net = _products()["net"]
    assert sorted(i.source_url for i in net.images) == [f"{base}/one.png", f"{base}/two.png"]
    assert net.status == ProductStatus.ACCEPTED
    problems = "\n".join(summary.problems())
    assert "nowhere.png: HTTP 404" in problems
    assert "big.png: photo is 30004 bytes, over CATALOG_AI_MAX_IMAGE_BYTES=20000" in problems
    [failed] = summary.failed
    assert failed.handle == "gone" and "cannot fetch" in (failed.error or "")


def test_not_a_shopify_export_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(ShopifyImportError, match=r"no 'Handle' column; expected a Shopify"):
        read_shopify_csv(path)


def test_html_to_text() -> None:
    html = "<h2>Fit</h2><p>Relaxed&nbsp;fit<br>100% cotton</p><script>x()</script><p></p>"
    assert html_to_text(html) == "Fit\nRelaxed fit\n100% cotton"
    assert html_to_text("") == ""


def test_header_names_are_matched_without_case_and_the_newer_names(tmp_path: Path) -> None:
    path = tmp_path / "new_template.csv"
    path.write_text(
        "Title,URL handle,Description,Product category,Product image URL,Image position\n"
        "Tee,tee,<p>Hi</p>,A > B,https://cdn.example/1.png,1\n"
        ",tee,,,https://cdn.example/2.png,2\n",
        encoding="utf-8",
    )
    [product] = read_shopify_csv(path).products
    assert (product.handle, product.title, product.body_html, product.category) == (
        "tee",
        "Tee",
        "<p>Hi</p>",
        "A > B",
    )
    assert [p.src for p in product.ordered_photos()] == [
        "https://cdn.example/1.png",
        "https://cdn.example/2.png",
    ]


def test_a_photo_that_drips_in_is_stopped_at_the_time_limit(tmp_path: Path) -> None:
    """Each packet comes well within the per-read timeout; the whole download does not."""
    import http.server
    import threading
    import time

    import httpx

    from catalog_ai.services.feed_photos import fetch_photos
    from catalog_ai.services.shopify_import import FeedPhoto, FeedProduct

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slow.png"
    product = FeedProduct("slow", 2, photos=[FeedPhoto(url, 1, 2)])
    try:
        with httpx.Client(timeout=1.0) as client:
            start = time.monotonic()
            uploads, _, failures = fetch_photos(
                product, base_dir=tmp_path, client=client, max_bytes=10_000, timeout_s=0.5
            )
            elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert uploads == []
    [(src, why)] = failures
    assert src == url and why.startswith("no complete answer within 0.5 s (CATALOG_AI_FETCH_")
    assert elapsed < 2.5  # not the 5 s the whole body would take


def test_a_photo_without_a_length_is_stopped_at_the_byte_limit(tmp_path: Path) -> None:
    import http.server
    import threading

    import httpx

    from catalog_ai.services.feed_photos import fetch_photos
    from catalog_ai.services.shopify_import import FeedPhoto, FeedProduct

    sent: list[int] = []

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the server closes
            try:
                # 100 MB: more than loopback's socket buffers can hold (a few MB), so what was
                # sent when the client hung up shows how much of it the client read.
                for _ in range(25_000):
                    self.wfile.write(b"\0" * 4096)
                    sent.append(4096)
            except OSError:
                pass  # the client stopped reading: what the limit is for

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/big.png"
    product = FeedProduct("big", 2, photos=[FeedPhoto(url, 1, 2)])
    try:
        with httpx.Client(timeout=5.0) as client:
            uploads, _, failures = fetch_photos(
                product, base_dir=tmp_path, client=client, max_bytes=50_000, timeout_s=5
            )
    finally:
        server.shutdown()
        server.server_close()
    assert uploads == []
    [(src, why)] = failures
    assert src == url and why.startswith("photo is larger than CATALOG_AI_MAX_IMAGE_BYTES=50000;")
    assert sum(sent) < 4096 * 25_000  # it stopped reading long before the end

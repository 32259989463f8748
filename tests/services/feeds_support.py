"""Helpers of the feed tests: a Shopify product export with photos made here, a recording
dispatcher, the Shopify taxonomy excerpt in the catalog."""

from __future__ import annotations

import csv
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from worker.support import png_bytes

from catalog_ai.db import unit_of_work
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.taxonomy import Taxonomy, load_taxonomy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHOPIFY_TAXONOMY = FIXTURES / "shopify_taxonomy_excerpt.txt"
G = "gid://shopify/TaxonomyCategory/"
HEADER = [
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Variant SKU",
    "Image Src",
    "Image Position",
    "Image Alt Text",
]
ACTIVEWEAR = "Apparel & Accessories > Clothing > Activewear"
CAT_TOYS = "Animals & Pet Supplies > Pet Supplies > Cat Supplies > Cat Toys"


class Recorder:
    """A dispatcher that records what it was asked."""

    def __init__(self) -> None:
        self.classified: list[int] = []

    def classify(self, product_ids) -> None:
        self.classified.extend(product_ids)

    def reclassify(self, version: str) -> None:
        raise AssertionError("not expected")

    def embed_catalogue(self, version: str) -> None:
        raise AssertionError("not expected")

    def deliver(self, delivery_ids) -> None:
        pass  # webhooks: the sweep sends them


def shopify_tree() -> Taxonomy:
    tree = load_taxonomy(SHOPIFY_TAXONOMY)
    with unit_of_work() as session:
        sync_taxonomy(session, tree, source=f"import:{SHOPIFY_TAXONOMY}")
    return tree


def photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (40 * seed % 256, 90, 200 - 10 * seed % 200)
    path.write_bytes(png_bytes(colour, np.random.default_rng(seed)))
    return path


def row(handle: str, src: str = "", position: str = "", **fields: str) -> dict[str, str]:
    cells = dict.fromkeys(HEADER, "")
    cells.update({"Handle": handle, "Image Src": src, "Image Position": position})
    for key, value in fields.items():
        cells[key.replace("_", " ")] = value
    return cells


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def shop_export(folder: Path) -> Path:
    """Three handles as Shopify exports them: a labelled tee with three photos (one on a variant
    row, positions out of order), an unlabelled toy with two, a hoodie whose second photo is
    missing."""
    for i, name in enumerate(["tee-1.png", "tee-2.png", "tee-3.png", "toy-1.png", "toy-2.png"]):
        photo(folder / "images" / name, i + 1)
    photo(folder / "images" / "hoodie-1.png", 9)
    body = "<p>Soft <strong>cotton</strong> tee &amp; more.</p><ul><li>Machine wash</li></ul>"
    rows = [
        row(
            "classic-tee",
            "images/tee-2.png",
            "2",
            Title="Classic Tee",
            Vendor="Acme",
            Product_Category=ACTIVEWEAR,
            Type="Shirts",
            Tags="cotton, summer",
        ),
        row("classic-tee", "images/tee-1.png", "1"),
        row("classic-tee", "", "", Variant_SKU="TEE-L"),  # a variant row without a photo
        row("classic-tee", "images/tee-3.png", "3"),
        row("mouse-toy", "images/toy-1.png", "1", Title="Mouse Toy", Vendor="Purr"),
        row("mouse-toy", "images/toy-2.png", "2"),
        row(
            "warm-hoodie",
            "images/hoodie-1.png",
            "1",
            Title="Warm Hoodie",
            Product_Category=G + "aa-1-13-13",  # a GID instead of the path
        ),
        row("warm-hoodie", "images/missing.png", "2"),
    ]
    rows[0]["Body (HTML)"] = body
    return write_csv(folder / "products_export.csv", rows)


@contextmanager
def photo_server(folder: Path) -> Iterator[str]:
    """A loopback HTTP server of ``folder`` (its base URL), stopped afterwards."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

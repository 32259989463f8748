"""A Shopify product export (CSV) into the catalog: one product per handle, its photos, its label.

Shopify's product CSV has a row per variant and per extra photo: the first row of a handle holds
the product fields (``Title``, ``Body (HTML)``, ``Vendor``, ``Product Category``, ``Type``,
``Tags``), later rows of it may hold only ``Handle``, ``Image Src`` and ``Image Position``. What
this module decides:

- **A product is its handle**: ``external_id`` = ``Handle``, so running the same export again
  finds every product and adds nothing (:func:`~catalog_ai.services.products.create_product` is
  idempotent by external id, and a photo's bytes are one product's).
- **A filled ``Product Category`` is a person's label** (``LabelSource.IMPORT``): the product is
  accepted in that category and never classified. Shopify writes the full path (``Apparel &
  Accessories > Clothing``); a GID (``gid://shopify/TaxonomyCategory/aa-1``) is matched to the
  category holding it as external id. **An unknown category fails that product alone**, with the
  fix: created unlabelled instead, the model's guess would stand for the person's label, and a
  re-run after importing the taxonomy could not correct it (the handle exists by then).
- **Photos** are local paths (relative to the CSV's folder, or ``file://``) or ``http(s)`` URLs,
  fetched only when online (``CATALOG_AI_OFFLINE`` unset), streamed up to
  ``CATALOG_AI_MAX_IMAGE_BYTES`` and ``CATALOG_AI_FETCH_TIMEOUT`` seconds; a photo that cannot be
  had fails alone with its reason, the product keeps the others.
- ``description`` is ``Body (HTML)`` as plain text (the shop keeps the HTML; the catalog reads
  words); ``attributes`` keep ``handle``, ``vendor``, ``type``, ``tags`` and the raw category.

Reading the file and fetching photos touch no database; :func:`import_product` takes a session
and never commits (the job :mod:`catalog_ai.jobs.shopify_import` commits one product at a time).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import Category, LabelSource
from catalog_ai.dispatch import Dispatcher
from catalog_ai.errors import CatalogAIError, TaxonomyError
from catalog_ai.photos.store import MediaStore
from catalog_ai.services.ingest import Upload
from catalog_ai.services.products import ProductError, create_product
from catalog_ai.taxonomy.names import SEPARATOR, parse_path
from catalog_ai.taxonomy.shopify import is_shopify_gid
from catalog_ai.taxonomy.tree import suggest

__all__ = [
    "CategoryLookup",
    "FeedPhoto",
    "FeedProduct",
    "ProductOutcome",
    "ShopifyFeed",
    "ShopifyImportError",
    "html_to_text",
    "import_product",
    "read_shopify_csv",
]

REQUIRED = ("Handle",)
COLUMNS = (
    *("Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags"),
    *("Image Src", "Image Position"),
)
# Header names are matched without regard to case; Shopify's newer product template names some
# columns differently (read the same way).
_ALIASES = {c.lower(): c for c in COLUMNS} | {
    "url handle": "Handle",
    "description": "Body (HTML)",
    "product image url": "Image Src",
}


class ShopifyImportError(CatalogAIError):
    """The file itself cannot be read as a Shopify product export."""


@dataclass(frozen=True)
class FeedPhoto:
    src: str
    position: int | None
    line: int  # the CSV line of its row


@dataclass
class FeedProduct:
    handle: str
    line: int  # its first row
    title: str = ""
    body_html: str = ""
    vendor: str = ""
    category: str = ""  # Product Category as written: a path or a GID; "" when unlabelled
    type: str = ""
    tags: list[str] = field(default_factory=list)
    photos: list[FeedPhoto] = field(default_factory=list)

    def ordered_photos(self) -> list[FeedPhoto]:
        """By Image Position, rows without one after them in file order; each source once."""
        seen: set[str] = set()
        out = []
        for photo in sorted(self.photos, key=lambda p: (p.position is None, p.position or 0)):
            if photo.src not in seen:
                seen.add(photo.src)
                out.append(photo)
        return out


@dataclass
class ShopifyFeed:
    products: list[FeedProduct]
    rows: int  # data rows read


@dataclass
class ProductOutcome:
    handle: str
    line: int
    product_id: int | None = None
    created: bool = False
    status: str | None = None
    error: str | None = None  # why the product failed (None: imported or already there)
    photo_errors: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)


# --- the file ----------------------------------------------------------------------------------


def read_shopify_csv(path: str | Path) -> ShopifyFeed:
    """The products of a Shopify export, in file order (one per handle, photos gathered)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ShopifyImportError(f"{path}: cannot read file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ShopifyImportError(
            f"{path}: not UTF-8 text; export it again from Shopify (its exports are UTF-8)"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [_ALIASES.get(n.strip().lower(), n.strip()) for n in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ShopifyImportError(
            f"{path}: no {' and no '.join(repr(m) for m in missing)} column; expected a Shopify "
            "product export (Products > Export in the Shopify admin), with the header "
            "'Handle,Title,Body (HTML),...,Image Src,Image Position'"
        )
    reader.fieldnames = header
    products: dict[str, FeedProduct] = {}
    rows = 0
    try:
        for row in reader:
            rows += 1
            _add_row(products, row, reader.line_num)
    except csv.Error as exc:
        raise ShopifyImportError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    return ShopifyFeed(list(products.values()), rows)


def _add_row(products: dict[str, FeedProduct], row: dict[str, Any], line: int) -> None:
    def cell(name: str) -> str:
        value = row.get(name)
        return value.strip() if isinstance(value, str) else ""

    handle = cell("Handle")
    if not handle:
        return  # a blank row (Shopify writes none; spreadsheets do)
    product = products.get(handle)
    if product is None:
        product = products[handle] = FeedProduct(
            handle=handle,
            line=line,
            title=cell("Title"),
            body_html=row.get("Body (HTML)") or "",
            vendor=cell("Vendor"),
            category=cell("Product Category"),
            type=cell("Type"),
            tags=[t.strip() for t in cell("Tags").split(",") if t.strip()],
        )
    src = cell("Image Src")
    if src:
        position = cell("Image Position")
        product.photos.append(FeedPhoto(src, int(position) if position.isdigit() else None, line))


class _Text(HTMLParser):
    _BLOCKS = frozenset({"p", "br", "div", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(body: str) -> str:
    """``Body (HTML)`` as plain text: tags dropped, entities decoded, one line per block."""
    parser = _Text()
    parser.feed(body)
    parser.close()
    lines = (" ".join(line.split()) for line in html.unescape("".join(parser.parts)).split("\n"))
    return "\n".join(line for line in lines if line)


# --- categories and products -------------------------------------------------------------------


class CategoryLookup:
    """The catalog's categories by path and by external id (a Shopify GID, a Google id)."""

    def __init__(self, rows: list[tuple[int, str, str | None]]) -> None:
        self._by_path = {path: cid for cid, path, _ in rows}
        self._by_external = {ext: cid for cid, _, ext in rows if ext}

    @classmethod
    def load(cls, session: Session) -> CategoryLookup:
        rows = session.execute(select(Category.id, Category.path, Category.external_id)).all()
        return cls([(r[0], r[1], r[2]) for r in rows])

    def resolve(self, value: str) -> int:
        """The category id of a ``Product Category`` cell; raises with the fix when unknown."""
        if is_shopify_gid(value) or value.isdigit():
            found = self._by_external.get(value)
            if found is None:
                raise ProductError(
                    f"Product Category {value!r} is no category's id in the catalog; import "
                    "that taxonomy first (catalog-ai taxonomy import categories.txt)"
                )
            return found
        try:
            text = SEPARATOR.join(parse_path(value))
        except TaxonomyError as exc:
            raise ProductError(f"Product Category {value!r}: {exc.reason}") from None
        found = self._by_path.get(text)
        if found is None:
            raise ProductError(
                f"Product Category {value!r} is not in the catalog's tree; import the shop's "
                "taxonomy first (catalog-ai taxonomy import categories.txt) or fix the cell"
                + suggest(text, list(self._by_path))
            )
        return found


def import_product(
    session: Session,
    product: FeedProduct,
    photos: tuple[list[Upload], list[str | None], list[tuple[str, str]]],
    *,
    categories: CategoryLookup,
    media: MediaStore,
    dispatcher: Dispatcher | None,
) -> ProductOutcome:
    """One feed product into the catalog (``photos`` from :func:`fetch_photos`); never commits."""
    uploads, urls, failures = photos
    outcome = ProductOutcome(product.handle, product.line, photo_errors=list(failures))
    try:
        category_id = categories.resolve(product.category) if product.category else None
    except ProductError as exc:
        outcome.error = str(exc)
        return outcome
    if not uploads:
        outcome.error = (
            "no photo could be had: " + "; ".join(f"{src}: {why}" for src, why in failures)
            if failures
            else "no Image Src in any row of this handle; add the photo's URL or path"
        )
        return outcome
    attributes: dict[str, Any] = {"source": "shopify-csv", "handle": product.handle}
    for key, value in (("vendor", product.vendor), ("type", product.type)):
        if value:
            attributes[key] = value
    if product.tags:
        attributes["tags"] = product.tags
    if product.category:
        attributes["product_category"] = product.category
    try:
        made = create_product(
            session,
            uploads,
            media=media,
            dispatcher=dispatcher,
            title=product.title or product.handle,
            description=html_to_text(product.body_html),
            external_id=product.handle,
            attributes=attributes,
            category_id=category_id,
            label_source=LabelSource.IMPORT if category_id is not None else None,
            source_urls=urls,
        )
    except ProductError as exc:
        outcome.error = str(exc)
        return outcome
    outcome.product_id, outcome.created, outcome.status = made.product_id, made.created, made.status
    outcome.photo_errors += [(p.name, p.error) for p in made.photos if p.error and made.created]
    if made.status == "failed":  # new, or failed before and its photos still do not work
        outcome.error = "no usable photo: " + "; ".join(
            f"{p.name}: {p.error}" for p in made.photos if p.error
        )
    return outcome


def iter_errors(outcome: ProductOutcome) -> Iterator[str]:
    """One line per problem of an outcome, for a report."""
    if outcome.error:
        yield f"{outcome.handle} (line {outcome.line}): {outcome.error}"
    elif outcome.photo_errors:
        for src, why in outcome.photo_errors:
            yield f"{outcome.handle} (line {outcome.line}): photo {src}: {why}"

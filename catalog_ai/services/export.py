"""Decisions out of the catalog: ``csv``, ``jsonl``, ``shopify-csv`` and ``google-merchant``.

Rows are read in keyset pages of products (``id > last``), each page's newest suggestion, newest
review and categories fetched with it, and written as they come: an export never holds the
catalog in memory. What each row says:

- **decision**: ``final`` (the product's accepted category, a person's or a confident model's),
  ``suggestion`` (no final category yet: the newest suggestion, marked so, with its confidence),
  ``rejected`` (a reviewer said it belongs nowhere) or ``none`` (not classified yet).
  ``--only-final`` keeps only ``final`` rows.
- **category_external_id**: the category's own id in its taxonomy: the Google product category
  number when the tree is Google's, the Shopify GID when it is Shopify's; empty for a category
  of a home-made tree (its id was its path).
- **confidence**: the model's, when the exported category is the model's (an auto-accepted or a
  suggested one); empty for a person's label, which no model's figure describes.
- **label_source**, **reviewer** (the newest review's) and **model_version** (the newest
  suggestion's) are the provenance.

``shopify-csv`` and ``google-merchant`` go straight into a shop or Merchant Center, which have
no column to say "this is only a suggestion": they carry **final categories only**, whatever
``only_final`` says, so a guess is never published as a fact. ``shopify-csv`` writes ``Handle,
Title, Product Category`` (the full path, as Shopify's product import reads it to update
categories) for products that have a handle (imported from Shopify, or given one as external
id). ``google-merchant`` is tab-separated ``id, title, google_product_category, product_type``:
the Google id when the category has one, else its path; ``product_type`` is the store's path.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Review,
    Suggestion,
)
from catalog_ai.errors import CatalogAIError

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportResult", "ExportRow", "export", "iter_rows"]

EXPORT_FORMATS = ("csv", "jsonl", "shopify-csv", "google-merchant")
FEED_FORMATS = frozenset({"shopify-csv", "google-merchant"})  # final categories only
SHOPIFY_COLUMNS = ("Handle", "Title", "Product Category")
GOOGLE_COLUMNS = ("id", "title", "google_product_category", "product_type")


class ExportError(CatalogAIError):
    """The export cannot be made as asked (an unknown format or status)."""


@dataclass(frozen=True)
class ExportRow:
    product_id: int
    external_id: str | None
    title: str
    status: str
    decision: str  # final | suggestion | rejected | none
    category_path: str | None
    category_external_id: str | None
    confidence: float | None
    label_source: str | None
    reviewer: str | None
    model_version: str | None
    handle: str | None  # the Shopify handle (attributes), else the external id


@dataclass
class ExportResult:
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def iter_rows(
    session: Session,
    *,
    statuses: Sequence[str] = (),
    only_final: bool = False,
    page_size: int = 500,
) -> Iterator[ExportRow]:
    """Every product (of ``statuses``, if given) in id order, a page at a time."""
    wanted = _statuses(statuses)
    last = 0
    while True:
        query = select(
            Product.id,
            Product.external_id,
            Product.title,
            Product.status,
            Product.category_id,
            Product.label_source,
            Product.attributes,
        ).where(Product.id > last)
        if wanted:
            query = query.where(Product.status.in_(wanted))
        page = session.execute(query.order_by(Product.id).limit(page_size)).all()
        if not page:
            return
        last = page[-1].id
        ids = [p.id for p in page]
        suggestions = _newest(
            session,
            select(
                Suggestion.product_id,
                Suggestion.category_id,
                Suggestion.confidence,
                ModelVersion.version,
            )
            .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
            .where(Suggestion.product_id.in_(ids))
            .order_by(Suggestion.id),
        )
        reviewers = _newest(
            session,
            select(Review.product_id, Review.reviewer)
            .where(Review.product_id.in_(ids))
            .order_by(Review.id),
        )
        wanted_categories = {p.category_id for p in page} | {
            s.category_id for s in suggestions.values()
        }
        categories = {
            c.id: (c.path, c.external_id)
            for c in session.execute(
                select(Category.id, Category.path, Category.external_id).where(
                    Category.id.in_([c for c in wanted_categories if c is not None])
                )
            )
        }
        for p in page:
            row = _row(p, suggestions.get(p.id), reviewers.get(p.id), categories)
            if not only_final or row.decision == "final":
                yield row


def _statuses(statuses: Sequence[str]) -> list[ProductStatus]:
    known = {s.value: s for s in ProductStatus}
    bad = [s for s in statuses if s not in known]
    if bad:
        raise ExportError(
            f"unknown status {', '.join(map(repr, bad))}; use one of {', '.join(known)}"
        )
    return [known[s] for s in statuses]


def _newest(session: Session, query: Any) -> dict[int, Any]:
    """The last row per product of a query ordered by id (each page's few rows, not the table)."""
    return {r[0]: r for r in session.execute(query)}


def _row(
    p: Any, suggestion: Any, review: Any, categories: dict[int, tuple[str, str | None]]
) -> ExportRow:
    source = LabelSource(p.label_source) if p.label_source is not None else None
    if p.category_id is not None:
        decision, category_id = "final", p.category_id
        model_label = source is LabelSource.MODEL and suggestion is not None
        confidence = suggestion.confidence if model_label else None
    elif p.status == ProductStatus.REJECTED:
        decision, category_id, confidence = "rejected", None, None
    elif suggestion is not None and suggestion.category_id is not None:
        decision, category_id = "suggestion", suggestion.category_id
        confidence = suggestion.confidence
    else:
        decision, category_id, confidence = "none", None, None
    path, external = categories.get(category_id, (None, None)) if category_id else (None, None)
    handle = (p.attributes or {}).get("handle") or p.external_id
    return ExportRow(
        product_id=p.id,
        external_id=p.external_id,
        title=p.title,
        status=ProductStatus(p.status).value,
        decision=decision,
        category_path=path,
        category_external_id=external,
        confidence=None if confidence is None else round(float(confidence), 6),
        label_source=source.value if source is not None else None,
        reviewer=review.reviewer if review is not None else None,
        model_version=suggestion.version if suggestion is not None else None,
        handle=handle if isinstance(handle, str) else None,
    )


# --- writers -----------------------------------------------------------------------------------

_CSV_COLUMNS = tuple(k for k in ExportRow.__dataclass_fields__ if k != "handle")


def export(
    session: Session,
    fmt: str,
    out: TextIO,
    *,
    statuses: Sequence[str] = (),
    only_final: bool = False,
    page_size: int = 500,
) -> ExportResult:
    """Write the catalog's decisions to ``out`` in ``fmt`` (see the module docstring)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    result = ExportResult()
    rows = iter_rows(
        session,
        statuses=statuses,
        only_final=only_final and fmt not in FEED_FORMATS,
        page_size=page_size,
    )
    if fmt == "jsonl":
        for row in rows:
            data = {k: v for k, v in asdict(row).items() if k != "handle"}
            out.write(json.dumps(data, ensure_ascii=False) + "\n")
            result.written += 1
        return result
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(_CSV_COLUMNS)
        for row in rows:
            writer.writerow(
                ["" if v is None else v for k, v in asdict(row).items() if k != "handle"]
            )
            result.written += 1
        return result
    writer = csv.writer(out, delimiter="\t" if fmt == "google-merchant" else ",")
    writer.writerow(SHOPIFY_COLUMNS if fmt == "shopify-csv" else GOOGLE_COLUMNS)
    for row in rows:
        if row.decision != "final" or row.category_path is None:
            result.skip(f"no final category ({row.decision})")
            continue
        if fmt == "shopify-csv":
            if not row.handle:
                result.skip("no handle (not from Shopify, no external id)")
                continue
            writer.writerow([row.handle, row.title, row.category_path])
        else:
            external = row.category_external_id
            google = external if external is not None and external.isdigit() else row.category_path
            offer = row.external_id or str(row.product_id)
            writer.writerow([offer, row.title, google, row.category_path])
        result.written += 1
    return result

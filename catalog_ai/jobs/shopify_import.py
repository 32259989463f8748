"""The Shopify CSV import as the command line runs it: one product per transaction.

Photos are fetched before the product's transaction opens (no lock is held while a shop's CDN
answers), then the product is written and committed; its classification goes to the dispatcher
after that commit. One product per transaction keeps a bad product from rolling back its
neighbours, and an import stopped half-way keeps what it committed: the re-run skips those
handles.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from catalog_ai.db.retry import run_chunk
from catalog_ai.dispatch import Dispatcher
from catalog_ai.photos.store import MediaStore
from catalog_ai.progress import progress_bar
from catalog_ai.services.feed_photos import fetch_photos
from catalog_ai.services.ingest import Upload
from catalog_ai.services.shopify_import import (
    CategoryLookup,
    FeedProduct,
    ProductOutcome,
    import_product,
    iter_errors,
    read_shopify_csv,
)
from catalog_ai.settings import get_settings

__all__ = ["FeedImportSummary", "import_shopify_csv"]

_Photos = tuple[list[Upload], list[str | None], list[tuple[str, str]]]


@dataclass
class FeedImportSummary:
    rows: int = 0
    outcomes: list[ProductOutcome] = field(default_factory=list)

    @property
    def created(self) -> list[ProductOutcome]:
        return [o for o in self.outcomes if o.created and o.status != "failed"]

    @property
    def existing(self) -> list[ProductOutcome]:
        return [o for o in self.outcomes if not o.created and o.error is None]

    @property
    def failed(self) -> list[ProductOutcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def labelled(self) -> int:
        return sum(1 for o in self.created if o.status == "accepted")

    def problems(self) -> list[str]:
        return [line for o in self.outcomes for line in iter_errors(o)]

    def to_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "products": len(self.outcomes),
            "created": [_brief(o) for o in self.created],
            "already_there": [_brief(o) for o in self.existing],
            "failed": [{**_brief(o), "reason": o.error} for o in self.failed],
            "photo_errors": [
                {"handle": o.handle, "line": o.line, "photo": src, "reason": why}
                for o in self.outcomes
                if o.error is None
                for src, why in o.photo_errors
            ],
        }


def _brief(o: ProductOutcome) -> dict[str, object]:
    return {"handle": o.handle, "line": o.line, "product_id": o.product_id, "status": o.status}


@contextmanager
def _client(offline: bool, timeout_s: float) -> Iterator[httpx.Client | None]:
    if offline:
        yield None
        return
    # Per-operation limits; the whole download is bounded by the same figure in the service.
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True) as client:
        yield client


def import_shopify_csv(
    file: str | Path,
    *,
    dispatcher: Dispatcher | None,
    progress: bool = False,
) -> FeedImportSummary:
    """Import a Shopify product export (see :mod:`catalog_ai.services.shopify_import`)."""
    file = Path(file)
    feed = read_shopify_csv(file)
    settings = get_settings()
    media = MediaStore(settings.media_dir)
    categories = run_chunk(CategoryLookup.load, what="category lookup")
    summary = FeedImportSummary(rows=feed.rows)
    base = file.resolve().parent
    with (
        _client(settings.offline, float(settings.fetch_timeout)) as client,
        progress_bar(
            total=len(feed.products), desc="importing products", unit="product", enable=progress
        ) as bar,
    ):
        for product in feed.products:
            photos = fetch_photos(
                product,
                base_dir=base,
                client=client,
                max_bytes=settings.max_image_bytes,
                timeout_s=float(settings.fetch_timeout),
            )

            def write(
                session: Session, product: FeedProduct = product, photos: _Photos = photos
            ) -> ProductOutcome:
                return import_product(
                    session,
                    product,
                    photos,
                    categories=categories,
                    media=media,
                    dispatcher=dispatcher,
                )

            summary.outcomes.append(run_chunk(write, what=f"product {product.handle}"))
            bar.update(1)
    return summary

"""Decisions out (services.export): each format, provenance, Google ids and Shopify GIDs, the
shopify-csv round trip through the Shopify CSV reader, paging."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from catalog_ai.db import (
    Category,
    LabelSource,
    ModelVersion,
    Product,
    ProductStatus,
    Review,
    Suggestion,
    unit_of_work,
)
from catalog_ai.db.models.review import ReviewAction
from catalog_ai.db.models.suggestion import SuggestionSource
from catalog_ai.services.catalog_import import sync_taxonomy
from catalog_ai.services.export import ExportError, export, iter_rows
from catalog_ai.services.shopify_import import read_shopify_csv
from catalog_ai.taxonomy import parse_google
from services.feeds_support import ACTIVEWEAR, CAT_TOYS, G, shopify_tree

HOBBIES = "Arts & Entertainment > Hobbies & Creative Arts"


def _catalog() -> dict[str, int]:
    """Six products, one of each kind of decision; returns their ids by handle."""
    shopify_tree()
    google = parse_google("8 - Arts & Entertainment\n5710 - " + HOBBIES + "\n")
    with unit_of_work() as session:
        sync_taxonomy(session, google, source="import:google.txt")
    with unit_of_work() as session:
        cat = {c.path: c.id for c in session.scalars(select(Category))}
        model = ModelVersion(
            version="m-1", backbone="tiny-cnn", bundle_path="/x", taxonomy_fingerprint="f"
        )
        session.add(model)
        session.flush()

        def product(handle: str, status: ProductStatus, **values) -> Product:
            p = Product(
                title=handle.title(),
                external_id=handle,
                status=status,
                attributes={"handle": handle},
                **values,
            )
            session.add(p)
            session.flush()
            return p

        def suggest(p: Product, path: str, confidence: float) -> Suggestion:
            s = Suggestion(
                product_id=p.id,
                model_version_id=model.id,
                category_id=cat[path],
                path=path,
                confidence=confidence,
                source=SuggestionSource.HEAD,
                levels=[],
            )
            session.add(s)
            session.flush()
            return s

        imported = product(
            "tee",
            ProductStatus.ACCEPTED,
            category_id=cat[ACTIVEWEAR],
            label_source=LabelSource.IMPORT,
        )
        auto = product(
            "toy", ProductStatus.ACCEPTED, category_id=cat[CAT_TOYS], label_source=LabelSource.MODEL
        )
        suggest(auto, CAT_TOYS, 0.987654321)
        waiting = product("kit", ProductStatus.SUGGESTED)
        suggest(waiting, HOBBIES, 0.41)
        corrected = product(
            "paint",
            ProductStatus.ACCEPTED,
            category_id=cat[HOBBIES],
            label_source=LabelSource.REVIEW,
        )
        s = suggest(corrected, CAT_TOYS, 0.3)
        session.add(
            Review(
                product_id=corrected.id,
                suggestion_id=s.id,
                reviewer="ana",
                action=ReviewAction.CORRECT,
                category_id=cat[HOBBIES],
            )
        )
        rejected = product("junk", ProductStatus.REJECTED, label_source=LabelSource.REVIEW)
        session.add(Review(product_id=rejected.id, reviewer="ben", action=ReviewAction.REJECT))
        pending = Product(title="No Handle", status=ProductStatus.PENDING)
        session.add(pending)
        session.flush()
        return {
            "tee": imported.id,
            "toy": auto.id,
            "kit": waiting.id,
            "paint": corrected.id,
            "junk": rejected.id,
            "none": pending.id,
        }


def _export(fmt: str, **kwargs) -> tuple[str, object]:
    out = io.StringIO()
    with unit_of_work() as session:
        result = export(session, fmt, out, **kwargs)
    return out.getvalue(), result


def test_jsonl_says_each_decision_with_its_provenance(catalog) -> None:
    ids = _catalog()
    text, result = _export("jsonl")
    rows = {r["product_id"]: r for r in map(json.loads, text.splitlines())}
    assert result.written == len(rows) == 6
    tee, toy, kit = rows[ids["tee"]], rows[ids["toy"]], rows[ids["kit"]]
    assert tee == {
        "product_id": ids["tee"],
        "external_id": "tee",
        "title": "Tee",
        "status": "accepted",
        "decision": "final",
        "category_path": ACTIVEWEAR,
        "category_external_id": G + "aa-1-1",  # the Shopify GID
        "confidence": None,  # a person's label: no model's figure
        "label_source": "import",
        "reviewer": None,
        "model_version": None,
    }
    assert (toy["decision"], toy["confidence"], toy["label_source"]) == ("final", 0.987654, "model")
    assert toy["model_version"] == "m-1"
    assert (kit["decision"], kit["category_path"], kit["confidence"]) == (
        "suggestion",
        HOBBIES,
        0.41,
    )
    assert kit["category_external_id"] == "5710"  # the Google product category id
    paint = rows[ids["paint"]]
    assert (paint["category_path"], paint["reviewer"], paint["label_source"]) == (
        HOBBIES,
        "ana",
        "review",
    )
    assert paint["confidence"] is None and paint["model_version"] == "m-1"
    junk, none = rows[ids["junk"]], rows[ids["none"]]
    assert (junk["decision"], junk["category_path"], junk["reviewer"]) == ("rejected", None, "ben")
    assert (none["decision"], none["external_id"]) == ("none", None)


def test_csv_has_the_same_rows_and_only_final_and_status_filter(catalog) -> None:
    ids = _catalog()
    text, _ = _export("csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["product_id"]) for r in rows] == sorted(ids.values())
    kit = next(r for r in rows if r["external_id"] == "kit")
    assert (kit["decision"], kit["confidence"], kit["category_external_id"]) == (
        "suggestion",
        "0.41",
        "5710",
    )
    text, _ = _export("csv", only_final=True)
    finals = [r["external_id"] for r in csv.DictReader(io.StringIO(text))]
    assert finals == ["tee", "toy", "paint"]
    text, _ = _export("jsonl", statuses=["suggested", "rejected"])
    assert [json.loads(line)["external_id"] for line in text.splitlines()] == ["kit", "junk"]
    with pytest.raises(ExportError, match="unknown status 'done'; use one of pending"):
        _export("csv", statuses=["done"])


def test_shopify_csv_round_trips_through_the_shopify_reader(catalog, tmp_path: Path) -> None:
    _catalog()
    text, result = _export("shopify-csv")
    assert text.splitlines()[0] == "Handle,Title,Product Category"
    path = tmp_path / "categories_update.csv"
    path.write_text(text, encoding="utf-8")
    feed = read_shopify_csv(path)
    assert [(p.handle, p.title, p.category) for p in feed.products] == [
        ("tee", "Tee", ACTIVEWEAR),
        ("toy", "Toy", CAT_TOYS),
        ("paint", "Paint", HOBBIES),
    ]
    # Suggestions and rejections are never published as a shop's category.
    assert result.written == 3
    assert result.skipped == {
        "no final category (suggestion)": 1,
        "no final category (rejected)": 1,
        "no final category (none)": 1,
    }


def test_google_merchant_gives_the_google_id_when_there_is_one(catalog) -> None:
    ids = _catalog()
    text, result = _export("google-merchant")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert rows[0] == ["id", "title", "google_product_category", "product_type"]
    assert rows[1:] == [
        ["tee", "Tee", ACTIVEWEAR, ACTIVEWEAR],  # a Shopify category: no Google id, the path
        ["toy", "Toy", CAT_TOYS, CAT_TOYS],
        ["paint", "Paint", "5710", HOBBIES],
    ]
    assert result.written == 3 and ids


def test_rows_are_read_a_page_at_a_time(catalog) -> None:
    ids = _catalog()
    with unit_of_work() as session:
        paged = [r.product_id for r in iter_rows(session, page_size=2)]
        whole = [r.product_id for r in iter_rows(session, page_size=500)]
    assert paged == whole == sorted(ids.values())


def test_an_unknown_format_is_refused(catalog) -> None:
    with pytest.raises(ExportError, match="use one of csv, jsonl, shopify-csv, google-merchant"):
        _export("xml")

"""p50/p95 of the main interactive reads and two writes on a seeded catalogue (issue 16).

    .venv/bin/python benchmarks/seed_catalog.py --products 10000 --home /tmp/seed10k
    .venv/bin/python benchmarks/scale_queries.py --home /tmp/seed10k [--runs 30] [--explain F]

Reads ``<home>/seed.json`` (written by ``seed_catalog.py``) for the database URL. Each read is
the real service function in a new session, 3 warm-up calls then ``--runs`` timed ones: every
read the dashboard's review, catalogue and health pages and the API make (the review queue with
each filter and its count, the paths and versions of the filters, a queue card's photos, the
bulk-accept preview; the tree with its figures, a branch's grid and count, a product's history;
pipeline status, catalogue counts, the oldest pending product; text search; a product, a page of
products, the tree with ids). Before them, one refresh of the tree's figures summary and one
fold of the status counts, timed (the beat's background work; ``--no-background`` skips it). The
writes each commit: ``review.accept`` of a waiting product the model did not abstain on, and
``products.create_product`` with one new generated 256 x 256 JPEG; so a run changes the
catalogue by ``--runs`` reviews and products. ``--explain F`` (PostgreSQL only) writes
``EXPLAIN (ANALYZE, BUFFERS)`` of every statement the ``--explain-top`` slowest reads send to F.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def timed(fn: Callable[[], Any], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def reads(ctx: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """Every read the dashboard's pages and the API make, by page (see the module docstring)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services import (
        browse,
        category_tree,
        health,
        history,
        product_gallery,
        products_query,
        review,
        text_search,
    )
    from catalog_ai.services.models import list_models

    def in_session(call: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with unit_of_work() as session:
                return call(session)

        return run

    Q = review.QueueFilter
    filters = {
        "no filter": Q(),
        # Stable names across catalogue sizes (the branches themselves are in the JSON's ctx).
        "big branch": Q(branch=ctx["branch"]),
        "small branch": Q(branch=ctx["small_branch"]),
        "active model": Q(model_version=ctx["model"]),
        "source prototype": Q(source="prototype"),
        "source open_set": Q(source="open_set"),
        "source abstain": Q(source="abstain"),
    }
    pids = iter(ctx["product_ids"] * 1000)
    out: dict[str, Callable[[], Any]] = {}
    # The review page: paths and versions for the filters, the count, a page of 11, its photos.
    out["review: category_paths"] = in_session(browse.category_paths)
    out["review: list_models"] = in_session(list_models)
    for name, flt in filters.items():
        out[f"review_queue ({name})"] = in_session(
            lambda s, f=flt: review.review_queue(s, flt=f, limit=11)
        )
        out[f"queue_count ({name})"] = in_session(lambda s, f=flt: review.queue_count(s, flt=f))
    out["review_queue (page 10, no filter)"] = in_session(
        lambda s: review.review_queue(s, limit=11, offset=99)
    )
    out["review: photo_paths"] = in_session(lambda s: product_gallery.photo_paths(s, [next(pids)]))
    out["review: bulk_preview (>= 0.9)"] = in_session(
        lambda s: review.bulk_preview(s, min_confidence=0.9)
    )
    # The catalogue page: the tree with figures, a branch's grid and count, a product's history.
    out["branch_figures (tree with counts)"] = in_session(browse.branch_figures)
    for label, path in (
        (repr(ctx["vertical"]), ctx["vertical"]),
        ("all", None),
        ("smallest leaf", ctx["small_leaf"]),
    ):
        out[f"products_in_branch ({label})"] = in_session(
            lambda s, p=path: browse.products_in_branch(s, p)
        )
        out[f"count_products_in_branch ({label})"] = in_session(
            lambda s, p=path: browse.count_products_in_branch(s, p)
        )
    out["product_history"] = in_session(lambda s: history.product_history(s, next(pids)))
    # The health page.
    out["pipeline_status"] = in_session(health.pipeline_status)
    out["catalog_counts"] = in_session(health.catalog_counts)
    out["oldest_pending"] = in_session(health.oldest_pending)
    out["status_counts"] = in_session(health.status_counts)
    # The similar-products page's text search.
    out[f"text_search ({ctx['word']!r})"] = in_session(
        lambda s: text_search.text_search(s, ctx["word"])
    )
    out[f"text_search ({ctx['phrase']!r})"] = in_session(
        lambda s: text_search.text_search(s, ctx["phrase"])
    )
    # The API's reads beside those: a product, a keyset page of products, the tree with ids.
    out["api: product_detail"] = in_session(lambda s: products_query.product_detail(s, next(pids)))
    out["api: list_products (first page)"] = in_session(
        lambda s: products_query.list_products(s, limit=50)
    )
    out["api: list_products (status suggested)"] = in_session(
        lambda s: products_query.list_products(s, limit=50, status="suggested")
    )
    out["api: category_tree"] = in_session(category_tree.category_tree)
    return out


def writes(ctx: dict[str, Any], runs: int) -> dict[str, list[float]]:
    from PIL import Image
    from sqlalchemy import select

    from catalog_ai.db import Product, ProductStatus, Suggestion, unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services import products, review
    from catalog_ai.settings import get_settings

    with unit_of_work() as session:
        waiting = list(
            session.scalars(
                select(Product.id)
                .join(Suggestion, Suggestion.product_id == Product.id)
                .where(Product.status == ProductStatus.SUGGESTED, Suggestion.path != "")
                .order_by(Product.id.desc())
                .limit(runs + 3)
            )
        )
    rng = np.random.default_rng(int(time.time()))
    media = MediaStore(get_settings().media_dir)
    out: dict[str, list[float]] = {"review.accept": [], "products.create_product": []}
    for k, pid in enumerate(waiting):
        start = time.perf_counter()
        with unit_of_work() as session:
            review.accept(session, pid, reviewer="bench", dispatcher=None)
        if k >= 3:
            out["review.accept"].append((time.perf_counter() - start) * 1000)
    for k in range(runs + 3):
        pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        start = time.perf_counter()
        with unit_of_work() as session:
            made = products.create_product(
                session, [(f"bench-{k}.jpg", buf.getvalue())], media=media, dispatcher=None,
                title=f"Bench product {k}",
            )  # fmt: skip
        if not made.created:
            raise SystemExit(f"create_product made nothing: {made}")
        if k >= 3:
            out["products.create_product"].append((time.perf_counter() - start) * 1000)
    return out


def summaries() -> dict[str, float]:
    """Seconds of the background work the reads rely on: one refresh of the tree's figures
    summary and one fold of the status-count deltas (each commits, as the beat's tasks do)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.branch_figures import refresh_branch_figures
    from catalog_ai.services.status_counts import fold_status_deltas

    out = {}
    start = time.perf_counter()
    with unit_of_work() as session:
        refresh_branch_figures(session)
    out["refresh_branch_figures (background)"] = time.perf_counter() - start
    start = time.perf_counter()
    with unit_of_work() as session:
        folded = fold_status_deltas(session)
    out[f"fold_status_deltas ({folded} rows, background)"] = time.perf_counter() - start
    for name, seconds in out.items():
        print(f"{name}: {seconds:.2f} s")
    return out


def context() -> dict[str, Any]:
    """The branch, the product ids and the words the reads use, picked from the data."""
    from sqlalchemy import func, select

    from catalog_ai.db import Category, ModelVersion, Product, Suggestion, unit_of_work

    with unit_of_work() as session:
        # The biggest second-level branch among suggestions; the biggest vertical.
        paths = session.scalars(select(Suggestion.path).where(Suggestion.path != "")).all()
        counts: dict[str, int] = {}
        for p in paths:
            parts = p.split(" > ")
            if len(parts) >= 2:
                key = " > ".join(parts[:2])
                counts[key] = counts.get(key, 0) + 1
        branch = max(counts, key=lambda k: counts[k])
        small_branch = min(counts, key=lambda k: (counts[k], k))
        vertical = branch.split(" > ")[0]
        model = session.scalar(select(ModelVersion.version).where(ModelVersion.is_active))
        n = session.scalar(select(func.max(Product.id))) or 1
        rng = np.random.default_rng(16)
        ids = [int(i) for i in rng.integers(1, n + 1, 40)]
        leaf = session.scalar(
            select(Category.name).where(Category.depth == 4).order_by(Category.id).limit(1)
        )
        # The leaf with the fewest accepted products (one at least): the newest-first walk
        # over the accepted products finds its 48 only after reading most of them.
        small_leaf = session.scalar(
            select(Category.path)
            .join(Product, Product.category_id == Category.id)
            .where(Product.status == "accepted", Category.depth == 4)
            .group_by(Category.path)
            .order_by(func.count(), Category.path)
            .limit(1)
        )
    word = "bamboo"
    return {"branch": branch, "vertical": vertical, "product_ids": ids, "word": word,
            "small_leaf": small_leaf, "small_branch": small_branch, "model": model,
            "phrase": f"{leaf} {word}".lower()}  # fmt: skip


def explain(fn: Callable[[], Any]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one call of ``fn`` sends."""
    from sqlalchemy import event

    from catalog_ai.db import get_engine

    engine = get_engine()
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    lines = []
    with engine.connect() as connection:
        for statement, parameters in seen:
            plan = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
            ).all()
            lines += ["-- " + statement.replace("\n", " "), *(r[0] for r in plan), ""]
        connection.rollback()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="the seeded home (seed.json)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--explain", type=Path, help="file for the slowest reads' plans")
    parser.add_argument("--explain-top", type=int, default=4, help="how many of the slowest")
    parser.add_argument("--json", type=Path, help="file for the figures")
    parser.add_argument("--no-writes", action="store_true")
    parser.add_argument(
        "--no-background", action="store_true", help="skip the summary refresh and fold timings"
    )
    args = parser.parse_args(argv)
    seeded = json.loads((args.home / "seed.json").read_text(encoding="utf-8"))
    from catalog_ai.db import dispose_engines
    from catalog_ai.settings import reset_settings

    for key in [k for k in os.environ if k.startswith("CATALOG_AI_")]:
        del os.environ[key]
    os.environ["CATALOG_AI_DATABASE_URL"] = seeded["database_url"]
    os.environ["CATALOG_AI_HOME"] = seeded["home"]
    reset_settings()
    dispose_engines()
    ctx = context()
    print("reads use:", {k: v for k, v in ctx.items() if k != "product_ids"})
    background = summaries() if not args.no_background else {}
    figures: dict[str, list[float]] = {}
    calls = reads(ctx)
    for name, fn in calls.items():
        figures[name] = timed(fn, args.runs)
    if not args.no_writes:
        figures.update(writes(ctx, args.runs))
    print(f"{seeded['products']} products, {seeded['categories']} categories, "
          f"{seeded['database_url'].split(':', 1)[0]}, {args.runs} runs each")  # fmt: skip
    print(f"{'call':<58} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    table = {}
    for name, values in figures.items():
        row = {"p50": statistics.median(values), "p95": percentile(values, 95), "max": max(values)}
        table[name] = row
        print(f"{name:<58} {row['p50']:8.1f} {row['p95']:8.1f} {row['max']:8.1f}")
    if args.json:
        out = {
            "seed": seeded,
            "figures": table,
            "background_s": background,
            "runs": args.runs,
            "ctx": {k: v for k, v in ctx.items() if k != "product_ids"},
        }
        args.json.write_text(json.dumps(out, indent=2))
    if args.explain and seeded["database_url"].startswith("postgresql"):
        slowest = sorted(calls, key=lambda n: -table[n]["p95"])[: args.explain_top]
        lines = []
        for name in slowest:
            lines += [f"===== {name}: p95 {table[name]['p95']:.1f} ms", *explain(calls[name])]
        args.explain.write_text("\n".join(lines), encoding="utf-8")
        print(f"plans of {', '.join(slowest)} in {args.explain}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

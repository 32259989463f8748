"""Fill a catalogue with N products on a 10,000-category tree, for scale work (issue 16).

    .venv/bin/python benchmarks/seed_catalog.py --products 10000
    .venv/bin/python benchmarks/seed_catalog.py --products 100000 --database-url URL
    .venv/bin/python benchmarks/seed_catalog.py --products 10000 --sqlite /tmp/seed.db

Default database: a new one (``catalog_ai_seed_<random>``) created on
``postgresql+psycopg://postgres@127.0.0.1:5432``; it is kept, and its URL and home are printed
and written to ``<home>/seed.json`` for ``benchmarks/scale_queries.py``.

What it writes, and what is synthetic:

- The tree: a generated file in Shopify's published text format (``gid://shopify/
  TaxonomyCategory/<id> : A > B > C > D``), 4 levels, 16 x 8 x 8 x 9 = 10,384 categories,
  imported through the real importer (``load_taxonomy`` + ``sync_taxonomy``).
- One ModelVersion row, active, inserted directly (backbone ``efficientnet_lite0``, 1,280-wide
  embeddings, ``bundle_path`` naming no real bundle): the reads measured here never load a
  bundle, and registering a real one would need a model over 9,216 leaves.
- Products on the leaves with Zipf-like category sizes (weight 1/rank over shuffled leaves);
  status mix: 62 % suggested, 22 % accepted by the model (``label_source`` model), 8 % accepted
  by a reviewer, 3 % corrected, 1 % rejected (each with a Review row, ``label_source``
  review), 2 % failed with an error, 2 % pending. Titles: the leaf's name and a few words.
- Suggestions as ``services.classify.record`` writes them: top-3 per depth in ``levels``
  (``Decision.to_dict()["levels"]``), the path (some backed off to an ancestor, a few
  abstaining with an empty path), a calibrated-looking confidence.
- Photos: 1 to 3 ProductImage rows per product. A handful of real photos from
  ``../shared/datasets/grocery-store`` are put in the media store once; every row points its
  ``stored_path`` at one of them but has its own synthetic ``content_hash`` (sha256 of
  ``seed:<image id>``), because the column is unique per row.
- Embeddings: one per photo of every classified product, a random unit float32 vector of
  width 1,280, through ``Embedding.row``.

Bulk Core inserts, one commit per chunk of products (all their rows), ids given explicitly.
Resumable: run it again with the same ``--database-url`` (or ``--sqlite``) and ``--home`` and
it continues after the last committed chunk; a chunk's rows depend only on ``--seed``,
``--chunk`` and the chunk's number (ids continue from the tables' largest). What the
database keeps by itself (migration ``0008_scale``) is kept as the rows land, as for any other
writer: each product's copy of its current suggestion (the review queue's columns) and the
status counts' deltas (the last chunk's are folded by the first ``fold_status_deltas``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _databases import new_database, use_catalogue  # noqa: E402
from shopify_taxonomy import write_text  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "grocery-store"
DIM = 1280
BRANCHING = (16, 8, 8, 9)  # 16 + 128 + 1,024 + 9,216 = 10,384 categories
VERTICALS = (
    "Animals and Pet Supplies", "Apparel and Accessories", "Arts and Entertainment",
    "Baby and Toddler", "Business and Industrial", "Cameras and Optics", "Electronics",
    "Food and Beverages", "Furniture", "Hardware", "Health and Beauty", "Home and Garden",
    "Luggage and Bags", "Office Supplies", "Sporting Goods", "Toys and Games",
)  # fmt: skip
ADJECTIVES = (
    "Organic", "Classic", "Compact", "Outdoor", "Premium", "Vintage", "Wireless", "Travel",
    "Kids", "Heavy Duty", "Eco", "Mini", "Smart", "Garden", "Kitchen", "Studio", "Waterproof",
    "Portable", "Folding", "Luxury", "Everyday", "Sport", "Winter", "Summer",
)  # fmt: skip
NOUNS = (
    "Bags", "Bottles", "Brushes", "Cables", "Chairs", "Covers", "Cups", "Filters", "Gloves",
    "Holders", "Jackets", "Kits", "Lamps", "Mats", "Mugs", "Organisers", "Pads", "Pens",
    "Racks", "Shoes", "Sets", "Stands", "Tools", "Toys", "Trays", "Vases", "Boxes", "Caps",
    "Clips", "Hooks", "Knives", "Lenses", "Pillows", "Rugs", "Scarves", "Socks",
)  # fmt: skip
EXTRA = (
    "red", "blue", "black", "steel", "cotton", "oak", "bamboo", "large", "small", "set of 2",
    "500 ml", "1 l", "XL", "pro", "lite", "deluxe", "refill", "gift", "pack", "v2",
)  # fmt: skip
# (status, label source, review action) and their shares.
KINDS = (
    ("suggested", None, None, 0.62),
    ("accepted", "model", None, 0.22),
    ("accepted", "review", "accept", 0.08),
    ("accepted", "review", "correct", 0.03),
    ("rejected", "review", "reject", 0.01),
    ("failed", None, None, 0.02),
    ("pending", None, None, 0.02),
)
FAIL_REASONS = (
    "the photo could not be decoded: truncated JPEG; upload it again",
    "no usable photo: every photo of the product was refused; add a photo",
)


def generate_tree() -> list[tuple[str, list[str]]]:
    """(short id, path) of every category, depth first (a parent before its children)."""
    out: list[tuple[str, list[str]]] = []
    combos = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]

    def walk(short: str, path: list[str], depth: int, salt: int) -> None:
        out.append((short, path))
        if depth < len(BRANCHING):
            step = 7 + 2 * depth  # different children under each parent, distinct among siblings
            for k in range(BRANCHING[depth]):
                name = combos[(salt * 31 + k * step) % len(combos)]
                walk(f"{short}-{k + 1}", [*path, name], depth + 1, salt * 7 + k + 1)

    for v, name in enumerate(VERTICALS):
        walk(f"v{v + 1}", [name], 1, v + 1)
    return out


# --- the database ---------------------------------------------------------------------------------


def import_tree(home: Path) -> float:
    """The generated tree through the real importer (nothing added when it is there already)."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.catalog_import import sync_taxonomy
    from catalog_ai.taxonomy import load_taxonomy

    file = home / "taxonomy-seed.txt"
    write_text(file, generate_tree())
    start = time.perf_counter()
    with unit_of_work() as session:
        sync_taxonomy(session, load_taxonomy(file), source="import", note="seed_catalog")
    return time.perf_counter() - start


def ensure_model(session: Any, seed: int) -> int:
    from sqlalchemy import insert, select

    from catalog_ai.db.models.model_version import ModelVersion
    from catalog_ai.db.models.taxonomy_version import TaxonomyVersion

    version = f"seed-{seed}"
    found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))
    if found is not None:
        return int(found)
    fingerprint = session.scalar(
        select(TaxonomyVersion.fingerprint).order_by(TaxonomyVersion.id.desc()).limit(1)
    )
    session.execute(
        insert(ModelVersion).values(
            version=version,
            backbone="efficientnet_lite0",
            bundle_path="(seed_catalog: no bundle)",
            metrics={"note": "seed_catalog: rows only"},
            taxonomy_fingerprint=fingerprint or "",
            is_active=True,
            activated_at=datetime.now(UTC),
        )
    )
    return int(session.scalar(select(ModelVersion.id).where(ModelVersion.version == version)))


def store_photos(data: Path, home: Path, n: int = 12) -> list[dict[str, Any]]:
    """A few real photos put in the media store once; the columns a row pointing at each needs."""
    from PIL import Image

    from catalog_ai.photos.store import MediaStore

    every = sorted((data / "train").rglob("*.jpg"))
    files = every[:: max(1, len(every) // n)][:n]
    if not files:
        raise SystemExit(f"no photos under {data / 'train'}; give --data a grocery-store copy")
    media = MediaStore(home / "media")
    out = []
    for f in files:
        raw = f.read_bytes()
        with Image.open(f) as im:
            width, height = im.size
        stored = media.put(raw, image_format="JPEG")
        out.append(
            {"stored_path": stored.relative_path, "width": width, "height": height,
             "size_bytes": len(raw), "format": "JPEG"}
        )  # fmt: skip
    return out


# --- the products ---------------------------------------------------------------------------------


class Tree:
    """The imported tree as plain lists: leaf paths, ids, siblings, Zipf weights."""

    def __init__(self, session: Any, seed: int) -> None:
        from sqlalchemy import select

        from catalog_ai.db.models.category import Category

        rows = session.execute(select(Category.path, Category.id, Category.depth)).all()
        self.ids = {path: cid for path, cid, _ in rows}
        children: dict[str, list[str]] = {}
        for path, _, _ in rows:
            children.setdefault(path.rsplit(" > ", 1)[0] if " > " in path else "", []).append(path)
        self.siblings = {
            path: kids for kids in children.values() for path in kids
        }  # a path -> its parent's children (itself included)
        self.leaves = sorted(p for p, _, d in rows if d == 4 and p not in children)
        rng = np.random.default_rng(seed)
        rank = rng.permutation(len(self.leaves)) + 1
        weights = 1.0 / rank
        self.weights = weights / weights.sum()

    @staticmethod
    def prefixes(path: str) -> list[str]:
        parts = path.split(" > ")
        return [" > ".join(parts[: d + 1]) for d in range(len(parts))]

    def levels(self, rng: np.random.Generator, leaf: str, top: float) -> list[list[dict]]:
        """Top-3 per depth, as ``Decision.to_dict()["levels"]`` holds them."""
        out = []
        for prefix in self.prefixes(leaf):
            others = [p for p in self.siblings[prefix] if p != prefix]
            picks = [others[i] for i in rng.choice(len(others), 2, replace=False)]
            rest = 1.0 - top
            out.append(
                [{"path": prefix, "probability": round(top, 6)}]
                + [
                    {"path": q, "probability": round(rest * f, 6)}
                    for q, f in zip(picks, (0.6, 0.3), strict=True)
                ]
            )
            top = min(0.999, top + 0.05)
        return out


def photo_hash(image_id: int) -> str:
    return hashlib.sha256(f"seed:{image_id}".encode()).hexdigest()


def chunk_rows(
    tree: Tree,
    photos: list[dict[str, Any]],
    *,
    seed: int,
    chunk: int,
    first_index: int,
    n: int,
    next_ids: dict[str, int],
    model_id: int,
) -> dict[str, list[dict[str, Any]]]:
    """Every row of products ``first_index .. first_index + n - 1`` (ids from ``next_ids``)."""
    from catalog_ai.db.models.embedding import Embedding

    rng = np.random.default_rng([seed, chunk])
    shares = np.array([k[3] for k in KINDS])
    kinds = rng.choice(len(KINDS), n, p=shares / shares.sum())
    leaves = rng.choice(len(tree.leaves), n, p=tree.weights)
    n_photos = rng.choice([1, 2, 3], n, p=[0.7, 0.2, 0.1])
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out: dict[str, list[dict[str, Any]]] = {
        "products": [], "product_images": [], "suggestions": [], "embeddings": [], "reviews": [],
    }  # fmt: skip
    embed_images: list[int] = []
    for k in range(n):
        index = first_index + k
        status, label_source, action, _ = KINDS[kinds[k]]
        leaf = tree.leaves[leaves[k]]
        pid = next_ids["products"]
        next_ids["products"] += 1
        at = base + timedelta(seconds=30 * index)
        words = " ".join(EXTRA[i] for i in rng.choice(len(EXTRA), 2, replace=False))
        classified = status not in ("pending", "failed")
        product = {
            "id": pid, "title": f"{leaf.rsplit(' > ', 1)[-1]} {words}",
            "external_id": f"seed-{index}", "status": status, "error": None,
            "category_id": None, "label_source": label_source, "attempts": int(classified),
            "created_at": at, "updated_at": at, "status_changed_at": at,
            "description": "", "attributes": {},
        }  # fmt: skip
        if status == "failed":
            product["error"] = FAIL_REASONS[k % len(FAIL_REASONS)]
            product["attempts"] = 3
        if status == "accepted":
            product["category_id"] = tree.ids[leaf]
        out["products"].append(product)
        for pos in range(int(n_photos[k])):
            iid = next_ids["product_images"]
            next_ids["product_images"] += 1
            out["product_images"].append(
                {"id": iid, "product_id": pid, "content_hash": photo_hash(iid),
                 "position": pos, "created_at": at, **photos[(iid * 7) % len(photos)]}
            )  # fmt: skip
            if classified:
                embed_images.append(iid)
        if not classified:
            continue
        # What the model said: the true leaf, mostly; a sibling for the corrected ones.
        said = leaf
        if action == "correct" or status == "rejected":
            said = next(p for p in tree.siblings[leaf] if p != leaf)
        source, open_set = "head", False
        roll = rng.random()
        if status == "accepted" and label_source == "model":
            confidence = 0.95 + 0.049 * rng.random()
        else:
            confidence = 0.25 + 0.7 * float(rng.beta(4, 3))
        levels = tree.levels(rng, said, min(0.95, confidence))
        path = said
        if status == "suggested" and roll < 0.03:  # abstains even at the top level
            path, source, confidence = "", "abstain", 0.1 + 0.3 * rng.random()
        elif status == "suggested" and roll < 0.13:  # backs off to an ancestor
            path = tree.prefixes(said)[int(rng.integers(1, 3))]
        elif roll > 0.95:
            source = "prototype"
        open_set = status == "suggested" and roll > 0.98
        sid = next_ids["suggestions"]
        next_ids["suggestions"] += 1
        out["suggestions"].append(
            {"id": sid, "product_id": pid, "model_version_id": model_id,
             "category_id": tree.ids.get(path), "path": path, "levels": levels,
             "confidence": round(float(confidence), 6), "source": source, "open_set": open_set,
             "created_at": at + timedelta(seconds=5), "memory_revision": None}
        )  # fmt: skip
        if action is not None:
            rid = next_ids["reviews"]
            next_ids["reviews"] += 1
            out["reviews"].append(
                {"id": rid, "product_id": pid, "suggestion_id": sid,
                 "reviewer": f"reviewer-{int(rng.integers(1, 6))}", "action": action,
                 "category_id": None if action == "reject" else tree.ids[leaf], "note": None,
                 "created_at": at + timedelta(hours=2)}
            )  # fmt: skip
    if embed_images:
        vectors = rng.standard_normal((len(embed_images), DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for iid, vector in zip(embed_images, vectors, strict=True):
            eid = next_ids["embeddings"]
            next_ids["embeddings"] += 1
            out["embeddings"].append(
                Embedding.row(vector, id=eid, image_id=iid, model_version_id=model_id)
            )
    return out


TABLES = ("products", "product_images", "suggestions", "embeddings", "reviews")


def seed(args: argparse.Namespace, url: str, home: Path) -> dict[str, Any]:
    from sqlalchemy import func, select, text

    from catalog_ai.db import Base, migrate, unit_of_work
    from catalog_ai.db.models.product import Product
    from catalog_ai.progress import progress_bar

    use_catalogue(url, home)
    start = time.perf_counter()
    migrate.upgrade()
    tree_s = import_tree(home)
    photos = store_photos(args.data, home)
    with unit_of_work() as session:
        model_id = ensure_model(session, args.seed)
        tree = Tree(session, args.seed)
        done = (
            session.scalar(
                select(func.count()).select_from(Product).where(Product.external_id.like("seed-%"))
            )
            or 0
        )
        next_ids = {t: (session.scalar(text(f"SELECT max(id) FROM {t}")) or 0) + 1 for t in TABLES}
    postgres = url.startswith("postgresql")
    tables = {t: Base.metadata.tables[t] for t in TABLES}
    written = dict.fromkeys(TABLES, 0)
    if done % args.chunk:
        raise SystemExit(f"{done} seeded products is not a multiple of --chunk {args.chunk}")
    todo = max(0, args.products - done)
    print(f"categories: {len(tree.ids)} ({len(tree.leaves)} leaves), imported in {tree_s:.2f} s;"
          f" {done} products already seeded, {todo} to add")  # fmt: skip
    seed_start = time.perf_counter()
    with progress_bar(total=todo, desc="products", unit="product") as bar:
        for first in range(done, args.products, args.chunk):
            n = min(args.chunk, args.products - first)
            rows = chunk_rows(
                tree, photos, seed=args.seed, chunk=first // args.chunk, first_index=first, n=n,
                next_ids=next_ids, model_id=model_id,
            )  # fmt: skip
            with unit_of_work() as session:
                for t in TABLES:
                    if rows[t]:
                        session.execute(tables[t].insert(), rows[t])
                        written[t] += len(rows[t])
                if postgres:  # explicit ids: the sequences must follow, for the next real insert
                    for t in TABLES:
                        session.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT coalesce(max(id), 0) + 1 FROM {t}), false)"
                        ))  # fmt: skip
            bar.update(n)
    seed_s = time.perf_counter() - seed_start
    from catalog_ai.db import get_engine

    # Fresh statistics, as autovacuum would give a store some minutes after a bulk load.
    engine = get_engine()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)" if postgres else "ANALYZE"))
    total_rows = sum(written.values())
    summary = {
        "database_url": url, "home": str(home), "products": args.products,
        "categories": len(tree.ids), "written": written, "seed_s": round(seed_s, 2),
        "rows_per_s": round(total_rows / seed_s) if seed_s else None,
        "products_per_s": round(todo / seed_s) if seed_s else None,
        "total_s": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    (home / "seed.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="an existing catalogue (migrated if it is not)")
    where.add_argument("--sqlite", type=Path, help="a SQLite file (created if missing)")
    parser.add_argument("--home", type=Path, help="CATALOG_AI_HOME: media store, seed.json")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="grocery-store copy")
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    if args.sqlite:
        url = f"sqlite:///{args.sqlite.resolve()}"
    else:
        url = args.database_url or new_database("catalog_ai_seed")
    home = (args.home or Path(tempfile.mkdtemp(prefix="catalog_ai_seed_"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    summary = seed(args, url, home)
    print(json.dumps(summary, indent=2))
    print(
        f"seeded {summary['written']['products']} products, {sum(summary['written'].values())} "
        f"rows in {summary['seed_s']} s ({summary['rows_per_s']} rows/s); measure with\n"
        f"  .venv/bin/python benchmarks/scale_queries.py --home {home}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The search index as a per-host cache of the database (issue 16 item 4): build, catch-up,
memory, disk and search time at N random 1,280-wide embeddings in PostgreSQL.

    .venv/bin/python benchmarks/vector_cache.py --n 100000
    .venv/bin/python benchmarks/vector_cache.py --n 1000000 --keep          # keeps the database
    .venv/bin/python benchmarks/vector_cache.py --database-url URL --skip-seed  # measure again

Default database: a new one (``catalog_ai_vec_<random>``) on
``postgresql+psycopg://postgres@127.0.0.1:5432``, migrated, seeded and dropped at the end
(``--keep``: left, its URL printed). Rows: one product, one photo and one embedding per vector
(a random unit float32 vector of width 1,280, like efficientnet_lite0's, through
``Embedding.row``), written with COPY. Random vectors have no structure: the PCA descriptor
fitted on them says nothing about retrieval quality, only about time and memory.

Two processes (``--phase``), so that each peak RSS (``ru_maxrss``) is its own: ``build`` (a
fresh cache directory: the first search on a new host builds from the rows), then ``serve``:
load the cache from disk (a restarted process: checksums, load, the count/sum check), catch up
with 0 new rows (``max(id)`` and the count/sum check; then ``update_index``, which adds the
status's two counts) and a search's probe with nothing new; add 1,000 rows and time a search
(``open_index``: probe, rows, segment); add 1,000 and then 10,000 rows and time each catch-up
alone (``catch_up_locked``, no row cap); delete 100 products and time ``update_index`` (the
count/sum differ: the ids below the watermark are read), and search p50/p95 through
``similar_products`` (k=10, random queries; the probe included).
``--composite-index`` adds ``(model_version_id, id)`` on embeddings before measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _databases import drop_database, new_database, use_catalogue

REPO = Path(__file__).resolve().parents[1]
DIM = 1280
VERSION = "vec-bench"
MIGRATION = "0007_shop"  # the schema these rows need (later ones add nothing they use)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_version_id() -> int:
    from sqlalchemy import insert, select

    from catalog_ai.db import ModelVersion, unit_of_work

    with unit_of_work() as session:
        found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == VERSION))
        if found is None:
            session.execute(
                insert(ModelVersion).values(
                    version=VERSION,
                    backbone="efficientnet_lite0",
                    bundle_path="(vector_cache benchmark: no bundle)",
                    metrics={},
                    taxonomy_fingerprint="",
                    is_active=True,
                    activated_at=datetime.now(UTC),
                )
            )
            found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == VERSION))
        return int(found or 0)


def add_rows(url: str, n: int, *, seed: int, chunk: int = 20_000) -> float:
    """``n`` more products, photos and embeddings (ids after the largest); seconds taken."""
    import psycopg
    import sqlalchemy as sa

    from catalog_ai.db import Embedding

    mv_id = model_version_id()
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM products").fetchone() or (0,)
        first = int(top) + 1
        rng = np.random.default_rng(seed + first)
        for start in range(first, first + n, chunk):
            ids = range(start, min(start + chunk, first + n))
            vectors = rng.standard_normal((len(ids), DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with conn.cursor() as cur:
                with cur.copy("COPY products (id, title, status, attributes) FROM STDIN") as copy:
                    for i in ids:
                        copy.write_row((i, f"product {i}", "accepted", "{}"))
                with cur.copy(
                    "COPY product_images (id, product_id, content_hash, stored_path, width, "
                    "height, size_bytes, format) FROM STDIN"
                ) as copy:
                    for i in ids:
                        copy.write_row((i, i, f"{i:064x}", f"vec/{i}.jpg", 224, 224, 1000, "JPEG"))
                with cur.copy(
                    "COPY embeddings (id, image_id, model_version_id, dim, vector) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int4", "int4", "int4", "int4", "bytea"])
                    for i, vector in zip(ids, vectors, strict=True):
                        row = Embedding.row(vector, image_id=i, model_version_id=mv_id)
                        copy.write_row((i, i, mv_id, row["dim"], row["vector"]))
            conn.commit()
        for table in ("products", "product_images", "embeddings"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.execute("ANALYZE products, product_images, embeddings")
        conn.commit()
    return time.perf_counter() - started


def delete_rows(n: int) -> None:
    """Delete the products of ``n`` random photos (their embeddings go by cascade)."""
    from sqlalchemy import delete, select

    from catalog_ai.db import Product, unit_of_work

    with unit_of_work() as session:
        ids = session.scalars(select(Product.id).order_by(Product.id).limit(n * 50)).all()
        gone = np.random.default_rng(7).choice(ids, n, replace=False).tolist()
        session.execute(delete(Product).where(Product.id.in_(gone)))


# --------------------------------------------------------------------------- phases
def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stored_build_seconds() -> Any:
    """The build's own breakdown (fit, read, add, save), kept in memory by this process."""
    from catalog_ai.index.store import _cache

    return [stored.manifest.extra.get("build_seconds") for stored in _cache.values()]


def _timed(fn, *args, **kwargs) -> tuple[float, Any]:
    t = time.perf_counter()
    value = fn(*args, **kwargs)
    return round(time.perf_counter() - t, 3), value


def phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measured step in this process (its peak RSS is the step's own)."""
    import faiss

    from catalog_ai.db import unit_of_work
    from catalog_ai.services import search_index
    from catalog_ai.services.index_sync import cache_path, catch_up_locked
    from catalog_ai.services.models import resolve_model_version
    from catalog_ai.services.search_index import index_status, open_index, update_index
    from catalog_ai.services.similar import similar_products
    from catalog_ai.settings import get_settings

    faiss.omp_set_num_threads(args.threads)
    out: dict[str, Any] = {"phase": name}
    url = get_settings().database_url
    if name == "build":  # a fresh host: no cache at all
        with unit_of_work() as session:
            out["build_s"], status = _timed(update_index, session, VERSION, progress=True)
        out.update(n_indexed=status.n_indexed, kind=status.kind, dim=status.dim)
        out["build_parts_s"] = stored_build_seconds()
    else:  # a process of a host whose cache is on disk: load, catch up, search
        with unit_of_work() as session:
            mv = resolve_model_version(session, VERSION)
            out["load_s"], stored = _timed(open_index, session, mv)
            out["n_loaded"] = len(stored.index)
            out["rss_after_load_mib"] = round(peak_rss_mib())
            path = cache_path(session, mv)
            with search_index._locked(path, None):  # the catch-up alone: max(id) + count/sum
                out["catch_up_0_verify_s"], _ = _timed(
                    catch_up_locked, session, mv, path, verify=True
                )
            out["status_s"], _ = _timed(index_status, session, VERSION)  # two counts more
            out["update_0_s"], _ = _timed(update_index, session, VERSION)  # both
            probes = [_timed(open_index, session, mv)[0] for _ in range(50)]
            out["search_probe_0_ms"] = round(statistics.median(probes) * 1000, 2)
        add_rows(url, 1_000, seed=1)
        with unit_of_work() as session:  # a search's catch-up: probe, new rows, segment
            mv = resolve_model_version(session, VERSION)
            out["search_catch_up_1000_s"], stored = _timed(open_index, session, mv)
        out["n_after_1000"] = len(stored.index)
        for k in (1_000, 10_000):
            add_rows(url, k, seed=k)
            with unit_of_work() as session, search_index._locked(path, None):
                mv = resolve_model_version(session, VERSION)
                out[f"catch_up_{k}_s"], (stored, _) = _timed(
                    catch_up_locked, session, mv, path, verify=False
                )
            out[f"n_after_{k}_more"] = len(stored.index)
        delete_rows(100)
        with unit_of_work() as session:
            out["update_100_deleted_s"], status = _timed(update_index, session, VERSION)
        out["n_after_delete"] = status.n_indexed
        out["segments"] = status.segments
        rng = np.random.default_rng(3)
        times = []
        with unit_of_work() as session:
            for _ in range(args.queries):
                vector = rng.standard_normal(DIM).astype(np.float32)
                t = time.perf_counter()
                similar_products(session, model_version=VERSION, query_vector=vector, k=10)
                times.append((time.perf_counter() - t) * 1000)
        cuts = statistics.quantiles(times, n=20)
        out["search_p50_ms"] = round(statistics.median(times), 2)
        out["search_p95_ms"] = round(cuts[18], 2)
        out["verify_every_s"] = search_index.VERIFY_EVERY
    out["peak_rss_mib"] = round(peak_rss_mib())
    out["cache_mib"] = round(_dir_bytes(get_settings().index_cache_dir) / 2**20, 1)
    return out


def run_phase(name: str, args: argparse.Namespace, url: str, home: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", name, "--database-url", url, "--home", str(home)]
    cmd += ["--threads", str(args.threads), "--queries", str(args.queries)]
    # One thread each for OpenBLAS and faiss's OpenMP by default: on a machine shared with
    # other work their spinning threads made the descriptor's eigh 8x slower (26.7 s against
    # 3.2 s for 1,280 x 1,280 at a load of 12 on 2 cores).
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env["OPENBLAS_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {name} failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--seed-only", action="store_true", help="seed, keep, measure nothing")
    parser.add_argument("--serve-only", action="store_true", help="measure on the cache built")
    parser.add_argument("--composite-index", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="faiss and BLAS threads")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        use_catalogue(args.database_url, args.home)
        print(json.dumps(phase(args.phase, args)))
        return 0

    from catalog_ai.db.migrate import upgrade

    created = args.database_url is None
    url = args.database_url or new_database("catalog_ai_vec")
    home = args.home or Path(tempfile.mkdtemp(prefix="vector_cache_"))
    use_catalogue(url, home)
    print(f"database {url}\nhome {home}", flush=True)
    try:
        if not args.skip_seed:
            upgrade(revision=MIGRATION)
            seconds = add_rows(url, args.n, seed=0)
            print(json.dumps({"phase": "seed", "rows": args.n, "seconds": round(seconds, 1)}))
            if args.seed_only:
                args.keep = True
                return 0
        if args.composite_index:
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.begin() as c:
                c.execute(
                    sa.text(
                        "CREATE INDEX IF NOT EXISTS ix_bench_embeddings_mv_id "
                        "ON embeddings (model_version_id, id)"
                    )
                )
                c.execute(sa.text("ANALYZE embeddings"))
            engine.dispose()
        from catalog_ai.settings import get_settings

        if not args.serve_only:
            shutil.rmtree(get_settings().index_cache_dir, ignore_errors=True)
            run_phase("build", args, url, home)  # a fresh host: builds from the rows
        run_phase("serve", args, url, home)  # a process started on a host with its cache
    finally:
        if created and not args.keep:
            drop_database(url)
            print(f"dropped {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

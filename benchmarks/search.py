"""Search benchmark: descriptor quality on real photos, ANN recall and latency at scale.

    .venv/bin/python benchmarks/search.py [--sizes 10000,100000,1000000] [--data DIR] [--json FILE]

Part 1 (real photos, needs the Grocery Store copy): the ``train`` photos are the catalog and the
``val`` photos the queries, embedded with the pretrained ``efficientnet_lite0`` backbone (224 px,
bicubic, centre crop). Printed: mAP, precision@10 and recall@10 of "same leaf category" for raw
L2-normalised features and PCA-whitened ones at a few widths, and the near-duplicate score
distributions used to pick the default threshold (a re-shoot proxy: a perturbed copy of the same
photo; true re-shoots are not labelled in the data).

Part 2 (synthetic, at each size): clustered vectors shaped like the real whitened descriptors;
recall@10 of the ANN index against exact search, p50/p95 latency of one query on one core, build
time and measured bytes of the index structure per million vectors.

Embeddings are cached under ``.catalog_ai/cache/`` (delete it to recompute).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

# One BLAS thread: the exact-search latencies below are for one core (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".catalog_ai" / "cache" / "search-benchmark"
sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------- real photos
def _leaf_files(split_dir: Path) -> tuple[list[Path], list[str]]:
    files = sorted(p for p in split_dir.rglob("*.jpg"))
    labels = [" > ".join(p.parent.relative_to(split_dir).parts) for p in files]
    return files, labels


def _reshoot(img, rng: np.random.Generator):
    """A plausible second photo of the same product: another crop and scale, a small rotation,
    other light, and a fresh JPEG encode. A proxy: a real re-shoot also moves the camera."""
    from PIL import Image, ImageEnhance

    w, h = img.size
    img = img.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BICUBIC, expand=False)
    scale = float(rng.uniform(0.75, 0.92))
    cw, ch = int(w * scale), int(h * scale)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((left, top, left + cw, top + ch))
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.8, 1.2)))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.85, 1.15)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(60, 90)))
    return buf.getvalue()


def embed_grocery(root: Path, *, model: Path | None = None, refresh: bool = False) -> dict:
    """Embeddings of train, val and perturbed copies of the val photos: the pretrained
    efficientnet_lite0's pooled features, or with ``model`` those of a trained bundle."""
    import torch

    from catalog_ai.photos import decode as images

    if model is not None:
        from catalog_ai.inference.predictor import Predictor

        predictor = Predictor.load(model)
        cache = CACHE / f"grocery_{predictor.version}.npz"
        prepare = predictor.prepare

        def embed(batch: list[np.ndarray]) -> np.ndarray:
            return predictor.forward(batch)[0]
    else:
        from catalog_ai.backbones import create_backbone, get_backbone
        from catalog_ai.model.preprocess import center_crop, eval_square_size, normalise, square

        pre = get_backbone("efficientnet_lite0").preprocessing
        net = create_backbone("efficientnet_lite0").eval()
        side = eval_square_size(pre.input_size, pre.crop_pct)
        cache = CACHE / "grocery_efficientnet_lite0.npz"

        def prepare(source) -> np.ndarray:
            img = images.load_image(source, target_size=side)
            return square(img, side, pre.interpolation).transpose(2, 0, 1).copy()

        @torch.inference_mode()
        def embed(batch: list[np.ndarray]) -> np.ndarray:
            x = normalise(
                center_crop(torch.from_numpy(np.stack(batch)), pre.input_size), pre.mean, pre.std
            )
            return net(x).float().numpy()

    if cache.is_file() and not refresh:
        with np.load(cache, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def run(sources: list, what: str) -> np.ndarray:
        out = []
        for i in range(0, len(sources), 16):
            out.append(embed([prepare(s) for s in sources[i : i + 16]]))
            done = min(i + 16, len(sources))
            print(f"\r  embedding {what}: {done}/{len(sources)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        return np.concatenate(out)

    train_files, train_labels = _leaf_files(root / "train")
    val_files, val_labels = _leaf_files(root / "val")
    rng = np.random.default_rng(0)
    reshoots = [_reshoot(images.load_image(f).copy(), rng) for f in val_files]
    data = {
        "train": run(train_files, "train"),
        "train_labels": np.array(train_labels),
        "val": run(val_files, "val"),
        "val_labels": np.array(val_labels),
        "val_reshoot": run(reshoots, "val re-shoots"),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, cache)
    return data


def retrieval_quality(
    catalog: np.ndarray,
    catalog_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """mAP, precision@k and recall@k of "same leaf category" for unit descriptors."""
    sims = queries @ catalog.T
    order = np.argsort(-sims, axis=1, kind="stable")
    relevant = catalog_labels[order] == query_labels[:, None]
    n_rel = relevant.sum(axis=1)
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    ap = (relevant * hits / ranks).sum(axis=1) / np.maximum(n_rel, 1)
    return {
        "mAP": round(float(ap.mean()), 4),
        f"precision@{k}": round(float(relevant[:, :k].mean()), 4),
        f"recall@{k}": round(float((relevant[:, :k].sum(1) / np.maximum(n_rel, 1)).mean()), 4),
        "top1": round(float(relevant[:, 0].mean()), 4),
    }


def descriptor_candidates() -> list:
    from catalog_ai.index import DescriptorConfig

    out = [DescriptorConfig(kind="l2"), DescriptorConfig(kind="center_l2")]
    for dim in (64, 128, 256, 512):
        for power in (1.0, 0.5):
            out.append(DescriptorConfig(kind="pca_whiten", dim=dim, power=power, eps=0.1))
    out.append(DescriptorConfig(kind="pca_whiten", dim=256, power=1.0, eps=0.01))
    out.append(DescriptorConfig(kind="pca_whiten", dim=256, power=1.0, eps=1.0))
    return out


def _label(config) -> str:
    if config.kind != "pca_whiten":
        return config.kind
    return f"pca_whiten d={config.dim} power={config.power} eps={config.eps}"


def real_photo_quality(data: dict[str, np.ndarray]) -> dict:
    """Descriptor choice (catalog = train, queries = val) and small-catalog behaviour."""
    import dataclasses

    from catalog_ai.index import DEFAULT_DESCRIPTOR, fit_descriptor_transform

    train, val = data["train"], data["val"]
    tl, vl = data["train_labels"], data["val_labels"]
    rows = []
    for config in descriptor_candidates():
        t = fit_descriptor_transform(train, dataclasses.replace(config, min_samples=2))
        rows.append(
            {
                "descriptor": _label(config),
                **retrieval_quality(t.apply(train), tl, t.apply(val), vl),
            }
        )
    # Small catalogs: the same protocol with only n catalog photos (fitted on those n).
    small = []
    rng = np.random.default_rng(0)
    for n in (100, 300, 1000):
        pick = rng.choice(len(train), n, replace=False)
        for config in (
            dataclasses.replace(DEFAULT_DESCRIPTOR, kind="center_l2"),
            dataclasses.replace(DEFAULT_DESCRIPTOR, min_samples=2),
        ):
            t = fit_descriptor_transform(train[pick], config)
            keep = np.isin(vl, tl[pick])  # queries whose leaf is in the small catalog
            small.append(
                {
                    "n_catalog": n,
                    "descriptor": f"{t.kind} d={t.dim}",
                    **retrieval_quality(
                        t.apply(train[pick]), tl[pick], t.apply(val[keep]), vl[keep]
                    ),
                }
            )
    return {
        "catalog_train_queries_val": rows,
        "small_catalogs": small,
        "n_catalog": len(train),
        "n_queries": len(val),
    }


def duplicate_scores(
    data: dict[str, np.ndarray], configs: list | None = None, *, repeats: int = 10
) -> dict:
    """Near-duplicate threshold, measured with a labelled proxy.

    True re-shoots are not labelled, but a Grocery leaf is one product (a brand's milk, a
    variety of apple). Each repeat puts the train photos of a random half of the leaves in the
    catalog (~1,300 photos); val photos of the *other* half are products the catalog lacks
    (negatives: their best match must not be flagged). The threshold is the lowest at which at
    most 1 % of those are flagged. Two kinds of positives are then reported at it: a perturbed
    copy of a val photo whose original is in the catalog (another crop, light, rotation, JPEG
    encode: the re-shoot proxy), and a val photo of a leaf in the catalog matched to a train photo
    of the same leaf (the same product photographed on another day: much harder)."""
    import dataclasses

    from catalog_ai.index import DEFAULT_DESCRIPTOR, fit_descriptor_transform

    train, val, shot = data["train"], data["val"], data["val_reshoot"]
    tl, vl = data["train_labels"], data["val_labels"]
    leaves = np.unique(tl)
    grid = np.round(np.arange(0.30, 1.0, 0.01), 2)
    out = {}
    for config in configs or [
        dataclasses.replace(DEFAULT_DESCRIPTOR, kind=kind) for kind in ("l2", "center_l2")
    ] + [DEFAULT_DESCRIPTOR, dataclasses.replace(DEFAULT_DESCRIPTOR, power=1.0)]:
        negative, same_leaf, same_leaf_ok, copy = [], [], [], []
        for rep in range(repeats):
            rng = np.random.default_rng(rep)
            inside = rng.permutation(leaves)[: len(leaves) // 2]
            catalog = np.flatnonzero(np.isin(tl, inside))
            t = fit_descriptor_transform(train[catalog], config)
            c, v = t.apply(train[catalog]), t.apply(val)
            sims = v @ c.T
            best, owner = sims.max(1), tl[catalog][sims.argmax(1)]
            known = np.isin(vl, inside)
            negative.append(best[~known])
            same_leaf.append(best[known])
            same_leaf_ok.append(owner[known] == vl[known])
            with_originals = np.concatenate([c, v[known]])
            s2 = t.apply(shot[known]) @ with_originals.T
            twin = len(c) + np.arange(int(known.sum()))
            copy.append(np.where(s2.argmax(1) == twin, s2.max(1), -1.0))
        negative, same_leaf, same_leaf_ok, copy = map(
            np.concatenate, (negative, same_leaf, same_leaf_ok, copy)
        )
        fpr = np.array([(negative >= g).mean() for g in grid])
        pick = int(np.flatnonzero(fpr <= 0.01)[0])
        threshold = float(grid[pick])
        out[_label(config)] = {
            "threshold_at_fpr_1pct": threshold,
            "fpr": round(float(fpr[pick]), 4),
            "tpr_perturbed_copy": round(float((copy >= threshold).mean()), 4),
            "tpr_same_product_other_photo": round(
                float(((same_leaf >= threshold) & same_leaf_ok).mean()), 4
            ),
            "perturbed_copy_found_first": round(float((copy > -1).mean()), 4),
            "negative_p50_p99": [round(float(np.percentile(negative, q)), 3) for q in (50, 99)],
            "perturbed_copy_p5_p50": [round(float(np.percentile(copy, q)), 3) for q in (5, 50)],
            "n_negative": len(negative),
        }
    return out


# --------------------------------------------------------------------------- synthetic scale
class ClusteredVectors:
    """Synthetic descriptors shaped like the real ones: category centres drawn from a Gaussian
    with the covariance of the real leaf centres, members scattered around them with the real
    within-leaf covariance, then L2-normalised (as the index stores them)."""

    def __init__(self, descriptors: np.ndarray, labels: np.ndarray):
        leaves = np.unique(labels)
        centres = np.stack([descriptors[labels == c].mean(0) for c in leaves])
        residuals = descriptors - centres[np.searchsorted(leaves, labels)]
        self.mean = centres.mean(0)
        dim = descriptors.shape[1]
        self.between = np.linalg.cholesky(np.cov(centres.T) + 1e-6 * np.eye(dim))
        self.within = np.linalg.cholesky(np.cov(residuals.T) + 1e-6 * np.eye(dim))

    def centres(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, len(self.mean))) @ self.between.T

    def sample(self, centres: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        from catalog_ai.index import l2_normalise

        out = np.empty((n, centres.shape[1]), dtype=np.float32)
        # Category sizes vary like a real catalog's (a few big, many small): Zipf-like weights.
        weights = 1.0 / np.arange(1, len(centres) + 1) ** 0.7
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            which = rng.choice(len(centres), m, p=weights / weights.sum())
            noise = rng.standard_normal((m, centres.shape[1])) @ self.within.T
            out[start : start + m] = l2_normalise(centres[which] + noise)
        return out


def _neighbour_profile(index_vectors: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    sims = np.sort(queries @ index_vectors.T, axis=1)[:, ::-1]
    return {
        "median_top1": round(float(np.median(sims[:, 0])), 3),
        "median_top10": round(float(np.median(sims[:, 9])), 3),
    }


def _latency(fn, queries: np.ndarray) -> dict[str, float]:
    for q in queries[:50]:  # warm-up
        fn(q[None, :])
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q[None, :])
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return round(
        float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)])), 4
    )


def scale_benchmark(
    generator: ClusteredVectors,
    size: int,
    *,
    n_queries: int = 1000,
    threads: int = 2,
    ivf: bool = True,
) -> dict:
    import faiss

    from catalog_ai.index import ExactIndex, HNSWIndex, IndexConfig

    rng = np.random.default_rng(size)
    centres = generator.centres(max(81, size // 100), rng)  # ~100 photos per category
    t0 = time.perf_counter()
    vectors = generator.sample(centres, size, rng)
    queries = generator.sample(centres, n_queries, rng)
    ids = np.arange(size, dtype=np.int64) * 3 + 1000  # arbitrary 64-bit ids
    out: dict = {
        "size": size,
        "dim": vectors.shape[1],
        "categories": len(centres),
        "generate_s": round(time.perf_counter() - t0, 1),
    }
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    _, truth_pos = flat.search(queries, 10)
    truth = ids[truth_pos]
    del flat
    out["neighbours"] = (
        _neighbour_profile(vectors[:200_000], queries[:200]) if size <= 200_000 else None
    )
    rows = []
    if size <= 100_000:
        exact = ExactIndex(vectors.shape[1])
        exact.add(ids, vectors)
        faiss.omp_set_num_threads(1)
        rows.append(
            {
                "index": "exact (faiss IndexFlatIP)",
                "recall@10": _recall(exact.search(queries, 10)[1], truth),
                **_latency(lambda q: exact.search(q, 10), queries),
                "bytes_per_million": int(exact.nbytes() / size * 1e6),
            }
        )
        del exact
    faiss.omp_set_num_threads(threads)
    hnsw = HNSWIndex(vectors.shape[1], IndexConfig())
    t0 = time.perf_counter()
    for start in range(0, size, 50_000):
        hnsw.add(ids[start : start + 50_000], vectors[start : start + 50_000])
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    for ef in (16, 32, 64, 128):
        hnsw.config = IndexConfig(ef_search=ef)
        found = hnsw.search(queries, 10)[1]
        rows.append(
            {
                "index": f"hnsw M={hnsw.config.hnsw_m} efC={hnsw.config.ef_construction} ef={ef}",
                "recall@10": _recall(found, truth),
                **_latency(lambda q: hnsw.search(q, 10), queries),
                "bytes_per_million": int(hnsw.nbytes() / size * 1e6),
                "build_s": round(build_s, 1),
            }
        )
    # "juice" + this photo: a text filter that keeps 10 % of the catalog (default settings).
    hnsw.config = IndexConfig()
    allowed = np.sort(rng.choice(ids, size // 10, replace=False))
    keep = np.isin(ids, allowed)
    sub = faiss.IndexFlatIP(vectors.shape[1])
    sub.add(vectors[keep])
    sub_truth = ids[keep][sub.search(queries, 10)[1]]
    found = hnsw.search(queries, 10, allowed=allowed)[1]
    path = "exact over the allowed" if len(allowed) <= hnsw.config.exact_filter_limit else "bitmap"
    rows.append(
        {
            "index": f"hnsw ef={hnsw.config.ef_search}, filter keeps 10 % ({path})",
            "recall@10": _recall(found, sub_truth),
            **_latency(lambda q: hnsw.search(q, 10, allowed=allowed), queries[:300]),
        }
    )
    # 10 % of the catalog removed: tombstones skipped during the walk, before compaction.
    gone = np.sort(rng.choice(ids, size // 10, replace=False))
    hnsw.remove(gone)
    alive = ~np.isin(ids, gone)
    sub = faiss.IndexFlatIP(vectors.shape[1])
    sub.add(vectors[alive])
    alive_truth = ids[alive][sub.search(queries, 10)[1]]
    found = hnsw.search(queries, 10)[1]
    rows.append(
        {
            "index": f"hnsw ef={hnsw.config.ef_search}, 10 % removed (tombstones)",
            "recall@10": _recall(found, alive_truth),
            **_latency(lambda q: hnsw.search(q, 10), queries[:300]),
        }
    )
    hnsw = sub = None  # free them before the IVF build
    if ivf:
        faiss.omp_set_num_threads(threads)
        nlist = int(2 * np.sqrt(size))
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        index.train(vectors[rng.choice(size, min(size, 40 * nlist), replace=False)])
        index.add(vectors)
        build_s = time.perf_counter() - t0
        invlists = index.invlists
        ivf_bytes = (
            sum(invlists.list_size(i) * (index.code_size + 8) for i in range(nlist))
            + nlist * vectors.shape[1] * 4
        )
        faiss.omp_set_num_threads(1)
        for nprobe in (8, 16, 32, 64):
            index.nprobe = nprobe
            found = ids[index.search(queries, 10)[1]]
            rows.append(
                {
                    "index": f"ivf-flat nlist={nlist} nprobe={nprobe} (faiss, for comparison)",
                    "recall@10": _recall(found, truth),
                    **_latency(lambda q: index.search(q, 10), queries),
                    "bytes_per_million": int(ivf_bytes / size * 1e6),
                    "build_s": round(build_s, 1),
                }
            )
    out["rows"] = rows
    return out


def text_search_benchmark(n_products: int, postgres_admin_url: str | None = None) -> dict:
    """Latency of :func:`text_search` over ``n_products`` synthetic titles (a table scan), in a
    scratch SQLite file, or in a scratch database created on the PostgreSQL server and dropped."""
    import tempfile
    import uuid

    import sqlalchemy as sa

    from catalog_ai.db import Product, dispose_engines, session_factory
    from catalog_ai.db.migrate import upgrade
    from catalog_ai.services.text_search import text_search

    words = [
        "orange",
        "apple",
        "juice",
        "milk",
        "organic",
        "red",
        "green",
        "pepper",
        "yoghurt",
        "oat",
        "soy",
        "banana",
        "melon",
        "lemon",
        "lime",
        "pear",
        "plum",
        "kiwi",
        "mango",
    ]
    rng = np.random.default_rng(0)
    admin = scratch = None
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/text.db"
        if postgres_admin_url:
            admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
            scratch = f"catalog_ai_searchbench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{scratch}"'))
            url = (
                sa.make_url(postgres_admin_url)
                .set(database=scratch)
                .render_as_string(hide_password=False)
            )
        try:
            upgrade(url)
            with session_factory(url)() as session:
                rows = [
                    {"title": " ".join(rng.choice(words, 4)) + f" {i}", "status": "accepted"}
                    for i in range(n_products)
                ]
                for start in range(0, n_products, 20_000):
                    session.execute(sa.insert(Product), rows[start : start + 20_000])
                session.commit()
                out = {"backend": sa.make_url(url).get_backend_name(), "products": n_products}
                for query in ("juice", "orange juice", "organic red pepper"):
                    times = []
                    for _ in range(7):
                        start = time.perf_counter()
                        hits = text_search(session, query, limit=20)
                        times.append(time.perf_counter() - start)
                    out[query] = {
                        "median_ms": round(1000 * float(np.median(times)), 1),
                        "hits": len(hits),
                    }
        finally:
            dispose_engines()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
                admin.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated catalog sizes"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="Grocery Store copy (default: ../shared/...)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="embed the photos with this trained bundle instead of the pretrained backbone",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="threads for building only"
    )
    parser.add_argument("--no-ivf", action="store_true", help="skip the IVF comparison rows")
    parser.add_argument(
        "--text-products",
        type=int,
        default=100_000,
        help="products for the text-search timing (0: skip)",
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=None,
        help="also time text search on PostgreSQL, in a scratch database created on this server "
        "and dropped afterwards (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from catalog_ai.datasets.fetch import find_local_grocery_store
    from catalog_ai.index import DEFAULT_DESCRIPTOR, fit_descriptor_transform

    root = args.data or find_local_grocery_store(REPO)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return 2
    load = os.getloadavg()
    figures: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads, load average {load[0]:.1f} at start",
        "descriptor": DEFAULT_DESCRIPTOR.__dict__,
    }
    data = embed_grocery(root, model=args.model)
    torch.set_num_threads(1)
    figures["real_photos"] = real_photo_quality(data)
    figures["near_duplicates"] = duplicate_scores(data)
    _print_real(figures)

    transform = fit_descriptor_transform(data["train"], DEFAULT_DESCRIPTOR)
    real_desc, real_queries = transform.apply(data["train"]), transform.apply(data["val"])
    generator = ClusteredVectors(real_desc, data["train_labels"])
    figures["realism"] = {
        "real (catalog train, queries val)": _neighbour_profile(real_desc, real_queries)
    }
    rng = np.random.default_rng(1)
    centres = generator.centres(81, rng)
    figures["realism"]["synthetic at the same size"] = _neighbour_profile(
        generator.sample(centres, len(real_desc), rng), generator.sample(centres, 200, rng)
    )
    print(f"\nneighbour similarity, real vs synthetic: {figures['realism']}")
    figures["scale"] = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        print(
            f"\n== {size:,} vectors, dim {transform.dim} (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        result = scale_benchmark(
            generator, size, n_queries=args.queries, threads=args.threads, ivf=not args.no_ivf
        )
        figures["scale"].append(result)
        for row in result["rows"]:
            extra = "".join(f"  {k} {row[k]}" for k in ("bytes_per_million", "build_s") if k in row)
            print(
                f"  {row['index']:<58} recall@10 {row['recall@10']:.4f}  p50 {row['p50_ms']:.3f} ms  "
                f"p95 {row['p95_ms']:.3f} ms{extra}",
                flush=True,
            )
    if args.text_products:
        figures["text_search"] = [text_search_benchmark(args.text_products)]
        if args.postgres_admin_url:
            figures["text_search"].append(
                text_search_benchmark(args.text_products, args.postgres_admin_url)
            )
        for row in figures["text_search"]:
            print(
                f"\ntext search over {row['products']:,} products ({row['backend']}): "
                + ", ".join(
                    f"{q!r} {v['median_ms']} ms" for q, v in row.items() if isinstance(v, dict)
                )
            )
    figures["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _print_real(figures: dict) -> None:
    real = figures["real_photos"]
    print(
        f"real photos: catalog = {real['n_catalog']} Grocery train photos, queries = {real['n_queries']} val "
        "photos, relevant = same leaf category"
    )
    for row in real["catalog_train_queries_val"]:
        print(
            f"  {row['descriptor']:<40} mAP {row['mAP']:.4f}  P@10 {row['precision@10']:.4f}  "
            f"R@10 {row['recall@10']:.4f}  top-1 {row['top1']:.4f}"
        )
    print("small catalogs (n train photos as the catalog, descriptor fitted on them):")
    for row in real["small_catalogs"]:
        print(
            f"  n={row['n_catalog']:<5} {row['descriptor']:<22} mAP {row['mAP']:.4f}  P@10 {row['precision@10']:.4f}"
        )
    print(
        "near duplicates (threshold: <= 1 % of photos of products absent from a ~1,300-photo catalog "
        "flagged):"
    )
    for name, row in figures["near_duplicates"].items():
        print(
            f"  {name:<40} threshold {row['threshold_at_fpr_1pct']:.2f} (FPR {row['fpr']:.3f}): flags "
            f"{row['tpr_perturbed_copy']:.3f} of perturbed copies, {row['tpr_same_product_other_photo']:.3f} "
            f"of other photos of the same product; absent products' best match p50/p99 "
            f"{row['negative_p50_p99']}"
        )


if __name__ == "__main__":
    sys.exit(main())

"""Multi-photo products: which rule fuses a product's photos, measured on synthetic products.

    .venv/bin/python benchmarks/multiphoto.py [--bundle DIR] [--groupings 5] [--data DIR]

The Grocery Store has no multi-photo products, so products are made SYNTHETICALLY: the val
photos of one leaf are shuffled (fixed seeds, one per grouping) and cut into products of 2 or
3 photos (a remainder smaller than the product size is left out). These photos were taken in
different sessions, so they are more independent than a real product's front and back: a rule
that assumes independent photos (the product of experts at T = 1) looks better here than it
would in a shop.

For each rule and product size it prints leaf accuracy, ECE, and coverage and precision at the
model's own 98 % threshold (fitted on single photos of the train hold-out), and the coverage at
98 % precision 2-fold cross-fitted over the products (the threshold chosen on one half, scored on
the other, both ways). The product-of-experts temperature exponent is fitted on the train
hold-out (photos the network never trained on), never on val. The held-back test split is not
used. Embeddings are computed once per bundle and cached beside it.

Without ``--bundle`` it uses (or trains, about 3-5 min on 2 CPU threads) the main job's quick
model (frozen EfficientNet-Lite0 + calibrated head) under the temp folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from catalog_ai.datasets.fetch import find_local_grocery_store
from catalog_ai.evaluation import evaluate_arrays
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.calibration import threshold_for_precision
from catalog_ai.model.photo_fusion import fuse_photos
from catalog_ai.training.data import stratified_split
from catalog_ai.training.fit import TrainConfig, fit
from catalog_ai.training.sources import load_folder_examples

TARGET = "0.98"
BETAS = np.round(np.arange(0.0, 1.51, 0.05), 2)


def quick_bundle(root: Path, out: Path) -> Path:
    if (out / "bundle.json").is_file():
        print(f"reusing the bundle at {out}", file=sys.stderr)
        return out
    print(f"training the quick model into {out}", file=sys.stderr)
    taxonomy, examples, description = load_folder_examples(root / "train")
    started = time.monotonic()
    fit(
        TrainConfig.preset("linear_probe"),
        taxonomy=taxonomy,
        examples=examples,
        out_dir=out,
        data_description=description,
    )
    print(f"trained in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def embeddings(predictor: Predictor, files: list[Path], cache: Path) -> np.ndarray:
    if cache.is_file():
        data = np.load(cache)
        if data["version"].item() == predictor.version and len(data["emb"]) == len(files):
            return data["emb"]
    out = []
    for i in range(0, len(files), predictor.batch_size):
        squares = [predictor.prepare(f) for f in files[i : i + predictor.batch_size]]
        out.append(predictor.embed_logits(squares)[0].float().cpu().numpy())
    emb = np.concatenate(out)
    np.savez(cache, emb=emb, version=np.array(predictor.version))
    return emb


def groupings(labels: np.ndarray, size: int, seed: int) -> list[np.ndarray]:
    """Products of ``size`` photos of one leaf, drawn with ``seed`` (synthetic)."""
    rng = np.random.default_rng(seed)
    groups = []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        groups += [idx[k : k + size] for k in range(0, len(idx) - size + 1, size)]
    return groups


def fit_beta(probs: np.ndarray, labels: np.ndarray) -> float:
    """The product-of-experts exponent (T = n ** beta) with the lowest NLL of the true class
    over products of 2 and 3 photos of the train hold-out (5 groupings each)."""
    nll = []
    for beta in BETAS:
        total = 0.0
        for size in (2, 3):
            for seed in range(5):
                for g in groupings(labels, size, seed):
                    p = fuse_photos(probs[g], "product", temperature_exponent=float(beta))
                    total -= float(np.log(max(p[labels[g[0]]], 1e-12)))
        nll.append(total)
    return float(BETAS[int(np.argmin(nll))])


def cross_fitted(conf: np.ndarray, correct: np.ndarray, ok: np.ndarray, labels, seed: int):
    """Coverage and precision at 98 %: the threshold chosen on one half of the products
    (stratified by leaf), scored on the other half, both ways."""
    rng = np.random.default_rng(10_000 + seed)
    fold = np.zeros(len(conf), dtype=int)
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        fold[idx[: len(idx) // 2]] = 1
    covered = hits = 0
    for k in (0, 1):
        fit_on, score_on = (fold != k) & ok, (fold == k)
        t = threshold_for_precision(conf[fit_on], correct[fit_on], float(TARGET))
        accepted = score_on & ok & (conf >= t)
        covered += int(accepted.sum())
        hits += int(correct[accepted].sum())
    return covered / len(conf), (hits / covered if covered else float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--groupings", type=int, default=5, help="random groupings (seeds 0..)")
    args = parser.parse_args(argv)
    root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(min(2, os.cpu_count() or 2))
    started = time.monotonic()
    bundle_dir = args.bundle or quick_bundle(
        root, Path(tempfile.gettempdir()) / "catalog_ai-multiphoto" / "quick-lite0"
    )
    predictor = Predictor.load(bundle_dir, freeze=False)
    bundle = predictor.bundle
    taxonomy = bundle.taxonomy
    column = {path: k for k, path in enumerate(taxonomy.leaf_ids)}

    val = load_folder_examples(root / "val", taxonomy=taxonomy)[1]
    cfg = bundle.training.get("config", {})
    train = load_folder_examples(root / "train", taxonomy=taxonomy)[1]
    held = stratified_split(train, float(cfg.get("holdout", 0.1)), seed=int(cfg.get("seed", 0)))[1]
    val_emb = embeddings(predictor, [e.file for e in val], bundle_dir / "multiphoto-val.npz")
    held_emb = embeddings(predictor, [e.file for e in held], bundle_dir / "multiphoto-held.npz")
    val_y = np.array([column[e.label] for e in val])
    held_y = np.array([column[e.label] for e in held])
    val_a = predictor.analyse_embeddings(val_emb)
    held_a = predictor.analyse_embeddings(held_emb)
    assert val_a.class_probs is not None and held_a.class_probs is not None
    beta = fit_beta(held_a.class_probs, held_y)

    def by_embedding(g: np.ndarray) -> tuple[np.ndarray, bool]:
        a = predictor.analyse_embeddings(val_emb[g].mean(axis=0, keepdims=True))
        assert a.class_probs is not None
        return a.class_probs[0], bool(a.open_set[0])

    def by_probs(rule: str, exponent: float = 1.0) -> Callable:
        def fused(g: np.ndarray) -> tuple[np.ndarray, bool]:
            assert val_a.class_probs is not None
            p = val_a.class_probs[g]
            if rule == "most_confident":
                j = int(np.argmax(p.max(axis=1)))
                return p[j], bool(val_a.open_set[g[j]])
            far = int(val_a.open_set[g].sum())
            return fuse_photos(p, rule, temperature_exponent=exponent), 2 * far >= len(g)

        return fused

    rules: dict[str, Callable] = {
        "(a) mean of probabilities": by_probs("mean"),
        "(b) product of experts, T = 1": by_probs("product", 0.0),
        "(b) geometric mean, T = n": by_probs("product", 1.0),
        f"(b) product, T = n^{beta:g} (fitted on train hold-out)": by_probs("product", beta),
        "(c) most confident photo": by_probs("most_confident"),
        "(d) mean of embeddings, then the head": by_embedding,
    }
    t98 = bundle.thresholds.auto_accept_by_precision.get(TARGET)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, torch "
        f"{torch.__version__}; bundle {bundle.version} ({bundle.backbone}); val photos "
        f"{len(val)}, {len(column)} leaves; train hold-out {len(held)} photos; model 98 % "
        f"threshold {t98}; fitted beta {beta:g}; {args.groupings} groupings (seeds "
        f"0..{args.groupings - 1}); products are SYNTHETIC groups of one leaf's val photos"
    )
    print()
    print(
        "| rule | photos | products | leaf accuracy | mean confidence | ECE | coverage at the "
        "model's 98 % threshold | precision there | cross-fitted coverage at 98 % | its "
        "precision | oracle coverage at 98 % |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rule in rules.items():
        for size in (1, 2, 3):
            runs = []
            for seed in range(args.groupings if size > 1 else 1):
                groups = groupings(val_y, size, seed)
                fused = [rule(g) for g in groups]
                probs = np.stack([p for p, _ in fused])
                ok = ~np.array([far for _, far in fused])
                y = np.array([val_y[g[0]] for g in groups])
                node = predictor.tree.node_probs(torch.from_numpy(probs)).numpy()
                rows = np.array([taxonomy.row(taxonomy.leaf_ids[k]) for k in y])
                m = evaluate_arrays(
                    node, rows, taxonomy, thresholds=bundle.thresholds, acceptable=ok
                ).metrics
                conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
                cov, prec = cross_fitted(conf, correct, ok, y, seed)
                runs.append(
                    [
                        len(groups),
                        m["leaf_accuracy"],
                        conf.mean(),
                        m["ece"],
                        m["coverage_at_precision"].get(TARGET) or 0.0,
                        m["precision_at_threshold"].get(TARGET) or float("nan"),
                        cov,
                        prec,
                        m["oracle_coverage_at_precision"].get(TARGET) or 0.0,
                    ]
                )
            r = np.array(runs, dtype=float)
            cells = [f"{int(r[0, 0])}"] + [
                _pct(r[:, k]) if k != 3 else _num(r[:, k]) for k in range(1, 9)
            ]
            print(f"| {name} | {size} | " + " | ".join(cells) + " |")
    print()
    _held_out_check(held_a.class_probs, held_y, beta, args.groupings)
    print()
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


def _held_out_check(probs: np.ndarray, labels: np.ndarray, beta: float, n_groupings: int) -> None:
    """The same rules on the train hold-out, where single photos are calibrated by construction
    (the temperature was fitted there): how each rule behaves on top of a calibrated model.
    In-sample for the temperature and beta, so only the direction is worth reading."""
    print("train hold-out (single photos calibrated there by construction; in-sample):")
    print("| rule | photos | products | leaf accuracy | mean confidence |")
    print("| --- | --- | --- | --- | --- |")
    rules = {
        "(a) mean": ("mean", 1.0),
        "(b) geometric mean": ("product", 1.0),
        f"(b) product, T = n^{beta:g}": ("product", beta),
        "(b) product, T = 1": ("product", 0.0),
        "(c) most confident photo": ("most_confident", 1.0),
    }
    for name, (rule, exponent) in rules.items():
        for size in (1, 2, 3):
            runs = []
            for seed in range(n_groupings if size > 1 else 1):
                groups = groupings(labels, size, seed)
                fused = np.stack(
                    [fuse_photos(probs[g], rule, temperature_exponent=exponent) for g in groups]
                )
                y = np.array([labels[g[0]] for g in groups])
                runs.append([len(groups), (fused.argmax(1) == y).mean(), fused.max(1).mean()])
            r = np.array(runs, dtype=float)
            print(f"| {name} | {size} | {int(r[0, 0])} | {_pct(r[:, 1])} | {_pct(r[:, 2])} |")


def _pct(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "n/a"
    if values.size == 1:
        return f"{100 * values[0]:.1f} %"
    return f"{100 * values.mean():.1f} ± {100 * values.std():.1f} %"


def _num(values: np.ndarray) -> str:
    if values.size == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std():.3f}"


if __name__ == "__main__":
    sys.exit(main())

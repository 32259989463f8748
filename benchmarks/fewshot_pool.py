"""Prototypes refined with unlabelled photos (a store's backlog of uploads): measured, not adopted.

    .venv/bin/python benchmarks/fewshot.py --out /work/bench/fewshot          # trains the base model
    .venv/bin/python benchmarks/fewshot_pool.py --model /work/bench/fewshot/base [--cache FILE]

A few example photos (or one catalog photo) make a noisy prototype. A store also holds many
photos nobody has labelled yet; ``refine_with_pool`` below (soft k-means seeded with the
labelled examples, Ren et al. 2018) moves each prototype-only category towards the unlabelled
photos that are clearly its own, while the trained categories compete for the photos without
moving. The unlabelled pool here is the ``train`` split with its labels thrown away; the figures
are on ``val``, which is never in the pool. The one-shot parameters are chosen on folds of train
(half of train is the pool, the other half is scored with its labels), not on val.

Outcome (docs/BENCHMARKS.md): no gain on the catalog-photo one-shot on val, and for new
categories added with photos it trades known categories' accuracy for recall of the new ones,
as the rules of benchmarks/fewshot_variants.py do; so the product does not do it.

Reports, with and without the pool:
- catalog-photo one-shot (every leaf known only through its single catalog photo);
- generalised few-shot (16 held-out leaves added with k = 1 / 5 photos, as benchmarks/fewshot.py,
  same seeds): held-out leaves' accuracy and the base leaves' drop.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from catalog_ai.model.fusion import fuse
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.prototypes import normalise_embeddings
from catalog_ai.taxonomy import format_path, scan_folder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewshot import catalog_photos, open_replay, replay_args  # noqa: E402  (the same draws and held-out leaves)


@dataclass
class PoolParams:
    beta: float = 20.0  # sharpness of a pool photo's soft assignment: softmax over beta * cosine
    iterations: int = 3  # assignment/update rounds
    pool_weight: float = 1.0  # one fully assigned pool photo against one labelled example


def refine_with_pool(sums: np.ndarray, pool: np.ndarray, params: PoolParams, *,
                     fixed: np.ndarray | None = None) -> np.ndarray:
    """``sums``: ``(P, D)`` sums of the categories' normalised examples (more examples, less
    movement); ``pool``: ``(N, D)`` normalised unlabelled embeddings; ``fixed``: ``(F, D)`` unit
    prototypes that compete for pool photos but do not move. Returns ``(P, D)`` unit prototypes."""
    sums = np.asarray(sums, dtype=np.float64)
    fixed = np.zeros((0, sums.shape[1])) if fixed is None else fixed
    extra = np.zeros_like(sums)
    for _ in range(params.iterations):
        logits = params.beta * pool @ np.vstack([fixed, unit(sums + extra)]).T
        weights = np.exp(logits - logits.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        extra = params.pool_weight * weights[:, len(fixed):].T @ pool
    return unit(sums + extra)


def embed_files(predictor: Predictor, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Raw embeddings and temperature-scaled head logits, with a progress line."""
    emb, logits = [], []
    for i in range(0, len(files), predictor.batch_size):
        e, lg = predictor.embed_logits([predictor.prepare(f) for f in files[i : i + predictor.batch_size]])
        emb.append(e.float().cpu().numpy())
        logits.append((lg.double() / predictor.bundle.temperature).cpu().numpy())
        print(f"\rembedding {min(i + predictor.batch_size, len(files))}/{len(files)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return np.concatenate(emb), np.concatenate(logits)


def nearest(q: np.ndarray, proto: np.ndarray) -> np.ndarray:
    return (q @ proto.T).argmax(1)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> int:
    ap = replay_args(__doc__)
    ap.add_argument("--cache", type=Path, default=None, help="an .npz of the embeddings (written when missing)")
    ap.add_argument("--folds", type=int, default=4, help="random halves of train used to choose the parameters")
    args = ap.parse_args(argv)
    opened = open_replay(args)
    if opened is None:
        return 2
    root, predictor, head_leaves, novel = opened
    memory = predictor.prototypes
    train = [(f, format_path(p)) for f, p in scan_folder(root / "train").files]
    val = [(f, format_path(p)) for f, p in scan_folder(root / "val").files]
    iconic, icon_labels = catalog_photos(root, sorted({t for _, t in train}))
    icon_labels = np.array(icon_labels)

    cache = args.cache
    if cache is not None and cache.is_file():
        z = np.load(cache)
        tr_emb, va_emb, va_head, ic_emb = (z[k] for k in ("tr_emb", "va_emb", "va_head", "ic_emb"))
    else:
        tr_emb, _ = embed_files(predictor, [f for f, _ in train])
        va_emb, va_head = embed_files(predictor, [f for f, _ in val])
        ic_emb, _ = embed_files(predictor, iconic)
        if cache is not None:
            np.savez(cache, tr_emb=tr_emb, va_emb=va_emb, va_head=va_head, ic_emb=ic_emb)

    center = memory.center
    tr_q, va_q, ic_q = (normalise_embeddings(x, center) for x in (tr_emb, va_emb, ic_emb))
    tr_truth, va_truth = np.array([t for _, t in train]), np.array([t for _, t in val])
    labels = sorted(set(icon_labels))
    icon_proto = np.stack([unit(ic_q[icon_labels == lab].sum(0)) for lab in labels])
    figures: dict = {"pool": f"train split, labels unused ({len(train)} photos)", "n_val": len(val)}

    # -- catalog-photo one-shot: choose the pool parameters on folds of train --------------------
    grid = [PoolParams(beta=b, iterations=it, pool_weight=w)
            for b in (10.0, 20.0, 40.0) for it in (1, 3, 10) for w in (0.5, 1.0, 2.0)]
    rng = np.random.default_rng(args.seed)
    folds = [rng.permutation(len(train)) < len(train) // 2 for _ in range(args.folds)]
    scores = []
    for params in grid:
        accs = []
        for half in folds:
            proto = refine_with_pool(icon_proto, tr_q[half], params)
            accs.append((np.array(labels)[nearest(tr_q[~half], proto)] == tr_truth[~half]).mean())
        scores.append(float(np.mean(accs)))
    base_fold = float(np.mean([(np.array(labels)[nearest(tr_q[~h], icon_proto)] == tr_truth[~h]).mean() for h in folds]))
    best = grid[int(np.argmax(scores))]
    figures["one_shot_choice_on_train_folds"] = {
        "no_pool": round(base_fold, 4),
        "grid": {f"beta={p.beta:g} it={p.iterations} w={p.pool_weight:g}": round(s, 4) for p, s in zip(grid, scores)},
        "chosen": best.__dict__,
    }
    for name, proto in [("no pool", icon_proto),
                        ("pool (chosen params)", refine_with_pool(icon_proto, tr_q, best)),
                        ("pool (beta 20, 3 rounds, weight 1)", refine_with_pool(icon_proto, tr_q, PoolParams()))]:
        pred = np.array(labels)[nearest(va_q, proto)]
        figures[f"one-shot {name}"] = {"all_leaves": round(float((pred == va_truth).mean()), 4),
                                       "held_out_leaves": round(float((pred == va_truth)[np.isin(va_truth, novel)].mean()), 4)}

    # -- generalised few-shot with the fused decision --------------------------------------------
    is_novel = np.isin(va_truth, novel)
    base_proto = np.stack([memory.prototypes()[memory.paths.index(p)] for p in head_leaves])
    cos_base = va_q @ base_proto.T
    before = (np.array(head_leaves)[va_head.argmax(1)] == va_truth)[~is_novel].mean()
    train_idx_by_leaf = {leaf: np.flatnonzero(tr_truth == leaf) for leaf in novel}
    names = head_leaves + novel

    def replay(k: int, params: PoolParams | None) -> dict:
        runs = []
        for draw in range(args.draws):
            rng = np.random.default_rng(1000 * k + draw)  # as benchmarks/fewshot.py
            sums = []
            for leaf in novel:
                # The same draws as fewshot.py's choice among the leaf's files (same length, same order).
                idx = train_idx_by_leaf[leaf]
                sums.append(tr_q[rng.choice(idx, size=min(k, len(idx)), replace=False)].sum(0))
            proto = unit(np.array(sums))
            if params is not None:
                # The pool competes against every known category: trained prototypes stay fixed.
                proto = refine_with_pool(np.array(sums), tr_q, params, fixed=base_proto)
            cos_new = va_q @ proto.T
            probs = fuse(torch.from_numpy(va_head), torch.from_numpy(cos_new), memory.fusion,
                         torch.from_numpy(cos_base.max(1)))
            ok = np.array(names)[probs.argmax(1).numpy()] == va_truth
            runs.append((ok[is_novel].mean(), ok[~is_novel].mean()))
        arr = np.array(runs)
        return {"held_out_leaf_accuracy": round(float(arr[:, 0].mean()), 4),
                "base_drop_points": round(100 * (before - float(arr[:, 1].mean())), 2)}

    figures["base_accuracy_before"] = round(float(before), 4)
    for k in (1, 5):
        figures[f"k{k} no pool"] = replay(k, None)
        for params in (PoolParams(), PoolParams(beta=80, iterations=1, pool_weight=0.25), best):
            figures[f"k{k} pool beta={params.beta:g} it={params.iterations} w={params.pool_weight:g}"] = replay(k, params)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

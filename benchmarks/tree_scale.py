"""Scale of the category tree: from the Grocery Store's 81 leaves to Google-size and larger trees.

    .venv/bin/python benchmarks/tree_scale.py [--threads 2] [--repeats 15] [--json FILE]

For each tree it measures, with synthetic labels and scores (no photos needed):

1. the per-photo *decision* cost of the serving path without the backbone: the head
   ``Linear(1280 -> n_leaves)`` on a fixed embedding, softmax with temperature,
   ``TreeIndex.node_probs``, and ``Decider.decide`` (top-5 per depth), at batch 8 and batch 1;
2. the *full* per-photo cost, ``Predictor.forward`` (efficientnet_lite0, random weights, 224 px,
   batch 8) plus ``Decider.decide``, for the 81-leaf tree and the Google-size tree, and the ratio;
3. the memory held per tree (taxonomy, ``TreeIndex``, ``Decider``, head) and a least-squares fit
   ``bytes = a * n_nodes + b``;
4. optimiser steps of the real ``HierarchicalClassifierModule`` (tiny-cnn, 32 px, labels on
   leaves and inner nodes); 5. ``fit_temperature``; 6. ``evaluate_arrays``.

Timings on a shared machine are noisy: the trees are measured in alternating order, round after
round, and medians are reported, so that the *ratios* between trees stay fair. Decisions are made
to walk down to a leaf at the tree's deepest level (the most expensive walk).
Prints a table, then the figures as one line of JSON (also written, indented, to ``--json``).
About 3.5 minutes on a shared 2-core machine under a load of 5.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from _trees import (
    synthetic_google_lines,
    synthetic_labels,
    synthetic_leaf_logits,
)
from catalog_ai.backbones import create_backbone, get_backbone
from catalog_ai.model.bundle import write_bundle
from catalog_ai.model.calibration import fit_temperature
from catalog_ai.datasets.fetch import find_local_grocery_store
from catalog_ai.evaluation import evaluate_arrays
from catalog_ai.model.hierarchy import TreeIndex, marginal_nll
from catalog_ai.model.decision import Decider, Thresholds
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.network import HierarchicalClassifier
from catalog_ai.taxonomy import Taxonomy, from_folder, parse_google
from catalog_ai.training.module import HierarchicalClassifierModule

EMBEDDING_DIM = 1280  # efficientnet_lite0
SERVING_BACKBONE = "efficientnet_lite0"
TEMPERATURE = 1.3
THRESHOLDS = Thresholds(decision=0.5, auto_accept=0.9, auto_accept_by_precision={"0.98": 0.9})
# (key, nodes, levels): the Google-size and seed-store trees are the issue's; the others give the
# linear fit a spread of sizes. The 1k/20k/40k trees share Google's depth, so their ratios
# compare like with like.
SYNTHETIC = (("1k", 1_000, 7), ("google", 5_600, 7), ("seed10k", 10_000, 4),
             ("20k", 20_000, 7), ("40k", 40_000, 7))
SMALL, GOOGLE, SEED = "grocery", "google", "seed10k"


@dataclass
class Case:
    """One tree with its serving structures and the bytes each holds."""

    key: str
    source: str
    taxonomy: Taxonomy
    tree: TreeIndex
    decider: Decider
    memory: dict

    @property
    def n_nodes(self) -> int:
        return len(self.taxonomy)

    @property
    def n_leaves(self) -> int:
        return self.tree.n_leaves


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


# --------------------------------------------------------------------------------------------
# Trees and their memory


def _tensor_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def build_case(key: str, build: Callable[[], Taxonomy], source: str) -> Case:
    """Build the tree, its TreeIndex and Decider, measuring what each holds.

    Python objects are measured with tracemalloc (numpy arrays included: numpy reports its data
    to tracemalloc), tensors by their element bytes (torch's allocator is not traced). The C++
    headers of the per-node tensor views in ``TreeIndex`` (a few hundred bytes each) are in
    neither, so the figures are a slight undercount.
    """
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        taxonomy = build()
        taxonomy.leaf_ancestor_rows, taxonomy.parent_rows  # fill the cached index maps
        gc.collect()
        taxonomy_bytes = tracemalloc.get_traced_memory()[0] - base

        base = tracemalloc.get_traced_memory()[0]
        tree = TreeIndex(taxonomy)
        tree.leaves_under(0)  # the per-node leaf lists that training's target_mask uses
        gc.collect()
        tree_py = tracemalloc.get_traced_memory()[0] - base

        base = tracemalloc.get_traced_memory()[0]
        decider = Decider(taxonomy, THRESHOLDS, model_version="bench")
        gc.collect()
        decider_bytes = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    tree_tensors = _tensor_bytes([tree.leaf_rows, tree.pair_leaf, tree.pair_node, tree.node_depth,
                                  *tree._leaves_under])
    head = (EMBEDDING_DIM + 1) * tree.n_leaves * 4  # float32 weight and bias
    memory = {"taxonomy": taxonomy_bytes, "tree_index": tree_py + tree_tensors,
              "tree_index_tensors": tree_tensors, "decider": decider_bytes, "head": head}
    memory["total"] = taxonomy_bytes + tree_py + tree_tensors + decider_bytes + head
    return Case(key, source, taxonomy, tree, decider, memory)


def build_cases() -> list[Case]:
    grocery = find_local_grocery_store(Path(__file__).resolve().parent)
    if grocery is not None:
        train = grocery / "train"
        cases = [build_case(SMALL, lambda: from_folder(train), f"folder tree of {train}")]
    else:
        lines = synthetic_google_lines(100, 3, roots=3)
        cases = [build_case(SMALL, lambda: parse_google(lines), "synthetic (dataset not found)")]
    for key, n_nodes, depth in SYNTHETIC:
        lines = synthetic_google_lines(n_nodes, depth, seed=0)
        cases.append(build_case(key, lambda lines=lines: parse_google(lines),
                                f"synthetic Google-like, {depth} levels"))
    return cases


def linear_fit(x: list[float], y: list[float]) -> dict:
    """Least squares ``y = a x + b`` and its R²."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    a, b = np.polyfit(xa, ya, 1)
    residual = ya - (a * xa + b)
    r2 = 1.0 - float(residual @ residual) / float(((ya - ya.mean()) ** 2).sum())
    return {"bytes_per_node": round(float(a), 1), "intercept_bytes": round(float(b)),
            "r2": round(r2, 6)}


# --------------------------------------------------------------------------------------------
# 1. Decision cost without the backbone


def _deep_leaves(case: Case, n: int, rng: np.random.Generator) -> np.ndarray:
    """Leaf columns of ``n`` leaves at the tree's deepest level: the longest decision walks."""
    depths = case.tree.node_depth[case.tree.leaf_rows].numpy()
    deepest = np.flatnonzero(depths == depths.max())
    return rng.choice(deepest, n, replace=deepest.size < n)


def _boost(head: torch.nn.Linear, embeddings: torch.Tensor, columns: np.ndarray,
           margin: float = 20.0) -> None:
    """Make each embedding's logit at its leaf column ``margin`` higher: a confident network."""
    with torch.no_grad():
        for e, column in zip(embeddings, columns.tolist(), strict=True):
            head.weight[column] += e * (margin / float(e @ e))


class HeadPath:
    """The serving path after the backbone, as ``Predictor.forward`` and ``Predictor.predict``
    run it: head, temperature, softmax, node probabilities (float64 numpy), one Decision each."""

    def __init__(self, case: Case, batch: int, seed: int = 0):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.case = case
        self.network = HierarchicalClassifier(torch.nn.Identity(), EMBEDDING_DIM,
                                              case.n_leaves).eval()
        self.embeddings = torch.randn(batch, EMBEDDING_DIM)
        _boost(self.network.head, self.embeddings, _deep_leaves(case, batch, rng))

    @torch.inference_mode()
    def node_probs(self) -> np.ndarray:
        leaf_logits = self.network.head(self.embeddings) / TEMPERATURE
        return self.case.tree.node_probs(leaf_logits.softmax(dim=1)).double().cpu().numpy()

    def __call__(self) -> list:
        return [self.case.decider.decide(p) for p in self.node_probs()]


def measure_decisions(cases: list[Case], repeats: int, batches: tuple[int, ...] = (8, 1)) -> dict:
    """Per-photo decision cost per batch size, trees interleaved (order reversed every round)."""
    out: dict = {}
    for batch in batches:
        paths = [HeadPath(c, batch) for c in cases]
        depths = {c.key: float(np.mean([d.depth for d in p()])) for c, p in zip(cases, paths)}
        inner = max(1, 8 // batch)  # calls per sample: keeps a sample well above timer noise
        samples: dict[str, list[float]] = {c.key: [] for c in cases}
        for r in range(repeats):
            order = list(zip(cases, paths))
            for case, path in (order if r % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                for _ in range(inner):
                    path()
                samples[case.key].append((time.perf_counter() - start) / (inner * batch))
        for case in cases:
            out.setdefault(case.key, {})[f"batch{batch}_us_per_photo"] = round(
                _median_ms(samples[case.key]) * 1e3, 1)
            out[case.key]["mean_decision_depth"] = round(depths[case.key], 2)
    return out


# --------------------------------------------------------------------------------------------
# 2. Full per-photo cost with the backbone


def _predictor(case: Case, folder: Path) -> Predictor:
    """A real bundle (random efficientnet_lite0 weights; the same for every tree) and its
    Predictor."""
    spec = get_backbone(SERVING_BACKBONE)
    torch.manual_seed(0)
    network = HierarchicalClassifier(create_backbone(SERVING_BACKBONE, pretrained=False),
                                     spec.embedding_dim, case.n_leaves)
    write_bundle(folder, state_dict=network.state_dict(), backbone=SERVING_BACKBONE,
                 embedding_dim=spec.embedding_dim, preprocessing=spec.preprocessing,
                 image_size=spec.preprocessing.input_size, eval_crop_pct=1.0,
                 temperature=TEMPERATURE, thresholds=THRESHOLDS, taxonomy=case.taxonomy,
                 metrics={}, training={"note": "random weights: tree_scale benchmark"})
    return Predictor.load(folder, batch_size=8)


def measure_full(cases: list[Case], repeats: int) -> dict:
    """``Predictor.forward`` + ``Decider.decide`` per photo on the small and Google-size trees."""
    chosen = [c for c in cases if c.key in (SMALL, GOOGLE)]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        predictors = [_predictor(c, Path(tmp) / c.key) for c in chosen]
        size = predictors[0].square_size
        squares = list(rng.integers(0, 256, (8, 3, size, size), dtype=np.uint8))
        for case, predictor in zip(chosen, predictors):
            # A random backbone gives near-identical embeddings for every noise photo, so the
            # head's bias, not its weights, makes the decisions walk to a leaf at the deepest
            # level, as in the decision-only figures.
            with torch.no_grad():
                predictor.network.head.bias[int(_deep_leaves(case, 1, rng)[0])] += 20.0

        def run(predictor: Predictor) -> list:
            _, probs = predictor.forward(squares)
            return [predictor.decider.decide(p) for p in probs]

        depths = {c.key: float(np.mean([d.depth for d in run(p)]))
                  for c, p in zip(chosen, predictors)}
        samples: dict[str, list[float]] = {c.key: [] for c in chosen}
        for r in range(repeats):
            order = list(zip(chosen, predictors))
            for case, predictor in (order if r % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                run(predictor)
                samples[case.key].append((time.perf_counter() - start) / len(squares))
    small, big = samples[SMALL], samples[GOOGLE]
    paired = [b / s for s, b in zip(small, big, strict=True)]
    return {
        "backbone": f"{SERVING_BACKBONE} (random weights), {size} px square, crop "
                    f"{predictors[0].bundle.image_size} px, batch 8, channels_last, inference_mode",
        "ms_per_photo": {k: round(_median_ms(v), 2) for k, v in samples.items()},
        "mean_decision_depth": {k: round(v, 2) for k, v in depths.items()},
        "ratio_of_medians": round(statistics.median(big) / statistics.median(small), 4),
        "median_paired_ratio": round(statistics.median(paired), 4),
        "rounds": repeats,
    }


# --------------------------------------------------------------------------------------------
# 4-6. Training steps, calibration, evaluation


def measure_training(cases: list[Case], steps: int, batch: int = 32) -> dict:
    """AdamW steps of the real LightningModule's training step on one fixed batch per tree
    (tiny-cnn, 32 px, 20 % of labels on inner nodes); the loss must fall as it fits the batch."""
    chosen = [c for c in cases if c.key in (SMALL, GOOGLE, SEED)]
    warnings.filterwarnings("ignore", message=r".*self\.log\(\)")  # no Trainer here, on purpose
    runs = []
    for case in chosen:
        torch.manual_seed(0)
        module = HierarchicalClassifierModule(backbone="tiny-cnn", taxonomy=case.taxonomy.to_dict(),
                                              pretrained=False).train()
        images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
        rows = synthetic_labels(module.tree, batch, inner_share=0.2, seed=1)
        runs.append((case, module, torch.optim.AdamW(module.parameters(), lr=1e-2), (images, rows)))
    samples: dict[str, list[float]] = {c.key: [] for c in chosen}
    losses: dict[str, list[float]] = {c.key: [] for c in chosen}
    for step in range(steps + 1):  # step 0 is the warm-up
        for case, module, optimizer, data in (runs if step % 2 == 0 else runs[::-1]):
            start = time.perf_counter()
            loss = module.training_step(data, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - start
            losses[case.key].append(loss.item())
            if step:
                samples[case.key].append(elapsed)
    return {c.key: {"ms_per_step": round(_median_ms(samples[c.key]), 2), "batch": batch,
                    "first_loss": round(losses[c.key][0], 3),
                    "last_loss": round(losses[c.key][-1], 3),
                    "steps": steps + 1}
            for c in chosen}


def measure_calibration_and_evaluation(cases: list[Case], n_cal: int, n_eval: int) -> dict:
    out = {}
    for case in (c for c in cases if c.key in (SMALL, GOOGLE, SEED)):
        tree = case.tree
        rows = synthetic_labels(tree, n_cal, inner_share=0.2, seed=2)
        logits = synthetic_leaf_logits(tree, rows, seed=2)
        mask = tree.target_mask(rows)
        start = time.perf_counter()
        t = fit_temperature(logits, mask)
        cal_s = time.perf_counter() - start
        nll_1, nll_t = float(marginal_nll(logits, mask)), float(marginal_nll(logits / t, mask))

        rows = synthetic_labels(tree, n_eval, inner_share=0.2, seed=3)
        logits = synthetic_leaf_logits(tree, rows, seed=3)
        with torch.inference_mode():
            probs = tree.node_probs((logits / t).softmax(dim=1)).double().numpy()
        start = time.perf_counter()
        result = evaluate_arrays(probs, rows.numpy(), case.taxonomy, thresholds=THRESHOLDS,
                                 model_version="bench")
        eval_s = time.perf_counter() - start
        m = result.metrics
        out[case.key] = {
            "calibration": {"photos": n_cal, "seconds": round(cal_s, 2), "temperature": round(t, 3),
                            "nll_at_1": round(nll_1, 4), "nll_at_t": round(nll_t, 4)},
            "evaluation": {"photos": n_eval, "seconds": round(eval_s, 2),
                           "leaf_accuracy": m["leaf_accuracy"],
                           "hierarchical_f1": round(m["hierarchical_f1"], 4),
                           "n_inner_labels": m["n_inner_labels"]},
        }
    return out


# --------------------------------------------------------------------------------------------
# Report


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f}"


def print_table(cases: list[Case], figures: dict) -> None:
    dec, one = figures["decision"], figures["decision_1_thread"]
    train, ce = figures["training"], figures["calibration_evaluation"]
    nan = float("nan")
    print("decision µs per photo: head + softmax + node_probs + Decider.decide (no backbone); "
          "b8/b1 = batch 8/1 on the serving threads, b8 1t = batch 8 on one thread")
    head = (f"{'tree':<8} {'nodes':>6} {'leaves':>6} {'lvl':>3} {'pairs':>7} {'b8 µs':>7} "
            f"{'b1 µs':>7} {'b8 1t':>7} {'MB':>6} {'B/node':>6} {'step ms':>7} {'calib s':>7} "
            f"{'eval s':>6}")
    print(head)
    print("-" * len(head))
    for c in cases:
        t, e = train.get(c.key, {}), ce.get(c.key, {})
        print(f"{c.key:<8} {c.n_nodes:>6} {c.n_leaves:>6} {c.taxonomy.max_depth:>3} "
              f"{c.tree.pair_leaf.numel():>7} {dec[c.key]['batch8_us_per_photo']:>7.0f} "
              f"{dec[c.key]['batch1_us_per_photo']:>7.0f} "
              f"{one[c.key]['batch8_us_per_photo']:>7.0f} "
              f"{_mb(c.memory['total']):>6} {c.memory['total'] / c.n_nodes:>6.0f} "
              f"{t.get('ms_per_step', nan):>7.1f} "
              f"{e.get('calibration', {}).get('seconds', nan):>7.2f} "
              f"{e.get('evaluation', {}).get('seconds', nan):>6.2f}")
    full, mem = figures["full"], figures["memory_fit"]
    small, big = dec[SMALL]["batch8_us_per_photo"], dec[GOOGLE]["batch8_us_per_photo"]
    print()
    small1, big1 = one[SMALL]["batch8_us_per_photo"], one[GOOGLE]["batch8_us_per_photo"]
    print(f"decision only (batch 8), Google-size / {SMALL}: {big / small:.2f}x "
          f"({big:.0f} vs {small:.0f} µs per photo); on 1 thread {big1 / small1:.2f}x "
          f"({big1:.0f} vs {small1:.0f} µs)")
    print(f"full (backbone + head + decision, batch 8): {full['ms_per_photo'][GOOGLE]:.1f} vs "
          f"{full['ms_per_photo'][SMALL]:.1f} ms per photo; ratio of medians "
          f"{full['ratio_of_medians']:.3f}, median paired ratio {full['median_paired_ratio']:.3f} "
          f"(limit 1.10: {'PASS' if full['median_paired_ratio'] <= 1.10 else 'FAIL'})")
    print(f"memory: {mem['total']['bytes_per_node']:.0f} bytes per node + "
          f"{mem['total']['intercept_bytes'] / 2**20:.2f} MB, R² {mem['total']['r2']:.5f}; "
          f"40k / 1k tree: {mem['ratio_40k_to_1k']['total']:.1f}x for "
          f"{mem['node_ratio_40k_to_1k']:.0f}x "
          "the nodes (quadratic would be ~1600x)")
    for key, row in train.items():
        print(f"training {key}: {row['ms_per_step']:.1f} ms per step of {row['batch']}, loss "
              f"{row['first_loss']:.2f} -> {row['last_loss']:.2f} over {row['steps']} steps")
    machine = figures["machine"]
    print(f"torch threads: {machine['torch_threads_serving']} serving, "
          f"{machine['torch_threads_offline']} training/calibration/evaluation; load average "
          f"{machine['load_average_start'][0]} at start, {machine['load_average_end'][0]} at end. "
          "On a shared machine timings are noisy: trees were measured in alternating order, "
          "round after round, and medians are reported, so that ratios stay fair.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads for the serving figures (1-3): the serving setting")
    parser.add_argument("--offline-threads", type=int, default=1,
                        help="torch threads for training steps, calibration and evaluation (4-6): "
                             "their small tensors run faster on one thread of a busy machine")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of every timing")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--calibration-photos", type=int, default=500)
    parser.add_argument("--evaluation-photos", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    figures: dict = {"machine": {
        "platform": f"{platform.machine()}, {os.cpu_count()} CPU threads, "
                    f"torch {torch.__version__}",
        "torch_threads_serving": torch.get_num_threads(),
        "torch_threads_offline": args.offline_threads,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }}
    t0 = time.monotonic()
    cases = build_cases()
    figures["build_s"] = round(time.monotonic() - t0, 1)
    figures["trees"] = {c.key: {"source": c.source, "nodes": c.n_nodes, "leaves": c.n_leaves,
                                "levels": c.taxonomy.max_depth, "pairs": c.tree.pair_leaf.numel()}
                        for c in cases}

    figures["memory_bytes"] = {c.key: c.memory for c in cases}
    by_key = {c.key: c for c in cases}
    nodes = [c.n_nodes for c in cases]
    figures["memory_fit"] = {part: linear_fit(nodes, [c.memory[part] for c in cases])
                             for part in ("total", "taxonomy", "tree_index", "decider", "head")}
    figures["memory_fit"]["node_ratio_40k_to_1k"] = by_key["40k"].n_nodes / by_key["1k"].n_nodes
    figures["memory_fit"]["ratio_40k_to_1k"] = {
        part: round(by_key["40k"].memory[part] / by_key["1k"].memory[part], 2)
        for part in ("total", "taxonomy", "tree_index", "decider", "head")}

    t0 = time.monotonic()
    figures["decision"] = measure_decisions(cases, args.repeats)
    # Small multi-threaded ops suffer most when other processes hold the cores: the one-thread
    # figures show how much of the cost is that contention.
    torch.set_num_threads(1)
    figures["decision_1_thread"] = measure_decisions(cases, args.repeats, batches=(8,))
    torch.set_num_threads(args.threads)
    figures["decision_s"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    figures["full"] = measure_full(cases, args.repeats)
    figures["full_s"] = round(time.monotonic() - t0, 1)
    small, big = (figures["decision"][k]["batch8_us_per_photo"] for k in (SMALL, GOOGLE))
    figures["full"]["decision_only_ratio_batch8"] = round(big / small, 3)
    figures["full"]["decision_share_of_full_google"] = round(
        big / 1e3 / figures["full"]["ms_per_photo"][GOOGLE], 4)
    torch.set_num_threads(args.offline_threads)
    t0 = time.monotonic()
    figures["training"] = measure_training(cases, args.train_steps)
    figures["training_s"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    figures["calibration_evaluation"] = measure_calibration_and_evaluation(
        cases, args.calibration_photos, args.evaluation_photos)
    figures["calibration_evaluation_s"] = round(time.monotonic() - t0, 1)
    figures["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    figures["wall_s"] = round(time.monotonic() - started, 1)

    print_table(cases, figures)
    print()
    print(json.dumps(figures, separators=(",", ":")))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

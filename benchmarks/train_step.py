"""Seconds per training step of the fine-tuning recipe, per input size: what a larger
``--image-size`` costs on this machine before committing to a full training run.

    .venv/bin/python benchmarks/train_step.py [--backbone NAME] [--sizes 224,260,320] [--steps 3]

Builds the real training module (registry backbone, hierarchical head, channels-last) on a
synthetic 81-leaf tree, freezes the first ``--frozen-groups`` layer groups as training does, and
times full steps (forward, marginal loss, backward, AdamW) on batches of random images. Prints
one JSON line per size; the first step of each size is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from catalog_ai.model.hierarchy import marginal_nll
from catalog_ai.model.network import layer_groups
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.fit import TrainConfig
from catalog_ai.training.module import HierarchicalClassifierModule


def synthetic_taxonomy(n_leaves: int = 81) -> dict:
    return Taxonomy.from_paths([(f"Group-{i % 9}", f"Leaf-{i}") for i in range(n_leaves)]).to_dict()


def time_steps(backbone: str, size: int, *, frozen_groups: int, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    module = HierarchicalClassifierModule(backbone=backbone, taxonomy=synthetic_taxonomy())
    frozen = {n for g in layer_groups(module.network.backbone)[:frozen_groups] for n in g}
    for name, p in module.network.backbone.named_parameters():
        p.requires_grad_(name not in frozen)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    rows = module.tree.leaf_rows[torch.randint(0, module.tree.n_leaves, (batch_size,))]
    mask = module.tree.target_mask(rows)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = marginal_nll(module(images), mask, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    parser.add_argument("--sizes", default="260,320")
    parser.add_argument("--frozen-groups", type=int, default=TrainConfig().frozen_groups)
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 2))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = None
    for size in (int(s) for s in args.sizes.split(",")):
        seconds = time_steps(args.backbone, size, frozen_groups=args.frozen_groups,
                             batch_size=args.batch_size, steps=args.steps)
        base = base or seconds
        print(json.dumps({"backbone": args.backbone, "image_size": size, "batch_size": args.batch_size,
                          "threads": args.threads, "seconds_per_step": round(seconds, 3),
                          "relative_to_first": round(seconds / base, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Few-shot benchmarks on the Grocery Store data (issue "few-shot categories").

    .venv/bin/python benchmarks/fewshot.py [--out DIR] [--held-out 16] [--backbone NAME] [--image-size PX]
        [--epochs N] [--label-smoothing X] [--skip-train]

1. Generalised few-shot: train with 16 leaf categories held out entirely (seeded choice), then
   add them with k = 1 and k = 5 photos each from train (`fewshot add`, no retraining); report
   the held-out leaves' accuracy on their val photos (classified among all 81 leaves) and the
   base leaves' accuracy before and after adding. Five draws of the k photos, mean and range.
2. Catalog-photo one-shot: every leaf known only through its single `*_Iconic.jpg` catalog photo
   (nearest prototype among 81), with the pretrained backbone and with the backbone fine-tuned
   on the base leaves' photos (which has never seen the 16 held-out leaves).
3. Open set: how often val photos of the held-out leaves (before they are added) are flagged
   "possibly a new category", against base-leaf photos.

Nothing is tuned on val: the fusion and open-set parameters come from photos held out of train.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from catalog_ai.datasets.fetch import find_local_grocery_store
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.services.fewshot import add_examples
from catalog_ai.taxonomy import Taxonomy, format_path, scan_folder
from catalog_ai.training.data import Example
from catalog_ai.training.fit import TrainConfig, fit


def held_out_leaves(leaves: list[str], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(leaves), size=n, replace=False).tolist())


def catalog_photos(root: Path, leaves: list[str]) -> tuple[list[Path], list[str]]:
    """The ``*_Iconic.jpg`` catalog photos and the train tree's leaf each one shows.

    Matched by leaf name, not by folder path: the catalog tree files one leaf elsewhere
    (``Vegetables/Mushroom/Brown-Cap-Mushroom`` against ``train/Vegetables/Brown-Cap-Mushroom``),
    and a path match would leave that leaf's val photos with no prototype to be right about."""
    by_name: dict[str, list[str]] = {}
    for leaf in leaves:
        by_name.setdefault(leaf.split(" > ")[-1], []).append(leaf)
    photos = sorted((root / "iconic-images-and-descriptions").rglob("*_Iconic.jpg"))
    labels = []
    for photo in photos:
        match = by_name.get(photo.parent.name, [])
        if len(match) != 1:
            raise SystemExit(f"{photo}: {len(match)} train leaves are named {photo.parent.name!r}")
        labels.append(match[0])
    return photos, labels


def replay_args(description: str) -> argparse.ArgumentParser:
    """Arguments of the scripts that replay this benchmark's draws on its base model."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the base bundle written by benchmarks/fewshot.py")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--held-out", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=5)
    return ap


def open_replay(args: argparse.Namespace) -> tuple[Path, Predictor, list[str], list[str]] | None:
    """``(data root, base predictor, its head's leaves, the held-out leaves)``, or None (and a
    message) when the dataset is missing."""
    root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return None
    predictor = Predictor.load(args.model)
    head_leaves = [predictor.bundle.taxonomy.node(i).text for i in predictor.bundle.taxonomy.leaf_ids]
    leaves = sorted({format_path(p) for _, p in scan_folder(root / "train").files})
    return root, predictor, head_leaves, held_out_leaves(leaves, args.held_out, args.seed)


def classify(predictor: Predictor, files: list[Path]) -> list[str]:
    """The most probable category (class) of each photo: the decision's leaf_path."""
    return [p.decision.leaf_path if p.decision else "" for p in predictor.predict(files)]


def accuracy(pred: list[str], truth: list[str], keep: list[bool]) -> float:
    sel = [p == t for p, t, k in zip(pred, truth, keep, strict=True) if k]
    return float(np.mean(sel)) if sel else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(".catalog_ai/models/fewshot-benchmark"))
    ap.add_argument("--held-out", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--label-smoothing", type=float, default=None,
                    help="train the base model with this label smoothing (default: the training default, 0.1)")
    ap.add_argument("--backbone", default=None, help="default: the training default (efficientnet_lite2)")
    ap.add_argument("--image-size", type=int, default=None, help="default: the backbone's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--pretrained-model", type=Path, default=Path(".catalog_ai/models/quickstart"),
                    help="a bundle with the frozen pretrained backbone (the main job's quick model)")
    args = ap.parse_args(argv)
    root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return 2

    train_scan = scan_folder(root / "train")
    leaves = sorted({format_path(p) for _, p in train_scan.files})
    novel = held_out_leaves(leaves, args.held_out, args.seed)
    figures: dict = {"held_out_leaves": novel}

    base_model = args.out / "base"
    if not args.skip_train:
        examples = [Example(f, format_path(p)) for f, p in train_scan.files if format_path(p) not in novel]
        taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))
        config = TrainConfig(seed=args.seed, image_size=args.image_size)
        if args.backbone:
            config.backbone = args.backbone
        if args.epochs:
            config.epochs = args.epochs
        if args.label_smoothing is not None:
            config.label_smoothing = args.label_smoothing
        started = time.monotonic()
        fit(config, taxonomy=taxonomy, examples=examples, out_dir=base_model,
            data_description=f"grocery train without {len(novel)} leaves")
        figures["train_wall_s"] = round(time.monotonic() - started, 1)

    val = [(f, format_path(p)) for f, p in scan_folder(root / "val").files]
    val_files, val_truth = [f for f, _ in val], [t for _, t in val]
    is_novel = [t in novel for t in val_truth]
    is_base = [not n for n in is_novel]
    figures["n_val"] = {"base": int(sum(is_base)), "held_out_leaves": int(sum(is_novel))}

    predictor = Predictor.load(base_model)
    before = predictor.predict(val_files)
    pred_before = [p.decision.leaf_path for p in before]
    figures["base_accuracy_before"] = accuracy(pred_before, val_truth, is_base)
    figures["open_set"] = {
        "flagged_base_photos": float(np.mean([p.decision.open_set for p, b in zip(before, is_base) if b])),
        "flagged_held_out_leaf_photos": float(np.mean([p.decision.open_set for p, n in zip(before, is_novel) if n])),
        "open_set_cosine": predictor.prototypes.fusion.open_set_cosine if predictor.prototypes else None,
    }

    by_leaf: dict[str, list[Path]] = {}
    for f, p in train_scan.files:
        if format_path(p) in novel:
            by_leaf.setdefault(format_path(p), []).append(f)
    for k in (1, 5):
        runs = []
        for draw in range(args.draws):
            rng = np.random.default_rng(1000 * k + draw)
            work = args.out / f"k{k}-draw{draw}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base_model, work, ignore=shutil.ignore_patterns("checkpoints", "report"))
            chosen = [(f, tuple(leaf.split(" > "))) for leaf in novel
                      for f in rng.choice(by_leaf[leaf], size=min(k, len(by_leaf[leaf])), replace=False)]
            t0 = time.monotonic()
            add_examples(work, chosen)
            add_s = time.monotonic() - t0
            pred = classify(Predictor.load(work), val_files)
            runs.append((accuracy(pred, val_truth, is_novel), accuracy(pred, val_truth, is_base), add_s))
            shutil.rmtree(work, ignore_errors=True)
        arr = np.array(runs)
        figures[f"k{k}"] = {
            "held_out_leaf_accuracy": round(float(arr[:, 0].mean()), 4),
            "held_out_leaf_accuracy_range": [round(float(arr[:, 0].min()), 4), round(float(arr[:, 0].max()), 4)],
            "base_accuracy_after": round(float(arr[:, 1].mean()), 4),
            "base_drop_points": round(100 * (figures["base_accuracy_before"] - float(arr[:, 1].mean())), 2),
            "add_seconds": round(float(arr[:, 2].mean()), 2),
        }

    # Catalog-photo one-shot: nearest prototype among all 81 leaves, prototypes from the iconic photos.
    iconic, icon_labels = catalog_photos(root, leaves)
    figures["catalog_photo_one_shot"] = {}
    candidates = [("fine_tuned_on_base_leaves", base_model)]
    if (args.pretrained_model / "bundle.json").is_file():
        candidates.insert(0, ("pretrained_frozen_backbone", args.pretrained_model))
    else:
        print(f"catalog-photo one-shot with the pretrained backbone skipped: no bundle at {args.pretrained_model} "
              "(run `make quickstart` first, or pass --pretrained-model DIR)", file=sys.stderr)
        figures["catalog_photo_one_shot"]["pretrained_frozen_backbone"] = "skipped: no quick-model bundle"
    for name, bundle_dir in candidates:
        figures["catalog_photo_one_shot"][name] = iconic_one_shot(Predictor.load(bundle_dir), iconic, icon_labels,
                                                                 val_files, val_truth, is_novel)
    print(json.dumps(figures, indent=2))
    return 0


def iconic_one_shot(predictor: Predictor, iconic: list[Path], icon_labels: list[str], val_files: list[Path],
                    val_truth: list[str], is_novel: list[bool]) -> dict:
    def embed(files):
        out = []
        for i in range(0, len(files), predictor.batch_size):
            out.append(predictor.forward([predictor.prepare(f) for f in files[i : i + predictor.batch_size]])[0])
        return np.concatenate(out)

    center = predictor.prototypes.center if predictor.prototypes else None
    icon_emb = embed(iconic)
    memory = PrototypeMemory(center=center if center is not None else icon_emb.mean(0))
    for label in sorted(set(icon_labels)):
        memory.add(label, icon_emb[[i for i, lab in enumerate(icon_labels) if lab == label]], source="fewshot")
    sims = memory.similarities(embed(val_files))
    pred = [memory.paths[i] for i in sims.argmax(1)]
    return {
        "all_leaves": accuracy(pred, val_truth, [True] * len(pred)),
        "held_out_leaves": accuracy(pred, val_truth, is_novel),
    }


if __name__ == "__main__":
    sys.exit(main())

"""The last points from the backbones we have (issue 17 item 4): val leaf accuracy gained against
serving speed lost, for each option, on bundles trained by ``benchmarks/train_grocery.py``.

    # train once, keeping the raw final weights and several averages for a paired comparison:
    .venv/bin/python benchmarks/train_grocery.py --out B --record-averages ema0.99 ema0.998 swa0.5
    # then, without retraining:
    .venv/bin/python benchmarks/recipe_options.py B [B2 ...] [--options none@ flip@ none@300 ...]

Per bundle it prints (one JSON line each):

- ``weights``: every weight variant of ``B/checkpoints/weights/`` (``raw``, ``ema0.99``, ...) at
  the bundle's own preprocessing: val leaf accuracy, and coverage at 98 % precision cross-fitted
  on val halves (``train_grocery.cross_fitted``; the bundle's held-out calibration is not refitted
  per variant, so only the cross-fitted figures compare calibrations fairly);
- ``option``: serving options of the bundle's weights (``--weights`` picks a variant instead):
  ``MODE@SIZE`` with MODE a test-time augmentation (``none``, ``flip``, ``crops``, ``flip_crops``)
  and SIZE the evaluation input size (empty: the trained size). Accuracy as above, and photos/s
  end to end (photo file → Decision, ``Predictor.predict``, frozen network as served) and of the
  network alone, on ``--threads`` threads, interleaved over ``--repeats`` rounds;
- ``ensemble`` (two bundles or more, same tree): the mean of their calibrated class
  probabilities, each at its own preprocessing; its serving speed is estimated as one pass of
  each (1 / sum of 1 / end-to-end photos/s), an upper bound on the cost since decoding is shared.

Val is only evaluated on (the bundles were calibrated on a held-out share of train). 296 photos:
one photo is 0.34 points, and a single seed moves leaf accuracy by about ±2 points.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_grocery import cross_fitted

from catalog_ai.datasets.fetch import find_local_grocery_store
from catalog_ai.evaluation import evaluate_arrays
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.training.sources import load_folder_examples

_SQUARES: dict[tuple[str, int], list[np.ndarray]] = {}


def val_logits(predictor: Predictor, files: list[Path], labels: list[str]):
    """Raw leaf logits and label rows of the val photos (every photo is readable here). The
    prepared squares are kept per bundle and side: weight variants and views share one decode."""
    rows_of = predictor.bundle.taxonomy.node_index
    key = (str(predictor.bundle.path), predictor.input_side)
    if key not in _SQUARES:
        _SQUARES.clear()  # one side at a time: a few hundred MB at most
        _SQUARES[key] = [predictor.prepare(f) for f in files]
    squares, logits = _SQUARES[key], []
    for i in range(0, len(squares), predictor.batch_size):
        logits.append(
            predictor.embed_logits(squares[i : i + predictor.batch_size])[1].float().cpu()
        )
    return torch.cat(logits), torch.tensor([rows_of[label] for label in labels])


def accuracy(
    predictor: Predictor, logits: torch.Tensor, rows: torch.Tensor, labels, seed: int
) -> dict:
    probs = (logits.double() / predictor.bundle.temperature).softmax(1)
    node_probs = predictor.tree.node_probs(probs).numpy()
    m = evaluate_arrays(
        node_probs, rows.numpy(), predictor.bundle.taxonomy, thresholds=predictor.bundle.thresholds
    ).metrics
    out = {
        "leaf_accuracy": round(m["leaf_accuracy"], 4),
        "top5_accuracy": round(m["top5_accuracy"], 4),
    }
    try:
        cf = cross_fitted(
            predictor, [Path("-")] * len(labels), labels, seed=seed, logits_rows=(logits, rows)
        )
    except TypeError:  # a metric undefined on a half (a model that decides nothing): none shown
        return out
    return {
        **out,
        "cross_fitted_ece": cf["ece"],
        "cross_fitted_coverage_at_0.98": cf["coverage_at_precision"]["0.98"],
        "cross_fitted_precision_at_0.98": cf["precision_at_threshold"]["0.98"],
    }


def with_option(bundle: ModelBundle, option: str) -> ModelBundle:
    mode, _, size = option.partition("@")
    return dataclasses.replace(
        bundle,
        test_time_augmentation=mode or "none",
        image_size=int(size) if size else bundle.image_size,
    )


def speed(predictor: Predictor, files: list[Path], seconds: float) -> tuple[float, float]:
    """(end-to-end photos/s, network photos/s) over about ``seconds`` each."""
    squares = [predictor.prepare(f) for f in files[: predictor.batch_size * 2]]
    predictor.analyse(squares[: predictor.batch_size])  # warm-up (and the frozen graph's trace)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(0, len(squares), predictor.batch_size):
            predictor.analyse(squares[i : i + predictor.batch_size])
            n += len(squares[i : i + predictor.batch_size])
    network = n / (time.perf_counter() - start)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = files[n % len(files) : n % len(files) + predictor.batch_size * 2]
        predictor.predict(batch)
        n += len(batch)
    return n / (time.perf_counter() - start), network


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument(
        "--data", type=Path, default=None, help="Grocery Store copy (default: ../shared/...)"
    )
    parser.add_argument(
        "--options",
        nargs="*",
        default=[
            "none@",
            "flip@",
            "crops@",
            "flip_crops@",
            "none@288",
            "none@300",
            "none@320",
            "flip@300",
        ],
    )
    parser.add_argument(
        "--weights", default=None, help="weight variant the options use (default: the bundle's)"
    )
    parser.add_argument("--no-variants", action="store_true", help="skip the weight variants")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="photos/s only (e.g. a bundle with an untrained head: the same cost)",
    )
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 2))
    parser.add_argument("--seconds", type=float, default=8.0, help="per speed measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="val halves of the cross-fitting")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "machine": f"{os.cpu_count()} CPU threads, torch {torch.__version__}, "
                f"{args.threads} threads used",
                "load_average": os.getloadavg(),
            }
        ),
        flush=True,
    )
    ensemble: list[tuple[str, Predictor, torch.Tensor, float]] = []
    for path in args.bundles:
        bundle = ModelBundle.load(path)
        examples = load_folder_examples(root / "val", taxonomy=bundle.taxonomy)[1]
        files, labels = [e.file for e in examples], [e.label for e in examples]
        variants = {
            p.stem: p for p in sorted((path / "checkpoints" / "weights").glob("*.safetensors"))
        }
        from safetensors.torch import load_file

        if not args.no_variants and not args.speed_only and variants:
            predictor = Predictor(bundle, freeze=False)
            for name, file in variants.items():
                predictor.network.load_state_dict(load_file(str(file)))
                logits, rows = val_logits(predictor, files, labels)
                print(
                    json.dumps(
                        {
                            "bundle": path.name,
                            "weights": name,
                            **accuracy(predictor, logits, rows, labels, args.seed),
                        }
                    ),
                    flush=True,
                )
        state = load_file(str(variants[args.weights])) if args.weights else None
        results: dict[str, dict] = {o: {} for o in args.options}
        speeds: dict[str, list] = {o: [] for o in args.options}
        for option in [] if args.speed_only else args.options:
            predictor = Predictor(with_option(bundle, option), freeze=False)
            if state is not None:
                predictor.network.load_state_dict(state)
            logits, rows = val_logits(predictor, files, labels)
            results[option] = accuracy(predictor, logits, rows, labels, args.seed)
            if option == args.options[0]:
                probs = (logits.double() / bundle.temperature).softmax(1)
                ensemble.append((path.name, predictor, probs, 0.0))
            print(
                json.dumps({"bundle": path.name, "option": option, **results[option]}), flush=True
            )
        served = {o: Predictor(with_option(bundle, o)) for o in args.options}  # frozen as served
        for predictor in served.values():
            if state is not None:
                predictor.network.load_state_dict(state)
        for _ in range(args.repeats):  # interleaved: a machine that gets busier shows as a spread
            for option, predictor in served.items():
                speeds[option].append(speed(predictor, files, args.seconds))
        del served
        for option in args.options:
            e2e = sorted(round(e, 1) for e, _ in speeds[option])
            net = sorted(round(n, 1) for _, n in speeds[option])
            print(
                json.dumps(
                    {
                        "bundle": path.name,
                        "option": option,
                        **results[option],
                        "end_to_end_photos_per_s": e2e,
                        "network_photos_per_s": net,
                        "load_average": os.getloadavg(),
                    }
                ),
                flush=True,
            )
        if ensemble and ensemble[-1][0] == path.name:
            name, p, probs, _ = ensemble[-1]
            ensemble[-1] = (
                name,
                p,
                probs,
                float(np.median([e for e, _ in speeds[args.options[0]]]))
                if speeds[args.options[0]]
                else 0.0,
            )
    if len(ensemble) > 1:
        first = ensemble[0][1]
        probs = torch.stack([p for _, _, p, _ in ensemble]).mean(0)
        logits = probs.log() * first.bundle.temperature  # accuracy() divides by it again
        examples = load_folder_examples(root / "val", taxonomy=first.bundle.taxonomy)[1]
        labels = [e.label for e in examples]
        rows_t = torch.tensor([first.bundle.taxonomy.node_index[label] for label in labels])
        print(
            json.dumps(
                {
                    "ensemble": [n for n, _, _, _ in ensemble],
                    **accuracy(first, logits.float(), rows_t, labels, args.seed),
                    # None when speeds were not measured (--repeats 0)
                    "estimated_end_to_end_photos_per_s": round(
                        1 / sum(1 / s for _, _, _, s in ensemble), 1
                    )
                    if all(s for _, _, _, s in ensemble)
                    else None,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

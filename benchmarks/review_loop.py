"""A store's first weeks, simulated on real photos (issue 17, item 1).

    .venv/bin/python benchmarks/review_loop.py [--out DIR] [--batch-size 200] [--budget 200]
        [--retrain-every 300] [--compare-recent 300] [--margin 0.01] [--catalogue-share 0.45]
        [--seed 0] [--quick] [--data DIR]

The labelled catalogue is a stratified ``--catalogue-share`` of the Grocery Store's train split
(per leaf, seeded); the rest of train and all of val are the uploads, shuffled together in a
fixed seeded order and cut into batches. The held-back test split is never read. Everything runs
through the real services on an embedded SQLite catalogue in ``--out``/home: import, ingest and
classification by the in-process runner (the worker's pipeline), auto-accept at the bundle's
target precision, a simulated reviewer "sim" (the true label) through ``review.accept`` /
``review.correct``, least confident first, up to ``--budget`` reviews per batch; every verdict
becomes a prototype example at once. See ``benchmarks/_review_sim.py`` for the loop.

- Model: the main job's quick recipe (frozen EfficientNet-Lite0 + calibrated hierarchical head,
  ``TrainConfig.preset("linear_probe")``) for the first model and every retrain, with each
  photo's frozen-backbone embedding computed once for the run (:func:`cache_probe_embeddings`);
  the fine-tuned default recipe takes 15-30 min per training on 2 CPU threads (README).
- Calibration: the first model's auto-accept is off (its hold-out shares the catalogue's photo
  sessions); after the first batch is reviewed it is calibrated from those reviews
  (``catalog-ai calibrate --from-reviews``, reviews and audits weighted by stratum): photos of
  the upload stream itself, independent of training. A retrain is calibrated on the
  ``--compare-recent`` most recent person-labelled products, held out of its training.
- Audits: ``--audit-rate`` of the auto-accepted products are drawn for audit as they are
  recorded (``CATALOG_AI_AUDIT_RATE``); the reviewer resolves them all, besides the budget.
- Promotion (rule 3): after every ``--retrain-every`` reviews a challenger is trained from the
  catalogue (people's labels only) and activated only by ``promote_if_better`` (wins by
  ``--margin`` leaf accuracy with a 95 % interval above zero, on at least 30 products neither
  version trained on: the held-out recent ones), as ``train --from-catalog --promote-if-better``.

Per batch it prints uploads, the share auto-accepted and its true precision, reviews spent and
per 100 uploads, leaf accuracy of the suggestions, and the retrain decision; it writes
``review_loop.json`` and ``review_loop.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling _review_sim

from _review_models import cache_probe_embeddings, product_promote, seed_audit_draws
from _review_report import HEADER, by_source, pct, plot, plot_runs, row, stream_precision
from _review_sim import LoopConfig, ReviewLoop


def plan_stream(
    train: list[tuple[Path, str]],
    val: list[tuple[Path, str]],
    *,
    catalogue_share: float,
    batch_size: int,
    seed: int,
) -> tuple[list[tuple[Path, str]], list[list[tuple[Path, str]]]]:
    """``(catalogue, batches)``: a stratified ``catalogue_share`` of each train leaf (at least
    one photo) is the labelled catalogue; the other train photos and all val photos, in one
    seeded random order, are the uploads. No photo is in both."""
    rng = np.random.default_rng(seed)
    by_leaf: dict[str, list[tuple[Path, str]]] = {}
    for item in sorted(train):
        by_leaf.setdefault(item[1], []).append(item)
    catalogue, uploads = [], list(val)
    for leaf in sorted(by_leaf):
        items = by_leaf[leaf]
        order = rng.permutation(len(items))
        k = max(1, round(catalogue_share * len(items)))
        catalogue += [items[i] for i in order[:k]]
        uploads += [items[i] for i in order[k:]]
    uploads = [uploads[i] for i in rng.permutation(len(uploads))]
    batches = [uploads[i : i + batch_size] for i in range(0, len(uploads), batch_size)]
    return catalogue, batches


def quick_trainer(seed: int):
    """The main job's quick recipe (frozen EfficientNet-Lite0, calibrated head); each retrain's
    time is in the JSON (``retrain.train_seconds``)."""
    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training.fit import TrainConfig, fit

    def train(examples, out_dir: Path) -> Path:
        config = TrainConfig.preset("linear_probe")
        config.seed, config.progress = seed, False
        fit(
            config,
            taxonomy=Taxonomy.from_paths(sorted({e.label for e in examples})),
            examples=examples,
            out_dir=out_dir,
            data_description=f"review loop: {len(examples)} photos labelled by people",
        )
        return out_dir

    return train


def fresh_home(home: Path) -> None:
    """An empty catalogue, keeping only the decoded-photo cache of an earlier run."""
    home.mkdir(parents=True, exist_ok=True)
    for child in home.iterdir():
        if child.name != "cache":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    os.environ["CATALOG_AI_HOME"] = str(home)
    for var in (
        "CATALOG_AI_DATABASE_URL",
        "CATALOG_AI_BROKER_URL",
        "CATALOG_AI_MEDIA_DIR",
        "CATALOG_AI_MODEL_DIR",
    ):
        os.environ.pop(var, None)
    from catalog_ai.settings import reset_settings

    reset_settings()


def import_catalogue(catalogue: list[tuple[Path, str]]) -> int:
    from catalog_ai.db import unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.catalog_import import import_labelled_files, sync_taxonomy
    from catalog_ai.settings import get_settings
    from catalog_ai.taxonomy import Taxonomy, parse_path

    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as session:
        sync_taxonomy(
            session,
            Taxonomy.from_paths(sorted({p for _, p in catalogue})),
            source="review-loop catalogue",
        )
    done = 0
    for start in range(0, len(catalogue), 64):
        chunk = [(f, tuple(parse_path(p))) for f, p in catalogue[start : start + 64]]
        with unit_of_work() as session:
            done += import_labelled_files(session, chunk, media=media).imported
    return done


def _title(a: dict, n_cat: int, n_up: int) -> str:
    return (
        f"review loop, Grocery Store (seed {a['seed']}): {n_cat} catalogue photos, {n_up} uploads "
        f"in batches of {a['batch_size']}, budget {a['budget']}, audit rate {a['audit_rate']}, "
        f"retrain every {a['retrain_every']} reviews (quick recipe), promote_if_better margin "
        f"{100 * float(a['margin']):.0f} point"
        + (
            " - COUNTERFACTUAL: without its precision clause"
            if a.get("no_precision_clause") == "True"
            else ""
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/catalog_ai-review-loop"))
    ap.add_argument("--catalogue-share", type=float, default=0.45)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--budget", type=int, default=200, help="queue reviews per batch at most")
    ap.add_argument("--retrain-every", type=int, default=300, help="K: reviews between retrains")
    ap.add_argument(
        "--compare-recent",
        type=int,
        default=300,
        help="recent person-labelled products held out of a retrain (--holdout-recent)",
    )
    ap.add_argument(
        "--margin", type=float, default=0.01, help="leaf accuracy a challenger must win by"
    )
    ap.add_argument(
        "--audit-rate",
        type=float,
        default=0.1,
        help="share of auto-accepted products drawn for audit (CATALOG_AI_AUDIT_RATE)",
    )
    ap.add_argument(
        "--no-precision-clause",
        action="store_true",
        help="COUNTERFACTUAL: promote on the leaf-accuracy clauses of the rule only",
    )
    ap.add_argument("--max-batches", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 12 leaves, batches of 60, budget 60, retrain every 60 reviews",
    )
    ap.add_argument(
        "--replot",
        type=Path,
        default=None,
        help="only draw the figure of a review_loop.json (a run cut short too)",
    )
    ap.add_argument(
        "--compare",
        nargs="+",
        metavar="LABEL=JSON",
        default=None,
        help="only draw several runs' reviews per 100 and precision on one figure (--out PNG)",
    )
    args = ap.parse_args(argv)
    if args.compare:
        runs = [
            (item.split("=", 1)[0], json.loads(Path(item.split("=", 1)[1]).read_text())["batches"])
            for item in args.compare
        ]
        plot_runs(runs, args.out)
        print(f"plot {args.out}")
        return 0
    from catalog_ai.datasets.fetch import find_local_grocery_store
    from catalog_ai.taxonomy import format_path, scan_folder

    if args.replot is not None:
        done = json.loads(args.replot.read_text())
        out = args.out if args.out.suffix == ".png" else args.replot.with_suffix(".png")
        a = done["args"]
        plot(
            done["batches"], out, done.get("title") or _title(a, done["catalogue"], done["uploads"])
        )
        print(f"plot {out}")
        db = args.replot.parent / "home" / "catalog.db"
        if db.is_file() and "source" not in done:
            root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
            done["source"] = by_source(db, root)
            args.replot.write_text(json.dumps(done, indent=2))
        print(json.dumps(done.get("source"), indent=2))
        return 0

    root = args.data or find_local_grocery_store(Path(__file__).resolve().parent)
    if root is None:
        print("Grocery Store dataset not found: pass --data DIR", file=sys.stderr)
        return 2
    train = [(f, format_path(p)) for f, p in scan_folder(root / "train").files]
    val = [(f, format_path(p)) for f, p in scan_folder(root / "val").files]
    min_products = 30
    if args.quick:
        leaves = sorted({p for _, p in train})
        keep = set(leaves[:: max(1, len(leaves) // 12)][:12])
        train, val = [t for t in train if t[1] in keep], [v for v in val if v[1] in keep]
        args.batch_size, args.budget = 60, 60
        args.retrain_every, args.compare_recent = 60, 60
        args.max_batches = args.max_batches or 5
    catalogue, batches = plan_stream(
        train,
        val,
        catalogue_share=args.catalogue_share,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    batches = batches[: args.max_batches]
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["CATALOG_AI_AUDIT_RATE"] = str(args.audit_rate)
    fresh_home(args.out / "home")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 2))
    from catalog_ai.db import migrate
    from catalog_ai.worker.dispatch import InProcessDispatcher

    embedding_stats = cache_probe_embeddings()
    seed_audit_draws(args.seed)
    started = time.monotonic()
    load_start = os.getloadavg()
    migrate.upgrade()
    n_cat = import_catalogue(catalogue)
    dispatcher = InProcessDispatcher(name="review-loop")
    promote = product_promote(
        margin=args.margin,
        dispatcher=dispatcher,
        min_products=min_products,
        seed=args.seed,
        precision_clause=not args.no_precision_clause,
    )
    config = LoopConfig(
        budget=args.budget,
        retrain_every=args.retrain_every,
        compare_recent=args.compare_recent,
        margin=args.margin,
    )
    truth = {str(f): p for b in batches for f, p in b}
    loop = ReviewLoop(
        config,
        truth=truth,
        train=quick_trainer(args.seed),
        promote=promote,
        dispatcher=dispatcher,
        work_dir=args.out / "home" / "models",
    )
    first = loop.first_model()
    n_up = sum(len(b) for b in batches)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"load average at start {load_start[0]:.2f}"
    )
    print(
        f"catalogue {n_cat} photos ({args.catalogue_share:.0%} of train per leaf), {n_up} "
        f"uploads in {len(batches)} batches of {args.batch_size}; budget {args.budget}/batch; "
        f"audit rate {args.audit_rate}; retrain every {args.retrain_every} reviews holding out "
        f"{args.compare_recent} recent ones, promote_if_better margin {100 * args.margin:.1f} "
        f"points; first model {first} in {time.monotonic() - started:.0f} s; {machine}",
        flush=True,
    )
    title = _title({k: str(v) for k, v in vars(args).items()}, n_cat, n_up)
    print(HEADER, flush=True)
    history = []
    result: dict = {}
    for number, batch in enumerate(batches, start=1):
        figures = loop.run_batch(number, [f for f, _ in batch])
        history.append(figures.to_dict())
        print(row(figures), flush=True)
        result = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "machine": machine,
            "title": title,
            "catalogue": n_cat,
            "uploads": n_up,
            "first_model": first,
            "load_average_now": os.getloadavg(),
            "wall_s": round(time.monotonic() - started, 1),
            "probe_embeddings": embedding_stats,
            "batches": history,
        }
        (args.out / "review_loop.json").write_text(json.dumps(result, indent=2))
    result["stream"] = stream_precision(loop)
    result["source"] = by_source(args.out / "home" / "catalog.db", root)
    (args.out / "review_loop.json").write_text(json.dumps(result, indent=2))
    plot(history, args.out / "review_loop.png", title)
    st = result["stream"]
    if st:
        print(
            f"stream: {st['auto_accepted']} auto-accepts, true precision "
            f"{pct(st['true_precision'])}, audit estimate {pct(st['audit_estimate'])} from "
            f"{st['audits_resolved']} audits"
        )
    print(
        f"wall time {time.monotonic() - started:.0f} s; load average {os.getloadavg()}; "
        f"figures in {args.out / 'review_loop.json'}, plot {args.out / 'review_loop.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

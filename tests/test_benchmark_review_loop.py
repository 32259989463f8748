"""The review-loop benchmark's bookkeeping (``benchmarks/review_loop.py``, ``_review_sim.py``), on
tiny synthetic photos and the built-in ``tiny-cnn`` backbone through the real services (SQLite,
the in-process runner, the review service).

A loop that overspent its budget, reviewed confident products first, let a verdict teach the
model nothing, or promoted a challenger that did not win would print a curve that means nothing:
these are the properties the benchmark's figures rest on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import LEAF_COLOURS, isolated_home, one_torch_thread, tiny_config, write_photo

__all__ = ["one_torch_thread"]

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling module by name
    try:
        spec = importlib.util.spec_from_file_location(
            f"_benchmark_{name}", BENCHMARKS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


review_loop = _load("review_loop")
sim = sys.modules["_review_sim"]


def _photos(root: Path, per_leaf: int, seed: int) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for parts, colour in LEAF_COLOURS.items():
        for i in range(per_leaf):
            file = write_photo(root.joinpath(*parts) / f"{seed}-{i:02d}.png", colour, rng)
            out.append((file, " > ".join(parts)))
    return out


def test_the_stream_keeps_catalogue_and_uploads_apart_in_a_fixed_order(tmp_path):
    train, val = _photos(tmp_path / "train", 10, 0), _photos(tmp_path / "val", 3, 1)
    catalogue, batches = review_loop.plan_stream(
        train, val, catalogue_share=0.4, batch_size=7, seed=3
    )
    uploads = [item for b in batches for item in b]
    assert not {f for f, _ in catalogue} & {f for f, _ in uploads}
    assert sorted(catalogue + uploads) == sorted(train + val)
    assert {p for _, p in catalogue} == {p for _, p in train}  # every leaf is in the catalogue
    assert all(sum(p == leaf for _, p in catalogue) == 4 for leaf in {p for _, p in train})
    assert set(val) <= set(uploads)
    assert [len(b) for b in batches] == [7] * 5 + [1]  # 24 train + 12 val uploads
    again = review_loop.plan_stream(train, val, catalogue_share=0.4, batch_size=7, seed=3)
    assert again == (catalogue, batches)


def _trainer(examples, held_out, out_dir: Path) -> Path:
    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training.fit import fit

    labels = sorted({e.label for e in examples} | {e.label for e in held_out})
    fit(
        tiny_config(),
        taxonomy=Taxonomy.from_paths(labels),
        examples=examples,
        out_dir=out_dir,
        held_out=held_out or None,
    )
    return out_dir


def _run(tmp_path: Path, *, margin: float, budget: int, batches: int = 3):
    from sqlalchemy import func, select

    from catalog_ai.db import PrototypeRevision, Review, migrate, unit_of_work
    from catalog_ai.worker.dispatch import InProcessDispatcher

    train, val = _photos(tmp_path / "train", 24, 0), _photos(tmp_path / "val", 4, 1)
    catalogue, plan = review_loop.plan_stream(
        train, val, catalogue_share=0.5, batch_size=10, seed=0
    )
    with isolated_home(tmp_path / "home"):
        migrate.upgrade()
        assert review_loop.import_catalogue(catalogue) == len(catalogue)
        dispatcher = InProcessDispatcher(name="test-review-loop")
        config = sim.LoopConfig(
            budget=budget, retrain_every=8, compare_recent=8, margin=margin, min_calibration=4
        )
        truth = {str(f): p for b in plan for f, p in b}
        loop = sim.ReviewLoop(
            config,
            truth=truth,
            train=_trainer,
            promote=sim.local_promote(margin, dispatcher),
            dispatcher=dispatcher,
            work_dir=tmp_path / "models",
            log=lambda _: None,
        )
        loop.first_model()
        figures = [
            loop.run_batch(number, [f for f, _ in batch])
            for number, batch in enumerate(plan[:batches], start=1)
        ]
        with unit_of_work() as session:
            revisions = session.scalar(select(func.count()).select_from(PrototypeRevision))
            reviews = session.scalar(select(func.count()).select_from(Review))
            active = loop.active()[0]
        return figures, revisions, reviews, active, loop


@pytest.mark.slow
def test_the_loop_keeps_its_budget_and_order_and_every_verdict_teaches(tmp_path):
    figures, revisions, reviews, _, _ = _run(tmp_path, margin=2.0, budget=4)
    assert reviews == sum(f.reviews for f in figures)
    for f in figures:
        assert f.reviews <= 4  # the budget
        # Least confident first: ascending, and nothing left waiting is less confident.
        assert f.reviewed_confidences == sorted(f.reviewed_confidences)
        if f.reviews and f.next_in_queue is not None:
            assert max(f.reviewed_confidences) <= f.next_in_queue
        # Up to the budget: the reviewer stops short of it only when nothing is left.
        assert f.reviews == 4 or f.queue_left == 0
        # Each accepted or corrected product is an example of the active version at once.
        assert f.revisions_added == f.reviews
    assert revisions == reviews
    # The first batch's reviews switch auto-accept on (calibration from reviews).
    assert figures[0].calibrated is not None and figures[0].auto_accepted == 0
    # A backlog builds up when the budget is under what is needed, and the queue carries it on.
    assert any(f.queue_left > 0 for f in figures)
    assert figures[1].model == figures[0].calibrated


@pytest.mark.slow
def test_a_challenger_is_promoted_only_when_it_wins_by_the_margin(tmp_path):
    *_, active, loop = _run(tmp_path / "never", margin=2.0, budget=10)
    retrains = [f.retrain for f in loop.history if f.retrain]
    assert retrains and not any(r["promoted"] for r in retrains)  # no one wins by 200 points
    assert active not in {r["challenger"] for r in retrains}
    for r in retrains:
        assert r["n_compared"] > 0 and "margin 200.0" in r["reason"]

    *_, active, loop = _run(tmp_path / "always", margin=-2.0, budget=10)
    retrains = [f.retrain for f in loop.history if f.retrain]
    assert retrains and all(r["promoted"] for r in retrains)
    assert active == retrains[-1]["challenger"]
    for r in retrains:
        # Judged only on reviewed products that neither version trained on.
        compared = loop.compared[r["challenger"]]
        assert len(compared) == r["n_compared"] > 0
        assert not compared & loop.trained_on[r["challenger"]]
        assert not compared & loop.trained_on[r["champion"]]
        assert compared <= set(loop.label_of)  # uploads a reviewer labelled, not the catalogue

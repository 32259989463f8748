"""The review-loop benchmark's bookkeeping (``benchmarks/review_loop.py``, ``_review_sim.py``), on
tiny synthetic photos and the built-in ``tiny-cnn`` backbone through the real services (SQLite,
the in-process runner, the review service).

A loop that overspent its budget, reviewed confident products first, let a verdict teach the
model nothing, or promoted a challenger that did not win would print a curve that means nothing:
these are the properties the benchmark's figures rest on."""

from __future__ import annotations

import importlib.util
import sys
import time
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
models = sys.modules["_review_models"]


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


def _trainer(examples, out_dir: Path) -> Path:
    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training.fit import fit

    labels = sorted({e.label for e in examples})
    fit(tiny_config(), taxonomy=Taxonomy.from_paths(labels), examples=examples, out_dir=out_dir)
    return out_dir


def _always(dispatcher):
    """A promotion step that activates every challenger (to test the loop, not the rule)."""
    from catalog_ai.services.models import activate_model

    def promote(session, candidate, *, held_out):
        activate_model(session, candidate, dispatcher=dispatcher)
        return {"promoted": True, "reason": "always", "n_compared": 0, "product_ids": []}

    return promote


def _run(
    tmp_path: Path,
    *,
    margin: float,
    budget: int,
    batches: int = 3,
    rule: bool = True,
    precision_clause: bool = True,
):
    from sqlalchemy import func, select

    from catalog_ai.db import PrototypeRevision, Review, migrate, unit_of_work
    from catalog_ai.worker.dispatch import InProcessDispatcher

    train, val = _photos(tmp_path / "train", 24, 0), _photos(tmp_path / "val", 4, 1)
    catalogue, plan = review_loop.plan_stream(
        train, val, catalogue_share=0.5, batch_size=10, seed=0
    )
    with isolated_home(tmp_path / "home"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_AI_AUDIT_RATE", "0.5")
        from catalog_ai.settings import reset_settings

        reset_settings()
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
            promote=models.product_promote(
                margin=margin,
                dispatcher=dispatcher,
                min_products=4,
                precision_clause=precision_clause,
            )
            if rule
            else _always(dispatcher),
            dispatcher=dispatcher,
            work_dir=tmp_path / "models",
        )
        loop.first_model()
        figures = []
        for number, batch in enumerate(plan[:batches], start=1):
            # A version's cut-off for "trained on" is its bundle's created_at, in whole seconds
            # (services.model_compare.cutoff): labels given within that second are not "after".
            time.sleep(1.1)
            figures.append(loop.run_batch(number, [f for f, _ in batch]))
        with unit_of_work() as session:
            revisions = session.scalar(select(func.count()).select_from(PrototypeRevision))
            reviews = session.scalar(select(func.count()).select_from(Review))
            active = loop.active()[0]
        return figures, revisions, reviews, active, loop


@pytest.mark.slow
def test_the_loop_keeps_its_budget_and_order_and_every_verdict_teaches(tmp_path):
    figures, revisions, reviews, _, _ = _run(tmp_path, margin=2.0, budget=4)
    assert reviews == sum(f.reviews + f.audits for f in figures)  # an audit verdict is a Review
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
@pytest.mark.parametrize("precision_clause", [True, False])
def test_a_challenger_is_judged_by_the_rule_on_products_neither_version_trained_on(
    tmp_path, precision_clause
):
    from catalog_ai.services import promotion

    rule = promotion.promotion_rule
    *_, active, loop = _run(tmp_path, margin=2.0, budget=10, precision_clause=precision_clause)
    assert promotion.promotion_rule is rule  # the counterfactual puts the product's rule back
    retrains = [f.retrain for f in loop.history if f.retrain]
    assert retrains and not any(r["promoted"] for r in retrains)  # nobody wins by 200 points
    assert active not in {r["challenger"] for r in retrains}
    for r in retrains:
        assert "margin" in r["reason"] and "kept inactive" in r["reason"]
        compared = loop.compared[r["challenger"]]
        assert len(compared) == r["n_compared"] > 0
        assert not compared & loop.trained_on[r["challenger"]]
        assert not compared & loop.trained_on[r["champion"]]
        assert compared <= set(loop.label_of)  # uploads a person labelled, not the catalogue


@pytest.mark.slow
def test_a_promoted_challenger_classifies_the_next_batch(tmp_path):
    *_, active, loop = _run(tmp_path, margin=0.0, budget=10, rule=False)
    retrains = [(f.batch, f.retrain) for f in loop.history if f.retrain]
    assert retrains and all(r["promoted"] for _, r in retrains)
    assert active == retrains[-1][1]["challenger"]
    for batch, r in retrains:
        if batch < len(loop.history):
            assert loop.history[batch].model == r["challenger"]


@pytest.mark.slow
def test_the_probe_embedding_cache_changes_no_number(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training import probe
    from catalog_ai.training.data import Example
    from catalog_ai.training.fit import fit

    # Restored after the test: the cache replaces the class's method for the process.
    monkeypatch.setattr(probe._Embedder, "predict_step", probe._Embedder.predict_step)
    examples = [Example(f, p) for f, p in _photos(tmp_path / "photos", 8, 0)]
    taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))

    def train(name: str) -> dict:
        fit(
            tiny_config(mode="linear_probe", epochs=3),
            taxonomy=taxonomy,
            examples=examples,
            out_dir=tmp_path / name,
        )
        return load_file(tmp_path / name / "model.safetensors")

    with isolated_home(tmp_path / "home"):
        plain = train("plain")
        stats = models.cache_probe_embeddings()
        first = train("first")
        assert stats["embedded"] > 0 and stats["from_cache"] == 0
        second = train("second")
        assert stats["from_cache"] == stats["embedded"]  # the second training embedded nothing
    for weights in (first, second):
        assert weights.keys() == plain.keys()
        for key, value in plain.items():
            assert np.allclose(weights[key].numpy(), value.numpy(), atol=1e-5), key

"""The model steps of the review loop (``benchmarks/_review_sim.py``), each the product's own path.

- :func:`first_model`: train on the labelled catalogue (``train --from-catalog``), register,
  activate. Its auto-accept is off: its hold-out shares the catalogue's photo sessions.
- :func:`calibrate_from_reviews`: ``catalog-ai calibrate --from-reviews`` on the active model
  (reviews and audits weighted by stratum), a new derived version, activated.
- :func:`retrain`: ``train --from-catalog --promote-if-better --holdout-recent N``: the most
  recent person-labelled products the active version did not train on are left out of the
  training; the candidate is then calibrated on exactly those products, weighted by stratum
  (the step a store would run as ``calibrate --model CANDIDATE``; without it a retrain's
  auto-accept is off, as the first model's), and ``promote_if_better`` decides on them (rule 3:
  neither version trained on them). One call, ``promote``, so a test can swap the rule.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from catalog_ai.db import unit_of_work
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.worker.dispatch import drain

if TYPE_CHECKING:
    from _review_sim import ReviewLoop


def _register(loop: ReviewLoop, bundle_dir: Path, *, activate: bool) -> str:
    from catalog_ai.services.models import activate_model, register_model

    with unit_of_work() as session:
        row = register_model(session, bundle_dir)
        if activate:
            activate_model(session, row.version, dispatcher=loop.dispatcher)
        version = row.version
    drain(loop.dispatcher)
    return version


def _catalogue_examples() -> dict[str, tuple[int, object]]:
    """``{media file: (product id, Example)}`` of what ``train --from-catalog`` learns from."""
    from sqlalchemy import select

    from catalog_ai.db import ProductImage
    from catalog_ai.training.sources import examples_from_catalog

    _, examples, _ = examples_from_catalog()
    media = MediaStore(get_settings().media_dir)
    with unit_of_work() as session:
        pid_of = {
            str(media.path(stored)): pid
            for pid, stored in session.execute(
                select(ProductImage.product_id, ProductImage.stored_path)
            )
        }
    return {str(e.file): (pid_of[str(e.file)], e) for e in examples}


def first_model(loop: ReviewLoop) -> str:
    examples = _catalogue_examples()
    bundle_dir = loop.train([e for _, e in examples.values()], loop.work_dir / "model-0")
    version = _register(loop, bundle_dir, activate=True)
    loop.trained_on[version] = {pid for pid, _ in examples.values()}
    return version


def calibrate_from_reviews(loop: ReviewLoop) -> str | None:
    """``catalog-ai calibrate --from-reviews`` (reviews and audits weighted by stratum)."""
    from catalog_ai.inference.recalibrate import recalibrate_bundle
    from catalog_ai.services.live_precision import weighted_review_photos
    from catalog_ai.services.versions import adopt_derived, derivation_base

    with unit_of_work() as session:
        parent, memory, revision = derivation_base(session, None)
        files, labels, weights = weighted_review_photos(session)
    if len(files) < loop.config.min_calibration:
        return None
    bundle, _, _ = recalibrate_bundle(
        parent.path,
        files,
        labels,
        source=f"{len(files)} reviewed and audited products, weighted by stratum",
        skip_unknown=True,
        memory=memory,
        memory_revision=revision,
        weights=weights,
    )
    with unit_of_work() as session:
        row, _ = adopt_derived(session, bundle, dispatcher=loop.dispatcher)
        assert row is not None
        version = row.version
    drain(loop.dispatcher)
    loop.trained_on[version] = loop.trained_on.get(parent.version, set())
    return version


def retrain(loop: ReviewLoop) -> dict:
    from catalog_ai.inference.recalibrate import recalibrate_bundle
    from catalog_ai.services.live_precision import weighted_examples
    from catalog_ai.services.promotion import holdout_for_training

    started = time.monotonic()
    champion = loop.active()[0]
    examples = _catalogue_examples()
    with unit_of_work() as session:
        held = holdout_for_training(session, loop.config.compare_recent)
        weight = {pid: w for pid, _, w in weighted_examples(session)}
    held_ids = {pid for pid, _ in held}
    train = [(pid, e) for pid, e in examples.values() if pid not in held_ids]
    calibrate_on = [(pid, e) for pid, e in examples.values() if pid in held_ids]
    loop.retrains += 1
    out = loop.work_dir / f"model-{loop.retrains}"
    loop.train([e for _, e in train], out)
    challenger_dir = out
    if len(calibrate_on) >= loop.config.min_calibration:
        bundle, _, _ = recalibrate_bundle(
            out,
            [e.file for _, e in calibrate_on],
            [e.label for _, e in calibrate_on],
            source=f"{len(calibrate_on)} recent person-labelled products held out of training, "
            "weighted by stratum",
            skip_unknown=True,
            weights=[weight.get(pid, 1.0) for pid, _ in calibrate_on],
            out_dir=loop.work_dir / f"model-{loop.retrains}-calibrated",
        )
        challenger_dir = Path(bundle.path)
    challenger = _register(loop, challenger_dir, activate=False)
    loop.trained_on[challenger] = {pid for pid, _ in train}
    trained_s = time.monotonic() - started
    with unit_of_work() as session:
        decision = loop.promote(session, challenger, held_out=sorted(held_ids))
    drain(loop.dispatcher)
    loop.compared[challenger] = set(decision.get("product_ids", []))
    return {
        "challenger": challenger,
        "champion": champion,
        "trained_on": len(train),
        "held_out": len(held_ids),
        "train_seconds": round(trained_s, 1),
        "seconds": round(time.monotonic() - started, 1),
        **{k: v for k, v in decision.items() if k != "product_ids"},
    }


def product_promote(
    *,
    margin: float,
    dispatcher,
    min_products: int = 30,
    seed: int = 0,
    precision_clause: bool = True,
) -> Callable[..., dict]:
    """Helper C's ``promote_if_better`` (rule 3), as the loop's one promotion call.

    ``precision_clause=False`` is a counterfactual, not the product's rule: the same comparison
    and :func:`promotion_rule` with the auto-accept precision figures left out (its clause 4),
    to measure what that clause costs; the decision is recorded the same way."""
    from catalog_ai.services.promotion import promote_if_better

    def promote(session, candidate: str, *, held_out: list[int]) -> dict:
        if precision_clause:
            decision = promote_if_better(
                session,
                candidate,
                margin=margin,
                dispatcher=dispatcher,
                held_out=held_out,
                n_recent=len(held_out) or 500,
                seed=seed,
                min_products=min_products,
            )
        else:
            decision = _promote_without_precision_clause(
                session, candidate, margin, dispatcher, held_out, seed, min_products
            )
        c = decision.comparison
        return {
            "promoted": decision.promoted,
            "reason": decision.reason,
            "n_compared": 0 if c is None else c.n,
            "champion_accuracy": None if c is None else c.leaf_accuracy_a.estimate,
            "challenger_accuracy": None if c is None else c.leaf_accuracy_b.estimate,
            "product_ids": [] if c is None else list(c.product_ids),
        }

    return promote


def _promote_without_precision_clause(session, candidate, margin, dispatcher, held_out, seed, n):
    import dataclasses

    from catalog_ai.services import promotion
    from catalog_ai.services.model_compare import Figure

    def rule(comparison, *, margin: float, min_products: int = n, **rest):
        blind = dataclasses.replace(
            comparison,
            auto_accept_precision_a=Figure(None, None, None),
            auto_accept_precision_b=Figure(None, None, None),
        )
        return original(blind, margin=margin, min_products=min_products, **rest)

    original = promotion.promotion_rule
    promotion.promotion_rule = rule
    try:
        return promotion.promote_if_better(
            session,
            candidate,
            margin=margin,
            dispatcher=dispatcher,
            held_out=held_out,
            n_recent=len(held_out) or 500,
            seed=seed,
            min_products=n,
        )
    finally:
        promotion.promotion_rule = original


# --- benchmark-only patches (each says why) ---------------------------------------------


def cache_probe_embeddings() -> dict[str, int]:
    """Embed each training photo once for the whole run, not once per retrain.

    The quick recipe trains a head on embeddings of a frozen pretrained backbone, the same
    network in every retrain here, so a photo's (and its mirror image's) embedding never
    changes; ``train_linear_probe`` recomputes them on each call (two forward passes per photo
    per retrain, the bulk of a retrain's time on a CPU). This wraps its embedding step with a
    cache keyed by the decoded image's bytes (benchmark only; the numbers are the same
    network's). Returns hit counts."""
    import hashlib

    import torch

    from catalog_ai.training import probe

    original = probe._Embedder.predict_step
    cache: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}
    stats = {"embedded": 0, "from_cache": 0}

    def predict_step(self, batch, batch_idx: int):
        images, rows = batch
        keys = [hashlib.blake2b(i.cpu().numpy().tobytes(), digest_size=16).digest() for i in images]
        todo = [k for k, key in enumerate(keys) if key not in cache]
        if todo:
            plain, mirrored, _ = original(self, (images[todo], rows[todo]), batch_idx)
            for j, k in enumerate(todo):
                cache[keys[k]] = (plain[j], mirrored[j])
        stats["embedded"] += len(todo)
        stats["from_cache"] += len(keys) - len(todo)
        return (
            torch.stack([cache[key][0] for key in keys]),
            torch.stack([cache[key][1] for key in keys]),
            rows.cpu(),
        )

    probe._Embedder.predict_step = predict_step  # type: ignore[method-assign]
    return stats


def seed_audit_draws(seed: int) -> None:
    """Audit draws from a seeded generator, so that a run repeats draw for draw.

    The product draws with the operating system's randomness (``random.SystemRandom``, so that
    nobody can predict which auto-accept will be audited); in a benchmark that made two runs of
    the same seed differ from their first audit on (benchmark only)."""
    import random
    import types

    from catalog_ai.services import audits

    draws = random.Random(seed)
    audits.random = types.SimpleNamespace(SystemRandom=lambda: draws, Random=random.Random)  # type: ignore[assignment]

"""Re-fit a bundle's calibration on new held-out photos, without retraining.

Photos the network trained on, or photos taken in the same sessions, make a model look more
certain than it is on new uploads (on the Grocery Store data: 97 % leaf accuracy on a random
10 % of train vs 67 % on val for the quick model). Calibrating on photos like the ones the store
will upload (a separate labelled folder, or recently reviewed products) keeps the stated
confidence, and so the auto-accept threshold, honest.

The result is a new model version derived from the calibrated one: a registered bundle is never
rewritten, so suggestions made before and after can be told apart.

**Reviewed products are weighted** (``calibrate --from-reviews``): people see the photos a model
did not auto-accept (the hard ones) and, through audits, a uniform few percent of those it did.
Fitted unweighted, the temperature and the thresholds would describe hard photos only: too
little confidence overall, and an auto-accept threshold set where the hard photos' precision
reaches the target. Each product therefore counts with the weight ``N_h / n_h`` of its stratum
(:func:`catalog_ai.services.live_precision.weighted_examples`: an audit stands for the
auto-accepts it was drawn from, a review for its confidence band of what went to review): the
temperature minimises the *weighted* mean NLL, and a threshold is the lowest whose *weighted*
precision (``sum w * correct / sum w`` over the photos at or above it) reaches the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from catalog_ai.errors import ImageError
from catalog_ai.inference.predictor import Predictor
from catalog_ai.model.bundle import BundleError, ModelBundle, derive_bundle
from catalog_ai.model.calibration import (
    PRECISION_TARGETS,
    Calibration,
    calibrate,
    expected_calibration_error,
    leaf_confidence,
)
from catalog_ai.model.decision import Thresholds
from catalog_ai.model.fusion import open_set_threshold
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.progress import progress_bar

__all__ = [
    "held_out_logits",
    "recalibrate_bundle",
    "weighted_calibrate",
    "weighted_temperature",
    "weighted_threshold",
]


def weighted_temperature(
    leaf_logits: torch.Tensor, target_mask: torch.Tensor, weights: torch.Tensor
) -> float:
    """The temperature minimising the weighted mean NLL ``sum w_i nll_i / sum w_i`` (equal
    weights: the plain held-out fit); 1.0 when there is nothing to fit on."""
    from catalog_ai.model.hierarchy import marginal_nll

    if leaf_logits.shape[0] < 2:
        return 1.0
    logits = leaf_logits.detach().double()
    w = weights.detach().double() / weights.double().sum()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (w * marginal_nll(logits / log_t.exp(), target_mask, reduction="none")).sum()
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    return float(min(max(t, 0.05), 20.0)) if np.isfinite(t) else 1.0


def weighted_threshold(
    confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray, precision: float
) -> float:
    """The lowest confidence threshold whose accepted set (confidence >= t) has a weighted
    precision of at least ``precision``; above 1 (accept nothing) when none does. Ties are
    accepted or refused together, as in :func:`catalog_ai.model.calibration.
    threshold_for_precision` (which this is with equal weights)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    if confidence.size == 0:
        return 1.01
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    w = np.asarray(weights, dtype=np.float64)[order]
    hits = np.cumsum(w * np.asarray(correct, dtype=bool)[order])
    mass = np.cumsum(w)
    last_of_run = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    # A relative tolerance: 0.98 built from float sums must count as 0.98.
    ok = (hits >= precision * mass * (1 - 1e-12)) & last_of_run & (mass > 0)
    if not ok.any():
        return 1.01
    return float(conf_sorted[np.flatnonzero(ok)[-1]])


def weighted_calibrate(
    leaf_logits: torch.Tensor,
    rows: torch.Tensor,
    weights: torch.Tensor,
    tree,
    *,
    decision_threshold: float,
    auto_accept_precision: str,
    source: str,
) -> Calibration:
    """:func:`catalog_ai.model.calibration.calibrate` with a weight per photo."""
    mask = tree.target_mask(rows)
    temperature = weighted_temperature(leaf_logits, mask, weights)
    node_probs = tree.node_probs((leaf_logits / temperature).softmax(1)).double().cpu().numpy()
    conf, correct = leaf_confidence(node_probs, rows.cpu().numpy(), tree)
    w = weights.double().cpu().numpy()
    by_precision = {p: weighted_threshold(conf, correct, w, float(p)) for p in PRECISION_TARGETS}
    thresholds = Thresholds(
        decision=decision_threshold,
        auto_accept=by_precision[auto_accept_precision],
        auto_accept_by_precision=by_precision,
        auto_accept_target=auto_accept_precision,
        calibrated_on=source,
    )
    return Calibration(temperature, thresholds, node_probs, len(rows))


def held_out_logits(
    predictor: Predictor,
    files: Sequence[Path],
    labels: Sequence[str],
    *,
    progress: bool = False,
    skip_unknown: bool = False,
    embeddings: list[np.ndarray] | None = None,
    kept: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Raw leaf logits and label rows of labelled photos; unreadable photos are skipped, and with
    ``skip_unknown`` so are photos of categories the head does not output (few-shot ones).
    ``embeddings``: a list that receives the photos' embeddings, batch by batch; ``kept``: a
    list that receives the positions (in ``files``) of the photos the rows are of, in order."""
    rows_of = predictor.bundle.taxonomy.node_index
    unknown = sorted({label for label in labels if label not in rows_of})
    positions = list(range(len(files)))
    if unknown and skip_unknown:
        positions = [i for i, label in enumerate(labels) if label in rows_of]
        files, labels = [files[i] for i in positions], [labels[i] for i in positions]
    elif unknown:
        raise BundleError(
            f"{len(unknown)} labels are not categories of model {predictor.version} "
            f"(first: {unknown[0]!r})"
        )
    logits, rows, skipped = [], [], []
    batch: list[np.ndarray] = []
    batch_rows: list[int] = []
    batch_at: list[int] = []

    def flush() -> None:
        if batch:
            emb, batch_logits = predictor.embed_logits(batch)
            logits.append(batch_logits.float().cpu())
            if embeddings is not None:
                embeddings.append(emb.float().cpu().numpy())
            rows.extend(batch_rows)
            if kept is not None:
                kept.extend(batch_at)
            batch.clear()
            batch_rows.clear()
            batch_at.clear()

    with progress_bar(
        total=len(files), desc="held-out photos", unit="photo", enable=progress
    ) as bar:
        for at, file, label in zip(positions, files, labels, strict=True):
            try:
                batch.append(predictor.prepare(file))
                batch_rows.append(rows_of[label])
                batch_at.append(at)
            except ImageError as exc:
                skipped.append((str(file), exc.reason))
            if len(batch) == predictor.batch_size:
                flush()
            bar.update(1)
        flush()
    if not logits:
        raise BundleError("no readable held-out photos to calibrate on")
    return torch.cat(logits), torch.tensor(rows), skipped


def recalibrate_bundle(
    bundle_dir: Path,
    files: Sequence[Path],
    labels: Sequence[str],
    *,
    source: str,
    progress: bool = False,
    skip_unknown: bool = False,
    memory: PrototypeMemory | None = None,
    memory_revision: int | None = None,
    out_dir: Path | None = None,
    weights: Sequence[float] | None = None,
) -> tuple[ModelBundle, Calibration, dict]:
    """Fit temperature and thresholds on the given photos and write them into a NEW bundle derived
    from ``bundle_dir`` (next to it, or ``out_dir``); the given bundle's files are only read.
    ``weights``: one per photo, for a sample that over-represents some photos (reviewed
    products: see the module docstring); the report says the weighted figures then.

    ``memory``: the prototype memory the model serves now (its files plus the revisions reviews
    added, ``memory_revision``); default: the bundle's files. The new version starts from it."""
    predictor = Predictor.load(bundle_dir)
    if memory is not None:
        predictor.set_prototypes(memory.copy())
    bundle = predictor.bundle
    embedded: list[np.ndarray] = []
    kept: list[int] = []
    logits, rows, skipped = held_out_logits(
        predictor,
        files,
        labels,
        progress=progress,
        skip_unknown=skip_unknown,
        embeddings=embedded,
        kept=kept,
    )
    before_probs = (
        predictor.tree.node_probs((logits / bundle.temperature).softmax(1)).double().numpy()
    )
    conf_before, correct = leaf_confidence(before_probs, rows.numpy(), predictor.tree)
    if weights is None:
        w = np.ones(len(rows))
        cal = calibrate(
            logits,
            rows,
            predictor.tree,
            decision_threshold=bundle.thresholds.decision,
            auto_accept_precision=bundle.thresholds.auto_accept_target,
            enable_auto_accept=True,
            source=f"{len(rows)} photos: {source}",
        )
    else:
        w = np.asarray(weights, dtype=np.float64)[kept]
        cal = weighted_calibrate(
            logits,
            rows,
            torch.from_numpy(w),
            predictor.tree,
            decision_threshold=bundle.thresholds.decision,
            auto_accept_precision=bundle.thresholds.auto_accept_target,
            source=f"{len(rows)} photos, weighted by stratum: {source}",
        )
    conf_after, _ = leaf_confidence(cal.node_probs, rows.numpy(), predictor.tree)
    report = {
        "source": source,
        "n_photos": cal.n_photos,
        "skipped": len(skipped),
        "weighted": weights is not None,
        "leaf_accuracy": float(np.average(correct, weights=w)),
        "temperature_before": bundle.temperature,
        "temperature": cal.temperature,
        "ece_before": expected_calibration_error(conf_before, correct),
        "ece_after_in_sample": expected_calibration_error(conf_after, correct),
    }
    new_memory = predictor.prototypes  # a copy of what was given, or loaded from the files
    if new_memory is not None and len(new_memory.paths):
        # The open-set threshold was set on photos held out of the training sessions, whose best
        # prototype cosines are higher than new uploads': re-set it on these photos too.
        best = new_memory.similarities(np.concatenate(embedded)).max(axis=1)
        report["open_set_cosine_before"] = new_memory.fusion.open_set_cosine
        new_memory.fusion.open_set_cosine = open_set_threshold(best)
        report["open_set_cosine"] = new_memory.fusion.open_set_cosine
    derived = derive_bundle(
        bundle,
        change=f"calibration on {source}",
        out_dir=out_dir,
        temperature=cal.temperature,
        thresholds=cal.thresholds,
        metrics={**bundle.metrics, "calibration": report},
        prototypes=new_memory,
        memory_revision=memory_revision,
    )
    return derived, cal, report

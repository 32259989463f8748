"""Evaluate a model bundle on a labelled folder of photos (the ``catalog-ai evaluate`` use case)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog_ai.evaluation import EvaluationResult, evaluate_arrays, write_report
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.taxonomy import format_path, scan_folder

__all__ = ["evaluate_folder"]


def evaluate_folder(
    model_dir: Path, data_dir: Path, *, report_dir: Path | None = None, progress: bool = False
) -> tuple[EvaluationResult, list[tuple[str, str]]]:
    """Classify every photo of ``data_dir`` and compare with its folder's category.

    Returns the result and the photos that could not be read (skipped, with reasons). Folder
    categories that the model does not know are an error: the model could never be right there.
    """
    from catalog_ai.inference.predictor import Predictor

    bundle = ModelBundle.load(model_dir)
    scan = scan_folder(data_dir)
    rows = bundle.taxonomy.node_index
    labels = [format_path(p) for _, p in scan.files]
    unknown = sorted({label for label in labels if label not in rows})
    if unknown:
        raise BundleError(
            f"{len(unknown)} categories of {data_dir} are not in model {bundle.version}'s tree "
            f"(first: {unknown[0]!r}); evaluate on photos of the categories the model was "
            "trained on"
        )
    predictor = Predictor(bundle)
    files = [f for f, _ in scan.files]
    predictions = predictor.predict(files, progress=progress)
    # A prediction without an error has its probabilities and decision (Predictor.predict).
    ok = [
        (i, p.node_probs, p.decision)
        for i, p in enumerate(predictions)
        if p.error is None and p.node_probs is not None and p.decision is not None
    ]
    skipped = [
        (str(files[i]), predictions[i].error or "") for i, p in enumerate(predictions) if p.error
    ]
    if not ok:
        raise BundleError(f"no readable photos in {data_dir}")
    node_probs = np.stack([probs for _, probs, _ in ok])
    true_rows = np.array([rows[labels[i]] for i, _, _ in ok])
    paths = [str(files[i]) for i, _, _ in ok]
    result = evaluate_arrays(
        node_probs,
        true_rows,
        bundle.taxonomy,
        thresholds=bundle.thresholds,
        model_version=bundle.version,
        image_paths=paths,
        decisions=[decision for _, _, decision in ok],
    )
    if report_dir is not None:
        write_report(result, report_dir, taxonomy=bundle.taxonomy, image_paths=paths)
    return result, skipped

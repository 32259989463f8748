"""Evaluation of a model on labelled photos: metrics (:mod:`.metrics`, JSON-safe) and a PNG
report (:mod:`.report`). This package only re-exports them; its modules import each other
directly, never through here."""

from catalog_ai.evaluation.metrics import (
    ECE_BINS,
    PRECISION_TARGETS,
    EvaluationResult,
    coverage_precision_curve,
    evaluate_arrays,
)
from catalog_ai.evaluation.report import REPORT_FILES, write_report

__all__ = [
    "ECE_BINS",
    "PRECISION_TARGETS",
    "REPORT_FILES",
    "EvaluationResult",
    "coverage_precision_curve",
    "evaluate_arrays",
    "write_report",
]

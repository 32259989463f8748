"""One line per ``train_grocery.py`` output file: the figures docs/BENCHMARKS.md quotes.

    python3 scripts/device/summary.py OUT/NAME.json ...

Lightning's progress bar shares stdout with the JSON, so the JSON is read from its last start.
"""

import json
import sys


def summary(text: str) -> dict:
    figures = json.loads(text[text.rfind('{\n  "machine"'):])
    val, cross_fitted = figures["val"], figures["val_cross_fitted_calibration"]
    return {
        "train_wall_s": figures.get("train_wall_s"),
        "train_seconds": figures.get("train_seconds"),
        "own_holdout_leaf": figures.get("held_out", {}).get("leaf_accuracy"),
        "leaf": round(val["leaf_accuracy"], 4),
        "coarse": round(val["coarse_accuracy"], 4),
        "depth": [round(x, 3) for x in val["depth_accuracy"]],
        "top5": round(val["top5_accuracy"], 4),
        "hf1": round(val["hierarchical_f1"], 4),
        "ece": round(val["ece"], 4),
        "cross_fitted": cross_fitted,
        "serving": figures["serving_2_threads"],
        "over_splits": figures.get("val_cross_fitted_over_splits"),
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        try:
            print(path, json.dumps(summary(open(path).read())))
        except (OSError, ValueError) as exc:
            print(path, f"no figures: {exc}")

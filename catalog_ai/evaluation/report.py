"""The PNG report of an evaluation: reliability, coverage against precision, accuracy by branch
and the most confused pairs (with thumbnails), beside ``metrics.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catalog_ai.errors import CatalogAIError, EvaluationError
from catalog_ai.evaluation._scan import check_paths
from catalog_ai.evaluation.metrics import EvaluationResult, coverage_precision_curve
from catalog_ai.taxonomy import Taxonomy

__all__ = ["REPORT_FILES", "write_report"]

#: What :func:`write_report` writes, in the order it returns them.
REPORT_FILES = (
    "metrics.json",
    "reliability.png",
    "coverage_precision.png",
    "accuracy_by_branch.png",
    "confused_pairs.png",
)

_THUMB = 96
_PLACEHOLDER = np.full((_THUMB, _THUMB, 3), 200, dtype=np.uint8)
_DPI = 110


def write_report(
    result: EvaluationResult,
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy,
    image_paths: Sequence[str | Path] | None = None,
) -> list[Path]:
    """Write ``metrics.json`` and four PNGs (see :data:`REPORT_FILES`) into ``out_dir``.

    ``image_paths`` (default: the result's) adds up to three thumbnails of each confused pair;
    a photo that cannot be loaded becomes a grey placeholder.
    """
    if result.metrics.get("taxonomy_fingerprint") != taxonomy.fingerprint():
        raise EvaluationError(
            "the taxonomy given to write_report is not the one the result was "
            "computed with; pass the same taxonomy"
        )
    paths = result.image_paths if image_paths is None else check_paths(image_paths, result.n_images)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_FILES[0]).write_text(
            json.dumps(result.metrics, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise EvaluationError(
            f"cannot write the report to {out}: {exc.strerror}; pass a writable folder"
        ) from None
    written = [out / REPORT_FILES[0]]
    for name, draw in zip(
        REPORT_FILES[1:],
        (_plot_reliability, _plot_coverage, _plot_branches, _plot_confused),
        strict=True,
    ):
        fig = draw(result, taxonomy, paths)
        target = out / name
        try:
            fig.savefig(target, dpi=_DPI)
        except OSError as exc:
            raise EvaluationError(f"cannot write {target}: {exc.strerror}") from None
        finally:
            fig.clear()  # Figure objects are not tracked by pyplot; clearing frees the artists now
        written.append(target)
    return written


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global figure registry, no interactive backend
    return fig


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="dimgray")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _short(text: str, width: int = 44) -> str:
    """Keep the end of a long path (the specific part): ``… > Apple > Granny-Smith``."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _plot_reliability(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    fig = _figure(6.4, 6.4)
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.set_title(
        f"Reliability of the top-1 leaf confidence\nECE {_fmt(m['ece'])} "
        f"({m['ece_bins']} bins, {m['n_leaf_labels']} leaf-labelled photos)"
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    bins = m["reliability"]
    if bins:
        low = np.array([b["low"] for b in bins])
        width = np.array([b["high"] for b in bins]) - low
        acc = np.array([b["accuracy"] for b in bins])
        conf = np.array([b["confidence"] for b in bins])
        ax.bar(
            low,
            acc,
            width=width,
            align="edge",
            color="tab:blue",
            edgecolor="white",
            label="accuracy",
        )
        ax.bar(
            low,
            conf - acc,
            bottom=acc,
            width=width,
            align="edge",
            color="none",
            edgecolor="tab:red",
            hatch="//",
            linewidth=0.8,
            label="gap to confidence",
        )
        ax_count.bar(
            low,
            [b["count"] for b in bins],
            width=width,
            align="edge",
            color="gray",
            edgecolor="white",
        )
    else:
        _empty(ax, "no leaf-labelled photos")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.legend(loc="upper left", fontsize="small")
    ax_count.set(xlabel="confidence of the top-1 leaf", ylabel="photos")
    return fig


def _plot_coverage(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    sel = result.leaf_labelled
    # A photo that may never auto-accept joins only at the last point (accept everything).
    conf = (
        result.leaf_confidence
        if result.acceptable is None
        else np.where(result.acceptable, result.leaf_confidence, 0.0)
    )
    _, coverage, precision = coverage_precision_curve(conf[sel], result.leaf_correct[sel])
    fig = _figure(6.8, 6.2)
    ax = fig.subplots()
    ax.set_title("Coverage vs. precision of the top-1 leaf as the threshold sweeps")
    if coverage.size:
        ax.step(coverage, precision, where="post", color="tab:blue", label="all thresholds")
    else:
        _empty(ax, "no leaf-labelled photos")
    colors = iter(["tab:green", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink"])
    for key, t in m["thresholds_used"].items():
        color = next(colors, "black")
        ax.axhline(float(key), color=color, linestyle=":", linewidth=1)
        cov, prec = m["coverage_at_precision"][key], m["precision_at_threshold"][key]
        if t is None:
            continue
        if prec is None:  # nothing accepted: no point to place, say so in the legend
            ax.plot([], [], "o", color=color, label=f"target {key}: t={t:.3f} accepts nothing")
            continue
        ax.plot(
            [cov],
            [prec],
            "o",
            color=color,
            markersize=8,
            label=f"target {key}: t={t:.3f}, coverage {cov:.1%}, precision {prec:.1%}",
        )
    oracle = [
        (m["oracle_coverage_at_precision"][k], float(k))
        for k in m["thresholds_used"]
        if m["oracle_coverage_at_precision"][k]
    ]
    if oracle:
        ax.plot(
            *zip(*oracle, strict=True),
            "x",
            color="black",
            label="oracle (threshold chosen on these photos: optimistic)",
        )
    low = min([0.5, *precision.tolist()]) if precision.size else 0.5
    ax.set(
        xlim=(0, 1.01),
        ylim=(max(0.0, low - 0.05), 1.01),
        xlabel="coverage (share of leaf-labelled photos accepted)",
        ylabel="precision",
    )
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small")  # keeps the curve uncovered
    return fig


def _plot_branches(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    m = result.metrics
    branches = [
        (name, v["accuracy"], v["count"])
        for name, v in m["accuracy_by_top_level"].items()
        if v["count"]
    ]
    branches.sort(key=lambda b: -b[2])
    shown = branches[:30]
    fig = _figure(11.0, max(3.5, 0.32 * len(shown) + 1.6))
    ax, ax_depth = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    title = "Leaf accuracy per top-level branch"
    if len(branches) > len(shown):
        title += f" ({len(shown)} largest of {len(branches)})"
    ax.set_title(title)
    if shown:
        y = np.arange(len(shown))
        acc = [b[1] for b in shown]
        ax.barh(y, acc, color="tab:blue")
        ax.set_yticks(y, [_short(b[0], 30) for b in shown])
        ax.invert_yaxis()
        for yi, (_, a, count) in zip(y, shown, strict=True):
            ax.text(min(a, 1.0) + 0.01, yi, f"{a:.1%} (n={count})", va="center", fontsize="small")
    else:
        _empty(ax, "no leaf-labelled photos")
    ax.set(xlim=(0, 1.25), xlabel="leaf accuracy")
    ax.set_xticks(np.linspace(0, 1, 6))  # the room right of 1.0 is for the labels

    depth_acc, depth_n = m["depth_accuracy"], m["depth_counts"]
    x = np.arange(1, len(depth_acc) + 1)
    ax_depth.bar(x, [a or 0.0 for a in depth_acc], color="tab:green")
    for xi, a, count in zip(x, depth_acc, depth_n, strict=True):
        ax_depth.text(
            xi, (a or 0.0) + 0.02, f"{_fmt(a, '.1%')}\nn={count}", ha="center", fontsize="small"
        )
    ax_depth.set_xticks(x)
    ax_depth.set_yticks(np.linspace(0, 1, 6))
    ax_depth.set(
        ylim=(0, 1.2), xlabel="depth (1 = top level)", ylabel="accuracy", title="Accuracy per depth"
    )
    return fig


def _plot_confused(result: EvaluationResult, taxonomy: Taxonomy, paths: list[str] | None):
    pairs = result.metrics["confused_pairs"][:8]
    if not pairs:
        fig = _figure(6.0, 2.0)
        ax = fig.subplots()
        ax.set_axis_off()
        _empty(ax, "no confusions among the leaf-labelled photos")
        return fig
    if paths is None:
        fig = _figure(9.0, 0.45 * len(pairs) + 1.5)
        ax = fig.subplots()
        y = np.arange(len(pairs))
        ax.barh(y, [p["count"] for p in pairs], color="tab:red")
        ax.set_yticks(y, [f"{_short(p['true'], 34)} → {_short(p['predicted'], 34)}" for p in pairs])
        ax.invert_yaxis()
        ax.set(xlabel="photos", title="Most confused pairs (true → predicted top-1 leaf)")
        return fig

    fig = _figure(7.4, 1.3 * len(pairs) + 0.6)
    fig.suptitle("Most confused pairs: photos of the true class predicted as the other")
    axes = fig.subplots(len(pairs), 4, squeeze=False, gridspec_kw={"width_ratios": [2.6, 1, 1, 1]})
    for row, pair in zip(axes, pairs, strict=True):
        true_row = taxonomy.row(taxonomy.by_path(pair["true"]).id)
        pred_row = taxonomy.row(taxonomy.by_path(pair["predicted"]).id)
        examples = np.flatnonzero(
            (result.true_rows == true_row) & (result.pred_leaf_rows == pred_row)
        )[:3]
        row[0].set_axis_off()
        row[0].text(
            0.0,
            0.5,
            f"true: {_short(pair['true'])}\npredicted: "
            f"{_short(pair['predicted'])}\n{pair['count']} photo"
            f"{'' if pair['count'] == 1 else 's'}",
            va="center",
            fontsize="small",
            transform=row[0].transAxes,
        )
        for ax, index in zip(row[1:], [*examples, *[None] * 3], strict=False):  # padded
            ax.set_axis_off()
            if index is not None:
                thumb = _thumbnail(paths[index])
                ax.imshow(thumb if thumb is not None else _PLACEHOLDER)
                if thumb is None:
                    ax.text(
                        0.5,
                        0.5,
                        "cannot load",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        transform=ax.transAxes,
                    )
    return fig


def _thumbnail(path: str) -> np.ndarray | None:
    """The photo shrunk to fit the thumbnail box; None when it cannot be loaded (a report about
    thousands of photos must not fail on one that moved or broke)."""
    from catalog_ai.photos.decode import load_image

    try:
        image = load_image(path, target_size=_THUMB)
        image.thumbnail((_THUMB, _THUMB))
        return np.asarray(image)
    except (CatalogAIError, OSError, ValueError):
        return None

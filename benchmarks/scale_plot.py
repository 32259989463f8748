"""Growth curves of the interactive reads: p95 against catalogue size, log-log, with slopes.

    .venv/bin/python benchmarks/scale_plot.py --out docs/img/scale-p95.png \\
        pg:/tmp/q10k.json pg:/tmp/q100k.json pg:/tmp/q1m.json sqlite:/tmp/s10k.json ...

Each argument is ``LABEL:FILE``, a ``--json`` file written by ``benchmarks/scale_queries.py``;
files of one label are one curve per call. The slope is the least-squares fit of
``log10(p95)`` on ``log10(products)`` over that label's sizes: 0 = flat (cost independent of the
catalogue's size), 1 = linear. It prints a Markdown table (call, p50 / p95 per size, the slope
of p95) and writes
one PNG: a panel per page (review, catalogue, health and search, API, writes), a line per call.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

PANELS = (
    ("writes", ("review.accept", "products.create")),
    ("review page", ("review", "queue_count")),
    ("catalogue page", ("branch_figures", "products_in_branch", "count_products", "product_hist")),
    (
        "health, search",
        ("pipeline_status", "catalog_counts", "oldest_pending", "status_counts", "text_search"),
    ),
    ("API", ("api:",)),
)
ORDER = ("review page", "catalogue page", "health, search", "API", "writes")


def panel_of(call: str) -> str:
    for name, prefixes in PANELS:
        if call.startswith(prefixes):
            return name
    return "other"


#: (label, products) -> call -> p50 ms, for the table.
P50: dict[tuple[str, int], dict[str, float]] = {}


def load(specs: list[str]) -> dict[str, dict[int, dict[str, float]]]:
    """label -> products -> call -> p95 ms."""
    out: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for spec in specs:
        label, _, file = spec.partition(":")
        data = json.loads(Path(file).read_text(encoding="utf-8"))
        n = int(data["seed"]["products"])
        out[label][n] = {call: row["p95"] for call, row in data["figures"].items()}
        P50[(label, n)] = {call: row["p50"] for call, row in data["figures"].items()}
    return out


def slope(points: list[tuple[int, float]]) -> float | None:
    if len(points) < 2:
        return None
    x = np.log10([n for n, _ in points])
    y = np.log10([max(v, 1e-3) for _, v in points])
    return float(np.polyfit(x, y, 1)[0])


def table(curves: dict[str, dict[int, dict[str, float]]]) -> str:
    lines = []
    for label, by_n in curves.items():
        sizes = sorted(by_n)
        calls = [c for c in by_n[sizes[-1]] if all(c in by_n[n] for n in sizes)]
        head = " | ".join(f"p50 / p95 ms at {n:,}" for n in sizes)
        lines += [f"**{label}**", "", f"| call | {head} | slope |", "|---" * (len(sizes) + 2) + "|"]
        for call in calls:
            points = [(n, by_n[n][call]) for n in sizes]
            s = slope(points)
            cells = " | ".join(
                f"{P50[(label, n)][call]:.1f} / " + (f"**{v:.1f}**" if v > 100 else f"{v:.1f}")
                for n, v in points
            )
            lines.append(f"| `{call}` | {cells} | {'' if s is None else f'{s:+.2f}'} |")
        lines.append("")
    return "\n".join(lines)


def plot(curves: dict[str, dict[int, dict[str, float]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(curves)
    fig, axes = plt.subplots(
        len(labels), len(ORDER), figsize=(4.6 * len(ORDER), 6.2 * len(labels)), squeeze=False
    )
    for row, label in enumerate(labels):
        by_n = curves[label]
        sizes = sorted(by_n)
        for col, panel in enumerate(ORDER):
            ax = axes[row][col]
            for call in (c for c in by_n[sizes[-1]] if panel_of(c) == panel):
                points = [(n, by_n[n][call]) for n in sizes if call in by_n[n]]
                s = slope(points)
                ax.plot(
                    [n for n, _ in points],
                    [v for _, v in points],
                    marker="o",
                    markersize=3,
                    label=f"{call[:44]} ({'' if s is None else f'{s:+.2f}'})",
                )
            ax.axhline(100, color="red", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(0.3, 3000)
            ax.set_title(f"{label}: {panel}")
            ax.set_xlabel("products")
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
            ax.grid(True, which="both", linewidth=0.3)
        axes[row][0].set_ylabel("p95 ms (red line: the 100 ms target); legend: call (slope)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="LABEL:FILE of scale_queries.py --json output")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)
    curves = load(args.runs)
    print(table(curves))
    plot(curves, args.out)
    print(f"wrote {args.out}")
    return (
        0
        if all(math.isfinite(v) for c in curves.values() for r in c.values() for v in r.values())
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())

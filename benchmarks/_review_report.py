"""What ``benchmarks/review_loop.py`` prints and draws: the per-batch table row, the stream's
auto-accept precision against the audits' estimate, and the three-panel figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from _review_sim import ReviewLoop

TARGET = 0.98  # the bundles' auto-accept target precision (TrainConfig.auto_accept_precision)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def row(f) -> str:
    a = f.audit_estimate
    audit = (
        "n/a"
        if a is None
        else f"{100 * a['estimate']:.1f} % [{100 * a['low']:.0f}, {100 * a['high']:.0f}] n={a['n']}"
    )
    change = []
    if f.calibrated:
        change.append(f"calibrated from reviews -> {f.calibrated}")
    if f.retrain is not None:
        change.append(
            ("PROMOTED" if f.retrain["promoted"] else "kept") + f": {f.retrain['reason']}"
        )
    cells = [
        f.batch,
        f.uploads,
        pct(f.auto_share),
        pct(f.auto_precision),
        f.reviews,
        f"{f.reviews_per_100:.1f}",
        f.audits,
        pct(f.leaf_accuracy),
        audit,
        pct(f.version_true_precision),
        f.queue_left,
        f"{f.seconds:.0f}",
        "; ".join(change),
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| batch | uploads | auto-accepted | its true precision | reviews | reviews per 100 uploads "
    "| audits | suggestion leaf accuracy | active version's audit estimate [95 %] | its true "
    "precision so far | queue left | s | model change after the batch |\n" + "| --- " * 13 + "|"
)


def stream_precision(loop: ReviewLoop) -> dict:
    """True auto-accept precision over the whole stream against the audits' estimate, each
    version's estimate weighted by how many products it auto-accepted."""
    per_version: dict[str, list[bool]] = {}
    for (_, version), ok in loop.auto_events.items():
        per_version.setdefault(version, []).append(ok)
    total = sum(len(v) for v in per_version.values())
    if not total:
        return {}
    weighted, covered, n_audits = 0.0, 0, 0
    for version, oks in per_version.items():
        est = loop.audit_estimate(version)
        if est is not None:
            weighted += len(oks) * est["estimate"]
            covered += len(oks)
            n_audits += est["n"]
    return {
        "auto_accepted": total,
        "true_precision": sum(sum(v) for v in per_version.values()) / total,
        "audit_estimate": weighted / covered if covered else None,
        "audits_resolved": n_audits,
        "auto_accepted_by_versions_with_audits": covered,
        "per_version": {
            v: {
                "auto_accepted": len(oks),
                "true_precision": sum(oks) / len(oks),
                "audit": loop.audit_estimate(v),
            }
            for v, oks in per_version.items()
        },
    }


def plot(history: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [h["batch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(x, [h["reviews_per_100"] for h in history], "o-", label="reviews per 100 uploads")
    ax.plot(x, [100 * h["auto_share"] for h in history], "s--", label="auto-accepted per 100")
    ax.plot(
        x, [100 * h["audits"] / max(1, h["uploads"]) for h in history], "^:", label="audits per 100"
    )
    for h in history:
        if h["retrain"] is not None:
            ax.axvline(
                h["batch"] + 0.5, color="g" if h["retrain"]["promoted"] else "0.6", lw=1.2, ls=":"
            )
    ax.set_xlabel("batch (dotted: a retrain after it, green = promoted)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.axhspan(100 * TARGET - 1.5, 100 * TARGET + 1.5, color="0.9", label="target ± 1.5 points")
    ax.plot(
        x,
        [np.nan if h["auto_precision"] is None else 100 * h["auto_precision"] for h in history],
        "o-",
        label="batch's auto-accepts: true precision",
    )
    ax.plot(
        x,
        [
            np.nan if h["version_true_precision"] is None else 100 * h["version_true_precision"]
            for h in history
        ],
        "s-",
        alpha=0.6,
        label="active version so far: true",
    )
    est = [h["audit_estimate"] for h in history]
    if any(e is not None for e in est):
        mid = [np.nan if e is None else 100 * e["estimate"] for e in est]
        lo = [np.nan if e is None else 100 * e["low"] for e in est]
        hi = [np.nan if e is None else 100 * e["high"] for e in est]
        ax.errorbar(
            x,
            mid,
            # Wilson bounds can sit a rounding error inside the estimate at 100 %.
            yerr=np.clip([np.subtract(mid, lo), np.subtract(hi, mid)], 0, None),
            fmt="x--",
            capsize=3,
            label="active version: audit estimate, 95 %",
        )
    ax.set_xlabel("batch")
    ax.set_ylim(85, 100.5)  # an interval reaching lower is cut at 85
    ax.set_ylabel("auto-accept precision (%)")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.plot(x, [100 * h["leaf_accuracy"] for h in history], "o-")
    ax.set_xlabel("batch")
    ax.set_ylim(50, 100)
    ax.set_ylabel("leaf accuracy of suggestions (%)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def by_source(db: Path, root: Path) -> dict:
    """Uploads by where their photo came from (``train`` folds, shot in the catalogue's photo
    sessions, or ``val``, other sessions): how many, the leaf accuracy of their first suggestion
    (the one made at upload) and the share a reviewer was shown. Read from the run's catalogue
    (SQLite) after the run; photos are matched by content hash."""
    import hashlib
    import sqlite3

    split_of = {
        hashlib.sha256(f.read_bytes()).hexdigest(): (
            split,
            " > ".join(f.relative_to(root / split).parent.parts),
        )
        for split in ("train", "val")
        for f in (root / split).rglob("*.jpg")
    }
    rows = (
        sqlite3.connect(db)
        .execute(
            """select pi.content_hash,
             (select s.path from suggestions s where s.product_id = p.id order by s.id limit 1),
             (select count(*) from reviews r where r.product_id = p.id and r.id not in
                (select review_id from audits where review_id is not null))
           from products p join product_images pi on pi.product_id = p.id
           where p.label_source is null or p.label_source != 'import'"""
        )
        .fetchall()
    )
    out: dict[str, dict] = {}
    for digest, first, reviewed in rows:
        split, truth = split_of[digest]
        s = out.setdefault(split, {"uploads": 0, "leaf_right": 0, "reviewed": 0})
        s["uploads"] += 1
        s["leaf_right"] += first == truth
        s["reviewed"] += reviewed > 0
    for s in out.values():
        s["leaf_accuracy"] = s.pop("leaf_right") / s["uploads"]
        s["reviewed_share"] = s.pop("reviewed") / s["uploads"]
    return out


def plot_runs(runs: list[tuple[str, list[dict]]], out: Path) -> None:
    """Several runs on one figure: reviews per 100 uploads, and each batch's true auto-accept
    precision against the target band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[1].axhspan(100 * TARGET - 1.5, 100 * TARGET + 1.5, color="0.9", label="98 % ± 1.5")
    for label, history in runs:
        x = [h["batch"] for h in history]
        (line,) = axes[0].plot(x, [h["reviews_per_100"] for h in history], "o-", label=label)
        for h in history:
            if h["retrain"] is not None and h["retrain"]["promoted"]:
                axes[0].axvline(h["batch"] + 0.5, color=line.get_color(), lw=1, ls=":")
        prec = [
            np.nan if h["auto_precision"] is None else 100 * h["auto_precision"] for h in history
        ]
        axes[1].plot(x, prec, "o-", color=line.get_color(), label=label)
    axes[0].set_xlabel("batch of 200 uploads (dotted: a promotion after it)")
    axes[0].set_ylabel("reviews per 100 uploads")
    axes[0].set_ylim(0, 105)
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("batch")
    axes[1].set_ylabel("true precision of the batch's auto-accepts (%)")
    axes[1].set_ylim(90, 100.5)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)

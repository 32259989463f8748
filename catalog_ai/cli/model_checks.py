"""``models compare``, ``models audits``/``models audit``, the live figures of ``models list``,
and what ``train --from-catalog --promote-if-better`` does before and after training.

:mod:`catalog_ai.cli.models` adds these commands to its ``models`` group (:data:`COMMANDS`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog_ai.cli._root import dispatching, ensure_db

if TYPE_CHECKING:
    from catalog_ai.services.live_precision import LivePrecision, Proportion
    from catalog_ai.services.model_compare import Comparison, Figure
    from catalog_ai.training.data import Example


def _share(p: Proportion | None, what: str, unit: str) -> str:
    if p is None:
        return f"{what} not measured yet"
    return f"{what} {p.estimate:.3f} ({p.low:.3f}-{p.high:.3f}, {p.n} {unit})"


def live_line(live: LivePrecision) -> str:
    """``live: auto-accept precision 0.967 (0.828-0.994, 30 audits), leaf accuracy ...``"""
    return (
        "live: "
        + _share(live.auto_accept, "auto-accept precision", "audits")
        + "; "
        + _share(live.leaf_accuracy, "leaf accuracy", "checked")
        + f"; {live.auto_accepted} auto-accepted, {live.audited} audited"
    )


def hold_out_recent(examples: list[Example], n: int) -> tuple[list[Example], list[int]]:
    """Leave the ``n`` most recent person-labelled products the active version did not train on
    out of ``examples``, so the new version can be compared with it on them."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.promotion import holdout_for_training
    from catalog_ai.settings import get_settings

    with unit_of_work() as session:
        held = holdout_for_training(session, n)
    media = MediaStore(get_settings().media_dir)
    files = {str(media.path(p)) for _, photos in held for p in photos}
    kept = [e for e in examples if str(e.file) not in files]
    click.echo(
        f"held out {len(held)} recent products people labelled ({len(examples) - len(kept)} "
        "photos) to compare with the active version"
        if held
        else "no active version (or nothing labelled since it was made): nothing held out"
    )
    return kept, [pid for pid, _ in held]


def promote_trained(out_dir: Path, *, held_out: Sequence[int], margin: float) -> None:
    """Register the bundle at ``out_dir``; activate it only if it beats the active version."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import register_model
    from catalog_ai.services.promotion import promote_if_better

    with dispatching() as dispatcher, unit_of_work() as session:
        row = register_model(session, out_dir, add_categories=True)
        decision = promote_if_better(
            session,
            row.version,
            margin=margin,
            dispatcher=dispatcher,
            held_out=held_out,
            n_recent=len(held_out) or 500,
        )
    if decision.comparison is not None:
        _print_comparison(decision.comparison)
    click.echo(
        f"{'activated' if decision.promoted else 'registered, not active'}: {decision.candidate}"
        f" ({decision.reason})"
    )


def _fig(f: Figure) -> str:
    if f.estimate is None:
        return "-"
    if f.low is None or f.high is None:
        return f"{f.estimate:.3f}"
    return f"{f.estimate:.3f} ({f.low:.3f}-{f.high:.3f})"


def _print_comparison(c: Comparison) -> None:
    click.echo(
        f"on {c.n} products people labelled after both were made ({c.labelled_after}); "
        f"{c.failed} left out (a photo could not be used); 95 % paired bootstrap, "
        f"{c.bootstrap} resamples"
    )
    click.echo(f"  {'':24} {c.a:>28} {c.b:>28}")
    for name, fa, fb in (
        ("leaf accuracy", c.leaf_accuracy_a, c.leaf_accuracy_b),
        ("auto-accept precision", c.auto_accept_precision_a, c.auto_accept_precision_b),
        ("auto-accept coverage", c.coverage_a, c.coverage_b),
    ):
        click.echo(f"  {name:24} {_fig(fa):>28} {_fig(fb):>28}")
    click.echo(f"  leaf accuracy {c.b} - {c.a}: {_fig(c.difference)}")


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--recent",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="the most recent products people labelled (after both versions were made)",
)
@click.option("--bootstrap", type=click.IntRange(10), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def models_compare(a: str, b: str, recent: int, bootstrap: int, seed: int, as_json: bool) -> None:
    """Versions A and B on the same recent products people labelled that neither trained on."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.model_compare import compare_versions

    ensure_db()
    with unit_of_work() as session:
        comparison = compare_versions(
            session, a, b, n_recent=recent, bootstrap=bootstrap, seed=seed
        )
    if as_json:
        click.echo(json.dumps(comparison.to_dict(), indent=2))
    else:
        _print_comparison(comparison)


@click.command("audits")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
def models_audits(limit: int) -> None:
    """Open audits: auto-accepted products drawn for a person to check, oldest first."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.audits import open_audit_count, open_audits

    ensure_db()
    with unit_of_work() as session:
        items, total = open_audits(session, limit=limit), open_audit_count(session)
    click.echo(f"{total} open audits")
    for item in items:
        click.echo(
            f"  product {item.product_id}  {item.path}  ({item.confidence:.3f}, "
            f"{item.model_version})  {item.title}"
        )


@click.command("audit")
@click.argument("product_id", type=int)
@click.option("--reviewer", required=True, help="who checked it (recorded with the verdict)")
@click.option(
    "--category",
    "category_path",
    default=None,
    help="the right category when the auto-accepted one is wrong (default: it is right)",
)
def models_audit(product_id: int, reviewer: str, category_path: str | None) -> None:
    """Record the verdict on an audited product: right as accepted, or --category PATH."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.audits import resolve_audit

    ensure_db()
    with dispatching() as dispatcher, unit_of_work() as session:
        audit = resolve_audit(
            session,
            product_id,
            reviewer=reviewer,
            category_path=category_path,
            dispatcher=dispatcher,
        )
        verdict, path = str(audit.verdict), audit.true_path
    click.echo(f"product {product_id}: {verdict} ({path}), labelled by {reviewer}")


#: The commands of the ``models`` group defined here.
COMMANDS = (models_compare, models_audits, models_audit)

"""The ``models`` command group: register, activate, thresholds, list."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from catalog_ai.cli import model_checks
from catalog_ai.cli._root import cli, dispatching, ensure_db


def catalog_exists() -> bool:
    """Whether there is a catalog database to look versions up in (an embedded one that was
    never created is not made just to find nothing registered)."""
    from sqlalchemy.engine import make_url

    from catalog_ai.settings import get_settings

    url = make_url(get_settings().database_url)
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database
    return bool(database) and database != ":memory:" and Path(database or "").exists()


def adopt(bundle, *, activate: bool, add_categories: bool = False) -> None:
    """Register (and activate) a version derived from a registered one, and say what happened."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.versions import adopt_derived

    parent = bundle.parent["version"]
    row, activated = None, False
    if catalog_exists():  # no catalog yet: nothing is registered, nothing to adopt
        # Activation enqueues after the commit: what no person labelled gets this version's
        # suggestion, and the catalogue is embedded for search.
        with dispatching() as dispatcher, unit_of_work() as session:
            row, activated = adopt_derived(
                session,
                bundle,
                dispatcher=dispatcher,
                activate=activate,
                add_categories=add_categories,
            )
    click.echo(
        f"new model version {bundle.version} (derived from {parent}) in {bundle.path}; "
        f"{parent} is unchanged"
    )
    if row is None:
        click.echo(
            f"{parent} is not registered: register the new one with: catalog-ai models register "
            f"{bundle.path}"
        )
    elif activated:
        click.echo(
            f"active model: {bundle.version}; re-classification enqueued (see catalog-ai status)"
        )
    else:
        click.echo(f"registered; activate with: catalog-ai models activate {bundle.version}")


@cli.group()
def models() -> None:
    """Registered model versions."""


@models.command("register")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("--add-categories", is_flag=True, help="add the model's categories the catalog lacks")
@click.option("--activate", is_flag=True, help="also make it the active model")
def models_register(bundle_dir: Path, add_categories: bool, activate: bool) -> None:
    """Record a model bundle in the catalog."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model, register_model

    ensure_db()
    with dispatching() as dispatcher, unit_of_work() as session:
        row = register_model(session, bundle_dir, add_categories=add_categories)
        if activate:
            activate_model(session, row.version, dispatcher=dispatcher)
        version, active = row.version, row.is_active
    click.echo(
        f"registered {version}"
        + (" (active)" if active else f"; activate with: catalog-ai models activate {version}")
    )


@models.command("activate")
@click.argument("version")
def models_activate(version: str) -> None:
    """Make VERSION the model that classifies new uploads."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import activate_model

    ensure_db()
    # Enqueued after the commit: every product without a human label gets a new suggestion, and
    # the catalogue is embedded for search.
    with dispatching() as dispatcher, unit_of_work() as session:
        activate_model(session, version, dispatcher=dispatcher)
    click.echo(f"active model: {version}; re-classification enqueued (see catalog-ai status)")


@models.command("thresholds")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="model bundle (default: the active model)",
)
@click.option(
    "--decision",
    type=float,
    default=None,
    help="the walk down the tree stops below this probability",
)
@click.option(
    "--auto-accept", type=float, default=None, help="accept without review from this confidence"
)
@click.option("--no-auto-accept", is_flag=True, help="switch auto-accept off")
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="when the model is the active one, make the new version active",
)
def models_thresholds(
    model_dir: Path | None,
    decision: float | None,
    auto_accept: float | None,
    no_auto_accept: bool,
    activate: bool,
) -> None:
    """Change a model's thresholds: the result is a new version derived from it."""

    from catalog_ai.db import unit_of_work
    from catalog_ai.model.bundle import derive_bundle
    from catalog_ai.services.versions import derivation_base

    if decision is None and auto_accept is None and not no_auto_accept:
        raise click.UsageError("give --decision, --auto-accept or --no-auto-accept")
    if auto_accept is not None and no_auto_accept:
        raise click.UsageError("give --auto-accept or --no-auto-accept, not both")
    for name, value in (("--decision", decision), ("--auto-accept", auto_accept)):
        if value is not None and not 0.0 < value <= 1.0:
            raise click.UsageError(f"{name} {value} is not a probability in (0, 1]; give e.g. 0.9")
    ensure_db()
    with unit_of_work() as session:
        parent, memory, revision = derivation_base(session, model_dir)
    changes: dict[str, float] = {}
    if decision is not None:
        changes["decision"] = decision
    if auto_accept is not None:
        changes["auto_accept"] = auto_accept
    if no_auto_accept:
        changes["auto_accept"] = 1.01  # above any probability: never auto-accepts
    # mypy checks a **dict against every field of Thresholds, strings included; these are floats
    thresholds = dataclasses.replace(parent.thresholds, **changes)  # type: ignore[arg-type]
    change = (
        f"thresholds: decision {parent.thresholds.decision} -> {thresholds.decision}, "
        f"auto-accept {parent.thresholds.auto_accept} -> {thresholds.auto_accept}"
    )
    bundle = derive_bundle(
        parent, change=change, thresholds=thresholds, prototypes=memory, memory_revision=revision
    )
    click.echo(f"{bundle.version}: {change}")
    adopt(bundle, activate=activate)


@models.command("list")
def models_list() -> None:
    """Registered model versions, the active one marked, with live precision (from audits and
    reviews, 95 % intervals) and the train hold-out figure, labelled as such."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.live_precision import live_precision
    from catalog_ai.services.models import list_models
    from catalog_ai.services.promotion import latest_promotion

    ensure_db()
    with unit_of_work() as session:
        models = list_models(session)
        names = {m.id: m.version for m in models}
        rows = []
        for m in models:
            promotion = latest_promotion(session, m.id)
            rows.append(
                (
                    m.version,
                    m.is_active,
                    m.backbone,
                    (m.metrics or {}).get("held_out", {}),
                    names.get(m.parent_id) if m.parent_id is not None else None,
                    model_checks.live_line(live_precision(session, m.version)),
                    None if promotion is None or promotion.promoted else promotion.reason,
                )
            )
    # One line per version: the live figures first (what the shop's uploads got), then the
    # train hold-out figure, named as such (photos like the training ones flatter a model).
    for version, active, backbone, held, parent, live, not_promoted in rows:
        acc = held.get("leaf_accuracy")
        click.echo(
            f"{'*' if active else ' '} {version}  {backbone}  {live}"
            + (f"; train hold-out leaf accuracy {acc:.3f}" if acc is not None else "")
            + (f"  (derived from {parent})" if parent else "")
            + (f"  not promoted: {not_promoted}" if not_promoted else "")
        )


# The commands of the models group that measure versions (compare, audits) live there.
for _command in model_checks.COMMANDS:
    models.add_command(_command)

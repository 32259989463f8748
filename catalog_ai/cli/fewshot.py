"""Commands for few-shot categories (prototype memory)."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, data_dir_option, echo_json, ensure_db, model_dir_option


@cli.group()
def fewshot() -> None:
    """Categories recognised from a few example photos, without retraining."""


@fewshot.command("add")
@model_dir_option
@data_dir_option(
    "folder tree of example photos: sub-folders are categories (new paths extend the tree)",
    required=True,
)
@click.option(
    "--catalog/--no-catalog",
    default=True,
    show_default=True,
    help="also import the photos as labelled products, so the next training run learns them",
)
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="when the model is the active one, make the new version active",
)
def fewshot_add(model_dir: Path, data_dir: Path, catalog: bool, activate: bool) -> None:
    """Add or update categories from example photos in seconds.

    The result is a new model version (a new bundle next to the given one, which is left as it
    was), registered when the given one is, and active when it was (unless --no-activate)."""
    import shutil

    from catalog_ai.cli.models import adopt, catalog_exists
    from catalog_ai.db import unit_of_work
    from catalog_ai.db.queries import find_model_version
    from catalog_ai.errors import ImportFolderError
    from catalog_ai.model.bundle import ModelBundle, derive_bundle
    from catalog_ai.services.fewshot import add_examples
    from catalog_ai.services.versions import current_memory
    from catalog_ai.taxonomy import scan_folder

    if not Path(data_dir).is_dir():
        raise ImportFolderError(
            f"{data_dir} is not a folder of example photos (sub-folders are categories)"
        )
    scan = scan_folder(data_dir)
    if scan.skipped:  # never silently (root-folder photos, hidden folders, other file types)
        click.echo(scan.skipped_summary(), err=True)
    parent = ModelBundle.load(model_dir)
    if catalog_exists():
        ensure_db()
        with unit_of_work() as session:
            row = find_model_version(session, parent.version)
            memory, revision = current_memory(session, row, parent)
    else:
        memory, revision = current_memory(None, None, parent)
    # The examples go into a new bundle (not yet registered): the given one is never rewritten.
    derived = derive_bundle(
        parent, change=f"fewshot add {data_dir}", prototypes=memory, memory_revision=revision
    )
    try:
        result = add_examples(derived.path, scan.files)
    except BaseException:
        shutil.rmtree(derived.path, ignore_errors=True)
        raise
    click.echo(
        f"{result.photos} photos in {result.seconds:.1f} s: added {len(result.added)} categories, "
        f"updated {len(result.updated)}"
        + (
            f" ({result.already_added} photos were already examples: not counted again)"
            if result.already_added
            else ""
        )
    )
    for path in result.added:
        click.echo(f"  new: {path}")
    if result.photos == 0:
        shutil.rmtree(derived.path, ignore_errors=True)
        click.echo(f"nothing changed: {parent.version} stays as it is")
    else:
        adopt(derived, activate=activate, add_categories=True)
    if catalog:
        from catalog_ai.cli.catalog import print_label_conflicts
        from catalog_ai.db import LabelSource
        from catalog_ai.jobs.folder_import import import_folder

        ensure_db()
        # A person chose these examples: no model may re-classify or overwrite them.
        summary = import_folder(data_dir, label_source=LabelSource.FEWSHOT)
        click.echo(
            f"catalog: {summary.imported} photos imported as labelled products, "
            f"{summary.duplicates} already there, {summary.relabelled} relabelled (a "
            f"model's label or none before), {summary.categories_added} categories added"
        )
        print_label_conflicts(summary)


@fewshot.command("list")
@model_dir_option
@click.option("--json", "as_json", is_flag=True)
def fewshot_list(model_dir: Path, as_json: bool) -> None:
    """Categories served by prototypes, with their number of examples."""
    from catalog_ai.model.bundle import ModelBundle
    from catalog_ai.model.prototypes import PrototypeMemory

    bundle = ModelBundle.load(model_dir)
    memory = PrototypeMemory.load(bundle.path)
    rows = (
        []
        if memory is None
        else [
            {"path": p, "examples": int(c), "source": s}
            for p, c, s in zip(memory.paths, memory.counts.tolist(), memory.sources, strict=True)
            if s != "train"
        ]
    )
    if as_json:
        echo_json(
            {
                "model": bundle.version,
                "categories": rows,
                "fusion": None if memory is None else memory.fusion.to_dict(),
            }
        )
        return
    for r in rows:
        click.echo(f"{r['examples']:>4}  {r['path']}  ({r['source']})")
    if not rows:
        click.echo("no few-shot categories")

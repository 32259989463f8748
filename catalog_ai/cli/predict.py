"""Commands that run a model bundle on photos: ``predict`` and ``evaluate``."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_ai.cli._root import cli, data_dir_option, echo_json, model_dir_option


@cli.command("predict")
@model_dir_option
@click.argument(
    "images_", metavar="IMAGE...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--top-k", type=int, default=3, show_default=True)
def predict_cmd(model_dir: Path, images_: tuple[Path, ...], as_json: bool, top_k: int) -> None:
    """Classify photos: the confident path, per-depth alternatives, confidence, model version."""
    from catalog_ai.inference.predictor import Predictor

    predictor = Predictor.load(model_dir)
    predictor.decider.top_k = top_k
    results = predictor.predict(images_)
    if as_json:
        echo_json(
            [
                {
                    "image": r.source,
                    **({"error": r.error} if r.decision is None else r.decision.to_dict()),
                }
                for r in results
            ]
        )
        return
    for r in results:
        if r.decision is None:
            click.secho(f"{r.source}: error: {r.error}", fg="red")
            continue
        d = r.decision
        chosen = d.path or "(abstains: not confident even at the top level)"
        note = (
            ""
            if not d.backed_off
            else f"   [backed off from {d.leaf_path} at {d.leaf_confidence:.2f}]"
        )
        click.echo(
            f"{r.source}\n  {chosen}   confidence {d.confidence:.3f}"
            + ("   auto-accept" if d.auto_accept else "")
            + ("   possibly a new category (far from every known one)" if d.open_set else "")
            + note
        )
        for depth, level in enumerate(d.levels, start=1):
            alts = ", ".join(f"{c.path.split(' > ')[-1]} {c.probability:.2f}" for c in level)
            click.echo(f"    depth {depth}: {alts}")
    click.echo(f"model {predictor.version}")


@cli.command("evaluate")
@model_dir_option
@data_dir_option(
    "labelled folder tree (same category paths as the model)",
    required=True,
)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="write PNG plots and metrics.json here",
)
def evaluate_cmd(model_dir: Path, data_dir: Path, as_json: bool, report_dir: Path | None) -> None:
    """Accuracy per depth, top-5, hierarchical F1, calibration and coverage at precision."""
    from catalog_ai.services.evaluate import evaluate_folder

    result, skipped = evaluate_folder(
        model_dir, data_dir, report_dir=report_dir, progress=not as_json
    )
    m = result.metrics
    if as_json:
        echo_json(m)
    else:
        cov = m["coverage_at_precision"]
        click.echo(
            f"{m['n_images']} photos: leaf accuracy {m['leaf_accuracy']:.3f}, top-5 "
            f"{m['top5_accuracy']:.3f}, "
            "depth accuracy "
            f"{', '.join(f'{a:.3f}' for a in m['depth_accuracy'] if a is not None)}\n"
            f"hierarchical F1 {m['hierarchical_f1']:.3f}, ECE {m['ece']:.3f}, coverage at "
            f"precision " + ", ".join(f"{k}: {v:.3f}" for k, v in cov.items() if v is not None)
        )
        if report_dir:
            click.echo(f"report written to {report_dir}")
    for file, reason in skipped:
        click.echo(f"skipped unreadable photo {file}: {reason}", err=True)

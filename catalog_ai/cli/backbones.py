"""The ``backbones`` command group: image backbones offered by installed plugins."""

from __future__ import annotations

import click

from catalog_ai.cli._root import cli, echo_json


@cli.group()
def backbones() -> None:
    """Image backbones offered by installed plugins."""


@backbones.command("list")
@click.option("--json", "as_json", is_flag=True)
def backbones_list(as_json: bool) -> None:
    """Name, plugin distribution, embedding width, input size, offline weights; broken plugins."""
    from catalog_ai.backbones import TIMM_PREFIX, describe, list_backbones, plugin_errors

    rows = [describe(spec) for spec in list_backbones()]
    errors = [
        {"distribution": e.distribution, "entry_point": e.entry_point, "error": e.cause}
        for e in plugin_errors()
    ]
    if as_json:
        echo_json({"backbones": rows, "broken_plugins": errors})
        return
    header = f"{'name':<26}{'distribution':<30}{'dim':>6}{'input':>7}  offline weights"
    click.echo(header)
    for r in rows:
        click.echo(
            f"{r['name']:<26}{r['distribution']:<30}{r['embedding_dim']:>6}{r['input_size']:>7}  "
            f"{'yes' if r['offline_weights'] else 'no'}"
        )
    click.echo(
        f"\nAny timm model also works as '{TIMM_PREFIX}<model_name>' (weights: local file, or the "
        f"hub when online)."
    )
    for e in errors:
        click.secho(
            f"broken plugin {e['entry_point']} ({e['distribution']}): {e['error']}", fg="red"
        )

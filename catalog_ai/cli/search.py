"""Commands for similar-product and text search, and the per-model search index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from catalog_ai.cli._root import cli, echo_json, ensure_db

if TYPE_CHECKING:
    from catalog_ai.index.descriptors import DescriptorKind


def _print_hits(hits, header: str) -> None:
    click.echo(header)
    if not hits:
        click.echo("  (no products found)")
    for rank, h in enumerate(hits, start=1):
        click.echo(
            f"{rank:>3}. product {h.product_id:<8} {h.score:6.3f}  {h.title or '(untitled)'}"
            + (f"   [{h.category_path}]" if h.category_path else "")
        )


@cli.command("search")
@click.option(
    "--model",
    "model",
    default=None,
    help="model bundle directory or registered version (default: the active model)",
)
@click.option(
    "--image",
    "image",
    type=click.Path(path_type=Path),
    default=None,
    help="find products that look like this photo",
)
@click.option(
    "--product",
    "product_id",
    type=int,
    default=None,
    help="find products that look like this catalog product",
)
@click.option("--k", "k", type=int, default=10, show_default=True, help="number of products")
@click.option(
    "--text",
    "text",
    default=None,
    help="only products whose title or category contains all these words (alone: text search)",
)
@click.option("--json", "as_json", is_flag=True)
def search_cmd(
    model: str | None,
    image: Path | None,
    product_id: int | None,
    k: int,
    text: str | None,
    as_json: bool,
) -> None:
    """Products that look like a photo or a product, optionally narrowed by words."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.models import resolve_model_version
    from catalog_ai.services.similar import similar_products
    from catalog_ai.services.text_search import text_search

    if image is not None and product_id is not None:
        raise click.UsageError("give one of --image or --product, not both")
    if image is None and product_id is None and text is None:
        raise click.UsageError("give --image IMG, --product ID, or --text WORDS")
    if k < 1:
        raise click.UsageError("--k must be at least 1")
    ensure_db()
    with unit_of_work() as session:
        if image is None and product_id is None:
            assert text is not None  # checked above: one of the three is given
            hits, version = text_search(session, text, limit=k), None
        else:
            mv = resolve_model_version(session, model)
            version = mv.version
            vector = None
            if image is not None:
                from catalog_ai.inference.predictor import Predictor

                predictor = Predictor.load(mv.bundle_path)
                vector = predictor.forward([predictor.prepare(image)])[0][0]
            hits = similar_products(
                session,
                model_version=mv,
                query_vector=vector,
                product_id=product_id,
                k=k,
                text=text,
                progress=not as_json,
            )
    if as_json:
        echo_json(
            {
                "model_version": version,
                "query": {
                    "image": str(image) if image else None,
                    "product_id": product_id,
                    "text": text,
                    "k": k,
                },
                "hits": [h.to_dict() for h in hits],
            }
        )
        return
    what = (
        f"photo {image}" if image else f"product {product_id}" if product_id is not None else None
    )
    header = (f"products like {what}" if what else "products") + (
        f" matching {text!r}" if text else ""
    )
    _print_hits(hits, header + (f" (model {version})" if version else "") + ":")


@cli.group("index")
def index_group() -> None:
    """This machine's similar-product search index of a model version: a cache of the stored
    embeddings in CATALOG_AI_INDEX_CACHE_DIR, caught up by every search."""


_MODEL = click.option(
    "--model",
    "model",
    default=None,
    help="registered version or bundle directory (default: the active model)",
)
_JSON = click.option("--json", "as_json", is_flag=True)


def _print_status(status, as_json: bool, verb: str = "") -> None:
    if as_json:
        echo_json(status.to_dict())
        return
    if not status.exists:
        click.echo(
            f"model {status.model_version}: no index yet; {status.n_embeddings} embeddings stored"
            + ("" if status.n_embeddings else " (embed the catalog first)")
        )
        return
    state = (
        "up to date"
        if status.up_to_date
        else f"{status.n_pending} new embeddings: run catalog-ai index update"
    )
    dead = f" ({status.n_dead} removed, awaiting compaction)" if status.n_dead else ""
    dead += f", {status.segments} catch-up segments" if status.segments else ""
    click.echo(
        f"model {status.model_version}: {verb}{status.kind} index of {status.n_indexed} photos"
        f"{dead}, {status.descriptor} descriptors "
        f"of {status.dim} values, {status.bytes / 2**20:.1f} MiB; "
        f"{status.n_embeddings} embeddings stored; {state}\n"
        f"  {status.path}"
    )


@index_group.command("build")
@_MODEL
@click.option(
    "--descriptor",
    # the kinds of catalog_ai.index.descriptors.DescriptorKind (tests/cli checks they agree)
    type=click.Choice(["pca_whiten", "center_l2", "l2"]),
    default=None,
    help="descriptor kind (default: the measured best, see benchmarks/search.py)",
)
@click.option("--dim", type=int, default=None, help="descriptor width after PCA")
@click.option("--ann-threshold", type=int, default=None, help="use HNSW above this many photos")
@_JSON
def index_build(
    model: str | None,
    descriptor: DescriptorKind | None,
    dim: int | None,
    ann_threshold: int | None,
    as_json: bool,
) -> None:
    """Build the index from every stored embedding of the model version (replaces the old one)."""
    import dataclasses

    from catalog_ai.db import unit_of_work
    from catalog_ai.index import DEFAULT_DESCRIPTOR, IndexConfig
    from catalog_ai.services.search_index import build_index

    config = DEFAULT_DESCRIPTOR
    if descriptor is not None:
        config = dataclasses.replace(config, kind=descriptor)
    if dim is not None:
        config = dataclasses.replace(config, dim=dim)
    index_config = (
        IndexConfig() if ann_threshold is None else IndexConfig(ann_threshold=ann_threshold)
    )
    ensure_db()
    with unit_of_work() as session:
        status = build_index(
            session, model, descriptor=config, config=index_config, progress=not as_json
        )
    _print_status(status, as_json, "built ")


@index_group.command("update")
@_MODEL
@_JSON
def index_update(model: str | None, as_json: bool) -> None:
    """Catch this machine's index up: add embeddings stored since, drop those deleted."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.search_index import update_index

    ensure_db()
    with unit_of_work() as session:
        status = update_index(session, model, progress=not as_json)
    _print_status(status, as_json, "updated ")


@index_group.command("status")
@_MODEL
@_JSON
def index_status_cmd(model: str | None, as_json: bool) -> None:
    """Size, kind and freshness of the index against the stored embeddings."""
    from catalog_ai.db import unit_of_work
    from catalog_ai.services.search_index import index_status

    ensure_db()
    with unit_of_work() as session:
        status = index_status(session, model)
    _print_status(status, as_json)

"""The ``catalog-ai`` command line.

Commands are thin: they open a unit of work at the edge, call services, and print. Heavy modules
(torch, timm) are imported inside the commands that need them so ``--help`` stays fast. Each
module below is one command group (or one theme of top-level commands) and adds itself to the
one root group when imported.
"""

from catalog_ai.cli import (  # noqa: F401  (importing a module registers its commands)
    api,
    backbones,
    catalog,
    dashboard,
    dataset,
    db,
    export,
    fewshot,
    ingest,
    models,
    predict,
    quickstart,
    search,
    taxonomy,
    training,
    users,
    webhooks,
    worker,
)
from catalog_ai.cli._root import cli, main

__all__ = ["cli", "main"]

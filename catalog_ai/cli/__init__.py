"""The ``catalog-ai`` command line.

Commands are thin: they open a unit of work at the edge, call services, and print. Heavy modules
(torch, timm) are imported inside the commands that need them so ``--help`` stays fast. Each
module below adds its commands to the one root group.
"""

from catalog_ai.cli import catalog as _catalog  # noqa: F401  (registers commands)
from catalog_ai.cli import dashboard as _dashboard  # noqa: F401
from catalog_ai.cli import fewshot as _fewshot  # noqa: F401
from catalog_ai.cli import models as _models  # noqa: F401
from catalog_ai.cli import search as _search  # noqa: F401
from catalog_ai.cli import worker as _worker  # noqa: F401
from catalog_ai.cli._root import cli, main

__all__ = ["cli", "main"]

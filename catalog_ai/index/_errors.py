"""The error of search: index, descriptors and the search services."""

from __future__ import annotations

from catalog_ai.errors import CatalogAIError

__all__ = ["SearchError"]


class SearchError(CatalogAIError):
    """A search cannot run: no index yet, a corrupt index or transform, or an unfit query."""

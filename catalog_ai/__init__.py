"""catalog_ai: sort product photos into a store's hierarchical category tree."""

from catalog_ai.errors import CatalogAIError

__version__ = "0.1.0"
__all__ = ["CatalogAIError", "__version__"]

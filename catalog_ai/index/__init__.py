"""Search over image embeddings: descriptors, the vector index (exact or HNSW) and its storage.

Only numpy and faiss here; the database side is in the services: building from the
``embeddings`` table in :mod:`catalog_ai.services.search_index`, product search in
:mod:`catalog_ai.services.similar`, near duplicates in :mod:`catalog_ai.services.near_duplicates`.
"""

from catalog_ai.index._errors import SearchError
from catalog_ai.index.descriptors import (
    DEFAULT_DESCRIPTOR,
    DescriptorConfig,
    DescriptorKind,
    DescriptorTransform,
    fit_descriptor_transform,
    l2_normalise,
)
from catalog_ai.index.store import (
    IndexManifest,
    StoredIndex,
    index_dir,
    index_lock,
    load_stored_index,
    read_manifest,
    remember_stored_index,
    save_stored_index,
)
from catalog_ai.index.vector_index import (
    ExactIndex,
    HNSWIndex,
    IndexConfig,
    VectorIndex,
    create_index,
    load_index,
)

__all__ = [
    "DEFAULT_DESCRIPTOR",
    "DescriptorConfig",
    "DescriptorKind",
    "DescriptorTransform",
    "ExactIndex",
    "HNSWIndex",
    "IndexConfig",
    "IndexManifest",
    "SearchError",
    "StoredIndex",
    "VectorIndex",
    "create_index",
    "fit_descriptor_transform",
    "index_dir",
    "index_lock",
    "l2_normalise",
    "load_index",
    "load_stored_index",
    "read_manifest",
    "remember_stored_index",
    "save_stored_index",
]

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
from catalog_ai.index.keys import IndexKeys
from catalog_ai.index.segments import Segment
from catalog_ai.index.store import (
    IndexManifest,
    StoredIndex,
    append_segment,
    cached_stored_index,
    forget_stored_index,
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
    "IndexKeys",
    "IndexManifest",
    "SearchError",
    "Segment",
    "StoredIndex",
    "VectorIndex",
    "append_segment",
    "cached_stored_index",
    "create_index",
    "fit_descriptor_transform",
    "forget_stored_index",
    "index_dir",
    "index_lock",
    "l2_normalise",
    "load_index",
    "load_stored_index",
    "read_manifest",
    "remember_stored_index",
    "save_stored_index",
]

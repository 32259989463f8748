"""Which database rows an index holds: the embedding id behind each indexed photo.

The faiss index is keyed by photo (``ProductImage.id``); these keys add the ``embeddings.id``
of each, so that a catch-up can compare the index with the database by two numbers (how many
rows and the sum of their ids, see :mod:`catalog_ai.services.index_rows`) and, when they
differ, find exactly which rows are missing or gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog_ai.index._base import as_ids
from catalog_ai.index._errors import SearchError

__all__ = ["KEYS_FILE", "IndexKeys"]

KEYS_FILE = "keys.npy"


@dataclass
class IndexKeys:
    """``(embedding id, image id)`` of every alive entry, in no particular order."""

    emb_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    image_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.emb_ids)

    @property
    def id_sum(self) -> int:
        return int(self.emb_ids.sum(dtype=np.int64)) if len(self.emb_ids) else 0

    @property
    def max_emb_id(self) -> int:
        return int(self.emb_ids.max()) if len(self.emb_ids) else 0

    def add(self, emb_ids: np.ndarray, image_ids: np.ndarray) -> None:
        """Add rows; a photo already present gets its new embedding id (as the index does)."""
        emb_ids, image_ids = as_ids(emb_ids), as_ids(image_ids)
        if len(emb_ids) != len(image_ids):
            raise SearchError("keys: as many embedding ids as image ids are needed")
        self.remove_images(image_ids)
        self.emb_ids = np.concatenate([self.emb_ids, emb_ids])
        self.image_ids = np.concatenate([self.image_ids, image_ids])

    def remove_images(self, image_ids: np.ndarray) -> None:
        image_ids = as_ids(image_ids)
        if len(image_ids) and len(self.image_ids):
            keep = ~np.isin(self.image_ids, image_ids)
            if not keep.all():
                self.emb_ids, self.image_ids = self.emb_ids[keep], self.image_ids[keep]

    def images_of(self, emb_ids: np.ndarray) -> np.ndarray:
        """The image ids of those of ``emb_ids`` that are here."""
        return self.image_ids[np.isin(self.emb_ids, as_ids(emb_ids))]

    def save(self, directory: Path) -> None:
        pairs = np.stack([self.emb_ids, self.image_ids], axis=1).astype("<i8")
        np.save(Path(directory) / KEYS_FILE, pairs, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> IndexKeys:
        file = Path(directory) / KEYS_FILE
        try:
            pairs = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SearchError(f"{file}: unreadable index keys ({exc})") from None
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise SearchError(f"{file}: index keys of shape {pairs.shape}, expected (n, 2)")
        return cls(pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))

"""Prototype memory: categories recognised from a few example photos, without retraining.

Each category's prototype is the mean of its examples' embeddings after centring (subtracting the
mean training embedding) and L2 normalisation, as in SimpleShot (Wang et al., 2019); a photo's
similarity to a category is the cosine between its normalised embedding and the prototype.

The memory holds a prototype for every category the model knows: the trained head's categories
(from their training photos, used to judge whether a photo is far from everything known) and the
categories served by prototypes alone (added after training, or too rare for the head).

Stored in a model bundle as ``prototypes.safetensors`` (arrays) + ``prototypes.json`` (paths,
sources, fusion parameters); no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog_ai.errors import CatalogAIError
from catalog_ai.model.fusion import FusionParams

__all__ = ["PrototypeError", "PrototypeMemory", "normalise_embeddings"]

ARRAYS = "prototypes.safetensors"
META = "prototypes.json"


class PrototypeError(CatalogAIError):
    """A few-shot category cannot be added (clash, no photos) or the memory is damaged."""


def normalise_embeddings(embeddings: np.ndarray, center: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32) - center
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return out


@dataclass
class PrototypeMemory:
    center: np.ndarray  # (D,) mean training embedding
    paths: list[str] = field(default_factory=list)
    # (P, D) sums of normalised example embeddings; (P,) example counts. Empty by default (the
    # width of ``sums`` is set from ``center`` after construction).
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    sources: list[str] = field(default_factory=list)  # "train" | "fewshot" | "review" per path
    fusion: FusionParams = field(default_factory=FusionParams)
    # sha256 of the example photos added with ``fewshot add``: adding the same photo twice
    # (a re-run after an interrupted command) must not count it twice.
    example_hashes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not len(self.sums):
            self.sums = np.zeros((0, self.center.shape[0]), dtype=np.float32)
        self._index = {p: i for i, p in enumerate(self.paths)}

    @property
    def dim(self) -> int:
        return int(self.center.shape[0])

    def __contains__(self, path: str) -> bool:
        return path in self._index

    def count(self, path: str) -> int:
        i = self._index.get(path)
        return 0 if i is None else int(self.counts[i])

    def prototypes(self) -> np.ndarray:
        """``(P, D)`` unit vectors, one per path."""
        norms = np.maximum(np.linalg.norm(self.sums, axis=1, keepdims=True), 1e-12)
        out: np.ndarray = self.sums / norms
        return out

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(B, P)`` cosine of each photo with each category prototype."""
        out: np.ndarray = normalise_embeddings(embeddings, self.center) @ self.prototypes().T
        return out

    def add(self, path: str, embeddings: np.ndarray, *, source: str) -> None:
        """Add example photos (raw backbone embeddings) to a category, creating it if new."""
        vectors = normalise_embeddings(np.atleast_2d(embeddings), self.center)
        i = self._index.get(path)
        if i is None:
            self.paths.append(path)
            self.sources.append(source)
            self.sums = np.vstack([self.sums, vectors.sum(0, keepdims=True)])
            self.counts = np.append(self.counts, len(vectors))
            self._index[path] = len(self.paths) - 1
        else:
            self.sums[i] += vectors.sum(0)
            self.counts[i] += len(vectors)
            if self.sources[i] != "train":  # a trained category stays one; its prototype sharpens
                self.sources[i] = source

    def copy(self) -> PrototypeMemory:
        return PrototypeMemory(
            self.center.copy(),
            list(self.paths),
            self.sums.copy(),
            self.counts.copy(),
            list(self.sources),
            FusionParams.from_dict(self.fusion.to_dict()),
            set(self.example_hashes),
        )

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write both files via temporary names and rename: a reader sees the old or the new."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        tmp_arrays = directory / (ARRAYS + ".tmp")
        save_file(
            {
                "center": self.center.astype(np.float32),
                "sums": self.sums.astype(np.float32),
                "counts": self.counts.astype(np.int64),
            },
            str(tmp_arrays),
        )
        tmp_meta = directory / (META + ".tmp")
        tmp_meta.write_text(
            json.dumps(
                {
                    "version": 1,
                    "paths": self.paths,
                    "sources": self.sources,
                    "fusion": self.fusion.to_dict(),
                    "example_hashes": sorted(self.example_hashes),
                },
                ensure_ascii=False,
            ),
            "utf-8",
        )
        tmp_arrays.replace(directory / ARRAYS)
        tmp_meta.replace(directory / META)

    @classmethod
    def load(cls, directory: Path) -> PrototypeMemory | None:
        """The memory stored in a bundle directory, or None when it has none."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        if not (directory / ARRAYS).is_file():
            return None
        from safetensors import SafetensorError

        from catalog_ai.model.bundle_schema import validate_prototype_meta

        try:
            arrays = load_file(str(directory / ARRAYS))
            raw = json.loads((directory / META).read_text("utf-8"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise PrototypeError(
                f"{directory}: the prototype memory is damaged ({exc}); re-add the few-shot "
                "categories"
            ) from exc
        meta = validate_prototype_meta(raw, directory / META, PrototypeError)
        missing = sorted({"center", "sums", "counts"} - set(arrays))
        if missing:
            raise PrototypeError(
                f"{directory / ARRAYS} lacks the arrays {missing}; re-add the few-shot categories"
            )
        center, sums, counts = arrays["center"], arrays["sums"], arrays["counts"]
        n = len(meta.paths)
        if center.ndim != 1 or sums.shape != (n, center.shape[0]) or counts.shape != (n,):
            raise PrototypeError(
                f"{directory}: prototype files disagree on the number of categories or the vector "
                f"size (center {center.shape}, sums {sums.shape}, counts {counts.shape}, "
                f"{n} paths); "
                "re-add the few-shot categories"
            )
        if not (np.isfinite(center).all() and np.isfinite(sums).all()) or (counts < 0).any():
            raise PrototypeError(
                f"{directory / ARRAYS} holds NaN, infinite or negative values; "
                "re-add the few-shot categories"
            )
        return cls(
            center,
            list(meta.paths),
            sums,
            counts,
            list(meta.sources),
            FusionParams.from_dict(meta.fusion.model_dump()),
            set(meta.example_hashes),
        )

    @classmethod
    def from_examples(
        cls, embeddings: np.ndarray, paths: Sequence[str], *, source: str
    ) -> PrototypeMemory:
        """A memory built from labelled embeddings (e.g. all training photos after training)."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        memory = cls(center=embeddings.mean(0))
        order: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            order.setdefault(p, []).append(i)
        for p, idx in order.items():
            memory.add(p, embeddings[idx], source=source)
        return memory

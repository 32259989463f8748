"""Training data: labelled photos, decoded once into a cache, augmented from the cache.

On a 2-core CPU, decoding JPEGs every epoch would cost more than the network's forward pass on
small inputs. Each photo is therefore decoded and resized once to a small square uint8 array kept
on disk (``$CATALOG_AI_HOME/cache/decoded/<size>/``, keyed by the photo's content hash, so a
second training run, or a larger catalog, reuses what is there) and memory-mapped while training.
Augmentation (random resized crop, flip, colour jitter) works on those arrays.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from catalog_ai.errors import CatalogAIError, ImageError
from catalog_ai.model.preprocess import center_crop, eval_square_size, square
from catalog_ai.photos import decode as images
from catalog_ai.progress import progress_bar
from catalog_ai.taxonomy import Taxonomy, format_path, scan_folder

__all__ = [
    "AugmentedDataset",
    "DecodedCache",
    "Example",
    "HierarchyDataModule",
    "PlainDataset",
    "TrainingDataError",
    "examples_from_folder",
    "stratified_split",
]


class TrainingDataError(CatalogAIError):
    """The training data cannot train a model (empty, a category without photos, mismatch)."""


@dataclass(frozen=True)
class Example:
    """One labelled photo: where its bytes are and the path text of its category."""

    file: Path
    label: str


def examples_from_folder(root: Path) -> tuple[Taxonomy, list[Example]]:
    """A folder tree (``Fruit/Apple/Granny-Smith/*.jpg``) as a taxonomy and labelled photos."""
    scan = scan_folder(root)
    examples = [Example(file=f, label=format_path(p)) for f, p in scan.files]
    if not examples:
        raise TrainingDataError(f"{root} holds no photos in category sub-folders")
    return scan.taxonomy, examples


def check_examples(taxonomy: Taxonomy, examples: Sequence[Example]) -> None:
    """Every leaf needs photos (through itself) and every label must be in the tree."""
    known = {n.text for n in taxonomy}
    unknown = sorted({e.label for e in examples} - known)
    if unknown:
        raise TrainingDataError(
            f"{len(unknown)} labels are not categories of the tree (first: {unknown[0]!r}); "
            "import the category tree or fix the labels"
        )
    labelled = {e.label for e in examples}
    empty = [leaf.text for leaf in taxonomy.leaves if leaf.text not in labelled]
    if empty:
        raise TrainingDataError(
            f"{len(empty)} categories have no photos (first: {empty[0]!r}); add photos, "
            "remove the empty folder, or add them later as few-shot categories"
        )


def stratified_split(
    examples: Sequence[Example], fraction: float, *, seed: int, min_per_class: int = 4
) -> tuple[list[Example], list[Example]]:
    """Hold out ``fraction`` of each label's photos (at least one where the label has
    ``min_per_class`` or more) for calibration; labels with fewer photos stay whole in training."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Example]] = {}
    for e in examples:
        by_label.setdefault(e.label, []).append(e)
    train: list[Example] = []
    held: list[Example] = []
    for label in sorted(by_label):
        items = by_label[label]
        order = rng.permutation(len(items))
        k = round(fraction * len(items))
        k = max(1, k) if len(items) >= min_per_class else 0
        held.extend(items[i] for i in order[:k])
        train.extend(items[i] for i in order[k:])
    return train, held


class DecodedCache:
    """Photos decoded once to ``(3, size, size)`` uint8 ``.npy`` files, keyed by content hash.

    Each is :func:`square` of the photo: timm's evaluation geometry, so a cache with the bundle's
    ``crop_pct`` holds exactly what serving feeds the network. The folder name carries the
    geometry's version: squares from before timm's rounding (``<size>-<interpolation>``) are
    never mixed in."""

    def __init__(
        self, root: Path, size: int, interpolation: str = "bicubic", *, crop_pct: float = 1.0
    ):
        self.size = size
        self.interpolation = interpolation
        self.crop_pct = crop_pct
        crop = "" if crop_pct == 1.0 else f"-crop{crop_pct:g}"
        self.dir = Path(root) / f"timm-{size}-{interpolation}{crop}"

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def add(
        self, examples: Sequence[Example], *, progress: bool = False, desc: str = "decoding photos"
    ) -> tuple[list[tuple[Example, str]], list[tuple[Example, str]]]:
        """Decode what is not cached yet. Returns ``(ok, failed)``: ``(example, digest)`` pairs
        and ``(example, reason)`` pairs for photos that cannot be read."""
        ok: list[tuple[Example, str]] = []
        failed: list[tuple[Example, str]] = []
        with progress_bar(total=len(examples), desc=desc, unit="photo", enable=progress) as bar:
            for example in examples:
                try:
                    data = images.read_bytes(example.file)
                    digest = hashlib.sha256(data).hexdigest()
                    target = self._path(digest)
                    if not target.is_file():
                        img = images.load_image(
                            data,
                            target_size=eval_square_size(self.size, self.crop_pct),
                            name=str(example.file),
                        )
                        self._write(
                            target,
                            square(img, self.size, self.interpolation, crop_pct=self.crop_pct),
                        )
                    ok.append((example, digest))
                except ImageError as exc:
                    failed.append((example, exc.reason))
                bar.update(1)
        return ok, failed

    def _write(self, target: Path, array: np.ndarray) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array.transpose(2, 0, 1)))  # stored CHW
        os.replace(tmp, target)

    def load(self, digest: str) -> np.ndarray:
        array: np.ndarray = np.load(self._path(digest), mmap_mode="r")
        return array


@dataclass(frozen=True)
class Augment:
    """Random resized crop + horizontal flip + colour jitter, on uint8 CHW arrays."""

    image_size: int
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter: float = 0.25
    hflip: bool = True

    def __call__(self, chw: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        _, h, w = chw.shape
        area = h * w
        for _ in range(10):
            s = rng.uniform(*self.scale)
            r = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(area * s * r)), round(math.sqrt(area * s / r))
            if cw <= w and ch <= h:
                break
        else:
            cw, ch = w, h
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        crop = (
            torch.from_numpy(np.array(chw[:, top : top + ch, left : left + cw]))
            .unsqueeze(0)
            .float()
        )
        out = F.interpolate(
            crop,
            size=(self.image_size, self.image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        if self.hflip and rng.random() < 0.5:
            out = out.flip(2)
        if self.jitter > 0:
            lo, hi = 1 - self.jitter, 1 + self.jitter
            out = out * rng.uniform(lo, hi)  # brightness
            mean = out.mean()
            out = (out - mean) * rng.uniform(lo, hi) + mean  # contrast
            grey = out.mean(0, keepdim=True)
            out = (out - grey) * rng.uniform(lo, hi) + grey  # saturation
        return out.clamp_(0, 255).round_().to(torch.uint8)


class AugmentedDataset(Dataset):
    def __init__(
        self,
        cache: DecodedCache,
        digests: Sequence[str],
        rows: Sequence[int],
        augment: Augment,
        seed: int,
    ):
        self.cache, self.digests, self.rows, self.augment = (
            cache,
            list(digests),
            list(rows),
            augment,
        )
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.digests)

    def __getitem__(self, i: int):
        # One generator per (seed, epoch, item): runs repeat exactly, whatever the worker layout.
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return self.augment(self.cache.load(self.digests[i]), rng), self.rows[i]


class PlainDataset(Dataset):
    """Centre crop of ``image_size`` from each cached square: what serving sees. With
    ``resize=True`` the whole square is resized to ``image_size`` instead (photos cached at the
    larger training size then look as serving sees them, when serving keeps the whole square)."""

    def __init__(
        self,
        cache: DecodedCache,
        digests: Sequence[str],
        rows: Sequence[int],
        image_size: int,
        *,
        resize: bool = False,
    ):
        self.cache, self.digests, self.rows, self.image_size = (
            cache,
            list(digests),
            list(rows),
            image_size,
        )
        self.resize = resize

    def __len__(self) -> int:
        return len(self.digests)

    def __getitem__(self, i: int):
        chw = torch.from_numpy(np.array(self.cache.load(self.digests[i])))
        if self.resize and chw.shape[-1] != self.image_size:
            out = F.interpolate(
                chw[None].float(),
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )[0]
            return out.round_().clamp_(0, 255).to(torch.uint8), self.rows[i]
        return center_crop(chw, self.image_size), self.rows[i]


def balanced_weights(rows: Sequence[int], power: float = 0.5) -> torch.Tensor:
    """Sampling weights ∝ count^-power: ``0.5`` (square-root sampling) lifts rare categories
    without repeating their few photos as often as full class balancing would."""
    rows_t = torch.as_tensor(list(rows))
    counts = torch.bincount(rows_t).double()
    return counts[rows_t].pow(-power)


class HierarchyDataModule(L.LightningDataModule):
    """Serves augmented training batches and centre-cropped held-out batches (uint8 + row).

    Normalisation happens in the LightningModule (on the device), so batches stay uint8 (4x less
    memory traffic between data loading and the network).
    """

    def __init__(
        self,
        *,
        taxonomy: Taxonomy,
        train: Sequence[Example],
        held_out: Sequence[Example],
        cache_root: Path,
        image_size: int,
        eval_crop_pct: float = 1.0,
        train_as_served: bool = False,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        balance_power: float = 0.5,
        augment: Augment | None = None,
        interpolation: str = "bicubic",
        progress: bool = True,
        on_skipped: Callable[[list[tuple[Example, str]]], None] | None = None,
    ):
        super().__init__()
        self.taxonomy = taxonomy
        self.train_examples = list(train)
        self.held_examples = list(held_out)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.balance_power = balance_power
        self.augment = augment or Augment(image_size)
        self.progress = progress
        self.on_skipped = on_skipped
        self.eval_cache = DecodedCache(
            cache_root, image_size, interpolation, crop_pct=eval_crop_pct
        )
        # ``train_as_served`` (the linear probe): training photos exactly as serving sees them,
        # from the evaluation cache. Otherwise a larger square for random crops.
        self.train_cache = (
            self.eval_cache
            if train_as_served
            else DecodedCache(cache_root, round(image_size * 1.15), interpolation)
        )
        self.skipped: list[tuple[Example, str]] = []
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        rows = self.taxonomy.node_index
        ok_train, bad_train = self.train_cache.add(
            self.train_examples, progress=self.progress, desc="decoding training photos"
        )
        ok_held, bad_held = self.eval_cache.add(
            self.held_examples, progress=self.progress, desc="decoding held-out photos"
        )
        self.skipped = bad_train + bad_held
        if self.skipped and self.on_skipped:
            self.on_skipped(self.skipped)
        if not ok_train:
            raise TrainingDataError("no readable training photos")
        self.train_set = AugmentedDataset(
            self.train_cache,
            [d for _, d in ok_train],
            [rows[e.label] for e, _ in ok_train],
            self.augment,
            self.seed,
        )
        self.train_rows = self.train_set.rows
        self.held_set = PlainDataset(
            self.eval_cache,
            [d for _, d in ok_held],
            [rows[e.label] for e, _ in ok_held],
            self.image_size,
        )
        self.held_files = [e.file for e, _ in ok_held]
        self._ready = True

    def train_dataloader(self) -> DataLoader:
        # Rebuilt every epoch (Trainer(reload_dataloaders_every_n_epochs=1)): new crops, new draw.
        self.train_set.epoch = self.trainer.current_epoch if self.trainer is not None else 0
        weights = balanced_weights(self.train_set.rows, self.balance_power)
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.train_set.epoch)
        sampler = WeightedRandomSampler(
            weights.tolist(), num_samples=len(weights), replacement=True, generator=generator
        )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.held_set, batch_size=max(self.batch_size, 64), num_workers=self.num_workers
        )

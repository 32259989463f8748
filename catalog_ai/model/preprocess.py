"""Photo → network input, shared by training, serving and evaluation so they never drift apart.

The geometry is timm's own evaluation transform (``timm.data.create_transform``, built from the
backbone's data config): the shorter side resized to ``floor(image_size / crop_pct)``, then the
centre ``image_size`` square kept, both with torchvision's rounding. :func:`square` runs exactly
those steps and stops before the tensor conversion, so photos stay ``uint8`` (cached by training,
batched by serving) and :func:`normalise` does timm's ``ToTensor`` + ``Normalize`` on a whole
batch on the device. ``tests/model/test_preprocess_parity.py`` checks the result against timm's
transform for every registered backbone.

Training augmentation is not timm's: it takes random crops from a larger square decoded once
into a cache (``training/data.py``), because decoding every photo every epoch costs more than
the network's forward pass on a 2-core CPU.

Test-time augmentation (a bundle's ``test_time_augmentation``, :func:`tta_views`) runs the network
on several views of each photo and averages their embeddings (the head is linear, so the logits
are averaged too): ``flip`` adds the mirrored photo; ``crops`` is the classic five-crop (centre and
corners of a square ``1 / MULTI_CROP_PCT`` larger, i.e. the photo seen closer); ``flip_crops`` the
ten-crop. Each view costs one more forward pass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from catalog_ai.errors import ImageError
from catalog_ai.photos.decode import check_aspect_ratio

if TYPE_CHECKING:
    from collections.abc import Callable

    from catalog_ai.backbones.spec import Preprocessing

__all__ = [
    "INTERPOLATION",
    "MULTI_CROP_PCT",
    "TTA_MODES",
    "center_crop",
    "data_config",
    "eval_square_size",
    "normalise",
    "square",
    "tta_square_size",
    "tta_views",
]

INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def eval_square_size(image_size: int, crop_pct: float) -> int:
    """Side the shorter side is resized to before the centre crop of ``image_size`` (timm's
    ``scale_size``: floored, as ``timm.data.transforms_imagenet_eval`` does)."""
    return max(image_size, math.floor(image_size / crop_pct))


def data_config(
    pre: Preprocessing, *, image_size: int | None = None, crop_pct: float | None = None
) -> dict[str, Any]:
    """A backbone's preprocessing as timm's data config (``timm.data.resolve_data_config``),
    optionally at another input size or crop share (a bundle's ``image_size`` and
    ``eval_crop_pct``)."""
    size = image_size or pre.input_size
    return {
        "input_size": (3, size, size),
        "interpolation": pre.interpolation,
        "mean": tuple(pre.mean),
        "std": tuple(pre.std),
        "crop_pct": pre.crop_pct if crop_pct is None else crop_pct,
        "crop_mode": "center",
    }


@lru_cache(maxsize=32)
def _geometry(size: int, crop_pct: float, interpolation: str) -> Callable[[Image.Image], Any]:
    """timm's evaluation transform without normalisation: a ``(3, size, size)`` uint8 tensor."""
    # Imported on first use: importing timm costs ~200 MB and seconds, and a worker serving a
    # frozen network needs nothing else from it.
    from timm.data import create_transform

    return create_transform(  # type: ignore[no-any-return]  # timm is untyped
        input_size=size,
        is_training=False,
        interpolation=interpolation,
        crop_pct=crop_pct,
        crop_mode="center",
        normalize=False,
    )


def square(
    img: Image.Image,
    size: int,
    interpolation: str = "bicubic",
    *,
    crop_pct: float = 1.0,
    source: str | None = None,
) -> np.ndarray:
    """timm's evaluation geometry: shorter side to ``floor(size / crop_pct)``, centre
    ``size × size`` kept; a ``(size, size, 3)`` uint8 array.

    The resized image is ``aspect ratio x size²`` pixels, so the ratio is bounded first
    (``CATALOG_AI_MAX_ASPECT_RATIO``): a 400000x1 strip would otherwise be scaled to 26
    gigapixels. The loader refuses such photos from the header already; this guards callers
    that hand over an image of their own. Any failure here is an :class:`ImageError` of this
    photo (``source`` names it).
    """
    w, h = img.size
    check_aspect_ratio(w, h, source=source)
    if interpolation not in INTERPOLATION:
        raise ValueError(f"interpolation={interpolation!r} must be one of {list(INTERPOLATION)}")
    try:
        chw = _geometry(size, float(crop_pct), interpolation)(img.convert("RGB"))
        return np.asarray(chw.permute(1, 2, 0), dtype=np.uint8)
    except MemoryError as exc:
        raise ImageError(
            f"not enough memory to resize the {w}x{h} image to {size}x{size}; resize it before "
            "uploading",
            source=source,
        ) from exc


def normalise(
    batch_uint8: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 → float32 normalised, in channels-last memory (faster convs on CPU).

    The same arithmetic as timm's ``ToTensor`` + ``Normalize`` (divide by 255, then subtract the
    mean and divide by the std), done once per batch on the device instead of once per photo."""
    x = batch_uint8.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).contiguous(memory_format=torch.channels_last)


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size × size`` crop of a ``(B, C, H, W)`` batch, with torchvision's
    ``CenterCrop`` offsets (rounded half to even); a no-op on ``size × size`` input."""
    h, w = batch.shape[-2:]
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return batch[..., top : top + size, left : left + size]


TTA_MODES = ("none", "flip", "crops", "flip_crops")
MULTI_CROP_PCT = 0.875  # the five crops' share of the larger square (timm's default crop_pct)


def tta_square_size(image_size: int, mode: str) -> int:
    """Side of the square a photo is prepared as: the network input itself, or for multi-crop
    the larger square the five crops are cut from."""
    if mode not in TTA_MODES:
        raise ValueError(f"test_time_augmentation={mode!r} must be one of {list(TTA_MODES)}")
    return math.floor(image_size / MULTI_CROP_PCT) if "crops" in mode else image_size


def tta_views(batch: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``(B, C, H, W)`` prepared squares → ``(V * B, C, size, size)``: the ``V`` views of
    ``mode``, view-major (view ``v`` of photo ``b`` is row ``v * B + b``)."""
    if "crops" in mode:
        h, w = batch.shape[-2:]
        views = [center_crop(batch, size)] + [
            batch[..., top : top + size, left : left + size]
            for top in (0, h - size)
            for left in (0, w - size)
        ]
    else:
        views = [center_crop(batch, size)]
    if "flip" in mode:
        views += [v.flip(-1) for v in views]
    return torch.cat(views) if len(views) > 1 else views[0]

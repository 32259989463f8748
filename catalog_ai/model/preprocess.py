"""Photo → network input, shared by training, serving and evaluation so they never drift apart.

A photo is decoded once (JPEG draft decoding when it is large), its shorter side resized to
``size`` and the centre square kept: ``square(img, size)``. The network then sees either a centre
crop of that square (serving, evaluation) or a random crop of it (training augmentation).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from catalog_ai.errors import ImageError
from catalog_ai.photos.decode import check_aspect_ratio

__all__ = ["INTERPOLATION", "center_crop", "eval_square_size", "normalise", "square"]

INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def eval_square_size(image_size: int, crop_pct: float) -> int:
    """Side of the square a photo is resized to before the centre crop of ``image_size``."""
    return max(image_size, int(round(image_size / crop_pct)))


def square(
    img: Image.Image, size: int, interpolation: str = "bicubic", *, source: str | None = None
) -> np.ndarray:
    """Shorter side to ``size``, centre square kept: ``(size, size, 3)`` uint8 array.

    The resized image is ``aspect ratio x size²`` pixels, so the ratio is bounded first
    (``CATALOG_AI_MAX_ASPECT_RATIO``): a 400000x1 strip would otherwise be scaled to 26
    gigapixels. The loader refuses such photos from the header already; this guards callers
    that hand over an image of their own. Any failure here is an :class:`ImageError` of this
    photo (``source`` names it).
    """
    w, h = img.size
    check_aspect_ratio(w, h, source=source)
    try:
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), INTERPOLATION[interpolation], reducing_gap=3.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        if (new_w, new_h) != (size, size):
            img = img.crop((left, top, left + size, top + size))
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except MemoryError as exc:
        raise ImageError(
            f"not enough memory to resize the {w}x{h} image to {size}x{size}; resize it before "
            "uploading",
            source=source,
        ) from exc


def normalise(
    batch_uint8: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 → float32 normalised, in channels-last memory (faster convs on CPU)."""
    x = batch_uint8.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.sub_(m).div_(s).contiguous(memory_format=torch.channels_last)


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size × size`` crop of a ``(B, C, H, W)`` batch."""
    h, w = batch.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return batch[..., top : top + size, left : left + size]

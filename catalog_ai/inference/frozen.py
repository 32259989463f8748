"""The serving backbone as a frozen TorchScript graph (CPU only).

Measured on the 2-core VM (``benchmarks/forward.py --frozen --compile``): EfficientNet-Lite2 at
260 px forwards at about 1.45-1.65× the eager speed once traced and frozen. Freezing folds every
BatchNorm into its convolution and removes the per-layer Python of timm's TF-style "same" padding,
which costs more than the arithmetic at batch 8 on two cores. ``torch.compile`` was no faster (35
against 38 photos/s), needs a C++ compiler on every worker and compiles for tens of seconds per
process on a cold cache.

Tracing records one input size, which serving never changes (``image_size``); the batch size stays
free. A backbone whose forward branches on values would be recorded along one branch, so the frozen
graph is checked against the eager network on a second, different batch before it is used, and
anything that fails (including a torch without ``torch.jit``, which it deprecates) keeps the
eager network: slower, never different.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

__all__ = ["freeze_backbone"]

log = logging.getLogger(__name__)


def freeze_backbone(
    backbone: nn.Module, example: torch.Tensor, *, atol: float = 1e-3
) -> nn.Module | None:
    """A frozen trace of ``backbone`` (in eval mode) for inputs shaped like ``example``, or
    ``None`` when it cannot be traced or does not reproduce the eager outputs within ``atol``
    (relative to the outputs' scale)."""
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # torch.jit is deprecated in favour of torch.compile (see the module docstring).
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            example = example.clone()
            frozen: nn.Module = torch.jit.freeze(
                torch.jit.trace(backbone.eval(), example, check_trace=False)
            )
            # A second batch of another size and other values (mirrored, negated: normalised
            # photos are centred on 0): catches batch sizes and the commonest value branches
            # baked into the graph.
            probe = -0.5 * torch.flip(example[: max(1, len(example) // 2)], dims=[-1])
            expected, got = backbone(probe), frozen(probe)
            scale = float(expected.abs().max()) or 1.0
            error = float((expected - got).abs().max()) / scale
    except Exception as exc:
        log.info("backbone not frozen, serving it eagerly: %s", exc)
        return None
    if error > atol:
        log.warning(
            "frozen backbone differs from the eager one (relative error %.2g); serving it eagerly",
            error,
        )
        return None
    return frozen

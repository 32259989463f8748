"""Reading weight files safely and putting them into a network.

Weights are never unpickled: ``.safetensors`` files are read with safetensors, ``.pth``/``.pt``/
``.bin`` files with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers. torch is imported inside the functions so that listing backbones stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_ai.backbones._errors import cause_of
from catalog_ai.errors import BackboneError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "WEIGHT_FILE_SUFFIXES",
    "load_state_dict_in_order",
    "load_weights_file",
    "read_state_dict",
]

log = logging.getLogger(__name__)

WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors stored in a weights file, by name.

    A Lightning-style checkpoint (``{"state_dict": {...}}``) is unwrapped and a ``module.`` prefix
    left by ``DataParallel`` is dropped, so a training checkpoint can be used as it is.
    """
    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise BackboneError(
            f"weights file {str(file)!r} does not exist; give the path of a local file"
        )
    suffix = file.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw: Any = load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise BackboneError(f"{file}: not a readable safetensors file ({exc})") from None
    elif suffix in _TORCH_SUFFIXES:
        try:
            raw = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise BackboneError(
                f"{file}: refused to load: it is not a plain dictionary of tensors "
                f"({cause_of(exc)}). catalog_ai never unpickles Python "
                "objects from weight files; save the weights with torch.save(model.state_dict()) "
                "or as .safetensors"
            ) from None
    else:
        raise BackboneError(
            f"{file}: unsupported weights file type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(WEIGHT_FILE_SUFFIXES)}"
        )
    return _as_state_dict(raw, file)


def load_weights_file(model: nn.Module, path: str | Path) -> None:
    """Load a weights file into ``model`` by parameter name.

    Every parameter and buffer of the network must be in the file with the same shape; extra
    tensors in the file (typically an ImageNet classifier the backbone does not have) are ignored.
    """
    file = Path(path).expanduser()
    source = read_state_dict(file)
    target = model.state_dict()
    missing = [k for k in target if k not in source]
    if missing:
        raise BackboneError(
            f"{file}: does not fit this network: {len(missing)} of its {len(target)} tensors are "
            f"missing from the file (first: {', '.join(missing[:3])}); the file holds "
            f"{len(source)} tensors (first: {', '.join(list(source)[:3]) or 'none'}). "
            "Pass weights saved from the same backbone"
        )
    wrong = [
        (k, tuple(source[k].shape), tuple(v.shape))
        for k, v in target.items()
        if tuple(source[k].shape) != tuple(v.shape)
    ]
    if wrong:
        key, got, want = wrong[0]
        raise BackboneError(
            f"{file}: does not fit this network: {len(wrong)} tensors have the wrong shape "
            f"(first: {key} is {got} in the file, {want} in the network). "
            "Pass weights saved from the same backbone"
        )
    extra = [k for k in source if k not in target]
    if extra:
        log.debug(
            "%s: ignored %d tensors the network does not have: %s", file, len(extra), extra[:5]
        )
    model.load_state_dict({k: source[k] for k in target}, strict=True)


def load_state_dict_in_order(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    skip: Iterable[str] = (),
) -> None:
    """Load a state dict whose key *names* differ from ``model``'s by matching keys in order.

    Useful when a checkpoint comes from another implementation of the same architecture (e.g. the
    original EfficientNet-Lite code vs. timm): both list their tensors in the same order, only the
    names differ. Keys starting with one of the ``skip`` prefixes are dropped on both sides first
    (typically the classifier). The counts must then agree and every pair must have the same
    shape; otherwise :class:`BackboneError` names the first mismatching pair, since a silent
    partial load would give a network that looks fine and computes nonsense.
    """
    prefixes = tuple(skip)
    source = [(k, v) for k, v in state_dict.items() if not k.startswith(prefixes)]
    target = [(k, v) for k, v in model.state_dict().items() if not k.startswith(prefixes)]
    # Pairs first, counts after: a shape mismatch names the place where the two lists diverge.
    for (src_key, src), (dst_key, dst) in zip(source, target, strict=False):
        if tuple(src.shape) != tuple(dst.shape):
            raise BackboneError(
                f"weights do not fit the network in order: source {src_key!r} has shape "
                f"{tuple(src.shape)} but network {dst_key!r} has shape {tuple(dst.shape)}"
            )
    if len(source) != len(target):
        raise BackboneError(
            f"weights do not fit the network in order: the source has {len(source)} tensors and "
            f"the network {len(target)} after skipping keys starting with {list(prefixes)}; "
            f"first unpaired: {_first_unpaired(source, target)}"
        )
    # strict=False only because skipped network keys (if any) keep their current values.
    model.load_state_dict(
        {dst_key: src for (_, src), (dst_key, _) in zip(source, target, strict=True)}, strict=False
    )


def _first_unpaired(source: list, target: list) -> str:
    n = min(len(source), len(target))
    if len(source) > n:
        key, value = source[n]
        return f"source {key!r} {tuple(value.shape)}"
    key, value = target[n]
    return f"network {key!r} {tuple(value.shape)}"


def _as_state_dict(raw: Any, file: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise BackboneError(
            f"{file}: expected a dictionary of tensors, found {type(raw).__name__}"
            + (" (empty)" if isinstance(raw, Mapping) else "")
        )
    not_tensors = [str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise BackboneError(
            f"{file}: expected a dictionary of tensors, but {len(not_tensors)} entries are not "
            f"tensors (first: {not_tensors[0]!r})"
        )
    out = {str(k): v for k, v in raw.items()}
    if all(k.startswith("module.") for k in out):
        out = {k.removeprefix("module."): v for k, v in out.items()}
    return out

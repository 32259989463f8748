"""The backbone plugin contract (version 1).

A backbone plugin is a distribution with an entry point in the group ``catalog_ai.backbones``
whose object is a callable taking no arguments and returning an iterable of :class:`BackboneSpec`.

A backbone's network maps a batch of preprocessed photos ``(B, 3, H, W)`` (float32, normalised
with ``preprocessing.mean``/``std``) to pooled embeddings ``(B, embedding_dim)``. It has no
classifier: catalog_ai puts its own hierarchical head on top.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is heavy; the contract itself does not need it at import time
    from torch import nn

__all__ = [
    "CONTRACT_VERSION",
    "BackboneSpec",
    "Interpolation",
    "Preprocessing",
    "WeightsSource",
]

CONTRACT_VERSION = 1

Interpolation = Literal["nearest", "bilinear", "bicubic"]
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the network's input tensor.

    ``input_size`` is the square side the network was pretrained at; training and serving may
    use another size (``--image-size``). ``crop_pct`` is the fraction of the resized photo kept by
    the centre crop at evaluation time (1.0 keeps the whole photo).
    """

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bilinear"
    crop_pct: float = 1.0

    def problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.input_size, int) or not 16 <= self.input_size <= 2048:
            out.append(f"preprocessing.input_size={self.input_size!r} must be an int in 16..2048")
        for label, values in (("mean", self.mean), ("std", self.std)):
            if len(tuple(values)) != 3:
                out.append(f"preprocessing.{label}={values!r} must have 3 values (R, G, B)")
        if len(tuple(self.std)) == 3 and any(s <= 0 for s in self.std):
            out.append(f"preprocessing.std={self.std!r} must be positive")
        if self.interpolation not in _INTERPOLATIONS:
            out.append(
                f"preprocessing.interpolation={self.interpolation!r} "
                f"must be one of {_INTERPOLATIONS}"
            )
        if not 0.0 < self.crop_pct <= 1.0:
            out.append(f"preprocessing.crop_pct={self.crop_pct!r} must be in (0, 1]")
        return out

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=data.get("interpolation", "bilinear"),
            crop_pct=float(data.get("crop_pct", 1.0)),
        )


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's pretrained weights come from.

    - ``none``: random initialisation only (tests, custom networks trained from scratch).
    - ``file``: a local file (``location`` is its path).
    - ``package``: a file shipped inside an installed Python package; ``location`` is
      ``"module:relative/path"`` (resolved without importing the module).
    - ``hub``: downloaded from a model hub by timm; ``location`` is the hub id. Needs network.
    """

    kind: Literal["none", "file", "package", "hub"]
    location: str = ""

    @property
    def offline(self) -> bool:
        """True when the weights can be had without a network connection right now."""
        if self.kind == "none":
            return False
        if self.kind == "hub":
            return False
        return self.path() is not None

    def path(self) -> Path | None:
        """The local file holding the weights, or None when there is none on this machine."""
        if self.kind == "file":
            p = Path(self.location).expanduser()
            return p if p.is_file() else None
        if self.kind == "package":
            module, _, rel = self.location.partition(":")
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                return None
            for root in spec.submodule_search_locations:
                candidate = Path(root) / rel
                if candidate.is_file():
                    return candidate
            return None
        return None

    def describe(self) -> str:
        return self.kind if self.kind == "none" else f"{self.kind}:{self.location}"


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone a plugin offers.

    ``build(pretrained)`` returns a fresh ``torch.nn.Module``; with ``pretrained=True`` it loads
    the weights described by ``weights`` and raises :class:`catalog_ai.errors.BackboneError`
    (naming the fix) when they are not available. With ``pretrained=False`` it must not touch the
    network or the disk: serving loads fine-tuned weights from a model bundle instead.
    """

    name: str
    build: Callable[[bool], nn.Module]
    embedding_dim: int
    preprocessing: Preprocessing
    weights: WeightsSource = field(default_factory=lambda: WeightsSource("none"))
    summary: str = ""
    contract_version: int = CONTRACT_VERSION
    # Filled in by the registry from the entry point that provided the spec.
    distribution: str = ""

    def problems(self) -> list[str]:
        """Everything wrong with this spec, as sentences; empty when it is valid."""
        out: list[str] = []
        if not isinstance(self.name, str) or not self.name.strip():
            out.append(f"name={self.name!r} must be a non-empty string")
        elif any(ch.isspace() for ch in self.name) or ">" in self.name:
            out.append(f"name={self.name!r} must not contain spaces or '>'")
        if self.contract_version != CONTRACT_VERSION:
            out.append(
                f"contract_version={self.contract_version!r} is not supported "
                f"(this catalog_ai speaks version {CONTRACT_VERSION})"
            )
        if not callable(self.build):
            out.append("build must be callable as build(pretrained: bool) -> torch.nn.Module")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim <= 0:
            out.append(f"embedding_dim={self.embedding_dim!r} must be a positive int")
        if not isinstance(self.preprocessing, Preprocessing):
            out.append("preprocessing must be a catalog_ai.backbones.Preprocessing")
        else:
            out.extend(self.preprocessing.problems())
        if not isinstance(self.weights, WeightsSource):
            out.append("weights must be a catalog_ai.backbones.WeightsSource")
        return out

"""Contract checks for backbone plugins, for the project's tests and for plugin authors' own.

    from catalog_ai.backbones import get_backbone
    from catalog_ai.backbones.testing import check_backbone

    def test_my_backbone():
        check_backbone(get_backbone("my_backbone"))

A failed check raises :class:`BackboneCheckFailed` (an ``AssertionError``, so pytest reports it as
a test failure) whose message says which rule of the contract is broken.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_ai.backbones.spec import BackboneSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["BackboneCheck", "BackboneCheckFailed", "check_backbone"]

SMALL_IMAGE_SIZE = 64
BATCH_SIZE = 2


class BackboneCheckFailed(AssertionError):
    """A backbone breaks the plugin contract."""


@dataclass(frozen=True)
class BackboneCheck:
    """What :func:`check_backbone` measured (all checks passed)."""

    name: str
    image_size: int
    build_seconds: float
    parameters: int
    pretrained: bool


def check_backbone(
    spec: BackboneSpec,
    *,
    pretrained: bool = False,
    image_size: int | None = None,
    max_build_seconds: float = 5.0,
) -> BackboneCheck:
    """Check that ``spec`` keeps the backbone contract; raise :class:`BackboneCheckFailed` if not.

    - the spec is valid (``spec.problems()`` is empty);
    - ``build(False)`` returns a ``torch.nn.Module``, opens no network connection, does not read
      the weights file nor call a weights loader, and takes under ``max_build_seconds``;
    - in eval mode a batch of 2 images gives a float32 ``(2, embedding_dim)`` tensor of finite
      values, the same twice in a row, and different for the two images;
    - in train mode a backward pass reaches the input and the parameters.

    Images are ``image_size`` pixels square; by default 64 px (fast), or the spec's
    ``input_size`` when the network cannot take 64 px. With ``pretrained=True`` the forward and
    backward checks run on ``build(True)`` (the weights must be on this machine) instead of on a
    randomly initialised network.
    """
    import torch

    _require(isinstance(spec, BackboneSpec), f"expected a BackboneSpec, got {type(spec).__name__}")
    problems = spec.problems()
    _require(not problems, f"spec {spec.name!r} is invalid: {'; '.join(problems)}")

    with _Watch(spec) as watch:
        first = spec.build(False)
    _require(
        not watch.findings,
        f"{spec.name}: build(False) must not touch the network or the weights, but it "
        + "; ".join(watch.findings),
    )
    _require(
        isinstance(first, torch.nn.Module),
        f"{spec.name}: build(False) returned {type(first).__name__}, not a torch.nn.Module",
    )
    # Timed on a second build, so that first-time imports (torch, timm) do not count.
    start = time.perf_counter()
    model = spec.build(False)
    build_seconds = time.perf_counter() - start
    _require(
        build_seconds <= max_build_seconds,
        f"{spec.name}: build(False) took {build_seconds:.1f} s (limit {max_build_seconds} s); "
        "it must only create the architecture",
    )

    if pretrained:
        model = spec.build(True)
        _require(
            isinstance(model, torch.nn.Module),
            f"{spec.name}: build(True) returned {type(model).__name__}, not a torch.nn.Module",
        )
    size = _check_eval(spec, model, image_size)
    _check_train(spec, model, size)
    return BackboneCheck(
        name=spec.name,
        image_size=size,
        build_seconds=build_seconds,
        parameters=sum(p.numel() for p in model.parameters()),
        pretrained=pretrained,
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BackboneCheckFailed(message)


def _images(size: int) -> torch.Tensor:
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH_SIZE, 3, size, size, generator=generator)


def _check_eval(spec: BackboneSpec, model: nn.Module, image_size: int | None) -> int:
    """Eval-mode checks; returns the image size that was used."""
    import torch

    size = image_size or SMALL_IMAGE_SIZE
    model.eval()
    try:
        with torch.no_grad():
            first = model(_images(size))
    except Exception as exc:
        native = spec.preprocessing.input_size
        if image_size is not None or native == size:
            raise BackboneCheckFailed(
                f"{spec.name}: forward pass at {size} px failed: {exc!r}"
            ) from exc
        size = native  # some networks (e.g. ViTs) only take their native size
        try:
            with torch.no_grad():
                first = model(_images(size))
        except Exception as exc2:
            raise BackboneCheckFailed(
                f"{spec.name}: forward pass failed at {SMALL_IMAGE_SIZE} px and at its input_size "
                f"{size} px: {exc2!r}"
            ) from exc2
    with torch.no_grad():
        second = model(_images(size))
    _check_output(spec, first, f"eval mode, {size} px")
    _require(
        torch.allclose(first, second, rtol=1e-5, atol=1e-6),
        f"{spec.name}: in eval mode the same batch gave different embeddings "
        f"(max difference {(first - second).abs().max().item():.3g}); eval must be deterministic",
    )
    _require(
        not torch.allclose(first[0], first[1]),
        f"{spec.name}: two different images gave the same embedding; the output ignores the input",
    )
    return size


def _check_train(spec: BackboneSpec, model: nn.Module, size: int) -> None:
    model.train()
    images = _images(size).requires_grad_(True)
    out = model(images)
    _check_output(spec, out, f"train mode, {size} px")
    no_gradient = (
        f"{spec.name}: in train mode no finite, non-zero gradient reached the input images; "
        "the embedding must be differentiable (no .detach(), no torch.no_grad() inside forward)"
    )
    _require(out.requires_grad, no_gradient)
    out.square().mean().backward()
    grad = images.grad
    _require(
        grad is not None and bool(grad.isfinite().all()) and bool(grad.abs().sum() > 0),
        no_gradient,
    )
    trained = [p for p in model.parameters() if p.requires_grad]
    with_grad = [p for p in trained if p.grad is not None and bool(p.grad.abs().sum() > 0)]
    _require(
        bool(with_grad),
        f"{spec.name}: none of its {len(trained)} trainable parameters received a gradient; "
        "fine-tuning would change nothing",
    )
    model.zero_grad(set_to_none=True)
    model.eval()


def _check_output(spec: BackboneSpec, out: Any, where: str) -> None:
    import torch

    _require(
        isinstance(out, torch.Tensor),
        f"{spec.name} ({where}): forward returned {type(out).__name__}; it must return one tensor",
    )
    want = (BATCH_SIZE, spec.embedding_dim)
    _require(
        tuple(out.shape) == want,
        f"{spec.name} ({where}): output shape {tuple(out.shape)}, expected {want} "
        "(batch, embedding_dim): pooled embeddings, no classifier",
    )
    _require(
        out.dtype == torch.float32,
        f"{spec.name} ({where}): output dtype {out.dtype}, expected float32",
    )
    _require(
        bool(out.isfinite().all()), f"{spec.name} ({where}): output has NaN or infinite values"
    )


# --- watching build(False) ----------------------------------------------------------------------

_active: _Watch | None = None
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    watch = _active
    if watch is None:
        return
    if event == "socket.connect":
        watch.findings.append(f"connected to {args[1]!r}")
    elif (
        event == "open"
        and args
        and isinstance(args[0], (str, bytes, os.PathLike))
        and watch.weights_file is not None
        and _same_file(args[0], watch.weights_file)
    ):
        watch.findings.append(f"opened its weights file {watch.weights_file}")


def _same_file(a: Any, b: Path) -> bool:
    try:
        return os.path.realpath(os.fsdecode(a)) == str(b)
    except (TypeError, ValueError):
        return False


@dataclass
class _Watch:
    """Records, while active, network connections, opens of the weights file and weight loads.

    Python's audit hooks see ``open`` and ``socket.connect`` everywhere (they cannot be removed,
    so the hook is installed once and does nothing while no watch is active). Loaders that open
    files outside Python (safetensors) are caught by wrapping them for the duration.
    """

    spec: BackboneSpec
    findings: list[str] = field(default_factory=list)
    weights_file: Path | None = None
    _wrapped: list[tuple[Any, str, Any]] = field(default_factory=list)

    def __enter__(self) -> _Watch:
        global _active, _hook_installed
        path = self.spec.weights.path()
        self.weights_file = Path(os.path.realpath(path)) if path is not None else None
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        self._wrap_loaders()
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None
        for owner, attr, original in reversed(self._wrapped):
            setattr(owner, attr, original)
        self._wrapped.clear()

    def _wrap_loaders(self) -> None:
        import torch

        targets: list[tuple[Any, str]] = [(torch, "load")]
        try:
            import safetensors
            import safetensors.torch

            targets += [
                (safetensors.torch, "load_file"),
                (safetensors.torch, "safe_open"),
                (safetensors, "safe_open"),
            ]
        except ImportError:
            pass
        for owner, attr in targets:
            original = getattr(owner, attr)

            def spy(*args: Any, _original: Any = original, _name: str = attr, **kwargs: Any) -> Any:
                where = args[0] if args else kwargs.get("f") or kwargs.get("filename")
                self.findings.append(f"called {_name}({where!r})")
                return _original(*args, **kwargs)

            setattr(owner, attr, spy)
            self._wrapped.append((owner, attr, original))

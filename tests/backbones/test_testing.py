"""check_backbone catches each way a backbone can break the contract (so a green contract test
means something)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from catalog_ai.backbones import BackboneSpec, Preprocessing, WeightsSource
from catalog_ai.backbones.testing import BackboneCheckFailed, check_backbone

_PRE = Preprocessing(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _good() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)
    )


class _Wrap(nn.Module):
    def __init__(self, after: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.net = _good()
        self.after = after

    def forward(self, x: torch.Tensor) -> object:
        return self.after(self.net(x))


def _spec(build: Callable[[bool], object], **kwargs: object) -> BackboneSpec:
    return BackboneSpec(
        name="under-test", build=build, embedding_dim=4, preprocessing=_PRE, **kwargs
    )


def test_a_good_backbone_passes() -> None:
    result = check_backbone(_spec(lambda pretrained: _good()))
    assert (result.name, result.image_size, result.parameters) == (
        "under-test",
        64,
        3 * 4 * 9 + 4 + 8,
    )


@pytest.mark.parametrize(
    ("after", "message"),
    [
        (lambda y: torch.cat([y, y], dim=1), r"output shape \(2, 8\), expected \(2, 4\)"),
        (lambda y: y.double(), "output dtype torch.float64, expected float32"),
        (lambda y: y / 0.0, "NaN or infinite"),
        (lambda y: (y,), "forward returned tuple"),
        (lambda y: y + torch.rand_like(y), "same batch gave different embeddings"),
        (lambda y: y.mean(dim=0, keepdim=True).expand(2, 4), "two different images gave the same"),
        (lambda y: y.detach(), "no finite, non-zero gradient reached the input"),
    ],
    ids=["shape", "dtype", "nan", "tuple", "random", "constant", "detached"],
)
def test_a_broken_network_fails_with_the_rule_it_breaks(
    after: Callable[[torch.Tensor], object], message: str
) -> None:
    with pytest.raises(BackboneCheckFailed, match=message):
        check_backbone(_spec(lambda pretrained: _Wrap(after)))


def test_an_invalid_spec_fails() -> None:
    spec = BackboneSpec("bad name", lambda p: _good(), 4, _PRE)
    with pytest.raises(BackboneCheckFailed, match="must not contain spaces"):
        check_backbone(spec)


def test_a_build_that_returns_no_module_fails() -> None:
    with pytest.raises(BackboneCheckFailed, match=r"returned dict, not a torch.nn.Module"):
        check_backbone(_spec(lambda pretrained: {}))


def test_build_false_must_not_read_the_weights_file(tmp_path: Path) -> None:
    weights = tmp_path / "w.pth"
    torch.save(_good().state_dict(), weights)

    def build(pretrained: bool) -> nn.Module:
        model = _good()
        model.load_state_dict(torch.load(weights, weights_only=True))  # even when not pretrained
        return model

    with pytest.raises(BackboneCheckFailed, match=r"must not touch .*opened its weights file"):
        check_backbone(_spec(build, weights=WeightsSource("file", str(weights))))


def test_build_false_must_not_use_the_network() -> None:
    def build(pretrained: bool) -> nn.Module:
        with socket.socket() as s:  # a refused connection attempt is still an attempt
            s.settimeout(1)
            s.connect_ex(("127.0.0.1", 9))
        return _good()

    with pytest.raises(BackboneCheckFailed, match=r"connected to \('127.0.0.1', 9\)"):
        check_backbone(_spec(build))


def test_a_slow_build_fails() -> None:
    with pytest.raises(BackboneCheckFailed, match="build\\(False\\) took"):
        check_backbone(_spec(lambda pretrained: _good()), max_build_seconds=-1.0)


def test_the_watch_is_off_after_the_check(tmp_path: Path) -> None:
    check_backbone(_spec(lambda pretrained: _good()))
    weights = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1)}, weights)
    assert torch.equal(torch.load(weights, weights_only=True)["x"], torch.zeros(1))
    assert torch.load.__module__ == "torch.serialization"

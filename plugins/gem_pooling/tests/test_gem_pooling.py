"""The plugin's own tests: the contract, the pooling maths and the reused Lite0 weights.

The project's CI runs them too (``testpaths`` in the root ``pyproject.toml`` includes ``plugins/``).
"""

from __future__ import annotations

import pytest
import torch

from catalog_ai.backbones import get_backbone
from catalog_ai.backbones.testing import check_backbone

gem = pytest.importorskip(
    "catalog_ai_gem_pooling", reason="plugin not installed: pip install -e plugins/gem_pooling"
)
from catalog_ai_gem_pooling._model import GeM  # noqa: E402  (after the importorskip)


def test_contract() -> None:
    check_backbone(get_backbone("efficientnet_lite0_gem"))


@pytest.mark.slow
def test_contract_with_the_imagenet_weights() -> None:
    check_backbone(get_backbone("efficientnet_lite0_gem"), pretrained=True)


def _features() -> torch.Tensor:
    return torch.rand(2, 5, 4, 4, generator=torch.Generator().manual_seed(0)) + 0.01


def test_gem_starts_at_p_3_and_learns_p() -> None:
    pool = GeM()
    assert pool.p.item() == 3.0 and pool.eps == 1e-6
    assert [name for name, _ in pool.named_parameters()] == ["p"]
    pool(_features()).sum().backward()
    assert pool.p.grad is not None and pool.p.grad.abs().item() > 0


def test_gem_is_the_generalised_mean() -> None:
    x = _features()
    expected = x.pow(3).mean(dim=(-2, -1)).pow(1 / 3)
    assert torch.allclose(GeM()(x), expected)
    # p = 1 is average pooling; a large p approaches max pooling.
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(-2, -1)), atol=1e-6)
    assert torch.allclose(GeM(p=200.0)(x), x.amax(dim=(-2, -1)), rtol=0.02)


def test_the_trunk_carries_the_efficientnet_lite0_imagenet_weights() -> None:
    spec = get_backbone("efficientnet_lite0_gem")
    assert spec.distribution == "catalog-ai-gem-pooling"
    foreign = torch.load(spec.weights.path(), map_location="cpu", weights_only=True)
    model = spec.build(True)
    trunk = model.trunk.state_dict()
    kept = [(k, v) for k, v in foreign.items() if not k.startswith("_fc.")]
    assert len(kept) == len(trunk)
    for (src_key, src), (dst_key, dst) in zip(kept, trunk.items(), strict=True):
        assert torch.equal(src, dst), f"{src_key} -> {dst_key}"
    assert model.pool.p.item() == 3.0

"""Serving through a frozen backbone: same outputs as the eager network, or the eager network."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from catalog_ai.backbones import create_backbone
from catalog_ai.inference.frozen import freeze_backbone
from catalog_ai.inference.predictor import Predictor
from catalog_ai.settings import Settings


class BranchesOnValues(nn.Module):
    """A forward whose path depends on the input's values: a trace records one branch only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        if pooled.mean() > 0:
            return pooled * 2.0
        return pooled * -3.0


class ReturnsNumpy(nn.Module):
    """Leaves torch inside forward: cannot be traced at all."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.mean(dim=(2, 3)).numpy() + 1.0)


def test_a_frozen_backbone_matches_the_eager_one_for_other_batch_sizes_and_photos():
    torch.manual_seed(0)
    backbone = create_backbone("tiny-cnn", pretrained=False).eval()
    frozen = freeze_backbone(backbone, torch.randn(4, 3, 32, 32))
    assert frozen is not None
    with torch.inference_mode():
        for batch in (1, 3, 9):
            x = torch.randn(batch, 3, 32, 32)
            expected, got = backbone(x), frozen(x)
            assert got.shape == expected.shape == (batch, 32)
            assert torch.allclose(got, expected, atol=1e-5)


def test_a_backbone_that_branches_on_values_is_served_eagerly(caplog):
    example = torch.rand(4, 3, 8, 8) + 0.1  # positive: the trace records the "* 2" branch
    with caplog.at_level(logging.WARNING, logger="catalog_ai.inference.frozen"):
        assert freeze_backbone(BranchesOnValues(), example) is None
    assert "differs from the eager one" in caplog.text


def test_a_backbone_that_cannot_be_traced_is_served_eagerly():
    assert freeze_backbone(ReturnsNumpy(), torch.rand(2, 3, 8, 8)) is None


@pytest.fixture(scope="module")
def photos(trained_bundle):
    return sorted(trained_bundle.data.rglob("*.png"))[:11]


def test_the_predictor_gives_the_same_decisions_frozen_and_eager(trained_bundle, photos):
    eager = Predictor.load(trained_bundle.path, batch_size=4, freeze=False)
    frozen = Predictor.load(trained_bundle.path, batch_size=4, freeze=True)
    assert not frozen.frozen  # traced on its first batch, not when loaded
    a, b = eager.predict(photos), frozen.predict(photos)  # batches of 4, 4 and 3
    assert frozen.frozen and not eager.frozen
    for pa, pb in zip(a, b, strict=True):
        assert np.allclose(pa.embedding, pb.embedding, atol=1e-5)
        assert np.allclose(pa.node_probs, pb.node_probs, atol=1e-5)
        da, db = pa.decision, pb.decision
        assert (da.path, da.leaf_path, da.open_set, da.source, da.auto_accept) == (
            db.path,
            db.leaf_path,
            db.open_set,
            db.source,
            db.auto_accept,
        )
        assert da.confidence == pytest.approx(db.confidence, abs=1e-5)
        for la, lb in zip(da.levels, db.levels, strict=True):
            assert [c.path for c in la] == [c.path for c in lb]
            assert [c.probability for c in la] == pytest.approx(
                [c.probability for c in lb], abs=1e-5
            )


def test_the_setting_turns_freezing_off(trained_bundle, photos, monkeypatch):
    assert Settings.from_env({}).freeze_network is True
    assert Settings.from_env({"CATALOG_AI_FREEZE_NETWORK": "0"}).freeze_network is False
    monkeypatch.setenv("CATALOG_AI_FREEZE_NETWORK", "0")
    from catalog_ai.settings import reset_settings

    reset_settings()
    try:
        predictor = Predictor.load(trained_bundle.path)
        predictor.predict(photos[:2])
        assert not predictor.frozen
    finally:
        monkeypatch.delenv("CATALOG_AI_FREEZE_NETWORK")
        reset_settings()

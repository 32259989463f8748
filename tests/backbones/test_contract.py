"""Every registered backbone (and the generic timm adapter) keeps the plugin contract."""

from __future__ import annotations

import pytest

from catalog_ai.backbones import (
    backbone_available_offline,
    get_backbone,
    list_backbones,
)
from catalog_ai.backbones.testing import check_backbone

NAMES = [spec.name for spec in list_backbones()]
# Architecture only: the adapter's weights come from the hub, which this machine cannot reach.
TIMM_NAMES = ["timm:resnet18"]
OFFLINE_WEIGHTS = [spec.name for spec in list_backbones() if backbone_available_offline(spec)]


def test_the_builtin_and_both_example_plugins_are_registered() -> None:
    # Guards the parametrisation below against silently testing nothing.
    assert {"tiny-cnn", "efficientnet_lite0", "efficientnet_lite0_gem"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES + TIMM_NAMES, ids=NAMES + TIMM_NAMES)
def test_backbone_keeps_the_contract(name: str) -> None:
    result = check_backbone(get_backbone(name))
    assert result.image_size == 64


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFLINE_WEIGHTS, ids=OFFLINE_WEIGHTS)
def test_backbone_with_installed_weights_keeps_the_contract_pretrained(name: str) -> None:
    assert check_backbone(get_backbone(name), pretrained=True).pretrained

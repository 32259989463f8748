"""Backbones: the image networks that turn a photo into an embedding.

Use them through functions: :func:`list_backbones`, :func:`get_backbone`,
:func:`create_backbone`. Plugins add backbones through the entry point group
``catalog_ai.backbones`` (see ``plugins/README.md``); ``timm:<model_name>`` gives any timm
architecture without a plugin. Importing this package does not import torch or timm.
"""

from catalog_ai.backbones.registry import (
    ENTRY_POINT_GROUP,
    RUNTIME_DISTRIBUTION,
    backbone_available_offline,
    create_backbone,
    describe,
    get_backbone,
    list_backbones,
    plugin_errors,
    refresh_backbones,
    register_backbone,
)
from catalog_ai.backbones.spec import (
    CONTRACT_VERSION,
    BackboneSpec,
    Interpolation,
    Preprocessing,
    WeightsSource,
)
from catalog_ai.backbones.timm_adapter import TIMM_PREFIX
from catalog_ai.backbones.weights import (
    WEIGHT_FILE_SUFFIXES,
    load_state_dict_in_order,
    load_weights_file,
    read_state_dict,
)

__all__ = [
    "CONTRACT_VERSION",
    "ENTRY_POINT_GROUP",
    "RUNTIME_DISTRIBUTION",
    "TIMM_PREFIX",
    "WEIGHT_FILE_SUFFIXES",
    "BackboneSpec",
    "Interpolation",
    "Preprocessing",
    "WeightsSource",
    "backbone_available_offline",
    "create_backbone",
    "describe",
    "get_backbone",
    "list_backbones",
    "load_state_dict_in_order",
    "load_weights_file",
    "plugin_errors",
    "read_state_dict",
    "refresh_backbones",
    "register_backbone",
]

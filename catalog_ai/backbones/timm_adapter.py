"""Any timm architecture as a backbone, without a plugin: ``timm:<model_name>``.

``get_backbone("timm:resnet18")`` builds a spec on the fly: the embedding width and the
preprocessing come from the architecture itself (created without weights, which is cheap). The
pretrained weights come from the Hugging Face hub through timm, so they need a network connection;
on an offline machine pass a local file instead (``create_backbone(..., weights=FILE)``, on the
command line ``--backbone-weights FILE``).
"""

from __future__ import annotations

import difflib
import os
import socket
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from catalog_ai.backbones._errors import cause_of
from catalog_ai.backbones.spec import BackboneSpec, Interpolation, Preprocessing, WeightsSource
from catalog_ai.errors import BackboneError
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

__all__ = ["TIMM_DISTRIBUTION", "TIMM_PREFIX", "is_timm_name", "timm_spec"]

TIMM_PREFIX = "timm:"
TIMM_DISTRIBUTION = "timm"
_PROBE_SECONDS = 3.0
_INTERPOLATIONS: tuple[Interpolation, ...] = ("nearest", "bilinear", "bicubic")


def is_timm_name(name: str) -> bool:
    return name.startswith(TIMM_PREFIX)


@lru_cache(maxsize=64)
def timm_spec(name: str, installed: Callable[[], list[str]] = list) -> BackboneSpec:
    """The spec of ``timm:<model_name>``; :class:`BackboneError` when timm has no such model.

    ``installed`` names the backbones whose weights are on this machine, for the hint when the
    pretrained weights cannot be downloaded (the registry passes its own list: it knows them,
    and this module must not import it back).
    """
    import timm
    from timm.data import resolve_data_config

    model_name = name.removeprefix(TIMM_PREFIX).strip()
    if not model_name:
        raise BackboneError(f"{name!r} names no timm model; write e.g. {TIMM_PREFIX}resnet18")
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(TIMM_PREFIX + c for c in close)}? " if close else ""
        raise BackboneError(
            f"timm has no model {model_name!r}; {hint}"
            "see timm.list_models() for the names timm knows"
        )
    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    except Exception as exc:  # an architecture timm lists but cannot build as a feature extractor
        raise BackboneError(
            f"timm could not build {model_name!r} without a classifier: {cause_of(exc)}"
        ) from None
    data = resolve_data_config({}, model=model)
    hub_id = _hub_id(model.pretrained_cfg)
    return BackboneSpec(
        name=TIMM_PREFIX + model_name,
        build=_builder(model_name, has_weights=bool(hub_id), installed=installed),
        embedding_dim=int(model.num_features),  # type: ignore[arg-type]
        preprocessing=Preprocessing(
            input_size=int(max(data["input_size"][1:])),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=_interpolation(data.get("interpolation")),
            crop_pct=float(data.get("crop_pct", 1.0)),
        ),
        weights=WeightsSource("hub", hub_id) if hub_id else WeightsSource("none"),
        summary=f"timm {model_name} (generic adapter; pretrained weights need the network)",
        distribution=TIMM_DISTRIBUTION,
    )


def _builder(
    model_name: str, *, has_weights: bool, installed: Callable[[], list[str]]
) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import timm

        if not pretrained:
            return timm.create_model(model_name, pretrained=False, num_classes=0)
        if not has_weights:
            raise BackboneError(
                f"timm has no pretrained weights for {model_name!r}; {_weights_fix(installed())}"
            )
        if get_settings().offline:
            raise BackboneError(
                f"the pretrained weights of {TIMM_PREFIX}{model_name} would have to be downloaded, "
                "but catalog_ai is offline (CATALOG_AI_OFFLINE or HF_HUB_OFFLINE); "
                f"{_weights_fix(installed())}"
            )
        unreachable = _hub_unreachable()
        if unreachable:
            raise BackboneError(
                f"the pretrained weights of {TIMM_PREFIX}{model_name} could not be downloaded "
                f"({unreachable}); {_weights_fix(installed())}"
            )
        try:
            return timm.create_model(model_name, pretrained=True, num_classes=0)
        except Exception as exc:  # hub down, file missing, proxy, ...: all mean "no weights"
            raise BackboneError(
                f"the pretrained weights of {TIMM_PREFIX}{model_name} could not be downloaded "
                f"({cause_of(exc)}); {_weights_fix(installed())}"
            ) from None

    return build


def _hub_unreachable() -> str | None:
    """Why the model hub cannot be reached, or None when it may be.

    Without this, huggingface_hub retries for most of a minute before giving up on a machine
    without internet. Behind a proxy the direct probe says nothing, so it is skipped.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=_PROBE_SECONDS).close()
    except OSError as exc:
        return f"the model hub {host}:{port} is unreachable: {exc}"
    return None


def _weights_fix(offline: list[str]) -> str:
    use = (
        f"or use a backbone whose weights are installed: {', '.join(offline)}"
        if offline
        else "or install a backbone plugin that ships its weights"
    )
    return (
        "pass a local weights file with --backbone-weights FILE "
        f"(create_backbone(..., weights=FILE)), {use} (see `catalog-ai backbones list`)"
    )


def _hub_id(cfg: Any) -> str:
    cfg = cfg if isinstance(cfg, dict) else getattr(cfg, "__dict__", {})
    return str(cfg.get("hf_hub_id") or cfg.get("url") or "")


def _interpolation(value: Any) -> Interpolation:
    # timm also knows e.g. "random" for training; evaluation-time bilinear is the safe reading.
    return value if value in _INTERPOLATIONS else "bilinear"

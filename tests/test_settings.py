"""The settings class: the README's table matches it, bad values are one line naming the
variable and the fix, and the environment is read where and when it should be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from catalog_ai.auth import load_auth_config
from catalog_ai.errors import CatalogAIError, ConfigError
from catalog_ai.settings import ENV_PREFIX, Settings, env_name, get_settings, reset_settings

README = Path(__file__).resolve().parents[1] / "README.md"

# Defaults the README states in words; each is checked here by what the words say.
PROSE_DEFAULTS = {
    "CATALOG_AI_RESULT_BACKEND": lambda s: s.result_backend is None and s.broker_url is None,
    "CATALOG_AI_TORCH_THREADS": lambda s: s.torch_threads is None,
}


def _readme_rows() -> dict[str, str]:
    """``CATALOG_AI_*`` name -> the default cell, from the README's configuration table."""
    text = README.read_text("utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`CATALOG_AI_"):
            continue
        for name in re.findall(r"`(CATALOG_AI_\w+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def _fields() -> dict[str, str]:
    """``CATALOG_AI_*`` name -> field name, for every setting read from one."""
    names = {env_name(n, info): n for n, info in Settings.model_fields.items()}
    return {env: field for env, field in names.items() if env.startswith(ENV_PREFIX)}


def test_readme_table_lists_exactly_the_settings():
    assert sorted(_readme_rows()) == sorted(_fields())


def test_readme_defaults_are_the_settings_defaults():
    defaults = Settings.from_env({})
    fields = _fields()
    checked = 0
    for name, cell in _readme_rows().items():
        value = getattr(defaults, fields[name])
        if name in PROSE_DEFAULTS:
            assert PROSE_DEFAULTS[name](defaults), (name, cell, value)
        elif cell.startswith(("none", "empty")):
            assert value in (None, ()), (name, cell, value)
        else:
            literal = re.match(r"`([^`]*)`", cell)
            assert literal, f"{name}: default {cell!r} is neither a `value` nor none/empty"
            expected = literal.group(1).replace("$CATALOG_AI_HOME", str(defaults.home))
            if isinstance(value, bool):
                assert value is {"0": False, "1": True}[expected], (name, cell)
            elif isinstance(value, int):
                assert value == int(expected), (name, cell, value)
            elif isinstance(value, float):
                assert value == float(expected), (name, cell, value)
            elif isinstance(value, Path):
                assert value == Path(expected).resolve(), (name, cell, value)
            else:
                assert value == expected, (name, cell, value)
        checked += 1
    assert checked == len(_fields())


def test_values_are_read_and_derived_from_the_home(tmp_path):
    s = Settings.from_env(
        {
            "CATALOG_AI_HOME": str(tmp_path),
            "CATALOG_AI_BROKER_URL": "redis://r:6379/0",
            "CATALOG_AI_CLASSIFY_CHUNK": " 8 ",
            "CATALOG_AI_FREEZE_NETWORK": "off",
            "CATALOG_AI_TORCH_THREADS": "3",
            "CATALOG_AI_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/24",
        }
    )
    assert s.database_url == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert s.media_dir == tmp_path / "media" and s.model_dir == tmp_path / "models"
    assert s.result_backend == "redis://r:6379/0"  # follows the broker unless set
    assert s.classify_chunk == 8 and s.freeze_network is False and s.torch_threads == 3
    assert [str(n) for n in s.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/24"]


def test_an_empty_variable_means_its_default():
    s = Settings.from_env({"CATALOG_AI_BROKER_URL": "", "CATALOG_AI_CLASSIFY_CHUNK": ""})
    assert s.broker_url is None and s.classify_chunk == 16


@pytest.mark.parametrize(
    ("env", "offline"),
    [
        ({}, False),
        ({"CATALOG_AI_OFFLINE": "1"}, True),
        ({"HF_HUB_OFFLINE": "1"}, True),
        ({"CATALOG_AI_OFFLINE": "0", "HF_HUB_OFFLINE": "yes"}, True),
    ],
)
def test_offline_is_either_variable(env, offline):
    assert Settings.from_env(env).offline is offline


@pytest.mark.parametrize(
    ("name", "raw", "fix"),
    [
        ("CATALOG_AI_CLASSIFY_CHUNK", "sixteen", "is not a whole number; use a whole number"),
        ("CATALOG_AI_MAX_ATTEMPTS", "0", "must be greater than zero (default 5)"),
        ("CATALOG_AI_TORCH_THREADS", "-2", "must be greater than zero"),
        ("CATALOG_AI_FREEZE_NETWORK", "maybe", "is not a yes/no value; use 1 or 0"),
        ("CATALOG_AI_READ_ONLY_VIEWING", "sometimes", "is not a yes/no value; use 1 or 0"),
        ("HF_HUB_OFFLINE", "perhaps", "is not a yes/no value; use 1 or 0"),
        ("CATALOG_AI_TRUSTED_PROXIES", "127.0.0.1,proxy.local", "use e.g. 127.0.0.1,10.0.0.0/24"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_the_fix(name, raw, fix):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: raw})
    message = str(caught.value)
    assert isinstance(caught.value, CatalogAIError)
    assert "\n" not in message and message.startswith(name) and fix in message, message
    assert raw.split(",")[-1] in message  # the bad value itself


def test_from_env_reads_only_the_mapping_it_is_given(monkeypatch):
    monkeypatch.setenv("CATALOG_AI_CLASSIFY_CHUNK", "7")
    assert Settings.from_env({}).classify_chunk == 16
    assert Settings.from_env().classify_chunk == 7


def test_get_settings_is_read_once_until_reset(monkeypatch):
    monkeypatch.setenv("CATALOG_AI_STALE_AFTER", "111")
    reset_settings()
    try:
        assert get_settings().stale_after == 111
        monkeypatch.setenv("CATALOG_AI_STALE_AFTER", "222")
        assert get_settings().stale_after == 111  # cached: one reading per process
        reset_settings()
        assert get_settings().stale_after == 222
    finally:
        monkeypatch.delenv("CATALOG_AI_STALE_AFTER")
        reset_settings()


def test_access_settings_reach_the_auth_config(tmp_path):
    config = load_auth_config(
        {
            "CATALOG_AI_READ_ONLY_VIEWING": "yes",
            "CATALOG_AI_AUTH_HEADER": " X-Forwarded-User ",
            "CATALOG_AI_TRUSTED_PROXIES": "10.0.0.5",
        }
    )
    assert config.read_only_viewing and config.header == "X-Forwarded-User"
    assert config.header_trusted("10.0.0.5") and not config.header_trusted("10.0.0.6")
    with pytest.raises(ConfigError, match=r"^CATALOG_AI_USERS_FILE=.*cannot read it"):
        load_auth_config({"CATALOG_AI_USERS_FILE": str(tmp_path / "missing")})

"""Service settings (coderunner._settings): environment parsing, validation, limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from coderunner._errors import InvalidRequest
from coderunner._models import MIN_MEMORY_MB, ExecutionRequest
from coderunner._settings import ServerOptions, Settings, describe_settings

ALL_FIELDS = dataclasses.fields(Settings)
# The numeric settings (limits, sizes); the text ones (paths, URLs) are tested apart.
FIELDS = tuple(f for f in ALL_FIELDS if not isinstance(f.default, str))
FIELD_NAMES = [f.name for f in FIELDS]
TEXT_FIELDS = [f.name for f in ALL_FIELDS if isinstance(f.default, str)]


def env_name(name: str) -> str:
    return f"CODERUNNER_{name.upper()}"


def other_valid_value(f: dataclasses.Field) -> Any:
    """A value unlike the default that passes Settings.check on its own."""
    if isinstance(f.default, float):
        return f.default + 2.5
    return f.default + 1


def test_text_settings_are_read_as_they_are() -> None:
    assert TEXT_FIELDS == [
        "cgroups",
        "data_dir",
        "database_url",
        "python_packages",
        "javascript_packages",
        "javascript_isolation",
    ]
    environ = {"CODERUNNER_DATA_DIR": "/srv/cr", "CODERUNNER_DATABASE_URL": "postgresql://h/db"}
    settings = Settings.from_env(environ)
    assert (settings.data_dir, settings.database_url) == ("/srv/cr", "postgresql://h/db")
    environ = {
        "CODERUNNER_PYTHON_PACKAGES": "python-dateutil==2.9.0.post0, six",
        "CODERUNNER_JAVASCRIPT_PACKAGES": "lodash@4.17.21",
    }
    settings = Settings.from_env(environ)
    assert settings.python_packages == "python-dateutil==2.9.0.post0, six"
    assert settings.javascript_packages == "lodash@4.17.21"
    assert (Settings().python_packages, Settings().javascript_packages) == ("", "")


def test_defaults_without_environment() -> None:
    assert Settings.from_env({}) == Settings()
    Settings().check()


def test_from_env_ignores_unrelated_variables() -> None:
    environ = {"MAX_TIMEOUT_MS": "1", "coderunner_max_timeout_ms": "1", "CODERUNNER_X": "y"}
    assert Settings.from_env(environ) == Settings()


@pytest.mark.parametrize("f", FIELDS, ids=FIELD_NAMES)
def test_every_setting_is_read_from_its_variable(f: dataclasses.Field) -> None:
    value = other_valid_value(f)
    settings = Settings.from_env({env_name(f.name): str(value)})
    parsed = getattr(settings, f.name)
    assert type(parsed) is type(f.default)
    assert parsed == value
    # Nothing else moved.
    others = {g.name: getattr(settings, g.name) for g in FIELDS if g.name != f.name}
    assert others == {g.name: g.default for g in FIELDS if g.name != f.name}


def test_all_settings_at_once() -> None:
    values = {f.name: other_valid_value(f) for f in FIELDS}
    settings = Settings.from_env({env_name(k): str(v) for k, v in values.items()})
    numeric = {k: v for k, v in dataclasses.asdict(settings).items() if k not in TEXT_FIELDS}
    assert numeric == values


def test_every_field_is_an_int_a_float_or_text() -> None:
    for f in ALL_FIELDS:
        assert type(f.default) in (int, float, str), f.name
    for f in FIELDS:
        assert type(f.default) in (int, float), f.name


def test_float_setting_accepts_a_whole_number() -> None:
    settings = Settings.from_env({"CODERUNNER_AGENT_TIMEOUT_S": "30"})
    assert settings.agent_timeout_s == 30.0
    assert isinstance(settings.agent_timeout_s, float)


@pytest.mark.parametrize("f", FIELDS, ids=FIELD_NAMES)
@pytest.mark.parametrize("bad", ["abc", "", "12abc", "1e"])
def test_non_number_names_the_variable_and_value(f: dataclasses.Field, bad: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({env_name(f.name): bad})
    message = str(info.value)
    assert env_name(f.name) in message
    assert repr(bad) in message
    assert type(f.default).__name__ in message


@pytest.mark.parametrize(
    "f", [f for f in FIELDS if isinstance(f.default, int)], ids=lambda f: f.name
)
def test_int_setting_refuses_a_fraction(f: dataclasses.Field) -> None:
    with pytest.raises(InvalidRequest, match=env_name(f.name)):
        Settings.from_env({env_name(f.name): "2.5"})


@pytest.mark.parametrize("f", FIELDS, ids=FIELD_NAMES)
def test_negative_value_is_refused(f: dataclasses.Field) -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({env_name(f.name): "-1"})
    assert f.name in str(info.value)
    assert "negative" in str(info.value)


@pytest.mark.parametrize("f", FIELDS, ids=FIELD_NAMES)
def test_negative_override_is_refused(f: dataclasses.Field) -> None:
    with pytest.raises(InvalidRequest, match=f.name):
        Settings.from_env({}, **{f.name: -1})


def test_default_timeout_above_max_timeout() -> None:
    environ = {"CODERUNNER_DEFAULT_TIMEOUT_MS": "9000", "CODERUNNER_MAX_TIMEOUT_MS": "8000"}
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env(environ)
    assert "default_timeout_ms" in str(info.value)
    assert "max_timeout_ms" in str(info.value)


def test_default_timeout_equal_to_max_timeout() -> None:
    environ = {"CODERUNNER_DEFAULT_TIMEOUT_MS": "8000", "CODERUNNER_MAX_TIMEOUT_MS": "8000"}
    settings = Settings.from_env(environ)
    assert settings.default_timeout_ms == settings.max_timeout_ms == 8000


@pytest.mark.parametrize("memory_mb", [0, 1, MIN_MEMORY_MB - 1])
def test_default_memory_below_the_minimum(memory_mb: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env({"CODERUNNER_DEFAULT_MEMORY_MB": str(memory_mb)})
    assert "default_memory_mb" in str(info.value)
    assert str(MIN_MEMORY_MB) in str(info.value)


def test_default_memory_above_max_memory() -> None:
    environ = {"CODERUNNER_DEFAULT_MEMORY_MB": "512", "CODERUNNER_MAX_MEMORY_MB": "256"}
    with pytest.raises(InvalidRequest) as info:
        Settings.from_env(environ)
    assert "default_memory_mb" in str(info.value)
    assert "max_memory_mb" in str(info.value)


@pytest.mark.parametrize(("default", "maximum"), [(MIN_MEMORY_MB, 64), (64, 64)])
def test_default_memory_at_the_bounds(default: int, maximum: int) -> None:
    environ = {
        "CODERUNNER_DEFAULT_MEMORY_MB": str(default),
        "CODERUNNER_MAX_MEMORY_MB": str(maximum),
    }
    settings = Settings.from_env(environ)
    assert (settings.default_memory_mb, settings.max_memory_mb) == (default, maximum)


def test_max_concurrency_zero_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="max_concurrency"):
        Settings.from_env({"CODERUNNER_MAX_CONCURRENCY": "0"})


def test_zero_pool_sizes_are_allowed() -> None:
    settings = Settings.from_env(
        {"CODERUNNER_PYTHON_POOL_SIZE": "0", "CODERUNNER_JAVASCRIPT_POOL_SIZE": "0"}
    )
    assert settings.python_pool_size == settings.javascript_pool_size == 0


def test_override_beats_environment() -> None:
    environ = {"CODERUNNER_MAX_TIMEOUT_MS": "1000", "CODERUNNER_QUEUE_SIZE": "5"}
    settings = Settings.from_env(environ, max_timeout_ms=90_000)
    assert settings.max_timeout_ms == 90_000
    assert settings.queue_size == 5  # not overridden: the environment holds


def test_none_override_is_ignored() -> None:
    environ = {"CODERUNNER_MAX_TIMEOUT_MS": "70000"}
    settings = Settings.from_env(environ, max_timeout_ms=None, queue_size=None)
    assert settings.max_timeout_ms == 70_000
    assert settings.queue_size == Settings().queue_size


def test_overrides_are_checked_too() -> None:
    with pytest.raises(InvalidRequest, match="default_memory_mb"):
        Settings.from_env({}, default_memory_mb=MIN_MEMORY_MB - 1)
    with pytest.raises(InvalidRequest, match="default_timeout_ms"):
        Settings.from_env({"CODERUNNER_MAX_TIMEOUT_MS": "100"}, default_timeout_ms=200)


def test_override_fixes_a_contradiction_in_the_environment() -> None:
    environ = {"CODERUNNER_DEFAULT_TIMEOUT_MS": "9000", "CODERUNNER_MAX_TIMEOUT_MS": "8000"}
    assert Settings.from_env(environ, max_timeout_ms=9000).max_timeout_ms == 9000


def test_bad_variable_is_refused_even_when_overridden() -> None:
    with pytest.raises(InvalidRequest, match="CODERUNNER_QUEUE_SIZE"):
        Settings.from_env({"CODERUNNER_QUEUE_SIZE": "many"}, queue_size=3)


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERUNNER_QUEUE_SIZE", "7")
    assert Settings.from_env().queue_size == 7
    assert Settings.from_env({}).queue_size == Settings().queue_size


# -- resolve_limits ------------------------------------------------------------------------


def request(**limits: Any) -> ExecutionRequest:
    return ExecutionRequest(language="python", code="1", **limits)


SMALL = Settings(
    default_timeout_ms=1000, max_timeout_ms=2000, default_memory_mb=64, max_memory_mb=128
)


def test_resolve_limits_defaults() -> None:
    assert SMALL.resolve_limits(request()) == (1000, 64)


def test_resolve_limits_explicit() -> None:
    assert SMALL.resolve_limits(request(timeout_ms=1500, memory_mb=100)) == (1500, 100)


def test_resolve_limits_at_the_maxima() -> None:
    assert SMALL.resolve_limits(request(timeout_ms=2000, memory_mb=128)) == (2000, 128)
    assert SMALL.resolve_limits(request(memory_mb=MIN_MEMORY_MB)) == (1000, MIN_MEMORY_MB)


def test_resolve_limits_timeout_above_max() -> None:
    with pytest.raises(InvalidRequest) as info:
        SMALL.resolve_limits(request(timeout_ms=2001))
    assert str(info.value) == "timeout_ms=2001 is above this server's maximum of 2000"


def test_resolve_limits_memory_above_max() -> None:
    with pytest.raises(InvalidRequest) as info:
        SMALL.resolve_limits(request(memory_mb=129))
    assert str(info.value) == "memory_mb=129 is above this server's maximum of 128"


def test_resolve_limits_memory_below_minimum() -> None:
    # The request model refuses this already; resolve_limits holds the line on its own.
    unchecked = ExecutionRequest.model_construct(
        language="python", code="1", inputs={}, timeout_ms=None, memory_mb=16
    )
    with pytest.raises(InvalidRequest) as info:
        SMALL.resolve_limits(unchecked)
    assert str(info.value).startswith(f"memory_mb=16 is below {MIN_MEMORY_MB}")


def test_resolve_limits_with_the_default_settings() -> None:
    defaults = Settings()
    assert defaults.resolve_limits(request()) == (
        defaults.default_timeout_ms,
        defaults.default_memory_mb,
    )
    with pytest.raises(InvalidRequest, match=str(defaults.max_memory_mb)):
        defaults.resolve_limits(request(memory_mb=defaults.max_memory_mb + 1))


# -- ServerOptions -------------------------------------------------------------------------


def test_server_options_defaults() -> None:
    assert ServerOptions.from_env({}) == ServerOptions("127.0.0.1", 8000, ())


def test_server_options_from_environment() -> None:
    environ = {
        "CODERUNNER_HOST": "0.0.0.0",
        "CODERUNNER_PORT": "9001",
        "CODERUNNER_API_KEYS": "alpha, beta ,,  ,gamma,",
    }
    options = ServerOptions.from_env(environ)
    assert options == ServerOptions("0.0.0.0", 9001, ("alpha", "beta", "gamma"))


@pytest.mark.parametrize("keys", ["", " ", ",", " , ,"])
def test_server_options_blank_api_keys(keys: str) -> None:
    assert ServerOptions.from_env({"CODERUNNER_API_KEYS": keys}).api_keys == ()


def test_server_options_empty_host_is_the_default() -> None:
    assert ServerOptions.from_env({"CODERUNNER_HOST": ""}).host == "127.0.0.1"


@pytest.mark.parametrize("port", ["abc", "", "80.5", "8o8o"])
def test_server_options_bad_port_names_the_variable(port: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ServerOptions.from_env({"CODERUNNER_PORT": port})
    assert "CODERUNNER_PORT" in str(info.value)
    assert repr(port) in str(info.value)


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_server_options_port_out_of_range(port: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        ServerOptions.from_env({"CODERUNNER_PORT": port})
    assert port in str(info.value)


@pytest.mark.parametrize("port", [0, 1, 65535])
def test_server_options_port_bounds(port: int) -> None:
    assert ServerOptions.from_env({"CODERUNNER_PORT": str(port)}).port == port


def test_server_options_overrides_beat_environment() -> None:
    environ = {
        "CODERUNNER_HOST": "0.0.0.0",
        "CODERUNNER_PORT": "9001",
        "CODERUNNER_API_KEYS": "alpha",
    }
    options = ServerOptions.from_env(environ, host="::1", port=9100, api_keys=("k",))
    assert options == ServerOptions("::1", 9100, ("k",))


def test_server_options_none_overrides_are_ignored() -> None:
    environ = {"CODERUNNER_HOST": "0.0.0.0", "CODERUNNER_PORT": "9001"}
    options = ServerOptions.from_env(environ, host=None, port=None, api_keys=None)
    assert options == ServerOptions("0.0.0.0", 9001, ())


def test_server_options_override_port_is_checked() -> None:
    with pytest.raises(InvalidRequest, match="70000"):
        ServerOptions.from_env({}, port=70000)


def test_server_options_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERUNNER_PORT", "8123")
    assert ServerOptions.from_env().port == 8123


# -- describe_settings ---------------------------------------------------------------------


def test_describe_settings_covers_every_field() -> None:
    described = describe_settings()
    assert [name for name, _, _ in described] == [f.name for f in ALL_FIELDS]
    defaults = Settings()
    for name, default, help_text in described:
        assert default == getattr(defaults, name), name
        assert isinstance(help_text, str), name
        assert help_text.strip(), f"{name} has no help"


# -- CODERUNNER_<NAME>_FILE: a setting from a file (container secrets) ----------------------


def test_every_setting_can_come_from_a_file(tmp_path) -> None:
    (tmp_path / "timeout").write_text("7000\n")
    (tmp_path / "url").write_text("postgresql://u:p@db/lib\n")
    settings = Settings.from_env(
        {
            "CODERUNNER_MAX_TIMEOUT_MS_FILE": str(tmp_path / "timeout"),
            "CODERUNNER_DATABASE_URL_FILE": str(tmp_path / "url"),
        }
    )
    assert settings.max_timeout_ms == 7000
    assert settings.database_url == "postgresql://u:p@db/lib"


def test_server_options_and_keys_from_files(tmp_path) -> None:
    (tmp_path / "keys").write_text("one\ntwo\n")
    (tmp_path / "port").write_text("9000")
    options = ServerOptions.from_env(
        {
            "CODERUNNER_API_KEYS_FILE": str(tmp_path / "keys"),
            "CODERUNNER_PORT_FILE": str(tmp_path / "port"),
        }
    )
    assert options.api_keys == ("one", "two") and options.port == 9000


def test_a_setting_and_its_file_together_or_a_missing_file_is_refused(tmp_path) -> None:
    (tmp_path / "t").write_text("7000")
    both = {"CODERUNNER_MAX_TIMEOUT_MS": "1", "CODERUNNER_MAX_TIMEOUT_MS_FILE": str(tmp_path / "t")}
    with pytest.raises(InvalidRequest, match="both set"):
        Settings.from_env(both)
    with pytest.raises(InvalidRequest, match="cannot be read"):
        Settings.from_env({"CODERUNNER_MAX_TIMEOUT_MS_FILE": str(tmp_path / "missing")})


def test_the_llm_api_key_from_a_file(tmp_path) -> None:
    from coderunner import LLMConfig

    (tmp_path / "key").write_text("sk-from-file\n")
    config = LLMConfig.from_env({"CODERUNNER_LLM_API_KEY_FILE": str(tmp_path / "key")})
    assert config.api_key == "sk-from-file"

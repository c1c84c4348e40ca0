"""Layered settings: override order, validation messages, and defaults that never drift."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from overwatch import config
from overwatch.config import ConfigError, Settings, load_settings


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and working directory, so the developer's own config never leaks in."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return tmp_path


def load(config_file: Path | None = None, **env: str) -> Settings:
    return load_settings(config_file, env=env, search_user_dirs=False)


# --------------------------------------------------------------------------- defaults


def test_defaults_yaml_equals_dataclass_defaults() -> None:
    assert load() == Settings()


def test_defaults_yaml_lists_every_key_of_the_schema() -> None:
    raw = yaml.safe_load(config.DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert {section: set(keys) for section, keys in raw.items()} == {
        name: set(keys) for name, keys in Settings().to_dict().items()
    }


def test_every_key_in_defaults_yaml_is_documented_by_a_comment() -> None:
    lines = config.DEFAULTS_FILE.read_text(encoding="utf-8").splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if re.match(r"^  [a-z_]+:", line) and not lines[number - 1].strip().startswith("#"):
            undocumented.append(line.strip())
    assert undocumented == []


def test_defaults_have_expected_values_and_types() -> None:
    settings = load()
    assert settings.receiver.interval == 1.0
    assert settings.receiver.max_message_bytes == 268_435_456
    assert settings.receiver.fsync is True
    assert settings.receiver.notify_address == "tcp://127.0.0.1:8851"
    assert settings.processing.events_histogram == {
        "EMC": "EMCTrigger/events",
        "TPC": "events",
        "HLT": "events",
    }
    assert settings.processing.reset_tolerance == 1e-6
    assert settings.web.port == 8850
    assert isinstance(settings.status.late_seconds, float)


def test_settings_are_frozen_and_to_dict_is_plain() -> None:
    settings = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.web.port = 1  # type: ignore[misc]
    as_dict = settings.to_dict()
    assert type(as_dict["web"]) is dict
    assert as_dict["web"]["host"] == "127.0.0.1"
    assert as_dict["web"]["port"] == 8850
    assert set(as_dict["web"]) == {f.name for f in dataclasses.fields(settings.web)}
    as_dict["processing"]["events_histogram"]["XYZ"] = "x"
    assert "XYZ" not in settings.processing.events_histogram


def test_missing_defaults_file_falls_back_to_builtin_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "DEFAULTS_FILE", tmp_path / "missing.yaml")
    assert load() == Settings()


# --------------------------------------------------------------------------- layers


def test_layers_override_in_order(isolated: Path) -> None:
    home_file = isolated / "home" / ".config" / "overwatch" / "overwatch.yaml"
    write(
        home_file,
        "receiver:\n  interval: 2.0\n  timeout: 2.0\n  max_backoff: 2.0\n  fsync: false\n",
    )
    write(isolated / "work" / "overwatch.yaml", "receiver:\n  timeout: 3.0\n  max_backoff: 3.0\n")
    explicit = write(
        isolated / "explicit.yaml", "receiver:\n  max_backoff: 4.0\n  heartbeat_interval: 4.0\n"
    )

    settings = load_settings(explicit, env={"OVERWATCH_RECEIVER__HEARTBEAT_INTERVAL": "5.5"})

    assert settings.receiver.interval == 2.0  # home
    assert settings.receiver.fsync is False  # home
    assert settings.receiver.timeout == 3.0  # cwd beats home
    assert settings.receiver.max_backoff == 4.0  # --config beats cwd
    assert settings.receiver.heartbeat_interval == 5.5  # environment beats --config
    assert settings.receiver.max_message_bytes == 268_435_456  # package default


def test_search_user_dirs_false_ignores_home_and_cwd(isolated: Path) -> None:
    write(isolated / "home" / ".config" / "overwatch" / "overwatch.yaml", "web:\n  port: 9000\n")
    write(isolated / "work" / "overwatch.yaml", "web:\n  host: 0.0.0.0\n")
    assert load_settings(env={}, search_user_dirs=False).web == Settings().web
    searched = load_settings(env={})
    assert (searched.web.port, searched.web.host) == (9000, "0.0.0.0")


def test_explicit_path_accepts_str(isolated: Path) -> None:
    explicit = write(isolated / "x.yaml", "data:\n  data_dir: /srv/overwatch\n")
    assert load_settings(str(explicit), env={}).data.data_dir == "/srv/overwatch"


def test_mapping_value_replaces_default_as_a_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "processing:\n  events_histogram:\n    TOF: tof/events\n")
    assert load(path).processing.events_histogram == {"TOF": "tof/events"}


def test_empty_file_and_empty_section_change_nothing(tmp_path: Path) -> None:
    assert load(write(tmp_path / "empty.yaml", "")) == Settings()
    assert load(write(tmp_path / "null.yaml", "web:\n  # port: 1\n")) == Settings()


def test_int_accepted_where_float_expected(tmp_path: Path) -> None:
    settings = load(write(tmp_path / "c.yaml", "receiver:\n  interval: 2\n"))
    assert settings.receiver.interval == 2.0
    assert isinstance(settings.receiver.interval, float)


def test_yaml11_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    settings = load(write(tmp_path / "c.yaml", "processing:\n  reset_tolerance: 1e-9\n"))
    assert settings.processing.reset_tolerance == 1e-9


# --------------------------------------------------------------------------- environment


def test_env_values_are_parsed_as_yaml() -> None:
    settings = load(
        OVERWATCH_RECEIVER__INTERVAL="2.5",
        OVERWATCH_RECEIVER__MAX_MESSAGE_BYTES="1024",
        OVERWATCH_RECEIVER__FSYNC="false",
        OVERWATCH_PROCESSING__EVENTS_HISTOGRAM="{EMC: trig/events}",
    )
    assert settings.receiver.interval == 2.5
    assert settings.receiver.max_message_bytes == 1024
    assert settings.receiver.fsync is False
    assert settings.processing.events_histogram == {"EMC": "trig/events"}


def test_env_string_keys_take_the_raw_text() -> None:
    settings = load(OVERWATCH_WEB__SECRET_KEY_FILE="8850", OVERWATCH_DATA__DATA_DIR="yes")
    assert settings.web.secret_key_file == "8850"
    assert settings.data.data_dir == "yes"


def test_env_without_separator_or_prefix_is_ignored() -> None:
    settings = load(OVERWATCH_CONFIG="/tmp/x.yaml", RECEIVER__INTERVAL="abc", OVERWATCHX__A="1")
    assert settings == Settings()


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERWATCH_WEB__PORT", "9100")
    assert load_settings(search_user_dirs=False).web.port == 9100


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OVERWATCH_RECEIVER__INTERVAL", "abc", "receiver.interval: expected a number, got 'abc'"),
        ("OVERWATCH_RECEIVER__FSYNC", "1", "receiver.fsync: expected true or false, got 1"),
        ("OVERWATCH_WEB__PORT", "", "web.port: expected an integer, got ''"),
        ("OVERWATCH_RECEIVER__INTERVL", "1", "unknown key 'receiver.intervl'"),
        ("OVERWATCH_RECIEVER__INTERVAL", "1", "unknown section 'reciever'"),
    ],
)
def test_env_errors_name_the_variable_key_and_expectation(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(**{name: value})
    assert str(error.value).startswith(f"environment variable {name}: ")
    assert expected in str(error.value)


# --------------------------------------------------------------------------- file errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("receiver:\n  interval: abc\n", "receiver.interval: expected a number, got 'abc'"),
        ("receiver:\n  fsync: 1\n", "receiver.fsync: expected true or false, got 1"),
        ("receiver:\n  fsync: 'yes'\n", "receiver.fsync: expected true or false, got 'yes'"),
        ("receiver:\n  interval: true\n", "receiver.interval: expected a number, got True"),
        (
            "receiver:\n  max_message_bytes: 2.5\n",
            "receiver.max_message_bytes: expected an integer, got 2.5",
        ),
        ("receiver:\n  interval: .nan\n", "receiver.interval: expected a finite number, got nan"),
        ("web:\n  host: 5\n", "web.host: expected a string, got 5"),
        ("web:\n  port: 70000\n", "web.port: expected an integer <= 65535, got 70000"),
        ("receiver:\n  interval: 0\n", "receiver.interval: expected a number > 0, got 0"),
        (
            "processing:\n  events_histogram: [a, b]\n",
            "processing.events_histogram: expected a mapping of strings to strings, got ['a', 'b']",
        ),
        (
            "processing:\n  events_histogram:\n    EMC: 3\n",
            "processing.events_histogram.EMC: expected a string, got 3",
        ),
        (
            "processing:\n  events_histogram:\n    1: x\n",
            "processing.events_histogram: expected string keys, got 1",
        ),
        ("web: 5\n", "web: expected a mapping of keys, got 5"),
        ("- a\n- b\n", "expected a mapping of sections at the top level, got ['a', 'b']"),
        (
            "status:\n  dead_seconds: 30\n",
            "status.dead_seconds: expected a number >= status.late_seconds",
        ),
    ],
)
def test_file_errors_name_the_file_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_unknown_key_names_file_key_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "receiver:\n  intervall: 2.0\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: unknown key 'receiver.intervall'")
    assert "did you mean 'receiver.interval'?" in message
    assert "receiver.max_backoff" in message  # lists the known keys


def test_unknown_section_names_file_and_section(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "webb:\n  port: 1\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(error.value).startswith(f"{path}: unknown section 'webb' (did you mean 'web'?")


def test_unknown_empty_section_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown section 'nonsense'"):
        load(write(tmp_path / "bad.yaml", "nonsense:\n"))


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "receiver:\n  interval: [1,\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(error.value).startswith(f"{path}: not valid YAML")
    assert "line" in str(error.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load(tmp_path / "missing.yaml")


def test_error_in_user_layer_names_that_file(isolated: Path) -> None:
    home_file = write(
        isolated / "home" / ".config" / "overwatch" / "overwatch.yaml", "web:\n  port: x\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(env={})
    assert str(error.value) == f"{home_file}: web.port: expected an integer, got 'x'"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_list_of_strings_fields_are_validated() -> None:
    # No section uses list[str] yet; the validator supports it for the next engineer.
    assert config._convert(list[str], ["a", "b"], "s.k", "f.yaml") == ["a", "b"]
    with pytest.raises(ConfigError, match=r"^f\.yaml: s\.k\[1\]: expected a string, got 2$"):
        config._convert(list[str], ["a", 2], "s.k", "f.yaml")
    with pytest.raises(ConfigError, match="expected a list of strings, got 'a'"):
        config._convert(list[str], "a", "s.k", "f.yaml")


def test_consistency_error_blames_the_layer_that_broke_the_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "late.yaml", "status:\n  late_seconds: 600\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(error.value).startswith(f"{path}: status.dead_seconds: expected a number >=")
    with pytest.raises(ConfigError, match="^environment variable OVERWATCH_STATUS__DEAD_SECONDS: "):
        load(path, OVERWATCH_STATUS__DEAD_SECONDS="30")

"""Layered YAML settings, validated into typed, frozen dataclasses.

Why layered: the package ships documented defaults; an operator overrides a few
keys per user, per deployment directory, per invocation and per container, and
the later layer wins key by key. Layers, lowest to highest priority:

1. ``overwatch.yaml`` shipped with the package (the documented defaults; in the
   repository it is ``config/overwatch.yaml``, read through
   :func:`overwatch.resources.resource` so an installed wheel finds it too);
2. ``~/.config/overwatch/overwatch.yaml``;
3. ``./overwatch.yaml`` (the working directory);
4. an explicit ``--config FILE``;
5. environment variables ``OVERWATCH_<SECTION>__<KEY>``, e.g.
   ``OVERWATCH_RECEIVER__INTERVAL=2.5``. Values are read as YAML scalars, so
   numbers, ``true``/``false`` and ``[a, b]`` work; a ``str`` key takes the raw
   text unchanged. Variables without the ``__`` separator (``OVERWATCH_FOO``)
   are not settings and are ignored.

Why typed: a typo or a wrong type must stop a process at start-up with a
message naming the file (or environment variable), the dotted key and what was
expected, not surface hours later as a crash in the receiver.

Decisions: an ``int`` is accepted where a ``float`` is expected; a ``bool`` must
be a real YAML boolean; a mapping or list value replaces the lower layer's value
as a whole (so a deployment can remove entries); relative paths are kept as
written and are relative to the working directory of the process.

Adding a key: add one field (type and default, optionally bounds via
:func:`_bounded`) to a section dataclass below, and one commented line in
``config/overwatch.yaml``. The unit tests check that the YAML loads to exactly
the dataclass defaults, so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from overwatch.resources import resource

logger = logging.getLogger(__name__)

DEFAULTS_FILE = resource("overwatch.yaml")
CONFIG_FILE_NAME = "overwatch.yaml"
ENV_PREFIX = "OVERWATCH_"
ENV_SEPARATOR = "__"
_YAML11_EXPONENT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


class ConfigError(ValueError):
    """A setting is unknown or invalid; the message names where, which key and what to write."""


def _bounded(
    default: Any, *, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> Any:
    """Declare a numeric field with bounds, so nonsense (a zero poll interval) fails at start-up."""
    bounds = {
        name: value for name, value in (("gt", gt), ("ge", ge), ("le", le)) if value is not None
    }
    return field(default=default, metadata=bounds)


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class DataSettings:
    """Where the cumulative snapshots (the source of truth) and caches live."""

    data_dir: str = "data"
    timezone: str = field(default="UTC", metadata={"check": "timezone"})


@dataclass(frozen=True)
class DatabaseSettings:
    """Which ZODB storage holds the metadata (file://, zeo:// or RelStorage)."""

    uri: str = "file://data/overwatch.fs"


@dataclass(frozen=True)
class ReceiverSettings:
    """How snapshots are fetched from senders and written to disk."""

    interval: float = _bounded(1.0, gt=0)
    jitter: float = _bounded(0.0, ge=0, le=0.9)
    timeout: float = _bounded(5.0, gt=0)
    max_backoff: float = _bounded(30.0, gt=0)
    max_message_bytes: int = _bounded(268_435_456, gt=0)
    pending_limit_bytes: int = _bounded(1_073_741_824, ge=0)
    fsync: bool = True
    notify_address: str = "tcp://127.0.0.1:8851"
    heartbeat_interval: float = _bounded(5.0, gt=0)
    max_clock_skew: float = _bounded(300.0, gt=0)
    restamp_future: bool = False
    stop_wait: float = _bounded(5.0, ge=0)
    fallback_dir: str = ""
    quarantine_max_bytes: int = _bounded(67_108_864, ge=0)
    quarantine_max_files: int = _bounded(1000, ge=0)
    quarantine_payload_bytes: int = _bounded(1_048_576, ge=0)
    quarantine_index_bytes: int = _bounded(16_777_216, gt=0)


def _default_events_histograms() -> dict[str, str]:
    return {"EMC": "EMCTrigger/events", "TPC": "events", "HLT": "events"}


@dataclass(frozen=True)
class ProcessingSettings:
    """How often snapshots are turned into slices, trends and checks."""

    interval: float = _bounded(10.0, gt=0)
    ongoing_minutes: float = _bounded(5.0, ge=0)
    events_histogram: dict[str, str] = field(default_factory=_default_events_histograms)
    reset_tolerance: float = _bounded(1e-6, ge=0)
    cache_fsync: bool = False
    checks_file: str = ""
    events_address: str = "tcp://127.0.0.1:8852"
    retry_seconds: float = _bounded(10.0, gt=0)
    retry_max_seconds: float = _bounded(600.0, gt=0)


@dataclass(frozen=True)
class WebSettings:
    """Where the web server listens and how it protects logins."""

    host: str = "127.0.0.1"
    port: int = _bounded(8850, ge=1, le=65535)
    secret_key_file: str = "data/.secret_key"
    login_attempts_per_minute: int = _bounded(10, gt=0)
    secure_cookies: bool = False
    slice_cache_entries: int = _bounded(16, ge=1)
    layouts_dir: str = ""
    max_streams: int = _bounded(256, ge=1)
    database_timeout: float = _bounded(3.0, gt=0, le=60)
    metrics_token: str = ""


@dataclass(frozen=True)
class StatusSettings:
    """When a silent data source is shown as late, then as dead."""

    late_seconds: float = _bounded(60.0, gt=0)
    dead_seconds: float = _bounded(300.0, gt=0)


@dataclass(frozen=True)
class SimulatorSettings:
    """The built-in sender used by the demo and the tests."""

    event_rate: float = _bounded(1000.0, ge=0)
    interval: float = _bounded(1.0, gt=0)


def _default_raise_on() -> list[str]:
    return ["Bad"]


@dataclass(frozen=True)
class AlarmSettings:
    """Which check results open and close alarms, and where their notifications go."""

    raise_on: list[str] = field(default_factory=_default_raise_on)
    open_after: int = _bounded(2, ge=1)
    close_after: int = _bounded(3, ge=1)
    renotify_minutes: float = _bounded(30.0, gt=0)
    smtp_host: str = ""
    smtp_port: int = _bounded(25, ge=1, le=65535)
    mail_from: str = "overwatch@localhost"
    mail_to: list[str] = field(default_factory=list)
    webhook_url: str = ""
    retry_attempts: int = _bounded(5, ge=1)
    queue_size: int = _bounded(1000, ge=1)


@dataclass(frozen=True)
class CompareSettings:
    """Reference runs the web pages compare each subsystem with, and the test used."""

    reference_runs: dict[str, int] = field(default_factory=dict)
    test: str = "chi2"
    threshold: float = _bounded(1e-5, ge=0, le=1)


@dataclass(frozen=True)
class Settings:
    """All settings of one Overwatch process; one attribute per YAML section."""

    data: DataSettings = field(default_factory=DataSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    receiver: ReceiverSettings = field(default_factory=ReceiverSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    web: WebSettings = field(default_factory=WebSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    compare: CompareSettings = field(default_factory=CompareSettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dicts (deep copies), e.g. to show the effective settings or dump YAML."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- validation


def _section_classes() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _section_fields(section_cls: type) -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(section_cls)}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def _expected(hint: Any) -> str:
    """Human wording of a field type, as used in 'expected ...' messages."""
    origin = typing.get_origin(hint)
    if origin is list:
        return "a list of strings"
    if origin is dict and typing.get_args(hint)[1] is int:
        return "a mapping of strings to integers"
    if origin is dict:
        return "a mapping of strings to strings"
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}[hint]


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    """Check one value against its declared type; return it normalised (int -> float)."""

    def fail(expected: str, where: str = key, got: Any = value) -> ConfigError:
        return ConfigError(f"{source}: {where}: expected {expected}, got {_show(got)}")

    origin = typing.get_origin(hint)
    if hint is str:
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if hint is float:
        if isinstance(value, str) and _YAML11_EXPONENT.match(value):
            value = float(value)  # PyYAML (YAML 1.1) reads 1e-6 as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        if not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if origin is list and typing.get_args(hint) == (str,):
        if not isinstance(value, list):
            raise fail("a list of strings")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise fail("a string", f"{key}[{index}]", item)
        return list(value)
    if origin is dict and typing.get_args(hint) == (str, str):
        if not isinstance(value, dict):
            raise fail("a mapping of strings to strings")
        for name, item in value.items():
            if not isinstance(name, str):
                raise fail("string keys", key, name)
            if not isinstance(item, str):
                raise fail("a string", f"{key}.{name}", item)
        return dict(value)
    if origin is dict and typing.get_args(hint) == (str, int):
        if not isinstance(value, dict):
            raise fail("a mapping of strings to integers")
        for name, item in value.items():
            if not isinstance(name, str):
                raise fail("string keys", key, name)
            if isinstance(item, bool) or not isinstance(item, int):
                raise fail("an integer", f"{key}.{name}", item)
        return dict(value)
    raise TypeError(f"settings field {key} has an unsupported type {hint!r}")


def _check_bounds(
    meta: Mapping[str, Any], value: Any, written: Any, hint: Any, key: str, source: str
) -> None:
    """Compare the converted ``value`` with the field's bounds; report what was ``written``."""
    noun = _expected(hint)
    for name, op, ok in (
        ("gt", ">", lambda v, b: v > b),
        ("ge", ">=", lambda v, b: v >= b),
        ("le", "<=", lambda v, b: v <= b),
    ):
        if name in meta and not ok(value, meta[name]):
            raise ConfigError(
                f"{source}: {key}: expected {noun} {op} {meta[name]}, got {_show(written)}"
            )


def _section_schema(section: str, source: str) -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    """Fields of a known section; an unknown section is an error naming the layer."""
    sections = _section_classes()
    if section not in sections:
        raise ConfigError(
            f"{source}: unknown section '{section}' ({_suggest(section, list(sections))}"
            f"known sections: {', '.join(sections)})"
        )
    return _section_fields(sections[section])


def _validate_value(section: str, key: str, value: Any, source: str) -> Any:
    """Validate one (section, key, value) from one layer; errors name that layer."""
    fields = _section_schema(section, source)
    dotted = f"{section}.{key}"
    if key not in fields:
        known = [f"{section}.{name}" for name in fields]
        raise ConfigError(
            f"{source}: unknown key '{dotted}' ({_suggest(dotted, known)}"
            f"known keys: {', '.join(known)})"
        )
    hint, spec = fields[key]
    converted = _convert(hint, value, dotted, source)
    _check_bounds(spec.metadata, converted, value, hint, dotted, source)
    if spec.metadata.get("check") == "timezone":
        from overwatch.timestamps import check_timezone  # pendulum: only when a zone is set

        try:
            check_timezone(converted)
        except ValueError as error:
            raise ConfigError(f"{source}: {dotted}: {error}") from None
    return converted


def validate_layer(data: Mapping[Any, Any], source: str) -> dict[str, dict[str, Any]]:
    """Validate a whole YAML document: a mapping of sections, each a mapping of keys."""
    result: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        _section_schema(str(section), source)
        if values is None:  # a section whose keys are all commented out
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: {section}: expected a mapping of keys, got {_show(values)}"
            )
        for key, value in values.items():
            result.setdefault(str(section), {})[str(key)] = _validate_value(
                str(section), str(key), value, source
            )
    return result


def read_yaml_text(
    path: Path, error: type[Exception] = ConfigError, what: str = "config file"
) -> Any:
    """The YAML document in ``path``; ``error`` names the file (``what``) and why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from exc


def read_yaml(path: Path) -> dict[Any, Any]:
    """A configuration file: a mapping of sections (empty when the file is)."""
    data = read_yaml_text(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {_show(data)}"
        )
    return data


def _env_layer(env: Mapping[str, str]) -> list[tuple[str, str, Any, str]]:
    """(section, key, validated value, source) for every OVERWATCH_<SECTION>__<KEY> variable."""
    entries = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name[len(ENV_PREFIX) :]:
            continue
        section, key = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR, 1)
        source = f"environment variable {name}"
        raw = env[name]
        fields = _section_schema(section, source)
        hint = fields[key][0] if key in fields else None
        value: Any = raw
        if hint is not str:
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw  # reported below as "expected ..., got '<raw>'"
            if value is None:
                value = raw
        entries.append((section, key, _validate_value(section, key, value, source), source))
    return entries


def _check_consistency(
    values: dict[str, dict[str, Any]], sources: dict[str, tuple[int, str]]
) -> None:
    """Rules between keys; the error blames the highest-priority layer that set either key."""
    late = values.get("status", {}).get("late_seconds", StatusSettings.late_seconds)
    dead = values.get("status", {}).get("dead_seconds", StatusSettings.dead_seconds)
    if dead < late:
        blamed = [
            sources[k] for k in ("status.dead_seconds", "status.late_seconds") if k in sources
        ]
        source = max(blamed)[1] if blamed else "built-in defaults"
        raise ConfigError(
            f"{source}: status.dead_seconds: expected a number >= status.late_seconds ({late}), "
            f"got {_show(dead)}"
        )


def _default_layers(search_user_dirs: bool) -> list[Path]:
    paths = []
    if DEFAULTS_FILE.is_file():
        paths.append(DEFAULTS_FILE)
    else:
        logger.warning("defaults file %s is missing; using the built-in defaults", DEFAULTS_FILE)
    if search_user_dirs:
        for path in (
            Path.home() / ".config" / "overwatch" / CONFIG_FILE_NAME,
            Path.cwd() / CONFIG_FILE_NAME,
        ):
            if path.is_file():
                paths.append(path)
    return paths


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    search_user_dirs: bool = True,
) -> Settings:
    """Read every layer, validate each against the schema and return the merged settings.

    ``env`` defaults to ``os.environ``; tests pass a dict. ``search_user_dirs=False``
    skips ``~/.config/overwatch`` and ``./overwatch.yaml`` (reproducible runs).
    Raises :class:`ConfigError` naming the file or variable, the key and the expectation.
    """
    paths = _default_layers(search_user_dirs)
    if config_file is not None:
        explicit = Path(config_file).expanduser()
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found (given with --config)")
        paths.append(explicit)

    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, tuple[int, str]] = {}  # dotted key -> (layer rank, file or variable)
    for rank, path in enumerate(paths):
        for section, keys in validate_layer(read_yaml(path), str(path)).items():
            values.setdefault(section, {}).update(keys)
            sources.update({f"{section}.{key}": (rank, str(path)) for key in keys})
        logger.debug("loaded settings layer %s", path)
    for section, key, value, source in _env_layer(os.environ if env is None else env):
        values.setdefault(section, {})[key] = value
        sources[f"{section}.{key}"] = (len(paths), source)
        logger.debug("setting %s.%s from %s", section, key, source)

    _check_consistency(values, sources)
    return Settings(
        **{name: cls(**values.get(name, {})) for name, cls in _section_classes().items()}
    )

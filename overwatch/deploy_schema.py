"""The deployment file (``overwatch deploy DEPLOY.yaml``): read and validated into a plan.

What it owns: the schema of a deployment file (documented key by key in
``config/deploy.example.yaml``) and its checks. Nothing here starts a process:
:mod:`overwatch.deploy` renders a :class:`Deployment` into supervisord's
configuration and runs it.

Decisions:

- Errors are :class:`DeployError` and read like :mod:`overwatch.config`'s:
  the file, the dotted key (``receivers[1].interval``) and what is expected,
  with a suggestion for a misspelt key. Everything is checked before anything
  starts: unknown keys, types, ports (1-65535), two workers owning one
  subsystem, a received subsystem no worker owns, a port used twice.
- Relative paths (``data_dir``, the simulator's ``faults``, a replay's
  ``source``) are relative to the working directory, as in the settings files;
  the ZEO ``storage`` file is relative to ``data_dir``.
- ``database``: either ``zeo`` (a ZEO server the deployment runs: listen address
  and storage file) or ``uri`` (an external database: ``zeo://`` of a server run
  elsewhere, or ``postgresql://``). ``file://`` is refused: a file storage is
  one process only and a deployment has several.
- A receiver with ``pattern: upload`` starts no process: uploads go through the
  web server (``POST /api/upload``); it only documents the source (and, like the
  others, must be owned by a worker).
- ``processing``: a list of workers, each owning ``subsystems`` (disjoint); a
  worker without ``subsystems`` owns every subsystem and must then be the only
  one. Absent: one worker owning everything.
- ``notifiers`` are the ``alarms`` settings (mail, webhook, when to raise) and
  ``settings`` any other settings layer (``receiver.jitter``, ...); both are
  checked by :mod:`overwatch.config` itself and handed to every process.
- ``simulator`` or ``replay`` (for demos, not both): a sender run beside the
  receivers, which connect to its ``bind`` address.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overwatch.config import ConfigError, read_yaml_text, validate_layer
from overwatch.names import is_subsystem
from overwatch.resources import resource

#: ``simulator.faults: shipped``: the demo's fault schedule shipped with the package.
SHIPPED_FAULTS = "shipped"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}")
_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9_.-]+|\*):(?P<port>[0-9]+)")
_ENDPOINT = re.compile(r"tcp://(?P<address>.+)|ipc://.+")


class DeployError(ValueError):
    """The deployment file is wrong; the message names the file, the key and what to write."""


@dataclass(frozen=True)
class ZeoServer:
    """A ZEO server the deployment runs."""

    host: str
    port: int
    storage: Path

    @property
    def uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "*", "") else self.host
        return f"zeo://{host}:{self.port}"


@dataclass(frozen=True)
class Database:
    uri: str
    zeo: ZeoServer | None = None


@dataclass(frozen=True)
class Receiver:
    name: str
    subsystem: str
    pattern: str  # req, sub or upload (no process: the web server takes uploads)
    connect: str | None = None
    interval: float | None = None
    jitter: float | None = None


@dataclass(frozen=True)
class Worker:
    name: str
    subsystems: tuple[str, ...] = ()  # empty: every subsystem (the only worker)


@dataclass(frozen=True)
class Web:
    host: str = "127.0.0.1"
    port: int = 8850
    workers: int = 2
    threads: int = 4


@dataclass(frozen=True)
class Simulator:
    bind: str
    subsystems: tuple[str, ...] = ("EMC", "TPC", "HLT")
    run: int = 1
    seed: int = 1
    faults: Path | None = None


@dataclass(frozen=True)
class Replay:
    """A replay sender: ``overwatch replay SOURCE --stay`` with these options."""

    source: Path
    speed: str = "1"
    loop: bool = False
    timezone: str | None = None
    run_as: int | None = None
    bind: str = ""

    def arguments(self) -> list[str]:
        args = [str(self.source), "--speed", self.speed]
        if self.loop:
            args.append("--loop")
        if self.timezone:
            args += ["--timezone", self.timezone]
        if self.run_as is not None:
            args += ["--run-as", str(self.run_as)]
        return args


@dataclass(frozen=True)
class Deployment:
    source: str  # the file it was read from (for messages)
    data_dir: Path
    database: Database
    receivers: tuple[Receiver, ...]
    workers: tuple[Worker, ...]
    web: Web = field(default_factory=Web)
    notifiers: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sender: Simulator | Replay | None = None

    def settings_layer(self) -> dict[str, dict[str, Any]]:
        """The settings every process of the deployment reads (``--config``)."""
        layer: dict[str, dict[str, Any]] = {k: dict(v) for k, v in self.settings.items()}
        layer.setdefault("data", {})["data_dir"] = str(self.data_dir)
        layer.setdefault("database", {})["uri"] = self.database.uri
        layer.setdefault("web", {}).setdefault(
            "secret_key_file", str(self.data_dir / ".secret_key")
        )
        if self.notifiers:
            layer.setdefault("alarms", {}).update(self.notifiers)
        return layer


# --------------------------------------------------------------------------- reading

TOP_KEYS = ("data_dir", "database", "receivers", "processing", "web", "notifiers",
            "settings", "simulator", "replay")  # fmt: skip


def load_deployment(path: str | Path) -> Deployment:
    """Read and check ``path``; :class:`DeployError` says what is wrong and where."""
    path = Path(path)
    data = read_yaml_text(path, DeployError, "deployment file")
    return parse_deployment(data, str(path))


def parse_deployment(data: Any, source: str) -> Deployment:
    """Check a deployment document (as YAML loads it) read from ``source``."""
    at = _Where(source)
    top = at.mapping(data, "", TOP_KEYS, required=("data_dir", "database"))
    data_dir = Path(at.text(top["data_dir"], "data_dir")).expanduser().resolve()
    database = _database(at, top["database"], data_dir)
    receivers = tuple(
        _receiver(at, item, f"receivers[{i}]")
        for i, item in enumerate(at.sequence(top.get("receivers", []), "receivers"))
    )
    seen: dict[str, int] = {}
    for i, receiver in enumerate(receivers):
        if receiver.subsystem in seen:
            raise at.error(
                f"receivers[{i}].subsystem",
                f"one receiver per subsystem: {receiver.subsystem} already has "
                f"receivers[{seen[receiver.subsystem]}]",
            )
        seen[receiver.subsystem] = i
    _unique(at, [(r.name, f"receivers[{i}].name") for i, r in enumerate(receivers)], "name")
    workers = _workers(at, top.get("processing"), receivers)
    web = _web(at, top.get("web"))
    notifiers = at.mapping(top.get("notifiers") or {}, "notifiers", None)
    settings = at.mapping(top.get("settings") or {}, "settings", None)
    _check_settings(at, notifiers, settings)
    if "simulator" in top and "replay" in top:
        raise at.error("replay", "a simulator or a replay, not both (remove one)")
    sender: Simulator | Replay | None = None
    if top.get("simulator") is not None:
        sender = _simulator(at, top["simulator"])
    elif top.get("replay") is not None:
        sender = _replay(at, top["replay"])
    deployment = Deployment(
        source=source, data_dir=data_dir, database=database, receivers=receivers,
        workers=workers, web=web, notifiers=dict(notifiers),
        settings={str(k): dict(v or {}) for k, v in settings.items()}, sender=sender,
    )  # fmt: skip
    _ports_once(at, deployment)
    return deployment


class _Where:
    """Typed reads that fail with the file, the dotted key and what was expected."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> DeployError:
        return DeployError(
            f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}"
        )

    def mapping(
        self, value: Any, key: str, known: tuple[str, ...] | None, required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping of keys, got {_show(value)}")
        prefix = f"{key}." if key else ""
        for name in value:
            if known is not None and name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
                raise self.error(
                    f"{prefix}{name}", f"unknown key ({hint}known keys: {', '.join(known)})"
                )
        for name in required:
            if value.get(name) is None:
                raise self.error(f"{prefix}{name}", "required key is missing")
        return {str(k): v for k, v in value.items()}

    def sequence(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_show(value)}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty text, got {_show(value)}")
        return value.strip()

    def number(self, value: Any, key: str, *, gt: float = 0, integer: bool = False) -> Any:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not value > gt:
            what = "a whole number" if integer else "a number"
            raise self.error(key, f"expected {what} > {gt:g}, got {_show(value)}")
        return value

    def port(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.error(key, f"expected a port number from 1 to 65535, got {_show(value)}")
        return value

    def address(self, value: Any, key: str) -> tuple[str, int]:
        """``HOST:PORT`` (a listen or connect address)."""
        match = _ADDRESS.fullmatch(str(value)) if isinstance(value, str) else None
        if match is None:
            raise self.error(key, f"expected HOST:PORT (e.g. 127.0.0.1:8100), got {_show(value)}")
        return match["host"], self.port(int(match["port"]), key)

    def endpoint(self, value: Any, key: str) -> str:
        """A ZMQ endpoint: ``tcp://HOST:PORT`` or ``ipc://PATH``."""
        match = _ENDPOINT.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.error(
                key, f"expected tcp://HOST:PORT or ipc://PATH (a ZMQ address), got {_show(value)}"
            )
        if match["address"] is not None:
            self.address(match["address"], key)
        return value

    def subsystem(self, value: Any, key: str) -> str:
        if not is_subsystem(value):
            raise self.error(
                key, f"expected a subsystem name (letters and digits, e.g. EMC), got {_show(value)}"
            )
        return str(value)

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise self.error(
                key,
                f"expected a name of letters, digits, '-' and '_' (e.g. emc), got {_show(value)}",
            )
        return value

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {_show(value)}")
        return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unique(at: _Where, named: list[tuple[str, str]], what: str) -> None:
    first: dict[str, str] = {}
    for name, key in named:
        if name in first:
            raise at.error(key, f"{what} {name!r} is already used by {first[name]}")
        first[name] = key


def _database(at: _Where, value: Any, data_dir: Path) -> Database:
    db = at.mapping(value, "database", ("zeo", "uri"))
    if ("zeo" in db) == ("uri" in db):
        raise at.error(
            "database", "expected either 'zeo' (a ZEO server this deployment runs) or 'uri' "
            "(an external database, e.g. postgresql://overwatch@db:5432/overwatch)",
        )  # fmt: skip
    if "uri" in db:
        uri = at.text(db["uri"], "database.uri")
        if not uri.startswith(("zeo://", "postgresql://")):
            raise at.error(
                "database.uri",
                f"expected zeo://HOST:PORT or postgresql://USER@HOST:PORT/DBNAME, got {_show(uri)}"
                + (" (a file storage is one process only; a deployment has several)"
                   if uri.startswith("file://") else ""),
            )  # fmt: skip
        if uri.startswith("zeo://"):
            at.address(uri.removeprefix("zeo://"), "database.uri")
        return Database(uri=uri)
    zeo = at.mapping(db["zeo"], "database.zeo", ("address", "storage"), required=("address",))
    host, port = at.address(zeo["address"], "database.zeo.address")
    storage = Path(at.text(zeo.get("storage", "overwatch.fs"), "database.zeo.storage"))
    server = ZeoServer(host=host, port=port, storage=data_dir / storage.expanduser())
    return Database(uri=server.uri, zeo=server)


def _receiver(at: _Where, value: Any, key: str) -> Receiver:
    known = ("name", "subsystem", "pattern", "connect", "interval", "jitter")
    item = at.mapping(value, key, known, required=("subsystem", "pattern"))
    subsystem = at.subsystem(item["subsystem"], f"{key}.subsystem")
    pattern = at.choice(item["pattern"], f"{key}.pattern", ("req", "sub", "upload"))
    name = at.name(item.get("name", f"receiver-{subsystem}"), f"{key}.name")
    if pattern == "upload":
        for extra in ("connect", "interval", "jitter"):
            if extra in item:
                raise at.error(
                    f"{key}.{extra}",
                    "an upload receiver has no process (uploads go through the web server, "
                    "POST /api/upload): remove this key",
                )
        return Receiver(name=name, subsystem=subsystem, pattern=pattern)
    if "connect" not in item:
        raise at.error(f"{key}.connect", "required key is missing (the sender's tcp://HOST:PORT)")
    connect = at.endpoint(item["connect"], f"{key}.connect")
    interval = item.get("interval")
    if interval is not None:
        interval = at.number(interval, f"{key}.interval")
    jitter = item.get("jitter")
    if jitter is not None:
        jitter = at.number(jitter, f"{key}.jitter", gt=-1e-12)
        if jitter > 0.9:
            raise at.error(f"{key}.jitter", f"expected a fraction from 0 to 0.9, got {jitter!r}")
    return Receiver(name, subsystem, pattern, connect, interval, jitter)


def _workers(at: _Where, value: Any, receivers: tuple[Receiver, ...]) -> tuple[Worker, ...]:
    items = at.sequence(value, "processing") if value is not None else [{}]
    if not items:
        raise at.error("processing", "expected at least one worker (or leave the key out)")
    workers: list[Worker] = []
    owner: dict[str, str] = {}
    for i, raw in enumerate(items):
        key = f"processing[{i}]"
        item = at.mapping(raw, key, ("name", "subsystems"))
        subsystems = tuple(
            at.subsystem(s, f"{key}.subsystems[{j}]")
            for j, s in enumerate(at.sequence(item.get("subsystems"), f"{key}.subsystems"))
        )
        if "subsystems" in item and not subsystems:
            raise at.error(f"{key}.subsystems", "expected at least one subsystem")
        for j, subsystem in enumerate(subsystems):
            if subsystem in owner:
                raise at.error(
                    f"{key}.subsystems[{j}]",
                    f"{subsystem} is already owned by {owner[subsystem]}: a subsystem belongs "
                    "to one worker",
                )
            owner[subsystem] = key
        default = "processing" if len(items) == 1 else "-".join(s.lower() for s in subsystems)
        name = at.name(item.get("name", default or f"worker{i}"), f"{key}.name")
        workers.append(Worker(name=name, subsystems=subsystems))
    if len(workers) > 1:
        for i, worker in enumerate(workers):
            if not worker.subsystems:
                raise at.error(
                    f"processing[{i}].subsystems",
                    "required with several workers (a worker without it owns every subsystem)",
                )
        _unique(at, [(w.name, f"processing[{i}].name") for i, w in enumerate(workers)], "name")
    if any(w.subsystems for w in workers):
        for i, receiver in enumerate(receivers):
            if receiver.subsystem not in owner:
                raise at.error(
                    f"receivers[{i}].subsystem",
                    f"{receiver.subsystem} is owned by no worker: add it to the subsystems "
                    "of one under 'processing'",
                )
    return tuple(workers)


def _web(at: _Where, value: Any) -> Web:
    web = at.mapping(value, "web", ("host", "port", "workers", "threads"))
    defaults = Web()
    return Web(
        host=at.text(web.get("host", defaults.host), "web.host"),
        port=at.port(web.get("port", defaults.port), "web.port"),
        workers=at.number(web.get("workers", defaults.workers), "web.workers", integer=True),
        threads=at.number(web.get("threads", defaults.threads), "web.threads", integer=True),
    )


def _check_settings(at: _Where, notifiers: dict[str, Any], settings: dict[str, Any]) -> None:
    """``notifiers`` and ``settings`` are checked by the settings' own schema."""
    taken = {"data": "data_dir", "database": "database"}
    for section, values in settings.items():
        for key in values or {}:
            if section == "alarms" or (section, key) in (("data", "data_dir"), ("database", "uri")):
                own = "notifiers" if section == "alarms" else taken[section]
                raise at.error(
                    f"settings.{section}.{key}", f"set it with the deployment's '{own}' key"
                )
    try:
        validate_layer({"alarms": notifiers}, f"{at.source}: notifiers")
        validate_layer(settings, f"{at.source}: settings")
    except ConfigError as error:
        raise DeployError(str(error)) from None


def _simulator(at: _Where, value: Any) -> Simulator:
    known = ("bind", "subsystems", "run", "seed", "faults")
    item = at.mapping(value, "simulator", known, required=("bind",))
    subsystems = tuple(
        at.subsystem(s, f"simulator.subsystems[{j}]")
        for j, s in enumerate(at.sequence(item.get("subsystems", ["EMC", "TPC", "HLT"]),
                                          "simulator.subsystems"))
    )  # fmt: skip
    faults = item.get("faults")
    if faults is not None:
        text = at.text(faults, "simulator.faults")
        shipped = text == SHIPPED_FAULTS
        faults = resource("faults/demo.yaml") if shipped else Path(text).expanduser().resolve()
    return Simulator(
        bind=at.endpoint(item["bind"], "simulator.bind"),
        subsystems=subsystems,
        run=at.number(item.get("run", 1), "simulator.run", integer=True),
        seed=at.number(item.get("seed", 1), "simulator.seed", gt=-1, integer=True),
        faults=faults,
    )


def _replay(at: _Where, value: Any) -> Replay:
    known = ("source", "bind", "speed", "loop", "timezone", "run_as")
    item = at.mapping(value, "replay", known, required=("source", "bind"))
    speed = str(item.get("speed", "1"))
    if speed != "max":
        try:
            ok = float(speed) > 0
        except ValueError:
            ok = False
        if not ok:
            raise at.error("replay.speed", f"expected a number > 0 or max, got {_show(speed)}")
    loop = item.get("loop", False)
    if not isinstance(loop, bool):
        raise at.error("replay.loop", f"expected true or false, got {_show(loop)}")
    run_as = item.get("run_as")
    return Replay(
        source=Path(at.text(item["source"], "replay.source")).expanduser().resolve(),
        speed=speed,
        loop=loop,
        timezone=at.text(item["timezone"], "replay.timezone") if "timezone" in item else None,
        run_as=None if run_as is None else at.number(run_as, "replay.run_as", integer=True),
        bind=at.endpoint(item["bind"], "replay.bind"),
    )


def _ports_once(at: _Where, deployment: Deployment) -> None:
    """A port this machine listens on is listened on by one program only."""
    used: list[tuple[int, str]] = [(deployment.web.port, "web.port")]
    if deployment.database.zeo is not None:
        used.append((deployment.database.zeo.port, "database.zeo.address"))
    if deployment.sender is not None:
        match = re.fullmatch(r"tcp://.+:(\d+)", deployment.sender.bind)
        if match:
            kind = "simulator" if isinstance(deployment.sender, Simulator) else "replay"
            used.append((int(match[1]), f"{kind}.bind"))
    first: dict[int, str] = {}
    for port, key in used:
        if port in first:
            raise at.error(key, f"port {port} is already used by {first[port]}")
        first[port] = key

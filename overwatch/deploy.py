"""`overwatch deploy DEPLOY.yaml`: a deployment file run under supervisord.

What it owns: turning a checked :class:`~overwatch.deploy_schema.Deployment`
into programs (one per process: the ZEO server, the demo's sender, one
receiver per ZMQ source, one ``overwatch process`` per worker, the web
server), rendering them into supervisord's configuration
(``supervisord.conf.template``, package data) and running supervisord until
Ctrl-C or SIGTERM, which stop every program. ``overwatch demo`` is this with
the shipped ``config/deploy.demo.yaml`` plus a simulator or a replay; the
supervisord code here is the one both use.

Decisions:

- Every ``overwatch`` program reads one settings layer written beside the
  supervisord configuration, ``<data_dir>/overwatch.deploy.yaml`` (the
  deployment's ``settings``, ``notifiers`` as the ``alarms`` section, the data
  directory, the database URI, the web's key file), given with ``--config``;
  ``--data-dir`` and ``--db`` are also on each command line so ``ps`` tells
  which deployment a process belongs to.
- With several workers on one machine only the first binds the notice address
  (``receiver.notify_address``, where receivers announce new snapshots) and the
  live-events address; the others find new snapshots on their
  ``processing.interval`` pass (a ZMQ address is bound by one process).
- Everything that can refuse (the file, a busy port, a supervisord still
  running in the data directory) refuses before anything is written.
- The configuration, the settings layer, the pid file, the socket and the
  logs (``<data_dir>/logs/<program>.log``) live in the data directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from overwatch.deploy_schema import (
    DeployError,
    Deployment,
    Replay,
    Simulator,
    load_deployment,
)
from overwatch.resources import resource

log = logging.getLogger(__name__)

TEMPLATE = resource("supervisord.conf.template")
EXAMPLE = resource("deploy.example.yaml")
#: The lines around the template's program block, rendered once per program.
PROGRAM_BLOCK = ("; program block begin\n", "; program block end\n")
SETTINGS_FILE = "overwatch.deploy.yaml"
CONFIG_FILE = "supervisord.conf"


@dataclass(frozen=True)
class Program:
    """One supervisord program: its name, command line and start order."""

    name: str
    command: tuple[str, ...]
    priority: int
    autorestart: bool = True
    environment: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """The command line without the program's folder and the settings layer."""
        command = list(self.command)
        command[0] = Path(command[0]).name
        if command[1:2] == ["--config"]:
            del command[1:3]
        return " ".join(shlex.quote(part) for part in command)

    def command_line(self) -> str:
        # supervisord splits the line like a shell and expands %(name)s: a literal % is %%.
        return " ".join(shlex.quote(part).replace("%", "%%") for part in self.command)


def settings_path(deployment: Deployment) -> Path:
    return deployment.data_dir / SETTINGS_FILE


def config_path(deployment: Deployment) -> Path:
    return deployment.data_dir / CONFIG_FILE


def programs(deployment: Deployment, bin_dir: Path) -> list[Program]:
    """The processes of ``deployment``, in start order (database first, web last)."""
    overwatch = [str(bin_dir / "overwatch"), "--config", str(settings_path(deployment))]
    data_dir, uri = str(deployment.data_dir), deployment.database.uri
    result: list[Program] = []
    zeo = deployment.database.zeo
    if zeo is not None:
        command = (str(bin_dir / "runzeo"), "-a", f"{zeo.host}:{zeo.port}", "-f", str(zeo.storage))
        result.append(Program("zeo", command, 10))
    sender = deployment.sender
    if isinstance(sender, Simulator):
        command = [*overwatch, "simulate", "--subsystems", ",".join(sender.subsystems),
                   "--bind", sender.bind, "--pattern", "rep", "--run", str(sender.run),
                   "--seed", str(sender.seed)]  # fmt: skip
        if sender.faults is not None:
            command += ["--faults", str(sender.faults)]
        result.append(Program("simulator", tuple(command), 20))
    elif isinstance(sender, Replay):
        command = [*overwatch, "replay", *sender.arguments(), "--bind", sender.bind,
                   "--pattern", "rep", "--stay"]  # fmt: skip
        # A replay that ended must not start again: it would serve every snapshot twice.
        result.append(Program("replay", tuple(command), 20, autorestart=False))
    for receiver in deployment.receivers:
        if receiver.pattern == "upload":
            continue  # uploads go through the web server (POST /api/upload)
        command = [*overwatch, "receive", "--subsystem", receiver.subsystem,
                   "--connect", str(receiver.connect), "--pattern", receiver.pattern]  # fmt: skip
        if receiver.interval is not None:
            command += ["--interval", f"{receiver.interval:g}"]
        if receiver.jitter is not None:
            command += ["--jitter", f"{receiver.jitter:g}"]
        result.append(Program(receiver.name, (*command, "--data-dir", data_dir), 30))
    for index, worker in enumerate(deployment.workers):
        command = [*overwatch, "process", "--data-dir", data_dir, "--db", uri]
        if worker.subsystems:
            command += ["--subsystems", ",".join(worker.subsystems), "--worker", worker.name]
        name = worker.name if worker.name == "processing" else f"processing-{worker.name}"
        # One process binds an address: the first worker hears the receivers' notices.
        quiet = {
            "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": "",
            "OVERWATCH_PROCESSING__EVENTS_ADDRESS": "",
        }
        result.append(Program(name, tuple(command), 40, environment=quiet if index else {}))
    web = deployment.web
    command = [*overwatch, "web", "--db", uri, "--data-dir", data_dir, "--host", web.host,
               "--port", str(web.port), "--workers", str(web.workers),
               "--threads", str(web.threads)]  # fmt: skip
    result.append(Program("web", tuple(command), 50))
    return result


def render(deployment: Deployment, bin_dir: Path) -> str:
    """supervisord's configuration of ``deployment`` (the template, one block per program)."""
    text = TEMPLATE.read_text()
    try:
        head, rest = text.split(PROGRAM_BLOCK[0], 1)
        block, tail = rest.split(PROGRAM_BLOCK[1], 1)
    except ValueError:
        raise ValueError(
            f"{TEMPLATE} has no program block (lines {PROGRAM_BLOCK[0].strip()!r} and "
            f"{PROGRAM_BLOCK[1].strip()!r}): reinstall overwatch"
        ) from None
    fields = {"data_dir": deployment.data_dir, "logs": deployment.data_dir / "logs"}
    rendered = [head.format(**fields)]
    for program in programs(deployment, bin_dir):
        environment = ",".join(f'{key}="{value}"' for key, value in program.environment.items())
        rendered.append(
            block.format(
                **fields,
                name=program.name,
                command=program.command_line(),
                priority=program.priority,
                autorestart=str(program.autorestart).lower(),
                environment=f"environment={environment}" if environment else "",
            ).replace("\n\n\n", "\n\n")
        )
    rendered.append(tail.format(**fields))
    return "".join(rendered)


def write_files(deployment: Deployment, bin_dir: Path) -> Path:
    """Write the settings layer and supervisord's configuration; the configuration's path."""
    (deployment.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    header = f"# Written by overwatch deploy from {deployment.source}; rewritten at each start.\n"
    layer = yaml.safe_dump(deployment.settings_layer(), sort_keys=True)
    settings_path(deployment).write_text(header + layer)
    config_path(deployment).write_text(render(deployment, bin_dir))
    return config_path(deployment)


# --------------------------------------------------------------------------- running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def running_supervisor(data_dir: Path) -> int | None:
    """The pid of a supervisord still running in ``data_dir``, else None."""
    try:
        pid = int((data_dir / "supervisord.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no pid file, garbage in it, or the process is gone
        return None
    return pid


class Supervisor:
    """supervisord running one configuration; stopping it stops every program.

    It runs in its own session, so a Ctrl-C in the terminal reaches only the
    Overwatch command, which then stops supervisord (and supervisord its
    programs, in reverse priority) instead of every process dying at once.
    """

    def __init__(self, bin_dir: Path, config: Path) -> None:
        self.process = subprocess.Popen(
            [str(bin_dir / "supervisord"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wait_until_stopped(supervisor: Supervisor, logs: Path, deadline: float | None = None) -> bool:
    """Wait for SIGTERM, Ctrl-C (KeyboardInterrupt, left to the caller) or ``deadline``
    (monotonic); False if supervisord itself stopped first."""
    stop_requested = False

    def request_stop(*_args: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop_requested and (deadline is None or time.monotonic() < deadline):
            if not supervisor.alive():
                log.error("supervisord stopped unexpectedly; see the logs in %s", logs)
                return False
            time.sleep(0.5)
        return True
    finally:
        signal.signal(signal.SIGTERM, previous)


def busy_ports(deployment: Deployment) -> list[str]:
    """The ports this deployment would listen on that something already holds."""
    busy = []
    if port_open(deployment.web.port):
        busy.append(f"web.port {deployment.web.port}")
    zeo = deployment.database.zeo
    if zeo is not None and port_open(zeo.port):
        busy.append(f"database.zeo.address port {zeo.port}")
    return busy


def run_deployment(
    deployment: Deployment, *, bin_dir: Path | None = None, say: Callable[[str], None] = log.info
) -> int:
    """Start every program of ``deployment`` and run until Ctrl-C or SIGTERM."""
    bin_dir = bin_dir or Path(sys.executable).parent
    pid = running_supervisor(deployment.data_dir)
    if pid is not None:
        log.error("a deployment is still running in %s (supervisord pid %d): stop it first",
                  deployment.data_dir, pid)  # fmt: skip
        return 2
    busy = busy_ports(deployment)
    if busy:
        log.error("%s: already in use: %s", deployment.source, ", ".join(busy))
        return 2
    config = write_files(deployment, bin_dir)
    supervisor = Supervisor(bin_dir, config)
    logs = deployment.data_dir / "logs"
    try:
        zeo = deployment.database.zeo
        if zeo is not None:
            wait_for(lambda: port_open(zeo.port), 60, "the ZEO server")
        wait_for(lambda: port_open(deployment.web.port), 90, "the web server")
        say(f"Overwatch running from {deployment.source}: "
            f"web at http://{deployment.web.host}:{deployment.web.port}/")  # fmt: skip
        say(f"  programs: {', '.join(p.name for p in programs(deployment, bin_dir))}")
        say(f"  logs: {logs}   (Ctrl-C stops everything)")
        return 0 if wait_until_stopped(supervisor, logs) else 1
    except TimeoutError as error:
        log.error("%s; see the logs in %s", error, logs)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping every program ...")
        supervisor.stop()


def describe(deployment: Deployment, bin_dir: Path) -> Iterable[str]:
    """What ``--check`` tells of a valid file."""
    listed = programs(deployment, bin_dir)
    yield f"{deployment.source}: valid, {len(listed)} programs under supervisord"
    for program in listed:
        yield f"  {program.name}: {program.summary()}"
    uploads = [r.subsystem for r in deployment.receivers if r.pattern == "upload"]
    if uploads:
        yield f"  uploads through the web server (POST /api/upload): {', '.join(uploads)}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="run a deployment file (database, receivers, workers, web) under supervisord",
        description="Read DEPLOY.yaml (see `overwatch deploy --example`), check it, render it "
        "into a supervisord configuration in its data directory and run every program "
        "until Ctrl-C or SIGTERM, which stop them all. Exit 2 for a wrong file.",
    )
    parser.add_argument("file", metavar="DEPLOY.yaml", nargs="?", help="the deployment file")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="check the file, start nothing")
    action.add_argument(
        "--render-only", action="store_true", help="print the supervisord configuration"
    )
    action.add_argument(
        "--example", action="store_true", help="print the documented example deployment file"
    )

    def handle(args: argparse.Namespace) -> int:
        if args.example:
            sys.stdout.write(EXAMPLE.read_text())
            return 0
        if args.file is None:
            parser.error("DEPLOY.yaml is required (see overwatch deploy --example)")
        try:
            deployment = load_deployment(args.file)
        except DeployError as error:
            print(f"overwatch deploy: {error}", file=sys.stderr)
            return 2
        bin_dir = Path(sys.executable).parent
        if args.check:
            for line in describe(deployment, bin_dir):
                print(line)
            return 0
        if args.render_only:
            sys.stdout.write(render(deployment, bin_dir))
            return 0
        return run_deployment(deployment, bin_dir=bin_dir, say=lambda s: print(s, flush=True))

    parser.set_defaults(handler=handle)

"""`overwatch demo`: the whole system on simulated detectors, in one command.

The demo is a deployment (:mod:`overwatch.deploy`): the shipped
``config/deploy.demo.yaml`` (package data, see :mod:`overwatch.resources`)
with the demo's options applied (data directory, web address, free loopback
ports for the database, the sender and the notice and event addresses, one
receiver per subsystem of the sender) plus the simulator (EMC, TPC, HLT) or a
replay. It is rendered into supervisord's configuration in the data directory
and run the way ``overwatch deploy`` runs a deployment: a ZEO server, the
sender, the receivers, processing and the web app. A login is created for the
demo and printed with the URL. Ctrl-C (or ``--duration``) stops everything
through supervisord.

With ``--duration`` the demo also checks itself before stopping, so it doubles
as a smoke test: every subsystem must have snapshots, slices and histograms
served as JSON, else it exits non-zero.

Faults: the simulator follows a fault schedule so that qualities turn Bad and
alarms open and close in the first minutes: ``config/faults/demo.yaml``
(package data, documented there) by default, another file with ``--faults
FILE``, none with ``--no-faults``. The schedule is checked before anything
starts (by ``overwatch simulate --list-faults``, the simulator's own check: a
malformed fault or one for a subsystem the demo does not simulate stops the
demo with that message) and printed, one line per fault with the minutes it
starts and ends.

The data directory (``--data-dir``, default ``demo-data``) is the demo's own:
the demo marks a folder it creates (or an empty one it is given) with a
``.overwatch-demo`` file, and only ever deletes a folder so marked, to start
afresh; ``--keep`` resumes in it instead (database, snapshots and logs kept).
A folder with anything else in it is refused and left alone, and so is one a
demo still runs in. The web port and the data directory are checked before
anything on disk is touched, so a second ``make demo`` beside a running one
stops with a message and harms nothing.

Replay (``--replay SOURCE``): instead of the simulator, ``overwatch replay
SOURCE --stay`` serves an archived or current run (a data directory, a run
folder, ...) at ``--speed`` (default 1, ``max`` allowed; ``--loop``,
``--timezone``/``--archived`` as for ``overwatch replay``, ``--run N`` sends
the runs as N, N+1, ...), with one receiver per subsystem of the source. The
source and options are checked first by ``overwatch replay --dry-run`` (the
replay's own check) and its plan printed; faults are the simulator's and are
refused with a replay. The replay program is not restarted once it ended (it
would serve every snapshot again), and it keeps answering "replay finished".
The receivers need no clock allowance: a replay sends past instants only.

This module (with :mod:`overwatch.deploy`) only starts processes and speaks HTTP; like the rest of the core
it imports none of the receivers, processing or webapp packages.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from overwatch import deploy
from overwatch.cli import add_timezone_options
from overwatch.deploy import free_port, port_open
from overwatch.deploy_schema import (
    Database,
    Deployment,
    Receiver,
    Replay,
    Simulator,
    ZeoServer,
    load_deployment,
)
from overwatch.resources import resource
from overwatch.store.archive import read_source

log = logging.getLogger(__name__)

DEMO_DEPLOYMENT = resource("deploy.demo.yaml")
DEFAULT_FAULTS = resource("faults/demo.yaml")
SUBSYSTEMS = ("EMC", "TPC", "HLT")
DEMO_USER = "demo"

#: What ``demo --replay`` replays: ``overwatch replay`` options (the replay's bind is the demo's).
ReplayChoice = Replay


@dataclass
class DemoPlan:
    """The demo's choices; :meth:`deployment` applies them to the shipped demo deployment."""

    data_dir: Path
    bin_dir: Path
    web_port: int
    run: int
    interval: float
    zeo_port: int
    sim_port: int
    notify_port: int
    events_port: int = 0
    web_host: str = "127.0.0.1"
    faults: Path | None = None
    replay: ReplayChoice | None = None
    subsystems: tuple[str, ...] = SUBSYSTEMS  # one receiver each
    checked: tuple[str, ...] | None = None  # those the check expects in ``run`` (all: None)

    @property
    def db_uri(self) -> str:
        return f"zeo://127.0.0.1:{self.zeo_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def config_path(self) -> Path:
        return deploy.config_path(self.deployment())

    def deployment(self) -> Deployment:
        """``config/deploy.demo.yaml`` with this plan's data directory, ports and sender."""
        base = load_deployment(DEMO_DEPLOYMENT)
        zeo = base.database.zeo
        if zeo is None or not base.receivers or not isinstance(base.sender, Simulator):
            raise ValueError(
                f"{DEMO_DEPLOYMENT} must run a ZEO server, a receiver and the simulator: "
                "reinstall overwatch"
            )
        bind = f"tcp://127.0.0.1:{self.sim_port}"
        storage = self.data_dir / zeo.storage.relative_to(base.data_dir)
        sender: Simulator | Replay
        if self.replay is None:
            sender = dataclasses.replace(
                base.sender, bind=bind, subsystems=SUBSYSTEMS, run=self.run, faults=self.faults
            )
        else:
            sender = dataclasses.replace(self.replay, bind=bind)
        model = base.receivers[0]
        receivers = tuple(
            Receiver(f"receiver-{s}", s, "req", bind, self.interval, model.jitter)
            for s in self.subsystems
        )
        settings = {key: dict(value) for key, value in base.settings.items()}
        settings.setdefault("receiver", {})["notify_address"] = (
            f"tcp://127.0.0.1:{self.notify_port}"
        )
        if self.events_port:
            settings.setdefault("processing", {})["events_address"] = (
                f"tcp://127.0.0.1:{self.events_port}"
            )
        return dataclasses.replace(
            base,
            data_dir=self.data_dir,
            database=Database(self.db_uri, ZeoServer("127.0.0.1", self.zeo_port, storage)),
            receivers=receivers,
            web=dataclasses.replace(base.web, host=self.web_host, port=self.web_port),
            settings=settings,
            sender=sender,
        )

    def sender_command(self) -> str:
        """The simulator's command line, or the replay's with ``replay``."""
        listed = deploy.programs(self.deployment(), self.bin_dir)
        return next(p for p in listed if p.name in ("simulator", "replay")).command_line()

    def render(self) -> str:
        """supervisord's configuration of this demo."""
        return deploy.render(self.deployment(), self.bin_dir)


class DemoReplayError(ValueError):
    """The demo cannot replay this source with these options; the message says why."""


def check_replay(bin_dir: Path, choice: ReplayChoice) -> ReplayCheck:
    """The replay's plan, checked by the replay itself (``overwatch replay --dry-run``), so
    the demo refuses exactly what its replay would refuse at start."""
    done = subprocess.run(
        [str(bin_dir / "overwatch"), "replay", *choice.arguments(), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["rejected by overwatch replay"])[-1]
        raise DemoReplayError(
            f"--replay {choice.source}: {reason.removeprefix('overwatch replay: ')}"
        )
    source = read_source(choice.source, timezone=choice.timezone or "UTC", run=choice.run_as)
    first = source.runs[0]
    return ReplayCheck(
        lines=[line for line in done.stdout.splitlines() if line.strip()],
        run=first if choice.run_as is None else choice.run_as,  # run_as renumbers from N
        subsystems=tuple(source.subsystems),
        run_subsystems=tuple(sorted({s.subsystem for s in source.snapshots if s.run == first})),
    )


@dataclass(frozen=True)
class ReplayCheck:
    """What the demo needs to know of a replay: its plan told, the first run it sends (the
    one the demo checks), every subsystem (one receiver each) and those of that run."""

    lines: list[str]
    run: int
    subsystems: tuple[str, ...]
    run_subsystems: tuple[str, ...]


class DemoFaultError(ValueError):
    """The fault schedule given to the demo cannot be used; the message says why."""


def fault_schedule(bin_dir: Path, faults: Path) -> list[str]:
    """One line per fault of ``faults``, checked by the simulator the demo will run.

    The check is the simulator's own (``overwatch simulate --list-faults``), so
    the demo refuses exactly what its simulator would refuse at start.
    """
    done = subprocess.run(
        [str(bin_dir / "overwatch"), "simulate", "--subsystems", ",".join(SUBSYSTEMS),
         "--faults", str(faults), "--list-faults"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        reason = done.stderr.strip().removeprefix("overwatch simulate: ")
        raise DemoFaultError(f"fault schedule {faults}: {reason or 'rejected by the simulator'}")
    return [line for line in done.stdout.splitlines() if line.strip()]


class DemoDataDirError(ValueError):
    """The demo will not use (or delete) this data directory; the message says why."""


#: Written into every data directory the demo creates: the only kind it ever deletes.
MARKER = ".overwatch-demo"


_running_supervisor = deploy.running_supervisor


def claim_data_dir(data_dir: Path, *, keep: bool = False) -> None:
    """Make ``data_dir`` the demo's: create it, start it afresh, or (``keep``) resume it.

    Only a folder holding the demo's :data:`MARKER` is ever deleted (it is the
    demo's own, made by an earlier ``overwatch demo``); an empty folder is taken
    and marked; a folder with anything else in it, or one a demo is still
    running in, is refused and left exactly as it is.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise DemoDataDirError(f"--data-dir {data_dir} is a file, not a folder")
    if not data_dir.exists():
        data_dir.mkdir(parents=True)
    else:
        pid = _running_supervisor(data_dir)
        if pid is not None:
            raise DemoDataDirError(
                f"a demo is still running in {data_dir} (supervisord pid {pid}): stop it "
                "first (Ctrl-C in its terminal) or choose another --data-dir"
            )
        entries = sorted(entry.name for entry in data_dir.iterdir())
        if entries and MARKER not in entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise DemoDataDirError(
                f"--data-dir {data_dir} holds files the demo did not create ({shown}); "
                f"the demo only ever deletes a folder it made itself (with its {MARKER} file). "
                "Choose a new or empty folder"
            )
        if entries and not keep:
            shutil.rmtree(data_dir)  # the demo's own folder (marked): start afresh
            data_dir.mkdir()
    (data_dir / MARKER).write_text("created by `overwatch demo`; deleted with this folder\n")


_wait_for = deploy.wait_for


def _port_open(port: int) -> bool:
    return port_open(port)


def _overwatch(plan: DemoPlan, *args: str, stdin: str | None = None) -> str:
    """An ``overwatch`` command with the demo's settings layer (its database, key file)."""
    settings = deploy.settings_path(plan.deployment())
    done = subprocess.run(
        [str(plan.bin_dir / "overwatch"), "--config", str(settings), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"overwatch {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _has_user(plan: DemoPlan) -> bool:
    listed = _overwatch(plan, "users", "list", "--db", plan.db_uri)
    return DEMO_USER in listed.split()


def _get_json(plan: DemoPlan, path: str, token: str) -> object:
    request = urllib.request.Request(plan.url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def check_served(plan: DemoPlan, token: str) -> dict[str, dict[str, int]]:
    """Per subsystem: snapshots, slices and histograms served as JSROOT JSON."""
    summary: dict[str, dict[str, int]] = {}
    runs = _get_json(plan, "/api/runs", token)["runs"]
    run = next(r for r in runs if r["run"] == plan.run)
    detail = _get_json(plan, f"/api/runs/{plan.run}", token)
    for subsystem in plan.checked or plan.subsystems:
        info = detail["subsystems"].get(subsystem, {})
        listing = _get_json(plan, f"/api/runs/{plan.run}/{subsystem}/histograms", token)
        served = 0
        for item in listing["histograms"][:5]:
            quoted = "/".join(urllib.parse.quote(part, safe="") for part in item["path"].split("/"))
            for view in ("cumulative", "latest"):
                obj = _get_json(
                    plan,
                    f"/api/runs/{plan.run}/{subsystem}/histograms/{quoted}?slice={view}",
                    token,
                )
                served += int(obj.get("_typename", "").startswith(("TH", "TProfile")))
        summary[subsystem] = {
            "snapshots": int(info.get("snapshots", 0)),
            "slices": int(info.get("slices", 0)),
            "histograms": len(listing["histograms"]),
            "json_served": served,
        }
    del run
    return summary


def run_demo(
    data_dir: Path,
    *,
    web_port: int = 8850,
    duration: float | None = None,
    run: int = 1,
    interval: float = 2.0,
    keep: bool = False,
    host: str = "127.0.0.1",
    faults: Path | None = DEFAULT_FAULTS,
    replay: ReplayChoice | None = None,
    say: Callable[[str], None] = log.info,
) -> int:
    """Start everything, tell the URL and a login, run until Ctrl-C or ``duration``.

    ``faults`` is the simulator's fault schedule (None: no faults); it is
    checked and told before anything starts. ``replay``: a replay instead of the
    simulator, checked and told first (``faults`` are then unused and ``run``
    is the first run the replay sends).
    ``say`` receives what the person running the demo must read (the command
    passes ``print``); errors go to the log.
    """
    bin_dir = Path(sys.executable).parent
    check = None
    if replay is not None:
        replay = dataclasses.replace(replay, source=Path(replay.source).resolve())
        try:
            check = check_replay(bin_dir, replay)
        except DemoReplayError as error:
            log.error("%s", error)
            return 2
        say(f"replaying {replay.source} (speed {replay.speed}) instead of the simulator:")
        for line in check.lines:
            say(f"  {line}")
        run, faults = check.run, None
    elif faults is not None:
        faults = Path(faults).resolve()
        try:
            schedule = fault_schedule(bin_dir, faults)
        except DemoFaultError as error:
            log.error("%s", error)
            return 2
        say(f"simulated faults ({faults}), in minutes of the run:")
        for line in schedule or ["(the schedule is empty)"]:
            say(f"  {line}")
    else:
        say("simulated faults: none (--no-faults)")
    data_dir = data_dir.resolve()
    # Everything that can refuse comes before the data directory is touched.
    if _port_open(web_port):
        log.error("port %d is already in use (another demo?); choose another with --port", web_port)
        return 2
    try:
        claim_data_dir(data_dir, keep=keep)
    except DemoDataDirError as error:
        log.error("%s", error)
        return 2
    plan = DemoPlan(
        data_dir=data_dir,
        bin_dir=bin_dir,
        web_port=web_port,
        run=run,
        interval=interval,
        zeo_port=free_port(),
        sim_port=free_port(),
        notify_port=free_port(),
        events_port=free_port(),
        web_host=host,
        faults=faults,
        replay=replay,
        subsystems=check.subsystems if check else SUBSYSTEMS,
        checked=check.run_subsystems if check else None,
    )
    supervisor = deploy.Supervisor(bin_dir, deploy.write_files(plan.deployment(), bin_dir))
    logs = data_dir / "logs"
    try:
        _wait_for(lambda: _port_open(plan.zeo_port), 60, "the ZEO server")
        password = secrets.token_urlsafe(12)
        # A resumed demo (--keep) has its user already: give it the new password.
        action = "passwd" if keep and _has_user(plan) else "add"
        _overwatch(plan, "users", action, DEMO_USER, "--db", plan.db_uri, "--password-stdin",
                   stdin=password + "\n")  # fmt: skip
        token = _overwatch(plan, "users", "token", DEMO_USER, "--db", plan.db_uri)
        _wait_for(lambda: _port_open(web_port), 90, "the web app")
        say(f"Overwatch demo running at {plan.url}/")
        say(f"  login: {DEMO_USER}   password: {password}")
        say(f"  logs:  {logs}   (Ctrl-C stops everything)")
        deadline = time.monotonic() + duration if duration else None
        if not deploy.wait_until_stopped(supervisor, logs, deadline):
            return 1
        if duration:
            return _report(plan, token, say)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping the demo ...")
        supervisor.stop()


def _report(plan: DemoPlan, token: str, say: Callable[[str], None]) -> int:
    try:
        summary = check_served(plan, token)
    except (urllib.error.URLError, KeyError, StopIteration, ValueError) as error:
        log.error("demo check failed: %r", error)
        return 1
    ok = True
    for subsystem, figures in summary.items():
        line = ", ".join(f"{k} {v}" for k, v in figures.items())
        say(f"{subsystem}: {line}")
        ok &= figures["snapshots"] > 0 and figures["slices"] > 0 and figures["json_served"] > 0
    say("demo check: " + ("all subsystems served" if ok else "FAILED"))
    return 0 if ok else 1


def register(subparsers) -> None:
    """``overwatch demo`` and ``overwatch deploy`` (the core's entry point registers both)."""
    deploy.register(subparsers)
    parser = subparsers.add_parser("demo", help="run the whole system on simulated detectors")
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    parser.add_argument("--port", type=int, default=8850, help="web port (default 8850)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="web address (0.0.0.0 inside a container)"
    )
    parser.add_argument("--duration", type=float, help="stop after SECONDS and check the result")
    parser.add_argument(
        "--run", type=int, help="simulated run number (default 1); with --replay: --run-as"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between snapshots")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="resume in the demo's existing --data-dir instead of starting afresh",
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--faults",
        type=Path,
        default=DEFAULT_FAULTS,
        metavar="FILE",
        help="fault schedule of the simulator (default: the shipped config/faults/demo.yaml)",
    )
    chosen.add_argument(
        "--no-faults", action="store_true", help="simulate healthy detectors, no faults"
    )
    replaying = parser.add_argument_group("replay (instead of the simulator)")
    replaying.add_argument(
        "--replay",
        type=Path,
        metavar="SOURCE",
        help="run the whole system on a replay of SOURCE (a data directory, a run folder, "
        "...: see overwatch replay) instead of the simulator; --run N sends its runs as N, ...",
    )
    replaying.add_argument(
        "--speed", metavar="N|max", help="replay speed (default 1; max: as fast as taken)"
    )
    replaying.add_argument("--loop", action="store_true", help="replay again after the end")
    add_timezone_options(replaying)

    def handle(args) -> int:
        if args.replay is None:
            given = [o for o, v in (("--speed", args.speed), ("--loop", args.loop),
                                    ("--timezone/--archived", args.timezone)) if v]  # fmt: skip
            if given:
                parser.error(f"{', '.join(given)} only with --replay SOURCE")
        elif not args.no_faults and args.faults != DEFAULT_FAULTS:
            parser.error("--faults is the simulator's: a replay sends what was recorded")
        replay = None
        if args.replay is not None:
            replay = ReplayChoice(
                args.replay, speed=args.speed or "1", loop=args.loop,
                timezone=args.timezone, run_as=args.run,
            )  # fmt: skip
        return run_demo(
            args.data_dir,
            web_port=args.port,
            duration=args.duration,
            run=1 if args.run is None else args.run,
            interval=args.interval,
            keep=args.keep,
            host=args.host,
            faults=None if args.no_faults else args.faults,
            replay=replay,
            say=lambda line: print(line, flush=True),
        )

    parser.set_defaults(handler=handle)

"""``overwatch simulate``, ``overwatch receive`` and ``overwatch import``.

``overwatch import FILE.root --run N --subsystem S [--time T] [--mode B]`` makes
any ROOT file a snapshot of a run, through the receivers' one intake
(:class:`receivers.intake.Intake`: validation, unique ordered name, atomic
write, notice to processing), exactly as if a sender had sent it. ``--time``
is unix seconds or ISO 8601 with a zone (default: the file's modification
time). Exit 0 when stored, 2 for a wrong file or option (nothing stored),
1 when the snapshot could not be written (e.g. disk full).

``overwatch receive --subsystem EMC,TPC,...`` receives several subsystems of
one sender in one process: one :class:`~receivers.zmq_receiver.Receiver` per
subsystem, each in a thread with its own socket, intake, heartbeat and
notices, exactly as separate processes would. Why: a receiver process is
mostly its libraries (about 75 MB resident, idle), while its work is a hash,
a key-list check and a file write per snapshot, so twenty subsystems in twenty
processes cost over a gigabyte for nothing. A sender that serves many subsystems
(the simulator, a DQM system) is received by one process; one process per
sender still keeps a stuck sender from touching another's receiver. In
``req`` mode the first requests are spread over the interval (subsystem k of
n waits ``k/n`` of it), so the snapshots reach processing evenly rather than
all at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading

from overwatch.config import ConfigError, load_settings

log = logging.getLogger(__name__)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so the loop finishes the message in hand and stops."""
    stop = threading.Event()

    def handler(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
        log.info("signal %d: stopping after the message in hand", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _settings(args: argparse.Namespace):
    try:
        return load_settings(args.config)
    except ConfigError as error:
        print(f"overwatch: {error}", file=sys.stderr)
        return None


def _simulate(args: argparse.Namespace) -> int:
    from receivers.simulator import DetectorSimulator, FaultError, load_faults
    from receivers.simulator_server import SimulatorServer

    if not args.bind and not args.list_faults:
        print("overwatch simulate: --bind is required (e.g. tcp://127.0.0.1:5555)", file=sys.stderr)
        return 2
    settings = _settings(args)
    if settings is None:
        return 2
    try:
        faults = load_faults(args.faults) if args.faults else []
        simulator = DetectorSimulator(
            [s.strip() for s in args.subsystems.split(",") if s.strip()],
            run=args.run,
            seed=args.seed,
            histograms=args.histograms,
            event_rate=settings.simulator.event_rate
            if args.event_rate is None
            else args.event_rate,
            faults=faults,
            mode=args.mode,
            run_seconds=args.run_minutes * 60 if args.run_minutes else None,
            gap_seconds=args.gap_minutes * 60,
        )  # checks every fault against the simulated subsystems and histograms
        if args.list_faults:
            for fault in sorted(faults, key=lambda f: f.at_minute):
                print(fault.describe())
            return 0
        server = SimulatorServer(
            simulator,
            args.bind,
            args.pattern,
            speed=args.speed,
            interval=settings.simulator.interval if args.interval is None else args.interval,
            timestamps=not args.no_timestamp,
            dump_dir=args.dump_dir,
        )
    except (FaultError, ValueError, OSError) as error:
        print(f"overwatch simulate: {error}", file=sys.stderr)
        return 2
    stop = _stop_on_signals()
    print(
        f"simulating {','.join(simulator.subsystems)} on {server.endpoint} ({args.pattern})",
        flush=True,
    )
    for fault in sorted(faults, key=lambda f: f.at_minute):
        print(f"  fault {fault.describe()}", flush=True)
    server.serve(stop)
    return 0


def _endpoint_error(address: str) -> str | None:
    """Why ZMQ refuses ``address`` as an endpoint to connect to, or None if it takes it.

    ZMQ itself is asked (a throwaway socket connects and closes), so exactly
    what the receiver's socket would refuse is refused here, before it starts.
    """
    import zmq

    probe = zmq.Context.instance().socket(zmq.DEALER)
    try:
        probe.connect(address)
    except zmq.ZMQError as error:
        return str(error)
    finally:
        probe.close(linger=0)
    return None


def _subsystems(text: str) -> list[str]:
    """The subsystems of ``--subsystem EMC`` or ``--subsystem EMC,TPC`` (each once, in order)."""
    listed = [s.strip() for s in text.split(",") if s.strip()]
    if not listed:
        raise ValueError(f"--subsystem {text!r} names no subsystem")
    if len(set(listed)) != len(listed):
        raise ValueError(f"--subsystem {text!r} names a subsystem twice")
    return listed


def _receive(args: argparse.Namespace) -> int:
    from receivers.zmq_receiver import Receiver

    settings = _settings(args)
    if settings is None:
        return 2
    refused = _endpoint_error(args.connect)
    if refused is not None:
        print(
            f"overwatch receive: --connect {args.connect!r} is not a ZMQ address ({refused}); "
            "expected e.g. tcp://127.0.0.1:5555",
            file=sys.stderr,
        )
        return 2
    receiver_settings = settings.receiver
    overrides = {
        k: v
        for k, v in (
            ("timeout", args.timeout),
            ("max_backoff", args.max_backoff),
            ("jitter", args.jitter),
        )
        if v is not None
    }
    if overrides:
        receiver_settings = dataclasses.replace(receiver_settings, **overrides)
    interval = receiver_settings.interval if args.interval is None else args.interval
    try:
        subsystems = _subsystems(args.subsystem)
        # Several subsystems of one sender: one receiver each, their first requests spread
        # over the interval so their snapshots (and processing's work) come evenly.
        receivers = [
            Receiver(
                receiver_settings,
                args.data_dir or settings.data.data_dir,
                subsystem,
                args.connect,
                args.pattern,
                interval=args.interval,
                notify_address=args.notify,
                first_poll=interval * k / len(subsystems),
            )
            for k, subsystem in enumerate(subsystems)
        ]
    except ValueError as error:
        print(f"overwatch receive: {error}", file=sys.stderr)
        return 2
    stop = _stop_on_signals()
    if len(receivers) == 1:
        results = [receivers[0].run(stop)]
    else:
        results = _run_together(receivers, stop)
    # Non-zero when snapshots were lost on stop (the log lists them), so a supervisor sees it.
    return 1 if any(result is None or result.lost for result in results) else 0


def _run_together(receivers: list, stop: threading.Event) -> list:
    """Run each receiver in a thread of its own until ``stop``; their results, in order
    (None for one that died of an error: logged, and the others stopped too)."""
    results: list = [None] * len(receivers)

    def work(k: int) -> None:
        try:
            results[k] = receivers[k].run(stop)
        except Exception:
            log.exception("receiver %s failed: stopping the others", receivers[k].subsystem)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(k,), name=f"receive-{r.subsystem}", daemon=True)
        for k, r in enumerate(receivers)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.5)  # short waits: the main thread takes the signals
    return results


#: Seconds ``import`` lets its notice to processing leave before the process exits.
_IMPORT_NOTICE_LINGER = 1.0


def _import(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from receivers.intake import Check, FieldError, Intake, Status, parse_instant, snapshot_header

    def fail(message: str, code: int = 2) -> int:
        print(f"overwatch import: {message}", file=sys.stderr)
        return code

    settings = _settings(args)
    if settings is None:
        return 2
    path = Path(args.file)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        return fail(f"{path} {what}; give the ROOT file to import")
    try:
        stamp = path.stat().st_mtime if args.time is None else parse_instant(args.time)
        header = snapshot_header(
            args.run, args.subsystem, mode=args.mode, timestamp=stamp, allow_no_run=False
        )
    except FieldError as error:
        option = "--time" if error.field == "timestamp" else f"--{error.field}"
        return fail(f"{option}: {error.message}")
    try:
        payload = path.read_bytes()
    except OSError as error:
        return fail(f"cannot read {path}: {error.strerror or error}")
    data_dir = args.data_dir or settings.data.data_dir
    intake = Intake(
        settings.receiver, data_dir, header.subsystem, source=f"overwatch import {path}",
        hold=False, notify_address=args.notify,
    )  # fmt: skip
    try:
        outcome = intake.accept(header, payload, received=time.time())
    finally:
        intake.close(linger=_IMPORT_NOTICE_LINGER)
    if outcome.status == Status.STORED:
        print(f"stored {path} as {Path(data_dir) / outcome.path}", flush=True)
        return 0
    if outcome.status == Status.EMPTY:
        return fail(f"{path} is empty, not a ROOT file")
    if outcome.status == Status.QUARANTINED:
        reason = (outcome.reason or "").removeprefix("bad payload: ")
        if outcome.check == Check.PAYLOAD:
            return fail(f"{path} is not a ROOT file listing objects: {reason}; nothing stored")
        return fail(f"{path}: {reason}; nothing stored")
    return fail(f"cannot store {path}: {outcome.reason}; nothing stored", 1)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate``, ``receive`` and ``import`` to the ``overwatch`` command."""
    sim = subparsers.add_parser(
        "simulate",
        help="serve simulated detector snapshots over ZMQ (REP or PUB)",
        description="Emulate the trigger-farm mergers: cumulative EMC/TPC/HLT histograms served "
        "as ROOT files over ZeroMQ (see receivers/wire.py for the framing).",
    )
    sim.add_argument(
        "--subsystems", default="EMC,TPC,HLT", help="comma-separated (default EMC,TPC,HLT)"
    )
    sim.add_argument(
        "--bind", help="e.g. tcp://127.0.0.1:5555 (port * picks a free one); required to serve"
    )
    sim.add_argument("--pattern", choices=("rep", "pub"), default="rep")
    sim.add_argument("--run", type=int, default=1, help="first run number (default 1)")
    sim.add_argument(
        "--histograms", type=int, default=0, help="pad each subsystem to at least N histograms"
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--interval", type=float, help="seconds between published snapshots (pub)")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    sim.add_argument("--event-rate", type=float, help="events per simulated second")
    sim.add_argument(
        "--faults", help="YAML file with the fault schedule (see config/faults/demo.yaml)"
    )
    sim.add_argument(
        "--list-faults",
        action="store_true",
        help="check the --faults schedule against the simulated subsystems, print one line "
        "per fault (when it starts and ends) and exit",
    )
    sim.add_argument("--mode", default="B", help="mode field of the header (default B)")
    sim.add_argument(
        "--run-minutes", type=float, default=0.0, help="end each run after M minutes (0: never)"
    )
    sim.add_argument(
        "--gap-minutes", type=float, default=1.0, help="pause between runs, in minutes"
    )
    sim.add_argument("--no-timestamp", action="store_true", help="omit the header timestamp")
    sim.add_argument("--dump-dir", help="also write every sent payload and header here")
    sim.set_defaults(handler=_simulate)

    rec = subparsers.add_parser(
        "receive",
        help="receive snapshots of one or several subsystems over ZMQ and store them",
        description="Poll a REP sender (req) or subscribe to a PUB sender (sub) and write each "
        "snapshot verbatim as <data-dir>/Run<N>/<SYS>/<SYS>hists.<UTC time>.root. Several "
        "subsystems of one sender (--subsystem EMC,TPC) are received by one process, one "
        "thread each, their requests spread over the interval. Exits 1 if snapshots were "
        "lost on stop because the disk stayed full (the log lists them).",
    )
    rec.add_argument(
        "--subsystem",
        required=True,
        help="subsystem, or several of the same sender separated by commas (EMC,TPC)",
    )
    rec.add_argument("--connect", required=True, help="sender address, e.g. tcp://127.0.0.1:5555")
    rec.add_argument("--pattern", choices=("req", "sub"), default="req")
    rec.add_argument("--interval", type=float, help="seconds between requests (receiver.interval)")
    rec.add_argument(
        "--jitter",
        type=float,
        help="spread of the request times, fraction of the interval (receiver.jitter, 0-0.9)",
    )
    rec.add_argument("--timeout", type=float, help="seconds to wait for a reply (receiver.timeout)")
    rec.add_argument(
        "--max-backoff", type=float, help="longest wait between retries (receiver.max_backoff)"
    )
    rec.add_argument("--data-dir", help="data directory (data.data_dir)")
    rec.add_argument(
        "--notify", help="address for new-snapshot notices (receiver.notify_address; '' disables)"
    )
    rec.set_defaults(handler=_receive)

    from receivers import replay_command  # here: that module imports this one

    replay_command.register(subparsers)

    imp = subparsers.add_parser(
        "import",
        help="store any ROOT file as a snapshot of a run",
        description="Write FILE as <data-dir>/Run<N>/<SYS>/<SYS>hists.<UTC time>.root through "
        "the receivers' intake (validated, uniquely named, written atomically, announced to "
        "processing). Exits 2 for a wrong file or option, 1 if it cannot be written.",
    )
    imp.add_argument("file", metavar="FILE.root", help="the ROOT file")
    imp.add_argument("--run", required=True, help="run number (1 to 2**31-1)")
    imp.add_argument("--subsystem", required=True, help="subsystem, e.g. EMC")
    imp.add_argument(
        "--time",
        help="when its content was taken: unix seconds or ISO 8601 with a zone, e.g. "
        "2026-01-01T10:00:00Z (default: the file's modification time)",
    )
    imp.add_argument("--mode", default="B", help="data-taking mode (default B)")
    imp.add_argument("--data-dir", help="data directory (data.data_dir)")
    imp.add_argument(
        "--notify",
        help="address for the new-snapshot notice (receiver.notify_address; '' disables)",
    )
    imp.set_defaults(handler=_import)

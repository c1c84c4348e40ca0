"""``overwatch process``, ``overwatch slice``, ``overwatch db rebuild`` and ``db prune``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from overwatch.cli import add_timezone_options, timezone_option
from overwatch.config import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)


def _settings(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(args.config)
    except ConfigError as error:
        print(f"overwatch: {error}", file=sys.stderr)
        return None


def _open(args: argparse.Namespace, settings: Settings):
    from overwatch.store.db import open_db

    return open_db(args.db or settings.database.uri)


def _error(command: str, error: BaseException) -> int:
    message = error.args[0] if isinstance(error, LookupError) and error.args else str(error)
    print(f"overwatch {command}: {message}", file=sys.stderr)
    return 2


def _process(args: argparse.Namespace) -> int:
    from overwatch.store.layout import DataDir
    from processing.analysis.alarms import AlarmManager, build_dispatcher
    from processing.analysis.checks import CheckConfigError
    from processing.analysis.live import load_engine
    from processing.pipeline import Pipeline
    from processing.scheduler import ProcessingService
    from processing.workers import (
        ClaimRefused,
        Ownership,
        WorkerClaim,
        default_name,
        heartbeat_seconds,
    )

    settings = _settings(args)
    if settings is None:
        return 2
    data_dir = args.data_dir or settings.data.data_dir
    if args.once and not Path(data_dir).is_dir():  # "processed 0" would hide a mistyped path
        return _error("process", FileNotFoundError(f"data directory {data_dir} does not exist"))
    try:  # all configuration first: never start half-configured
        ownership = Ownership.parse(args.subsystems, args.share)
        zone = timezone_option(args, settings.data.timezone)
        checks = load_engine(args.checks or settings.processing.checks_file)
        dispatcher = build_dispatcher(
            settings.alarms, status_file=DataDir(data_dir).notifications_file
        )
        alarms = AlarmManager.from_settings(settings.alarms, notify=dispatcher.enqueue)
    except (CheckConfigError, ValueError) as error:
        return _error("process", error)
    try:
        db = _open(args, settings)
    except Exception as error:  # a wrong URI or an unreachable server: say which
        return _error("process", error)
    status = settings.status
    worker = WorkerClaim(db, args.worker or default_name(ownership), ownership,
                         status.dead_seconds)  # fmt: skip
    try:
        worker.claim()
    except ClaimRefused as error:  # never two workers on one chain
        db.close()
        return _error("process", error)
    except Exception as error:
        db.close()
        return _error("process", error)
    try:
        pipeline = Pipeline(
            data_dir, db, settings.processing, checks=checks, alarms=alarms, timezone=zone,
            owns=None if ownership.everything else ownership.owns,
        )  # fmt: skip
        if args.once:
            dispatcher.start()
            try:
                report = pipeline.run_until_idle()
            finally:
                dispatcher.wait_idle(10.0)
                dispatcher.stop()
                worker.release(pipeline.last_pass_finished, pipeline.processed_total)
            print(f"processed {report.processed} snapshots, {report.bad} bad", flush=True)
            for failure in report.failed:
                print(f"failed: {failure}", file=sys.stderr)
            return 1 if report.failed else 0
        if not args.verbose:  # one line per scheduled run is noise; our passes log their work
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        stop = threading.Event()

        def handler(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
            log.info("signal %d: stopping after the pass in hand", signum)
            stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        try:
            service = ProcessingService(
                pipeline,
                settings.processing.interval,
                settings.receiver.notify_address,
                dispatcher=dispatcher,
                events_address=settings.processing.events_address,
                worker=worker,
                heartbeat=heartbeat_seconds(status.late_seconds, status.dead_seconds),
                notify_required=ownership.everything,
            )
        except Exception as error:  # e.g. the notice address is taken by another processing
            worker.release(0.0, 0)
            return _error("process", error)
        service.start()
        print(
            f"processing {data_dir} as worker {worker.name!r} owning {ownership.describe()} "
            f"(notices on {service.notify_address})",
            flush=True,
        )
        try:
            while not stop.wait(0.5):
                if service.lost.is_set():  # another worker took our subsystems over
                    return 1
        finally:
            service.stop()
        return 0
    finally:
        db.close()


def _slice(args: argparse.Namespace) -> int:
    from processing.ingest.cache import CacheError
    from processing.slices.export import ExportError, export_slice, parse_options

    settings = _settings(args)
    if settings is None:
        return 2
    folder = Path(args.output).parent
    if not folder.is_dir():  # never create folders a typo in -o names
        return _error(
            "slice",
            FileNotFoundError(
                f"the folder of -o {args.output}, {folder}, does not exist: create it first"
            ),
        )
    try:
        options = parse_options(args.option)
        db = _open(args, settings)
    except Exception as error:
        return _error("slice", error)
    try:  # times and options are checked by the code that checks the web's requests
        result = export_slice(
            args.data_dir or settings.data.data_dir,
            db,
            args.run,
            args.subsystem,
            args.start,
            args.end,
            args.output,
            options,
            settings=settings.processing,
        )
    except (LookupError, ExportError, ValueError, OSError, CacheError) as error:
        return _error("slice", error)
    finally:
        db.close()
    print(f"wrote {result.n_histograms} histograms to {result.path}", flush=True)
    if result.derived:
        print(f"derived by the plugin: {', '.join(result.derived)}", flush=True)
    if result.left_out:
        print(f"left out (binning changed): {', '.join(result.left_out)}", file=sys.stderr)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from processing.rebuild import rebuild

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        zone = timezone_option(args, settings.data.timezone)
        db = _open(args, settings)
    except Exception as error:
        return _error("db rebuild", error)
    try:
        report = rebuild(
            args.data_dir or settings.data.data_dir,
            db,
            settings.processing,
            reread=args.reread,
            timezone=zone,
        )
    except (FileNotFoundError, ValueError) as error:  # ValueError: an invalid checks file
        return _error("db rebuild", error)
    finally:
        db.close()
    print(f"rebuilt: {report.processed} snapshots, {report.bad} bad", flush=True)
    for failure in report.failed:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if report.failed else 0


def _prune(args: argparse.Namespace) -> int:
    from processing.analysis.live import load_engine
    from processing.prune import (
        PruneError,
        active_seconds,
        apply,
        parse_runs,
        plan,
        processing_active,
    )

    settings = _settings(args)
    if settings is None:
        return 2
    try:  # every argument and the checks first: refuse before opening anything
        runs = parse_runs(args.runs) if args.runs is not None else None
        checks = load_engine(settings.processing.checks_file) if args.apply else None
        db = _open(args, settings)
    except Exception as error:  # a bad run number or checks file, an unreachable database
        return _error("db prune", error)
    try:
        age = processing_active(db, settings.processing) if args.apply and not args.force else None
        if age is not None:
            wait = active_seconds(settings.processing) - age
            return _error(
                "db prune",
                RuntimeError(
                    f"processing recorded a pass {age:.0f} s ago: stop `overwatch process` "
                    f"first (if it is stopped, wait {wait:.0f} s or pass --force)"
                ),
            )
        data_dir = args.data_dir or settings.data.data_dir
        report = plan(data_dir, db, settings.processing, runs=runs)
        if args.apply:
            apply(data_dir, db, report, settings.processing, checks=checks)
    except (PruneError, FileNotFoundError) as error:
        return _error("db prune", error)
    except OSError as error:  # a full disk, a permission: what went is only repeated content
        print(f"overwatch db prune: {error}; run it again to finish", file=sys.stderr)
        return 1
    finally:
        db.close()
    for line in report.lines():
        print(line, flush=True)
    return 0


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (default: data.data_dir)")
    parser.add_argument("--db", help="storage URI, file://, zeo:// (default: database.uri)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``process``, ``slice`` and ``db rebuild`` to the ``overwatch`` command."""
    process = subparsers.add_parser(
        "process",
        help="turn new snapshots into slices and metadata (scheduled, woken by receivers)",
        description="Process every new snapshot of the data directory: array cache, snapshot "
        "records, latest slices and run metadata; each new slice goes through the detector "
        "plugin, trending and the checks (qualities, alarms, notifications per the alarms "
        "settings). Runs every processing.interval seconds and at once when a receiver "
        "announces a snapshot on receiver.notify_address. An invalid checks file stops it "
        "at start.",
    )
    _storage_arguments(process)
    add_timezone_options(process)
    process.add_argument("--once", action="store_true", help="process what is there, then exit")
    owned = process.add_mutually_exclusive_group()
    owned.add_argument(
        "--subsystems",
        metavar="SYS,SYS",
        help="a worker owning only these subsystems (default: every subsystem); a worker "
        "refuses to start while an alive one owns any of them",
    )
    owned.add_argument(
        "--share",
        metavar="K/N",
        help="a worker owning share K of N: every subsystem whose CRC-32 modulo N is K-1 "
        "(start one worker per share, 1/N to N/N)",
    )
    process.add_argument(
        "--worker",
        metavar="NAME",
        help="this worker's name on the status page (default: the host name, plus the "
        "subsystems it owns)",
    )
    process.add_argument(
        "--checks",
        metavar="FILE",
        help="checks file (default: processing.checks_file, else config/checks.yaml); "
        "validated at start",
    )
    process.set_defaults(handler=_process)

    exporter = subparsers.add_parser(
        "slice",
        help="write a time slice of a run's subsystem as a ROOT file",
        description="Minutes count from the run start (its earliest snapshot over all "
        "subsystems); times may also be UTC (2026-01-01T10:05:00Z). The interval snaps to "
        "snapshots. The file holds the slice's histograms as the web shows them (the plugin's "
        "transform applied with the options) and the plugin's derived histograms.",
    )
    _storage_arguments(exporter)
    exporter.add_argument("--run", type=int, required=True)
    exporter.add_argument("--subsystem", required=True, help="e.g. EMC")
    exporter.add_argument(
        "--start", default="0", help="minutes from the run start (default 0), or a UTC time"
    )
    exporter.add_argument("--end", default="end", help="minutes, a UTC time, or 'end' (default)")
    exporter.add_argument("-o", "--output", required=True, help="ROOT file to write")
    exporter.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="processing option of the subsystem's plugin, as in the web form (repeatable), "
        "e.g. hot_channel_threshold=5",
    )
    exporter.set_defaults(handler=_slice)

    db = subparsers.add_parser("db", help="database maintenance")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION")
    actions.required = True
    rebuild = actions.add_parser(
        "rebuild",
        help="recreate all run metadata (and lost cache files) from the snapshots on disk",
        description="Stop `overwatch process` first. Forgets every run in the database and "
        "processes all snapshots again; existing cache files are reused unless --reread.",
    )
    _storage_arguments(rebuild)
    add_timezone_options(rebuild)
    rebuild.add_argument(
        "--reread", action="store_true", help="delete the array cache and read every file again"
    )
    rebuild.set_defaults(handler=_rebuild)

    prune = actions.add_parser(
        "prune",
        help="remove snapshots identical in content to their predecessor, after a run ended "
        "(a dry run unless --apply)",
        description="Stop `overwatch process` first. For every run that ended (no snapshot "
        "within processing.ongoing_minutes), finds the snapshots whose cached content equals "
        "the previous one's (senders publishing after the end of run, a receiver restart) and, "
        "with --apply, removes their files, cache, records and trend points, keeping the "
        "first of each stretch: whole-run content, slices between kept snapshots and their "
        "trend values stay the same. Without --apply nothing changes.",
    )
    _storage_arguments(prune)
    prune.add_argument("--runs", metavar="N,M", help="only these runs (refused if one is ongoing)")
    prune.add_argument("--apply", action="store_true", help="remove them (default: dry run)")
    prune.add_argument(
        "--force",
        action="store_true",
        help="apply even though processing recorded a pass in the last minutes",
    )
    prune.set_defaults(handler=_prune)

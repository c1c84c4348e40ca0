"""``overwatch replay SOURCE``: serve an archived or current run again through a real sender.

SOURCE is a data directory, a run folder, a subsystem folder or a folder of
one run's ROOT files (:func:`overwatch.store.archive.read_source`; the time
zone of names that declare none by ``--timezone``/``--archived``, else
``data.timezone``). The sender is :class:`receivers.replay.ReplaySender`; the
receivers are the usual ``overwatch receive`` (``--pattern req`` for ``rep``,
``sub`` for ``pub``).

What a person sees: the plan first (snapshots, runs as sent, subsystems, and
every file of the source that cannot be read, with its reason), then progress
(a progress bar on a terminal, else a line every few snapshots, for logs),
and a summary at the end. Wrong input exits 2 before anything is bound: a
missing source, one without snapshots, an unknown run or subsystem, a bad
``--speed``. The exit code is 1 if a snapshot could not be read when due.
``--dry-run`` stops after the plan (``overwatch demo --replay`` checks its
source and options with it, so the demo refuses exactly what its replay would).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TextIO

from overwatch.cli import add_timezone_options, timezone_option
from overwatch.progress import progress_bar
from overwatch.store.archive import ArchiveError, Source, read_source
from receivers.commands import _settings, _stop_on_signals
from receivers.replay import MAX_GAP, ReplayError, ReplayItem, ReplayPlan, ReplaySender


def parse_speed(text: str) -> float | None:
    """``--speed``: a positive number of source seconds per wall second, or ``max`` (None)."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid speed {text!r}: expected a positive number (2 = twice as fast) or 'max'"
        )
    return value


def _runs(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid run list {text!r}: expected run numbers separated by commas, e.g. 1,2"
        ) from None


def _subsystems(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Progress:
    """Progress of a replay on ``stream``: the project's progress bar on a terminal
    (:mod:`overwatch.progress`), else a line every ``every`` snapshots (and the last one),
    which a log under supervisord keeps."""

    def __init__(self, stream: TextIO, total: int | None, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty() if tty is None else tty
        self.every = max(10, (total or 0) // 20) if total else 100
        self.started = time.monotonic()
        self._bar = (
            progress_bar(total, "replay", "snapshot", enabled=True, file=stream)
            if self.tty
            else None
        )

    def __call__(self, item: ReplayItem, served: int, total: int | None) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"run {item.run} {item.subsystem}, pass {item.pass_index + 1}", refresh=False
            )
            self._bar.update(served - self._bar.n)
            return
        elapsed = time.monotonic() - self.started
        rate = served / elapsed if elapsed > 0 else 0.0
        of = f"/{total}" if total else ""
        share = f" {100 * served / total:3.0f}%" if total else ""
        if (total is not None and served == total) or served % self.every == 0:
            self.stream.write(
                f"replay{share} {served}{of} snapshots, {rate:.1f}/s, "
                f"last run {item.run} {item.subsystem} (pass {item.pass_index + 1})\n"
            )
            self.stream.flush()

    def finish(self) -> None:
        """End the bar (a replay stopped before its last snapshot leaves it where it was)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _describe(source: Source, plan: ReplayPlan) -> list[str]:
    renumbered = [f"{old} as {new}" for old, new in plan.run_map.items() if old != new]
    lines = [
        f"{len(plan.snapshots)} snapshot(s) of run(s) {', '.join(map(str, plan.runs))}"
        f"{' (' + ', '.join(renumbered) + ')' if renumbered else ''}, "
        f"subsystems {', '.join(plan.subsystems)}, {_seconds(plan.span)} of source time"
    ]
    if plan.replay_span < plan.span:
        lines.append(
            f"idle stretches over {plan.max_gap:g} s waited as {plan.max_gap:g} s: "
            f"{_seconds(plan.replay_span)} of source time to replay"
        )
    if plan.loop:
        lines.append(f"looping: each pass dated {plan.shift:.0f} s after the previous one")
    if source.bad:
        lines.append(f"{len(source.bad)} file(s) of the source cannot be replayed:")
        lines.extend(f"  BAD {path}: {reason}" for path, reason in source.bad)
    return lines


def run_replay(args: argparse.Namespace) -> int:
    """The ``replay`` subcommand (see the module docstring)."""

    def fail(message: str) -> int:
        print(f"overwatch replay: {message}", file=sys.stderr)
        return 2

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        zone = timezone_option(args, settings.data.timezone)
    except ValueError as error:
        return fail(str(error))
    try:
        source = read_source(Path(args.source), timezone=zone, run=args.run_as)
        plan = ReplayPlan(
            source,
            runs=args.runs,
            subsystems=args.subsystems,
            run_as=args.run_as,
            loop=args.loop,
            max_gap=args.max_gap,
        )
    except (ArchiveError, ReplayError) as error:
        return fail(str(error))
    if args.dry_run:
        for line in _describe(source, plan):
            print(line)
        return 0
    if not args.bind:
        return fail("--bind is required (e.g. tcp://127.0.0.1:5555)")
    progress = Progress(sys.stderr, plan.total)
    try:
        sender = ReplaySender(
            plan, args.bind, args.pattern, speed=args.speed, stay=args.stay, progress=progress
        )
    except (OSError, ValueError) as error:
        return fail(str(error))
    speed = "max" if args.speed is None else f"{args.speed:g}"
    print(f"replaying {args.source} on {sender.endpoint} ({args.pattern}), speed {speed}")
    for line in _describe(source, plan):
        print(line)
    sys.stdout.flush()
    summary = sender.serve(_stop_on_signals())
    progress.finish()
    for line in summary.lines():
        print(line)
    if source.bad:
        print(f"  {len(source.bad)} bad file(s) of the source not replayed (listed above)")
    return 1 if summary.unreadable else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``replay`` to the ``overwatch`` command."""
    parser = subparsers.add_parser(
        "replay",
        help="serve an archived or current run again over ZMQ (REP or PUB)",
        description="Serve the snapshots of SOURCE (a data directory, a run folder, a "
        "subsystem folder or a folder of one run's ROOT files) through a real sender, in "
        "their original order and spacing divided by --speed, each header carrying the "
        "snapshot's original instant so receivers store it under its true UTC name.",
    )
    parser.add_argument("source", metavar="SOURCE", help="folder of snapshots to replay")
    parser.add_argument(
        "--bind", help="e.g. tcp://127.0.0.1:5555 (port * picks a free one); required to serve"
    )
    parser.add_argument(
        "--pattern",
        choices=("rep", "pub"),
        default="rep",
        help="rep: receivers poll (receive --pattern req); pub: publish when due, after "
        "every subsystem has a subscriber (receive --pattern sub)",
    )
    parser.add_argument(
        "--speed",
        type=parse_speed,
        default=1.0,
        metavar="N|max",
        help="source seconds per wall second (default 1); max: as fast as receivers take them",
    )
    parser.add_argument("--runs", type=_runs, help="replay only these runs, e.g. 1,2")
    parser.add_argument(
        "--subsystems", type=_subsystems, help="replay only these subsystems, e.g. EMC,TPC"
    )
    parser.add_argument(
        "--run-as",
        type=int,
        metavar="N",
        help="send the runs as N, N+1, ... (in the order of their numbers); also the run of "
        "a folder of ROOT files that names none",
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="start again after the last snapshot, each pass dated one source span later",
    )
    parser.add_argument(
        "--max-gap",
        type=float,
        default=MAX_GAP,
        metavar="SECONDS",
        help=f"longest wait between two snapshots, in source seconds (default {MAX_GAP:g}): "
        "the time between runs is not waited in full",
    )
    parser.add_argument(
        "--stay",
        action="store_true",
        help="after the end keep answering 'replay finished' until stopped (under a supervisor)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check SOURCE and the options, print what would be replayed (and the bad files), "
        "and exit",
    )
    add_timezone_options(parser)
    parser.set_defaults(handler=run_replay)

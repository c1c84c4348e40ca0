"""The replay sender: the snapshots of an archived (or current) run served again over ZeroMQ.

A :class:`~overwatch.store.archive.Source` (every snapshot of a folder with its
true instant, :func:`overwatch.store.archive.read_source`) is served through a
real socket, so real receivers store it as they would the live senders' data.

**When.** Snapshots go out in their original order, each due at
``start + offset / speed``, where ``offset`` is its distance in source time
from the first replayed snapshot (``speed=None`` is "max": everything is due
at once and goes as fast as the receivers take it). A stretch with no snapshot
longer than ``max_gap`` source seconds (the hours or months between the runs
of an archive) is waited as ``max_gap``; the timestamps stay true.

**What the header says.** ``run`` (or its ``run_as`` number), ``subsystem``,
``mode`` ("B", or the mode in an old receiver's file name), ``seq`` (per
subsystem, from 1), ``timestamp`` = the snapshot's original instant (so a
receiver stores it under its true UTC name: receivers refuse only the
future), and ``pending`` = how many more snapshots of that subsystem are due
now, so a REQ receiver asks again at once instead of waiting its interval.

**Patterns.**

* ``rep``: one REP socket for every subsystem. A request for S gets the oldest
  snapshot of S that is due and not yet served. When none is due, the last one
  served is answered again (the receiver counts it as a duplicate, and a
  receiver that lost that reply gets it now); before S's first snapshot is due
  the answer is the refusal "replay: nothing due yet ...", after S's last one
  "replay finished ...". A reply lost after it was sent is not served again
  once a later one is due (REQ/REP has no acknowledgement).
* ``pub``: an XPUB socket publishes each snapshot when due. Nothing is
  published before a subscriber for every replayed subsystem has subscribed
  (no slow-joiner loss), and ``XPUB_NODROP`` makes a full send queue
  (``SNDHWM``) wait instead of dropping, so ``speed=None`` loses nothing and
  goes at the pace of the slowest subscriber.

**Decided here.**

* ``run_as=N`` renumbers the runs of the replay N, N+1, ... in the order of
  their original numbers (one run: N), so an archive never lands on runs the
  data directory already has; :attr:`ReplayPlan.run_map` says which is which.
* ``loop``: after the last snapshot the replay starts again from the first,
  each pass's timestamps shifted by the source's span plus one typical
  interval, so receivers store new names after the previous pass's (and
  processing sees the content go down at each new pass: a counter reset, a new
  segment). A pass whose timestamps would lie in the future is not started
  (receivers refuse the future): the replay ends there and says so.
* A snapshot file that cannot be read when due (deleted meanwhile) is logged
  and listed in the summary, never skipped in silence; the replay goes on.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import zmq

from overwatch import names
from overwatch.store.archive import Source, SourceSnapshot
from receivers import wire

log = logging.getLogger(__name__)

#: The default longest wait, in source seconds, between two replayed snapshots: longer
#: than any interval between snapshots of a run, shorter than the time between runs.
MAX_GAP = 600.0
#: Messages queued per subscriber before a publication waits (XPUB_NODROP): far more
#: than a run's snapshots in flight, few enough to bound the memory they take.
SNDHWM = 1000
#: Milliseconds a closing socket keeps trying to deliver what was sent.
CLOSE_LINGER_MS = 10_000


class ReplayError(ValueError):
    """A replay that cannot be made from this source and these options; the text says why."""


@dataclass(frozen=True)
class ReplayItem:
    """One message of the replay: a source snapshot as it is sent, and when it is due."""

    run: int  # as sent (run_as applied)
    subsystem: str
    mode: str
    timestamp: float  # as sent: the original instant, shifted by the loop pass
    offset: float  # source seconds from the replay's start until it is due (at speed 1)
    path: Path
    pass_index: int = 0


ProgressCallback = Callable[[ReplayItem, int, "int | None"], None]


def _mode_of(path: Path) -> str:
    """The mode of an old receiver's file name (``EMChistos_<run>_<mode>_...``), else "B"."""
    try:
        form, match = names.match_snapshot_name(path.name)
    except names.InvalidName:
        return "B"
    return match["mode"] if form is names.FileForm.RECEIVER else "B"


class ReplayPlan:
    """What a replay sends and when: the selected snapshots, their runs as sent, the loop shift.

    ``runs``/``subsystems`` select (None: all); each must be in the source, else
    :class:`ReplayError`. ``max_gap`` bounds the wait between two snapshots.
    """

    def __init__(
        self,
        source: Source,
        *,
        runs: list[int] | None = None,
        subsystems: list[str] | None = None,
        run_as: int | None = None,
        loop: bool = False,
        max_gap: float = MAX_GAP,
    ) -> None:
        if not max_gap > 0:
            raise ReplayError(f"the longest gap must be positive, got {max_gap}")
        snapshots = list(source.snapshots)
        if runs is not None:
            missing = sorted(set(runs) - set(source.runs))
            if missing:
                raise ReplayError(
                    f"run {', '.join(map(str, missing))} not in the source "
                    f"(it holds runs {', '.join(map(str, source.runs))})"
                )
            snapshots = [s for s in snapshots if s.run in set(runs)]
        if subsystems is not None:
            for subsystem in subsystems:
                try:
                    names.check_subsystem(subsystem)
                except names.InvalidName as error:
                    raise ReplayError(str(error)) from None
            chosen = {s.subsystem for s in snapshots}
            missing = [s for s in subsystems if s not in chosen]
            if missing:
                raise ReplayError(
                    f"subsystem {', '.join(missing)} not in the source"
                    f"{' for the chosen runs' if runs is not None else ''} "
                    f"(it holds {', '.join(sorted(chosen))})"
                )
            snapshots = [s for s in snapshots if s.subsystem in set(subsystems)]
        if not snapshots:
            raise ReplayError("nothing to replay: the source holds no snapshot")
        self.snapshots: list[SourceSnapshot] = snapshots
        self.loop = loop
        self.max_gap = max_gap
        self.run_map = self._renumber(sorted({s.run for s in snapshots}), run_as)
        self._modes = {s.path: _mode_of(s.path) for s in snapshots}
        # Offsets in source time with long idle stretches shortened to max_gap.
        self._offsets: list[float] = [0.0]
        for before, after in zip(snapshots, snapshots[1:], strict=False):
            self._offsets.append(self._offsets[-1] + min(after.instant - before.instant, max_gap))
        positive = [gap for gap in self._subsystem_gaps() if gap > 0]
        #: A typical interval between two snapshots of one subsystem (at least 1 s).
        self.step = max(1.0, statistics.median(positive)) if positive else 1.0
        #: Source seconds from the first snapshot to the last.
        self.span = snapshots[-1].instant - snapshots[0].instant
        #: How far each loop pass's timestamps move on.
        self.shift = self.span + self.step
        self._pass_offset = self._offsets[-1] + min(self.step, max_gap)
        #: Source seconds a pass takes to replay (the span with idle stretches shortened).
        self.replay_span = self._offsets[-1]

    @staticmethod
    def _renumber(runs: list[int], run_as: int | None) -> dict[int, int]:
        if run_as is None:
            return {run: run for run in runs}
        mapping = {run: run_as + i for i, run in enumerate(runs)}
        for sent in mapping.values():
            try:
                names.check_run(sent)
            except names.InvalidName as error:
                raise ReplayError(
                    f"cannot renumber {len(runs)} run(s) from {run_as}: {error}"
                ) from None
        return mapping

    def _subsystem_gaps(self) -> list[float]:
        last: dict[tuple[int, str], float] = {}
        gaps = []
        for snapshot in self.snapshots:
            key = (snapshot.run, snapshot.subsystem)
            if key in last:
                gaps.append(snapshot.instant - last[key])
            last[key] = snapshot.instant
        return gaps

    @property
    def subsystems(self) -> list[str]:
        return sorted({s.subsystem for s in self.snapshots})

    @property
    def runs(self) -> list[int]:
        """The runs as sent."""
        return sorted(self.run_map.values())

    @property
    def total(self) -> int | None:
        """Snapshots a replay serves (None with ``loop``: no end)."""
        return None if self.loop else len(self.snapshots)

    def last_timestamp(self, pass_index: int) -> float:
        return self.snapshots[-1].instant + pass_index * self.shift

    def items(self, pass_index: int = 0, subsystem: str | None = None) -> list[ReplayItem]:
        """The messages of one pass (of one subsystem), in the order they are due."""
        return [
            ReplayItem(
                run=self.run_map[snapshot.run],
                subsystem=snapshot.subsystem,
                mode=self._modes[snapshot.path],
                timestamp=snapshot.instant + pass_index * self.shift,
                offset=offset + pass_index * self._pass_offset,
                path=snapshot.path,
                pass_index=pass_index,
            )
            for snapshot, offset in zip(self.snapshots, self._offsets, strict=True)
            if subsystem is None or snapshot.subsystem == subsystem
        ]


@dataclass
class ReplaySummary:
    """What a replay served: per subsystem, bytes, time, and what went wrong."""

    served: dict[str, int] = field(default_factory=dict)
    repeated: dict[str, int] = field(default_factory=dict)  # last one answered again (rep)
    refused: int = 0  # requests answered with a refusal (rep)
    bytes: int = 0
    passes: int = 0
    duration: float = 0.0  # seconds from the replay's start to the last snapshot served
    complete: bool = False  # every snapshot planned was served (a loop: stopped by the clock)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    note: str | None = None

    @property
    def total(self) -> int:
        return sum(self.served.values())

    @property
    def rate(self) -> float:
        """Snapshots served per second (0 when none or no time passed)."""
        return self.total / self.duration if self.duration > 0 and self.total else 0.0

    def lines(self) -> list[str]:
        """The summary as a person reads it."""
        state = "finished" if self.complete else "stopped before the end"
        out = [
            f"replay {state}: {self.total} snapshot(s), {self.bytes / 1e6:.1f} MB in "
            f"{self.duration:.1f} s ({self.rate:.1f} snapshots/s), {self.passes} pass(es)"
        ]
        for subsystem in sorted(self.served):
            repeats = self.repeated.get(subsystem, 0)
            extra = f" (+{repeats} answered again while none was due)" if repeats else ""
            out.append(f"  {subsystem}: {self.served[subsystem]} served{extra}")
        if self.refused:
            out.append(f"  {self.refused} request(s) refused (nothing due, finished, unknown)")
        for path, reason in self.unreadable:
            out.append(f"  NOT SENT {path}: {reason}")
        if self.note:
            out.append(f"  {self.note}")
        return out


class ReplaySender:
    """A REP or XPUB socket serving a :class:`ReplayPlan`; ``serve(stop)`` runs the replay.

    ``speed``: source seconds per wall second (None: as fast as receivers take
    them). ``stay``: after the end keep the socket (rep: answering "replay
    finished") until ``stop`` is set, instead of returning. ``progress`` is
    called after each snapshot sent with (item, served so far, total or None).
    """

    def __init__(
        self,
        plan: ReplayPlan,
        bind: str,
        pattern: str = "rep",
        *,
        speed: float | None = 1.0,
        stay: bool = False,
        progress: ProgressCallback | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if pattern not in ("rep", "pub"):
            raise ValueError(f"pattern must be 'rep' or 'pub', got {pattern!r}")
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive (or None for max), got {speed}")
        self.plan = plan
        self.pattern = pattern
        self.speed = speed
        self.stay = stay
        self.progress = progress
        self.summary = ReplaySummary(
            served=dict.fromkeys(plan.subsystems, 0), repeated=dict.fromkeys(plan.subsystems, 0)
        )
        self._seq = dict.fromkeys(plan.subsystems, 0)
        self._passes_allowed: dict[int, bool] = {}
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.REP if pattern == "rep" else zmq.XPUB)
        self._socket.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
        if pattern == "pub":
            self._socket.setsockopt(zmq.SNDHWM, SNDHWM)
            self._socket.setsockopt(zmq.XPUB_NODROP, 1)
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self._socket.bind(bind)
        except zmq.ZMQError as error:
            self._socket.close(linger=0)
            raise OSError(f"cannot bind {bind}: {error}") from error
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._start = time.monotonic()

    # -- timing ---------------------------------------------------------------------
    def _due_at(self, item: ReplayItem) -> float:
        return self._start if self.speed is None else self._start + item.offset / self.speed

    def _pass_allowed(self, index: int) -> bool:
        """Whether loop pass ``index`` may start: its timestamps are not in the future.

        Decided once per pass, so every subsystem stops at the same pass.
        """
        if index not in self._passes_allowed:
            last = self.plan.last_timestamp(index)
            allowed = index == 0 or last <= time.time()
            if not allowed:
                self.summary.note = (
                    f"loop ended before pass {index + 1}: its snapshots would be dated up to "
                    f"{last - time.time():.0f} s in the future, which receivers refuse"
                )
                log.warning("%s", self.summary.note)
            self._passes_allowed[index] = allowed
        return self._passes_allowed[index]

    # -- messages -------------------------------------------------------------------
    def _message(self, item: ReplayItem, pending: int | None) -> tuple[wire.Header, bytes] | None:
        """Header and payload of ``item`` (counts it), None if its file cannot be read."""
        try:
            payload = item.path.read_bytes()
        except OSError as error:
            reason = f"cannot read it when due: {error.strerror or error}"
            log.error("replay: %s: %s", item.path, reason)
            self.summary.unreadable.append((item.path, reason))
            return None
        self._seq[item.subsystem] += 1
        header = wire.Header(
            run=item.run,
            subsystem=item.subsystem,
            mode=item.mode,
            seq=self._seq[item.subsystem],
            timestamp=item.timestamp,
            pending=pending,
        )
        return header, payload

    def _sent(self, item: ReplayItem, payload: bytes) -> None:
        summary = self.summary
        summary.served[item.subsystem] += 1
        summary.bytes += len(payload)
        summary.passes = max(summary.passes, item.pass_index + 1)
        summary.duration = time.monotonic() - self._start
        if self.progress is not None:
            self.progress(item, summary.total, self.plan.total)

    # -- serving --------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> ReplaySummary:
        """Run the replay until it ends (or ``stop`` is set); returns the summary."""
        log.info(
            "replaying %d snapshot(s) of run(s) %s, %s on %s (%s), speed %s%s",
            len(self.plan.snapshots),
            ", ".join(map(str, self.plan.runs)),
            ",".join(self.plan.subsystems),
            self.endpoint,
            self.pattern,
            "max" if self.speed is None else f"{self.speed:g}",
            ", looping" if self.plan.loop else "",
        )
        self._start = time.monotonic()
        try:
            if self.pattern == "rep":
                self._serve_rep(stop)
            else:
                self._serve_pub(stop)
        finally:
            self._socket.close()  # lingers: what was sent still leaves
        return self.summary

    def _serve_rep(self, stop: threading.Event) -> None:
        self._queues = {s: deque(self.plan.items(0, s)) for s in self.plan.subsystems}
        self._pass_of = dict.fromkeys(self.plan.subsystems, 0)
        self._last: dict[str, tuple[bytes, bytes]] = {}
        while not stop.is_set():
            if self._finished() and not self.stay:
                break
            if not self._socket.poll(100, zmq.POLLIN):
                continue
            request = self._socket.recv_multipart()
            self._socket.send_multipart(self._answer(request[0] if len(request) == 1 else b""))
        self.summary.complete = self._finished()

    def _refill(self, subsystem: str) -> None:
        """With ``loop``, queue the next pass of ``subsystem`` once its current one is served."""
        queue = self._queues[subsystem]
        if queue or not self.plan.loop:
            return
        index = self._pass_of[subsystem] + 1
        if self._pass_allowed(index):
            self._pass_of[subsystem] = index
            queue.extend(self.plan.items(index, subsystem))

    def _finished(self) -> bool:
        for subsystem in self._queues:
            self._refill(subsystem)
        return not any(self._queues.values())

    def _due_count(self, queue: deque[ReplayItem], now: float) -> int:
        if self.speed is None:
            return len(queue)
        count = 0
        for item in queue:
            if self._due_at(item) > now:
                break
            count += 1
        return count

    def _answer(self, request: bytes) -> list[bytes]:
        try:
            subsystem = wire.parse_request(request)
        except wire.WireError as error:
            return self._refusal(f"replay: bad request: {error}")
        queue = self._queues.get(subsystem)
        if queue is None:
            return self._refusal(
                f"replay: {subsystem} is not replayed (this replay serves "
                f"{', '.join(self.plan.subsystems)})",
                subsystem,
            )
        self._refill(subsystem)
        now = time.monotonic()
        while queue and self._due_at(queue[0]) <= now:
            item = queue.popleft()
            message = self._message(item, self._due_count(queue, now))
            if message is None:
                continue  # unreadable: listed; the next due one answers
            header, payload = message
            self._last[subsystem] = (replace(header, pending=0).encode(), payload)
            self._sent(item, payload)
            return wire.rep_message(header, payload)
        if queue and subsystem in self._last:
            self.summary.repeated[subsystem] += 1
            return list(self._last[subsystem])
        if queue:
            wait = self._due_at(queue[0]) - now
            return self._refusal(
                f"replay: nothing due yet for {subsystem} (its first snapshot in {wait:.1f} s)",
                subsystem,
            )
        served = self.summary.served[subsystem]
        return self._refusal(
            f"replay finished: all {served} snapshot(s) of {subsystem} served", subsystem
        )

    def _refusal(self, reason: str, subsystem: str | None = None) -> list[bytes]:
        self.summary.refused += 1
        return [wire.encode_refusal(reason, subsystem), b""]

    # -- publishing -----------------------------------------------------------------
    def _await_subscribers(self, stop: threading.Event) -> bool:
        """Wait until a subscription covers every replayed subsystem; False if stopped."""
        prefixes: set[bytes] = set()
        wanted = {s.encode("ascii") for s in self.plan.subsystems}
        said = False
        while not stop.is_set():
            missing = sorted(w for w in wanted if not any(w.startswith(p) for p in prefixes))
            if not missing:
                return True
            if not said:
                log.info(
                    "waiting for subscribers of %s on %s before the first publication",
                    ", ".join(m.decode() for m in missing), self.endpoint,
                )  # fmt: skip
                said = True
            if self._socket.poll(100, zmq.POLLIN):
                message = self._socket.recv()
                if message[:1] == b"\x01":
                    prefixes.add(message[1:])
        return False

    def _drain_subscriptions(self) -> None:
        while self._socket.poll(0, zmq.POLLIN):
            self._socket.recv()

    def _publish(self, frames: list[bytes], stop: threading.Event) -> bool:
        """Send, waiting while the send queue is full (XPUB_NODROP); False if stopped."""
        while not stop.is_set():
            try:
                self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                self._drain_subscriptions()
                self._socket.poll(100, zmq.POLLOUT)
        return False

    def _serve_pub(self, stop: threading.Event) -> None:
        if not self._await_subscribers(stop):
            return
        self._start = time.monotonic()  # the clock starts with the first subscriber set
        index = 0
        while not stop.is_set():
            for item in self.plan.items(index):
                while not stop.is_set():
                    delay = self._due_at(item) - time.monotonic()
                    if delay <= 0:
                        break
                    self._drain_subscriptions()
                    stop.wait(min(delay, 0.1))
                if stop.is_set():
                    return
                message = self._message(item, None)
                if message is None:
                    continue
                header, payload = message
                if not self._publish(wire.pub_message(header, payload), stop):
                    return
                self._sent(item, payload)
            index += 1
            if not self.plan.loop or not self._pass_allowed(index):
                break
        self.summary.complete = not stop.is_set()
        while self.stay and not stop.is_set():
            self._drain_subscriptions()
            stop.wait(0.1)

    def close(self) -> None:
        self._socket.close(linger=0)

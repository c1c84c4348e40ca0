"""The ZMQ receiver: fetch snapshots of one subsystem and store them verbatim.

Patterns (framing in :mod:`receivers.wire`):

* ``req``: every ``interval`` seconds (spread by ``jitter``: each wait drawn
  in ``interval * (1 ± jitter)``) send ``{"subsystem": SYS}`` to a REP
  sender and wait up to ``timeout`` for ``[header, payload]``. No reply in time:
  close and reopen the socket (the "lazy pirate" pattern, since a REQ socket is
  stuck after a lost reply) and wait ``interval * 2**(failures-1)`` seconds,
  at most ``max_backoff``, before asking again.
* ``sub``: subscribe to topic SYS and take ``[topic, header, payload]``. Silence
  for ``max(timeout, 2 * interval)`` seconds also reopens the socket, with the
  same back-off.

Each message goes through :meth:`Receiver.handle_message`: wrong framing, bad
header (a run beyond 2**31 - 1 included), another subsystem or an oversized
payload are quarantined here (one log line, a bounded copy and a reason kept,
:mod:`receivers.quarantine`, counted); a sender's refusal and another topic
store nothing (counted). The rest is the rules every transport shares, in
:class:`receivers.intake.Intake`: run 0, an empty payload and a payload
identical to the previous one *of the same run* store nothing; a header
timestamp more than ``max_clock_skew`` seconds ahead of this receiver's clock,
or bytes that are not a complete ROOT file listing objects, are quarantined;
anything else is written verbatim by the :class:`~receivers.spool.Spool` and
announced to processing.

Why only the future is refused: names never go backwards within a run
(:mod:`receivers.spool`), so one snapshot dated years ahead would date every
later one after it and keep its run "ongoing"; a timestamp in the past costs
nothing (it is named after the previous one) and is what a replay of an
archived run sends. With ``restamp_future`` such a snapshot is stored under its
receipt time instead, said in the log (once per run).

Disk full: snapshots wait in memory. In ``req`` mode polling pauses while the
next snapshot would not fit ``pending_limit_bytes`` (so nothing acknowledged is
lost); in ``sub`` mode messages beyond the bound are dropped and counted.
On stop (SIGTERM) the message in hand is finished first; then snapshots still in
memory get ``stop_wait`` seconds for the disk, go to ``fallback_dir`` if set,
and whatever is left is logged as lost, snapshot by snapshot
(:meth:`Receiver.run` returns them, and ``overwatch receive`` exits 1).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path

import zmq

from overwatch import names
from overwatch.config import ReceiverSettings
from receivers import wire
from receivers.intake import Check, Intake, Outcome, Status
from receivers.spool import DrainResult, FileSystem

log = logging.getLogger(__name__)

__all__ = ["Outcome", "Receiver", "Status", "describe_lost"]

#: Headroom allowed by ZMQ_MAXMSGSIZE above max_message_bytes, so that a message a
#: little too big still arrives and is quarantined with a reason rather than
#: silently dropping the connection; anything beyond is cut off by ZeroMQ itself.
_ZMQ_SIZE_FACTOR = 2


class Receiver:
    """Receive snapshots of ``subsystem`` from ``connect`` and store them under ``data_dir``."""

    def __init__(
        self,
        settings: ReceiverSettings,
        data_dir: str | Path,
        subsystem: str,
        connect: str,
        pattern: str = "req",
        *,
        interval: float | None = None,
        notify_address: str | None = None,
        fs: FileSystem | None = None,
        retry_interval: float = 1.0,
        context: zmq.Context | None = None,
        first_poll: float = 0.0,
    ) -> None:
        if pattern not in ("req", "sub"):
            raise ValueError(f"pattern must be 'req' or 'sub', got {pattern!r}")
        self.settings = settings
        self.subsystem = wire.check_subsystem(subsystem)
        self.connect = connect
        self.pattern = pattern
        self.interval = settings.interval if interval is None else interval
        #: Seconds after start before the first request (``req``): receivers of one
        #: process spread their polls over the interval instead of asking all at once.
        self.first_poll = first_poll
        self._random = random.Random()  # own stream: receivers of one host spread apart
        self.data_dir = Path(data_dir)
        self._context = context or zmq.Context.instance()
        # A REQ receiver keeps what it fetched even beyond the memory bound: it asked for it.
        self.intake = Intake(
            settings,
            data_dir,
            self.subsystem,
            source=connect,
            keep=pattern == "req",
            notify_address=notify_address,
            fs=fs,
            retry_interval=retry_interval,
            context=self._context,
            heartbeat_info={"connect": connect, "pattern": pattern},
        )
        self.spool = self.intake.spool
        self.heartbeat = self.intake.heartbeat
        self.quarantine = self.intake.quarantine
        self.notifier = self.intake.notifier
        self._socket: zmq.Socket | None = None
        self._refusal: str | None = None

    @property
    def counters(self) -> dict[str, int]:
        return self.heartbeat.counters

    # -- one message ---------------------------------------------------------------
    def handle_message(self, frames: list[bytes]) -> Outcome:
        """Check, store and announce one received message.

        The framing, the topic, a sender's refusal and the header are this
        transport's; the rest is the :class:`~receivers.intake.Intake`'s. The size
        is checked before the header, so an oversized message is always said as such.
        """
        received = time.time()
        frames = [bytes(frame) for frame in frames]
        sizes = [len(frame) for frame in frames]
        self.intake.arrived(received)
        try:
            topic, head, payload = wire.split_message(frames, self.pattern)
        except wire.WireError as error:
            return self.intake.reject(
                frames[-1] if frames else b"", str(error), Check.FRAMING,
                frames=sizes, received=received,
            )  # fmt: skip
        if topic is not None and topic != self.subsystem.encode():
            self.heartbeat.count("ignored")
            return Outcome(Status.IGNORED, reason=f"topic {topic[:40]!r}")
        oversized = self.intake.too_big(len(payload))
        if oversized is not None:
            return self.intake.reject(
                payload, oversized, Check.SIZE, head=head, frames=sizes, received=received
            )
        try:
            header = wire.parse_header(head)
        except wire.WireError as error:
            return self.intake.reject(
                payload, f"bad header: {error}", Check.HEADER, head=head, frames=sizes,
                received=received,
            )  # fmt: skip
        if isinstance(header, wire.Refusal):
            return self._refused(header)
        if header.subsystem != self.subsystem:
            reason = f"header names subsystem {header.subsystem!r}, this receiver takes {self.subsystem!r}"
            return self.intake.reject(
                payload, reason, Check.SUBSYSTEM, head=head, frames=sizes, received=received
            )
        self._refusal = None
        return self.intake.accept(header, payload, received=received, head=head, frames=sizes)

    def _refused(self, refusal: wire.Refusal) -> Outcome:
        self.heartbeat.count("refused")
        if refusal.reason != self._refusal:  # say it once, not every poll
            log.error("sender %s refused: %s", self.connect, refusal.reason)
            self._refusal = refusal.reason
        return Outcome(Status.REFUSED, reason=refusal.reason)

    # -- the loop -------------------------------------------------------------------
    def _open(self) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ if self.pattern == "req" else zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        limit = self.settings.max_message_bytes * _ZMQ_SIZE_FACTOR + 65_536
        sock.setsockopt(zmq.MAXMSGSIZE, min(limit, 2**63 - 1))
        if self.pattern == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, self.subsystem.encode())
        sock.connect(self.connect)
        return sock

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _housekeeping(self) -> None:
        self.intake.housekeeping()
        self.heartbeat.maybe_write()

    def _backoff(self, failures: int) -> float:
        return min(
            self.interval * 2 ** (failures - 1), max(self.settings.max_backoff, self.interval)
        )

    def run(self, stop_event: threading.Event) -> DrainResult:
        """Receive until ``stop_event`` is set; the message in hand is always finished.

        Returns what became of the snapshots still in memory at stop (``lost`` is
        empty unless the disk stayed full).
        """
        log.info(
            "receiving %s from %s (%s) into %s",
            self.subsystem,
            self.connect,
            self.pattern,
            self.data_dir,
        )
        self.heartbeat.maybe_write(force=True)
        try:
            if self.pattern == "req":
                self._run_req(stop_event)
            else:
                self._run_sub(stop_event)
        finally:
            self._close()
            result = self._drain()
            self.heartbeat.set_state("stopped")
            self.heartbeat.maybe_write(force=True)
            self.intake.close()
            log.info("receiver %s stopped: %s", self.subsystem, self.counters)
        return result

    def _drain(self) -> DrainResult:
        """Write, spill or report every snapshot and reason still held in memory."""
        if self.spool.pending:
            log.warning(
                "stopping with %d snapshot(s) (%d bytes) unwritten (%s): waiting up to %g s "
                "for the disk (receiver.stop_wait)",
                len(self.spool.pending), self.spool.pending_bytes, self.spool.last_error,
                self.settings.stop_wait,
            )  # fmt: skip
        error = self.spool.last_error
        result = self.spool.drain(self.settings.stop_wait, self.settings.fallback_dir or None)
        self.intake.announce(result.written)
        self.quarantine.flush(force=True)
        if result.spilled:
            log.error(
                "spilled %d snapshot(s) to the fallback directory %s (receiver.fallback_dir): "
                "move them into %s keeping their paths so processing sees them: %s",
                len(result.spilled), self.settings.fallback_dir, self.data_dir,
                ", ".join(item.relpath for item in result.spilled),
            )  # fmt: skip
        if result.lost:
            log.error(
                "LOST %d snapshot(s) of %s on stop (%s; no fallback_dir took them): %s",
                len(result.lost), self.subsystem, self.spool.last_error or error,
                describe_lost(result),
            )  # fmt: skip
            self.heartbeat.update(last_error=f"lost {len(result.lost)} snapshot(s) on stop")
        waiting = len(self.quarantine.waiting) + self.quarantine.overflow
        if waiting:
            log.error(
                "stopping with %d quarantine reason(s) not written to the index (each is "
                "in this log where it was rejected)",
                waiting,
            )
        return result

    def _run_req(self, stop: threading.Event) -> None:
        failures = 0
        next_poll = time.monotonic() + self.first_poll
        request = wire.encode_request(self.subsystem)
        while not stop.is_set():
            self._housekeeping()
            now = time.monotonic()
            if self.spool.pending and not self.spool.has_room(self.intake.last_size):
                stop.wait(0.1)  # memory bound reached: poll again once the disk takes data
                continue
            if now < next_poll:
                stop.wait(min(next_poll - now, 0.2))
                continue
            if self._socket is None:
                self._socket = self._open()
            sent = time.monotonic()
            self._socket.send(request)
            reply = self._await_reply(stop)
            if reply is None:
                if stop.is_set():
                    return
                failures += 1
                self.heartbeat.count("timeouts")
                self.heartbeat.count("reconnects")
                self._close()
                delay = self._backoff(failures)
                log.warning(
                    "no reply from %s within %g s (%d in a row): reconnecting, next request in %.1f s",
                    self.connect, self.settings.timeout, failures, delay,
                )  # fmt: skip
                self.heartbeat.set_state("no reply")
                next_poll = time.monotonic() + delay
                continue
            if failures:
                log.info("%s answers again after %d failed request(s)", self.connect, failures)
            failures = 0
            if not self.spool.disk_full:
                self.heartbeat.set_state("receiving")
            outcome = self.handle_message(reply)
            # A sender holding more of this subsystem ready ("pending", the replay) is asked
            # again at once; the memory bound above still holds while the disk is full.
            if outcome.header is not None and outcome.header.pending:
                next_poll = time.monotonic()
            else:
                next_poll = max(sent + self._wait(), time.monotonic())

    def _wait(self) -> float:
        """Seconds from one request to the next: the interval, spread by ``jitter``."""
        spread = self.settings.jitter
        return self.interval * (1.0 + self._random.uniform(-spread, spread))

    def _await_reply(self, stop: threading.Event) -> list[bytes] | None:
        deadline = time.monotonic() + self.settings.timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._socket.poll(int(min(remaining, 0.2) * 1000) + 1, zmq.POLLIN):
                return self._socket.recv_multipart()
        return None

    def _run_sub(self, stop: threading.Event) -> None:
        failures = 0
        silence = max(self.settings.timeout, 2 * self.interval)
        self._socket = self._open()
        deadline = time.monotonic() + silence
        while not stop.is_set():
            self._housekeeping()
            if self._socket.poll(200, zmq.POLLIN):
                frames = self._socket.recv_multipart()
                if failures:
                    log.info("%s publishes again", self.connect)
                failures = 0
                if not self.spool.disk_full:
                    self.heartbeat.set_state("receiving")
                self.handle_message(frames)
                deadline = time.monotonic() + silence
            elif time.monotonic() > deadline:
                failures += 1
                self.heartbeat.count("timeouts")
                self.heartbeat.count("reconnects")
                self.heartbeat.set_state("no reply")
                delay = self._backoff(failures)
                log.warning(
                    "nothing from %s for %g s (%d in a row): resubscribing",
                    self.connect, silence, failures,
                )  # fmt: skip
                self._close()
                self._socket = self._open()
                deadline = time.monotonic() + silence + delay


def describe_lost(result: DrainResult) -> str:
    """Every lost snapshot by run, and whether a newer one of that run (holding the lost
    content, since snapshots are cumulative) was saved."""
    saved = {}
    for item in result.written + result.spilled:
        parts = names.split_snapshot_relpath(item.relpath)
        if parts:
            saved[parts[0]] = max(saved.get(parts[0], ""), item.relpath)
    by_run: dict[int | None, list[str]] = {}
    for item in result.lost:
        parts = names.split_snapshot_relpath(item.relpath)
        by_run.setdefault(parts[0] if parts else None, []).append(item.relpath)
    lines = []
    for run, relpaths in by_run.items():
        newer = saved.get(run)
        note = f" (their content is in {newer}, saved)" if newer and newer > max(relpaths) else ""
        lines.append(f"run {run}: {', '.join(relpaths)}{note}")
    return "; ".join(lines)

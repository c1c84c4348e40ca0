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
header (a run beyond 2**31 - 1 included), another subsystem, an oversized
payload, a header timestamp more than ``max_clock_skew`` seconds ahead of this
receiver's clock, or bytes that are not a complete ROOT file listing objects
are quarantined (one log line, a bounded copy and a reason kept,
:mod:`receivers.quarantine`, counted); run 0, an empty payload, a sender's
refusal and a payload identical to the previous one *of the same run* store
nothing (counted); anything else is written verbatim by the
:class:`~receivers.spool.Spool` and announced to processing.

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

import dataclasses
import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import zmq

from overwatch import names
from overwatch.config import ReceiverSettings
from overwatch.lru import LRU
from overwatch.rootio import RootFileError, validate_root_bytes
from overwatch.timestamps import from_unix
from receivers import wire
from receivers.heartbeat import Heartbeat
from receivers.notify import Notifier
from receivers.quarantine import Quarantine
from receivers.spool import DrainResult, FileSystem, Item, Spool

log = logging.getLogger(__name__)

#: Headroom allowed by ZMQ_MAXMSGSIZE above max_message_bytes, so that a message a
#: little too big still arrives and is quarantined with a reason rather than
#: silently dropping the connection; anything beyond is cut off by ZeroMQ itself.
_ZMQ_SIZE_FACTOR = 2
#: (run, subsystem) keys whose last payload digest is remembered for the duplicate check;
#: a sender interleaves at most a couple of runs.
_DUPLICATE_KEYS = 16


class Status(StrEnum):
    STORED = "stored"
    PENDING = "pending"  # accepted, waiting in memory for the disk
    DUPLICATE = "duplicate"
    EMPTY = "empty"
    RUN_ZERO = "run_zero"
    REFUSED = "refused"
    QUARANTINED = "quarantined"
    DROPPED = "dropped"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Outcome:
    """What happened to one message; ``path`` is relative to the data directory."""

    status: Status
    path: str | None = None
    reason: str | None = None
    header: wire.Header | None = None


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
    ) -> None:
        if pattern not in ("req", "sub"):
            raise ValueError(f"pattern must be 'req' or 'sub', got {pattern!r}")
        self.settings = settings
        self.subsystem = wire.check_subsystem(subsystem)
        self.connect = connect
        self.pattern = pattern
        self.interval = settings.interval if interval is None else interval
        self._random = random.Random()  # own stream: receivers of one host spread apart
        self.data_dir = Path(data_dir)
        self.spool = Spool(
            data_dir,
            fsync=settings.fsync,
            pending_limit_bytes=settings.pending_limit_bytes,
            retry_interval=retry_interval,
            fs=fs,
        )
        self.heartbeat = Heartbeat(
            data_dir,
            subsystem,
            interval=settings.heartbeat_interval,
            info={"connect": connect, "pattern": pattern},
            fs=fs,
        )
        self.heartbeat.pending["limit"] = settings.pending_limit_bytes
        self.quarantine = Quarantine(
            data_dir,
            self.subsystem,
            max_bytes=settings.quarantine_max_bytes,
            max_files=settings.quarantine_max_files,
            payload_bytes=settings.quarantine_payload_bytes,
            index_bytes=settings.quarantine_index_bytes,
            fsync=settings.fsync,
            retry_interval=retry_interval,
            fs=fs,
        )
        self._context = context or zmq.Context.instance()
        address = settings.notify_address if notify_address is None else notify_address
        self.notifier = Notifier(address, context=self._context)
        # Digest of the last payload stored per (run, subsystem): a new run's first snapshot
        # may be byte for byte its predecessor's last one and must still be stored.
        self._previous: LRU[tuple[int, str], bytes] = LRU(_DUPLICATE_KEYS)
        self._restamped_run: int | None = None
        self._last_size = 0
        self._socket: zmq.Socket | None = None
        self._refusal: str | None = None

    @property
    def counters(self) -> dict[str, int]:
        return self.heartbeat.counters

    # -- one message ---------------------------------------------------------------
    def handle_message(self, frames: list[bytes]) -> Outcome:
        """Check, store and announce one received message."""
        received = time.time()
        frames = [bytes(frame) for frame in frames]
        self.heartbeat.count("received")
        self.heartbeat.update(last_contact=received)
        try:
            topic, head, payload = wire.split_message(frames, self.pattern)
        except wire.WireError as error:
            return self._quarantine(
                frames[-1] if frames else b"", str(error), None, frames, received
            )
        if topic is not None and topic != self.subsystem.encode():
            self.heartbeat.count("ignored")
            return Outcome(Status.IGNORED, reason=f"topic {topic[:40]!r}")
        if len(payload) > self.settings.max_message_bytes:
            reason = (
                f"oversized message: {len(payload)} bytes, limit {self.settings.max_message_bytes}"
            )
            return self._quarantine(payload, reason, head, frames, received)
        try:
            header = wire.parse_header(head)
        except wire.WireError as error:
            return self._quarantine(payload, f"bad header: {error}", head, frames, received)
        if isinstance(header, wire.Refusal):
            return self._refused(header)
        if header.subsystem != self.subsystem:
            reason = f"header names subsystem {header.subsystem!r}, this receiver takes {self.subsystem!r}"
            return self._quarantine(payload, reason, head, frames, received)
        self._refusal = None
        if header.run == wire.NO_RUN:
            self.heartbeat.count("run_zero")
            return Outcome(Status.RUN_ZERO, header=header)
        if not payload:
            self.heartbeat.count("empty")
            return Outcome(Status.EMPTY, header=header)
        ahead = self._ahead(header, received)
        if ahead is not None and not self.settings.restamp_future:
            return self._quarantine(payload, ahead, head, frames, received)
        if ahead is not None:
            self._say_restamped(header, ahead)
            header = dataclasses.replace(header, timestamp=received)
        digest = hashlib.blake2b(payload, digest_size=32).digest()
        if self._previous.get((header.run, header.subsystem)) == digest:
            self.heartbeat.count("duplicates")
            return Outcome(Status.DUPLICATE, header=header)
        try:
            validate_root_bytes(payload)
        except RootFileError as error:
            return self._quarantine(payload, f"bad payload: {error}", head, frames, received)
        return self._store(header, payload, received, digest)

    def _ahead(self, header: wire.Header, received: float) -> str | None:
        """Why the header's timestamp is too far ahead of this receiver's clock, or None."""
        skew = self.settings.max_clock_skew
        if header.timestamp is None or header.timestamp <= received + skew:
            return None
        return (
            f"future timestamp: {from_unix(header.timestamp).isoformat()} is "
            f"{header.timestamp - received:.0f} s ahead of this receiver's clock "
            f"(receiver.max_clock_skew {skew:g} s): it would date every later snapshot "
            f"of run {header.run} after it"
        )

    def _say_restamped(self, header: wire.Header, ahead: str) -> None:
        if header.run != self._restamped_run:  # once per run, not once a second
            log.warning(
                "run %d: %s; stored under the receipt time instead (receiver.restamp_future), "
                "as is every later snapshot of this run that far ahead",
                header.run, ahead,
            )  # fmt: skip
            self._restamped_run = header.run

    def _store(
        self, header: wire.Header, payload: bytes, received: float, digest: bytes
    ) -> Outcome:
        instant = header.timestamp if header.timestamp is not None else received
        relpath = self.spool.unique_relpath(header.run, self.subsystem, instant)
        result = self.spool.store(Item(relpath, payload, header), keep=self.pattern == "req")
        self._after_flush(result.flushed)
        if result.status == "dropped":
            self.heartbeat.count("dropped")
            log.error(
                "dropped snapshot run %d seq %d (%d bytes): cannot write it (%s) and the memory "
                "buffer is full (%d bytes waiting, limit %d)",
                header.run, header.seq, len(payload), self.spool.last_error,
                self.spool.pending_bytes, self.spool.pending_limit_bytes,
            )  # fmt: skip
            return Outcome(Status.DROPPED, relpath, "memory buffer full", header)
        self._previous.put((header.run, header.subsystem), digest)
        self._last_size = len(payload)
        self.heartbeat.update(
            last_snapshot=received,
            last_snapshot_path=relpath,
            last_run=header.run,
            last_seq=header.seq,
        )
        if result.status == "pending":
            return Outcome(Status.PENDING, relpath, self.spool.last_error, header)
        return Outcome(Status.STORED, relpath, header=header)

    def _after_flush(self, written: list[Item]) -> None:
        """Count and announce snapshots that reached the disk; refresh the disk state."""
        for item in written:
            self.heartbeat.count("stored")
            log.debug("stored %s (%d bytes)", item.relpath, len(item.data))
            if self.notifier.notify(item.meta.run, self.subsystem, item.relpath):
                self.heartbeat.count("notices")
        self.heartbeat.pending.update(count=len(self.spool.pending), bytes=self.spool.pending_bytes)
        self.heartbeat.update(last_error=self.spool.last_error)
        if self.spool.disk_full:
            self.heartbeat.set_state("disk full")
        elif self.heartbeat.fields["state"] == "disk full":
            self.heartbeat.set_state("receiving")

    def _refused(self, refusal: wire.Refusal) -> Outcome:
        self.heartbeat.count("refused")
        if refusal.reason != self._refusal:  # say it once, not every poll
            log.error("sender %s refused: %s", self.connect, refusal.reason)
            self._refusal = refusal.reason
        return Outcome(Status.REFUSED, reason=refusal.reason)

    def _quarantine(self, payload: bytes, reason: str, head, frames, received: float) -> Outcome:
        self.heartbeat.count("quarantined")
        kept = self.quarantine.keep(
            payload,
            reason,
            header=head,
            frames=[len(f) for f in frames],
            received=received,
        )
        where = f"kept as {kept}" if kept else "could not keep a copy"
        log.error("rejected a message from %s: %s (%s)", self.connect, reason, where)
        self.heartbeat.update(last_error=reason)
        return Outcome(Status.QUARANTINED, str(kept) if kept else None, reason)

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
        self._after_flush(self.spool.flush())
        self.quarantine.flush()
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
            self.notifier.close()
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
        self._after_flush(result.written)
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
        next_poll = time.monotonic()
        request = wire.encode_request(self.subsystem)
        while not stop.is_set():
            self._housekeeping()
            now = time.monotonic()
            if self.spool.pending and not self.spool.has_room(self._last_size):
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
            self.handle_message(reply)
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

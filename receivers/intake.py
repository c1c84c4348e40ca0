"""What becomes of a snapshot once a transport has it: the one intake of every receiver.

The ZMQ receiver (:mod:`receivers.zmq_receiver`), the HTTP upload
(``POST /api/upload``, :mod:`webapp.upload`) and ``overwatch import`` hand an
:class:`Intake` a parsed :class:`~receivers.wire.Header` and the payload; the
transport keeps only its own part (framing, topics, a sender's refusal, HTTP
fields). The rules, in this order (the ZMQ receiver's since issue 13):

1. a payload over ``receiver.max_message_bytes`` is quarantined;
2. run 0 (:data:`~receivers.wire.NO_RUN`, "no run going on") stores nothing;
3. an empty payload stores nothing;
4. a timestamp more than ``max_clock_skew`` s ahead of the receipt time is
   quarantined, or with ``restamp_future`` stored under the receipt time (said
   in the log once per run);
5. a payload identical to the previous one stored *for the same (run,
   subsystem)* by this intake is counted, not stored again (a sender still
   publishing after the end of run);
6. bytes that are not a complete ROOT file listing objects
   (:func:`overwatch.rootio.validate_root_bytes`) are quarantined with the
   reason (:mod:`receivers.quarantine`);
7. anything else gets a unique, ordered name and is written atomically by the
   :class:`~receivers.spool.Spool`, then announced to processing
   (:class:`~receivers.notify.Notifier`). Heartbeat counters count every step.

Decided here:

* **Several writers of one data directory.** The web runs several processes
  (one intake per subsystem in each), beside the ZMQ receivers. The name of a
  snapshot is chosen and its file written while holding an exclusive
  ``flock`` on its ``Run<N>/<SYS>`` folder, so two writers never pick the same
  name (a rename would silently replace the other's file). Where the file
  system refuses the lock (some network file systems), writing goes on
  without it and the log says so once. A snapshot held in memory while the
  disk is full is written later without the lock; its name was free when given.
* **Duplicates** are remembered per intake, i.e. per process: the same
  payload uploaded through two web workers is stored twice (harmless: slices
  of identical snapshots are empty).
* **Holding** (``hold``): a ZMQ receiver keeps snapshots in memory while the
  disk refuses them (its sender cannot be asked again). An HTTP client can
  send again, so an upload intake holds nothing: a write that fails is
  :attr:`Status.DROPPED` at once, nothing is left half-written, and the client
  is told (507).
* The intake counts into a :class:`~receivers.heartbeat.Heartbeat` but never
  writes it: the ZMQ receiver writes its own on its schedule; the web and
  ``import`` write none (the heartbeat file belongs to the subsystem's ZMQ
  receiver).
* Thread-safe: one lock per intake (a web process answers uploads on several
  threads). Its notifier's socket must not be shared with another intake
  unless the caller guards it.

Also here, for the transports that take text fields (HTTP, the command
line): :func:`parse_instant` and :func:`snapshot_header`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import zmq

from overwatch import names, timestamps
from overwatch.config import ReceiverSettings
from overwatch.lru import LRU
from overwatch.rootio import RootFileError, validate_root_bytes
from overwatch.store.layout import DataDir
from overwatch.timestamps import from_unix
from receivers import wire
from receivers.heartbeat import Heartbeat
from receivers.notify import Notifier
from receivers.quarantine import Quarantine
from receivers.spool import FileSystem, Item, Spool

log = logging.getLogger(__name__)

#: (run, subsystem) keys whose last payload digest is remembered for the duplicate check;
#: a sender interleaves at most a couple of runs.
DUPLICATE_KEYS = 16


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


class Check(StrEnum):
    """Which rule quarantined a message (so a transport can answer in its own terms)."""

    FRAMING = "framing"
    SIZE = "size"
    HEADER = "header"
    SUBSYSTEM = "subsystem"
    CLOCK = "clock"
    PAYLOAD = "payload"


@dataclass(frozen=True)
class Outcome:
    """What happened to one message; ``path`` is relative to the data directory
    (for a quarantined message: its kept copy, if any)."""

    status: Status
    path: str | None = None
    reason: str | None = None
    header: wire.Header | None = None
    check: Check | None = None


class FieldError(ValueError):
    """A text field of a snapshot (run, subsystem, mode, timestamp) is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_instant(text: str, field: str = "timestamp") -> float:
    """Unix seconds from a field's text (:func:`overwatch.timestamps.parse_instant`'s rule);
    :class:`FieldError` naming the field."""
    try:
        return timestamps.parse_instant(text)
    except ValueError as error:
        raise FieldError(field, str(error)) from None


def snapshot_header(
    run: str | int,
    subsystem: str,
    *,
    mode: str = "B",
    timestamp: float | None = None,
    allow_no_run: bool = True,
) -> wire.Header:
    """The header of a snapshot given as fields; :class:`FieldError` names a wrong one.

    ``run`` may be text (decimal digits). Run 0 is the wire's "no run"
    (stored never) when ``allow_no_run``, else refused like any invalid run.
    The rules are the wire's (:func:`receivers.wire.parse_header`), applied to
    the result, so a field taken here is exactly what a ZMQ header may carry.
    """
    if isinstance(run, str):
        text = run.strip()
        if allow_no_run and text == str(wire.NO_RUN):
            run = wire.NO_RUN
        else:
            try:
                run = names.parse_run(text)
            except names.InvalidName as error:
                raise FieldError("run", str(error)) from None
    elif not (allow_no_run and run == wire.NO_RUN and not isinstance(run, bool)):
        try:
            run = names.check_run(run)
        except names.InvalidName as error:
            raise FieldError("run", str(error)) from None
    try:
        subsystem = names.check_subsystem(subsystem)
    except names.InvalidName as error:
        raise FieldError("subsystem", str(error)) from None
    try:
        mode = names.check_mode(mode)
    except names.InvalidName as error:
        raise FieldError("mode", str(error)) from None
    header = wire.Header(run=run, subsystem=subsystem, mode=mode, seq=0, timestamp=timestamp)
    try:  # run, subsystem and mode passed above: what is left to refuse is the timestamp
        parsed = wire.parse_header(header.encode())
    except wire.WireError as error:
        raise FieldError(
            "timestamp", str(error).removeprefix("header field 'timestamp' ")
        ) from None
    assert isinstance(parsed, wire.Header)  # no "error" key was sent
    return parsed


class Intake:
    """Check, store and announce the snapshots of one subsystem, from any transport.

    ``source`` names the sender in log lines (an address, "HTTP upload", a
    file); each call may name its own. ``keep``: a snapshot whose write fails
    stays in memory even beyond ``pending_limit_bytes`` (it was acknowledged
    already: the REQ pattern). ``hold=False``: nothing is ever held in memory
    (see the module docstring).
    """

    def __init__(
        self,
        settings: ReceiverSettings,
        data_dir: str | Path,
        subsystem: str,
        *,
        source: str,
        keep: bool = False,
        hold: bool = True,
        notify_address: str | None = None,
        notifier: Notifier | None = None,
        fs: FileSystem | None = None,
        retry_interval: float = 1.0,
        context: zmq.Context | None = None,
        heartbeat_info: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.subsystem = wire.check_subsystem(subsystem)
        self.source = source
        self.keep = keep and hold
        self.hold = hold
        self.data_dir = Path(data_dir)
        self.layout = DataDir(data_dir)
        self.spool = Spool(
            data_dir,
            fsync=settings.fsync,
            pending_limit_bytes=settings.pending_limit_bytes if hold else 0,
            retry_interval=retry_interval,
            fs=fs,
        )
        self.heartbeat = Heartbeat(
            data_dir, self.subsystem, interval=settings.heartbeat_interval,
            info=heartbeat_info, fs=fs,
        )  # fmt: skip
        self.heartbeat.pending["limit"] = self.spool.pending_limit_bytes
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
        if notifier is None:
            address = settings.notify_address if notify_address is None else notify_address
            notifier = Notifier(address, context=context)
        self.notifier = notifier
        # Digest of the last payload stored per (run, subsystem): a new run's first snapshot
        # may be byte for byte its predecessor's last one and must still be stored.
        self._previous: LRU[tuple[int, str], bytes] = LRU(DUPLICATE_KEYS)
        self._restamped_run: int | None = None
        self._lock = threading.RLock()
        self._lock_refused = False
        #: Bytes of the last snapshot accepted for writing (what the next one may need).
        self.last_size = 0

    @property
    def counters(self) -> dict[str, int]:
        return self.heartbeat.counters

    # -- a message arrives -----------------------------------------------------------
    def arrived(self, received: float) -> None:
        """Count a message the transport received (before anything is known of it)."""
        with self._lock:
            self.heartbeat.count("received")
            self.heartbeat.update(last_contact=received)

    def too_big(self, size: int) -> str | None:
        """Why a payload of ``size`` bytes is refused for its size, or None."""
        limit = self.settings.max_message_bytes
        if size > limit:
            return f"oversized message: {size} bytes, limit {limit}"
        return None

    def accept(
        self,
        header: wire.Header,
        payload: bytes,
        *,
        received: float | None = None,
        head: bytes | None = None,
        frames: list[int] | None = None,
        source: str | None = None,
    ) -> Outcome:
        """Apply the rules to one snapshot (``header`` parsed, its subsystem this intake's).

        ``head`` (the header as received) and ``frames`` (sizes of the message's
        parts) go into a quarantine record; ``head`` defaults to ``header`` encoded.
        """
        if header.subsystem != self.subsystem:
            raise ValueError(f"intake of {self.subsystem} given a {header.subsystem} snapshot")
        received = time.time() if received is None else received
        head = header.encode() if head is None else head
        with self._lock:
            oversized = self.too_big(len(payload))
            if oversized is not None:
                return self.reject(
                    payload, oversized, Check.SIZE, head=head, frames=frames,
                    received=received, source=source,
                )  # fmt: skip
            if header.run == wire.NO_RUN:
                self.heartbeat.count("run_zero")
                return Outcome(Status.RUN_ZERO, header=header)
            if not payload:
                self.heartbeat.count("empty")
                return Outcome(Status.EMPTY, header=header)
            ahead = self._ahead(header, received)
            if ahead is not None and not self.settings.restamp_future:
                return self.reject(
                    payload, ahead, Check.CLOCK, head=head, frames=frames,
                    received=received, source=source,
                )  # fmt: skip
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
                return self.reject(
                    payload, f"bad payload: {error}", Check.PAYLOAD, head=head,
                    frames=frames, received=received, source=source,
                )  # fmt: skip
            return self._store(header, payload, received, digest, source)

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

    # -- storing ---------------------------------------------------------------------
    def _store(
        self, header: wire.Header, payload: bytes, received: float, digest: bytes, source
    ) -> Outcome:
        instant = header.timestamp if header.timestamp is not None else received
        with self._name_lock(header.run):
            relpath = self.spool.unique_relpath(header.run, self.subsystem, instant)
            result = self.spool.store(Item(relpath, payload, header), keep=self.keep)
        self.announce(result.flushed)
        if result.status == "dropped":
            self.heartbeat.count("dropped")
            if self.hold:
                log.error(
                    "dropped snapshot run %d seq %d (%d bytes): cannot write it (%s) and the "
                    "memory buffer is full (%d bytes waiting, limit %d)",
                    header.run, header.seq, len(payload), self.spool.last_error,
                    self.spool.pending_bytes, self.spool.pending_limit_bytes,
                )  # fmt: skip
                return Outcome(Status.DROPPED, relpath, "memory buffer full", header)
            error = self.spool.last_error or "cannot write"
            log.error(
                "cannot store snapshot run %d (%d bytes) from %s: %s; nothing was stored "
                "(the sender is told and keeps it)",
                header.run, len(payload), source or self.source, error,
            )  # fmt: skip
            return Outcome(Status.DROPPED, relpath, error, header)
        self._previous.put((header.run, header.subsystem), digest)
        self.last_size = len(payload)
        self.heartbeat.update(
            last_snapshot=received,
            last_snapshot_path=relpath,
            last_run=header.run,
            last_seq=header.seq,
        )
        if result.status == "pending":
            return Outcome(Status.PENDING, relpath, self.spool.last_error, header)
        return Outcome(Status.STORED, relpath, header=header)

    @contextlib.contextmanager
    def _name_lock(self, run: int) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``Run<run>/<SYS>`` while a name is chosen and written.

        A folder that cannot be made (disk full) or locked is written without
        the lock: the spool's write then fails (and is handled) or succeeds alone.
        """
        folder = self.layout.subsystem_dir(run, self.subsystem)
        descriptor = None
        try:
            self.spool.fs.makedirs(folder)
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError as error:
            if descriptor is not None:
                os.close(descriptor)
                descriptor = None
            if error.errno not in (errno.ENOSPC, errno.EDQUOT) and not self._lock_refused:
                log.warning(
                    "cannot lock %s (%s): naming snapshots without it; two writers of one "
                    "run and subsystem at the same second could then collide",
                    folder, error,
                )  # fmt: skip
                self._lock_refused = True
        try:
            yield
        finally:
            if descriptor is not None:
                os.close(descriptor)  # closing releases the lock

    def announce(self, written: list[Item]) -> None:
        """Count and announce snapshots that reached the disk; refresh the disk state."""
        with self._lock:
            for item in written:
                self.heartbeat.count("stored")
                self.heartbeat.count("stored_bytes", len(item.data))
                log.debug("stored %s (%d bytes)", item.relpath, len(item.data))
                if self.notifier.notify(item.meta.run, self.subsystem, item.relpath):
                    self.heartbeat.count("notices")
            self.heartbeat.pending.update(
                count=len(self.spool.pending), bytes=self.spool.pending_bytes
            )
            self.heartbeat.update(last_error=self.spool.last_error)
            if self.spool.disk_full:
                self.heartbeat.set_state("disk full")
            elif self.heartbeat.fields["state"] == "disk full":
                self.heartbeat.set_state("receiving")

    def housekeeping(self) -> None:
        """Retry what waits in memory (snapshots, quarantine reasons) if due."""
        with self._lock:
            self.announce(self.spool.flush())
            self.quarantine.flush()

    # -- refusing --------------------------------------------------------------------
    def reject(
        self,
        payload: bytes,
        reason: str,
        check: Check,
        *,
        head: bytes | None = None,
        frames: list[int] | None = None,
        received: float | None = None,
        source: str | None = None,
    ) -> Outcome:
        """Quarantine a message: counted, logged, a bounded copy and the reason kept."""
        received = time.time() if received is None else received
        with self._lock:
            self.heartbeat.count("quarantined")
            kept = self.quarantine.keep(
                payload, reason, header=head, frames=frames, received=received
            )
            where = f"kept as {kept}" if kept else "could not keep a copy"
            log.error("rejected a message from %s: %s (%s)", source or self.source, reason, where)
            self.heartbeat.update(last_error=reason)
        return Outcome(Status.QUARANTINED, str(kept) if kept else None, reason, check=check)

    # -- the end ---------------------------------------------------------------------
    def close(self, linger: float = 0.0) -> None:
        """Close the notifier; ``linger`` seconds let a notice just sent still leave
        (a short-lived process such as ``overwatch import`` exits right after)."""
        with self._lock:
            self.notifier.close(linger)

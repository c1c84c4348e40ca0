"""Writing received snapshots to the data directory without ever losing one.

* Atomic: bytes go to a hidden temporary file in the target directory
  (``.<name>.<pid>.<n>.tmp``), are fsynced, renamed into place, and the
  directory is fsynced, so a reader never sees half a file and a power cut
  leaves either the whole file or none.
* Unique, ordered names: snapshot names have one-second resolution, and
  within a run and subsystem a later arrival always holds more content, so
  names never go backwards: a snapshot whose second is not after the last name
  given (two snapshots in one second, or a sender clock stepping back) is named
  one second after it, and further while that name exists on disk. Both are
  kept, names stay parseable, and sorting by name keeps arrival order.
* Disk full (or any other write error): the snapshot stays in memory, in
  arrival order, and every write is retried every ``retry_interval`` seconds;
  later snapshots queue behind it. ``pending_limit_bytes`` bounds that memory:
  the caller asks :meth:`Spool.has_room` and decides (a REQ receiver stops
  polling, a SUB receiver drops and counts).
* Quarantine: rejected messages are kept under ``<data-dir>/quarantine/`` as
  ``<SYS>.<UTC time>.<n>.bin`` (the payload frame) with ``<same>.reason.json``
  beside it (reason, receive time, header text, frame sizes).

All file-system calls go through :class:`overwatch.store.layout.FileSystem`, so tests can make them fail
(e.g. ``ENOSPC`` from ``write``) at the OS-call level.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overwatch.store.layout import DataDir, FileSystem, atomic_write
from overwatch.timestamps import from_unix, snapshot_relpath

log = logging.getLogger(__name__)

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_quarantine_counter = itertools.count()


def describe_os_error(error: OSError) -> str:
    if error.errno in _FULL_ERRNOS:
        return "disk full"
    return error.strerror or str(error)


@dataclass
class Item:
    """A snapshot accepted for writing; ``meta`` travels along (e.g. the header)."""

    relpath: str
    data: bytes
    meta: Any = None


@dataclass
class StoreResult:
    """What :meth:`Spool.store` did: the new item is ``written``, ``pending`` or ``dropped``.

    ``flushed`` lists every item that reached the disk during the call, in order
    (earlier pending items first, the new item last if it was written).
    """

    status: str
    flushed: list[Item] = field(default_factory=list)


class Spool:
    """Snapshot writer of one receiver: unique names, atomic writes, memory buffer, quarantine."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        fsync: bool = True,
        pending_limit_bytes: int = 1 << 30,
        retry_interval: float = 1.0,
        fs: FileSystem | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.fsync = fsync
        self.pending_limit_bytes = pending_limit_bytes
        self.retry_interval = retry_interval
        self.fs = fs or FileSystem()
        self.pending: deque[Item] = deque()
        self.pending_bytes = 0
        self.last_error: str | None = None
        self._next_retry = 0.0
        self._reserved: set[str] = set()
        self._last_second: dict[tuple[int, str], int] = {}

    # -- names -------------------------------------------------------------------
    def unique_relpath(self, run: int, subsystem: str, instant: float) -> str:
        """``Run<run>/<SYS>/<SYS>hists.<time>.root``, after the last name given and free."""
        second = int(instant)
        last = self._last_second.get((run, subsystem))
        if last is not None and second <= last:
            second = last + 1
        while True:
            relpath = snapshot_relpath(run, subsystem, from_unix(second))
            if relpath not in self._reserved and not self.fs.exists(self.data_dir / relpath):
                self._last_second[(run, subsystem)] = second
                return relpath
            second += 1

    # -- writing -------------------------------------------------------------------
    @property
    def disk_full(self) -> bool:
        return bool(self.pending)

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more may wait in memory (always, while nothing is pending)."""
        return not self.pending or self.pending_bytes + nbytes <= self.pending_limit_bytes

    def store(self, item: Item, *, keep: bool = False) -> StoreResult:
        """Write ``item`` (after any pending ones); keep it in memory if the disk refuses.

        ``keep=True`` keeps it even beyond the memory bound (it was already
        acknowledged); otherwise an item that does not fit is ``dropped``.
        """
        flushed = self.flush(force=True) if self.pending else []
        if self.pending:
            if keep or self.has_room(len(item.data)):
                self._queue(item)
                return StoreResult("pending", flushed)
            return StoreResult("dropped", flushed)
        try:
            self._write(item)
        except OSError as error:
            if not keep and len(item.data) > self.pending_limit_bytes:
                self.last_error = (
                    f"{describe_os_error(error)}: {error}"  # the caller reports the drop
                )
                return StoreResult("dropped", flushed)
            self._report(error, item)
            self._queue(item)
            return StoreResult("pending", flushed)
        return StoreResult("written", [*flushed, item])

    def flush(self, *, force: bool = False) -> list[Item]:
        """Retry pending writes (if due, or ``force``); return the items written."""
        if not self.pending or (not force and time.monotonic() < self._next_retry):
            return []
        written = []
        while self.pending:
            item = self.pending[0]
            try:
                self._write(item)
            except OSError as error:
                self.last_error = f"{describe_os_error(error)}: {error}"
                self._next_retry = time.monotonic() + self.retry_interval
                log.debug("still cannot write %s: %s", item.relpath, error)
                break
            self.pending.popleft()
            self.pending_bytes -= len(item.data)
            self._reserved.discard(item.relpath)
            written.append(item)
        if written and not self.pending:
            self.last_error = None
            log.warning("writing works again: stored %d snapshot(s) kept in memory", len(written))
        return written

    def _queue(self, item: Item) -> None:
        self.pending.append(item)
        self.pending_bytes += len(item.data)
        self._reserved.add(item.relpath)
        self._next_retry = time.monotonic() + self.retry_interval

    def _report(self, error: OSError, item: Item) -> None:
        what = describe_os_error(error)
        self.last_error = f"{what}: {error}"
        log.error(
            "%s: cannot write %s in %s (%s); keeping it in memory (%d bytes pending, limit %d) "
            "and retrying every %g s",
            what.upper(), item.relpath, self.data_dir, error,
            self.pending_bytes + len(item.data), self.pending_limit_bytes, self.retry_interval,
        )  # fmt: skip

    def _write(self, item: Item) -> None:
        atomic_write(self.data_dir / item.relpath, item.data, fsync=self.fsync, fs=self.fs)

    # -- quarantine ------------------------------------------------------------------
    def quarantine(
        self,
        payload: bytes,
        reason: str,
        *,
        subsystem: str,
        header: bytes | None = None,
        frames: list[int] | None = None,
        received: float | None = None,
    ) -> Path | None:
        """Keep a rejected message for inspection; return its ``.bin`` path (None if unwritable)."""
        received = time.time() if received is None else received
        stamp = from_unix(int(received)).format("YYYY_MM_DD_HH_mm_ss")
        unique = f"{os.getpid()}-{next(_quarantine_counter)}"
        kept, reason_file = DataDir(self.data_dir).quarantine_files(subsystem, stamp, unique)
        record = {
            "reason": reason,
            "subsystem": subsystem,
            "received": received,
            "received_utc": from_unix(received).isoformat(),
            "header": None if header is None else bytes(header[:4096]).decode("utf-8", "replace"),
            "payload_bytes": len(payload),
            "frame_bytes": frames,
        }
        try:
            atomic_write(kept, payload, fsync=self.fsync, fs=self.fs)
            atomic_write(
                reason_file,
                json.dumps(record, indent=1).encode("utf-8"),
                fsync=self.fsync,
                fs=self.fs,
            )
        except OSError as error:
            log.error(
                "cannot keep the rejected message in %s: %s",
                kept.parent,
                describe_os_error(error),
            )
            return None
        return kept

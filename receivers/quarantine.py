"""Refused messages: a bounded copy of each payload, and a reason for every one.

Under ``<data-dir>/quarantine/`` (paths named by :class:`~overwatch.store.layout.DataDir`):

* ``<SYS>.<UTC time>.<n>.bin``: the start of a refused payload (at most
  ``payload_bytes``; an oversized message is never kept whole) and
  ``<same>.reason.json`` beside it. All subsystems' copies together stay within
  ``max_bytes`` and ``max_files``: before a copy is added the oldest are deleted.
  A broken sender therefore cannot fill the disk and starve valid data.
* ``<SYS>.index.jsonl``: one JSON object a line for *every* refusal, whether
  its copy was kept, evicted later or could not be written (``kept`` names the
  copy or is null, ``not_kept`` says why). Eviction never touches it; past
  ``index_bytes`` it is rotated to ``<SYS>.index.1.jsonl`` (replacing the older
  one), so a subsystem's reasons take at most twice that.
* Disk full: a reason that cannot be appended waits in memory (at most
  :data:`MAX_WAITING` of them; beyond that they are counted, and the count is
  written as a record of its own) and is appended, in arrival order, once the
  disk takes data again (:meth:`Quarantine.flush`). Each reason is in the log
  from the start.

Each receiver appends only to its own subsystem's index (one receiver per
subsystem), so appends need no lock between processes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from overwatch.store.layout import DataDir, FileSystem, atomic_write
from overwatch.timestamps import from_unix
from receivers.spool import describe_os_error

log = logging.getLogger(__name__)

#: Reasons kept in memory while the index cannot be written.
MAX_WAITING = 1000
#: Characters of a header frame kept in a record (a header is a few dozen bytes).
HEADER_CHARS = 1024

_counter = itertools.count()


class Quarantine:
    """The quarantine of one subsystem's receiver; the bounds count every subsystem's copies."""

    def __init__(
        self,
        data_dir: str | Path,
        subsystem: str,
        *,
        max_bytes: int = 67_108_864,
        max_files: int = 1000,
        payload_bytes: int = 1_048_576,
        index_bytes: int = 16_777_216,
        fsync: bool = True,
        retry_interval: float = 1.0,
        fs: FileSystem | None = None,
    ) -> None:
        self.layout = DataDir(data_dir)
        self.subsystem = subsystem
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.payload_bytes = payload_bytes
        self.index_bytes = index_bytes
        self.fsync = fsync
        self.retry_interval = retry_interval
        self.fs = fs or FileSystem()
        self.waiting: deque[dict[str, Any]] = deque()
        self.overflow = 0  # reasons beyond MAX_WAITING: only in the log
        self._next_retry = 0.0

    # -- one refusal ---------------------------------------------------------------
    def keep(
        self,
        payload: bytes,
        reason: str,
        *,
        header: bytes | None = None,
        frames: list[int] | None = None,
        received: float | None = None,
    ) -> Path | None:
        """Record a refused message; return its kept copy (None if no copy was kept).

        Never raises for the disk: a reason that cannot be written waits in memory.
        """
        received = time.time() if received is None else received
        stamp = from_unix(int(received)).format("YYYY_MM_DD_HH_mm_ss")
        kept_file, reason_file = self.layout.quarantine_files(
            self.subsystem, stamp, f"{os.getpid()}-{next(_counter)}"
        )
        prefix = payload[: self.payload_bytes]
        record: dict[str, Any] = {
            "reason": reason,
            "subsystem": self.subsystem,
            "received": received,
            "received_utc": from_unix(received).isoformat(),
            "header": None
            if header is None
            else bytes(header[:HEADER_CHARS]).decode("utf-8", "replace"),
            "payload_bytes": len(payload),
            "frame_bytes": frames,
            "kept_bytes": len(prefix),
            "kept": None,
            "not_kept": None,
        }
        note = json.dumps(record, indent=1).encode("utf-8")
        size = len(prefix) + len(note) + 64  # the note grows by the file name below
        if self.max_files == 0 or size > self.max_bytes:
            record["not_kept"] = "larger than the quarantine bound (receiver.quarantine_*)"
        else:
            try:
                self._make_room(size)
                atomic_write(kept_file, prefix, fsync=self.fsync, fs=self.fs)
                record["kept"] = kept_file.name
                note = json.dumps(record, indent=1).encode("utf-8")
                atomic_write(reason_file, note, fsync=self.fsync, fs=self.fs)
            except OSError as error:
                record["not_kept"] = describe_os_error(error)
                if record["kept"] is not None:
                    self._remove(kept_file)  # a copy without its reason file would go unexplained
                    record["kept"] = None
                log.error(
                    "cannot keep the rejected message in %s: %s",
                    kept_file.parent,
                    describe_os_error(error),
                )
        self._index(record)
        return kept_file if record["kept"] else None

    # -- the index -------------------------------------------------------------------
    def flush(self, *, force: bool = False) -> int:
        """Append waiting reasons (if due, or ``force``); return how many were written."""
        if not (self.waiting or self.overflow) or (
            not force and time.monotonic() < self._next_retry
        ):
            return 0
        written = 0
        while self.waiting or self.overflow:
            if self.waiting:
                record = self.waiting[0]
            else:
                record = self._overflow_record()
            try:
                self._append(record)
            except OSError as error:
                self._next_retry = time.monotonic() + self.retry_interval
                log.debug("still cannot write the quarantine index: %s", error)
                break
            if self.waiting:
                self.waiting.popleft()
            else:
                self.overflow = 0
            written += 1
        if written and not self.waiting:
            log.warning("quarantine index: wrote %d reason(s) kept in memory", written)
        return written

    def _index(self, record: dict[str, Any]) -> None:
        self.flush(force=True)  # earlier reasons first: the index stays in arrival order
        if not self.waiting:
            try:
                self._append(record)
                return
            except OSError as error:
                log.error(
                    "cannot write the quarantine index (%s): keeping the reason in memory "
                    "until the disk takes data again",
                    describe_os_error(error),
                )
                self._next_retry = time.monotonic() + self.retry_interval
        if len(self.waiting) < MAX_WAITING:
            self.waiting.append(record)
        else:
            self.overflow += 1

    def _overflow_record(self) -> dict[str, Any]:
        now = time.time()
        return {
            "reason": f"{self.overflow} further refusal(s) while the index could not be "
            f"written (more than {MAX_WAITING} waiting); their reasons are in the receiver's log",
            "subsystem": self.subsystem,
            "received": now,
            "received_utc": from_unix(now).isoformat(),
            "kept": None,
            "not_kept": "disk full",
        }

    def _append(self, record: dict[str, Any]) -> None:
        """Append one line; on failure truncate back, so the index never holds half a line."""
        path = self.layout.quarantine_index(self.subsystem)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        self.fs.makedirs(path.parent)
        if self.fs.exists(path) and os.path.getsize(path) + len(line) > self.index_bytes:
            self.fs.rename(path, self.layout.quarantine_index(self.subsystem, 1))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[self.fs.write(fd, view) :]
                if self.fsync:
                    self.fs.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)
                raise
        finally:
            self.fs.close(fd)

    # -- bounds ----------------------------------------------------------------------
    def copies(self) -> list[tuple[int, Path, int]]:
        """(mtime in ns, ``.bin`` path, bytes with its reason file) of every kept copy."""
        found = []
        try:
            entries = list(os.scandir(self.layout.quarantine_dir))
        except FileNotFoundError:
            return []
        by_name = {entry.name: entry for entry in entries}
        for entry in entries:
            if not entry.name.endswith(".bin"):
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:  # evicted by another receiver meanwhile
                continue
            size = stat.st_size
            note = by_name.get(entry.name[: -len(".bin")] + ".reason.json")
            if note is not None:
                try:
                    size += note.stat().st_size
                except FileNotFoundError:
                    pass
            found.append((stat.st_mtime_ns, Path(entry.path), size))
        return sorted(found)

    def _make_room(self, size: int) -> None:
        """Delete the oldest copies until one more of ``size`` bytes fits both bounds."""
        copies = self.copies()
        total = sum(c[2] for c in copies)
        evicted = 0
        while copies and (len(copies) + 1 > self.max_files or total + size > self.max_bytes):
            _, path, bytes_ = copies.pop(0)
            self._remove(path)
            total -= bytes_
            evicted += 1
        if evicted:
            log.info("quarantine full: deleted the %d oldest kept payload(s)", evicted)

    def _remove(self, kept: Path) -> None:
        for path in (kept, kept.with_name(kept.name[: -len(".bin")] + ".reason.json")):
            try:
                self.fs.unlink(path)
            except FileNotFoundError:
                pass


def read_index(data_dir: str | Path, subsystem: str) -> list[dict[str, Any]]:
    """Every refusal recorded for ``subsystem``, oldest first (rotated part included)."""
    layout = DataDir(data_dir)
    records = []
    for generation in (1, 0):
        try:
            text = layout.quarantine_index(subsystem, generation).read_text("utf-8")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash: skip it
                continue
    return records

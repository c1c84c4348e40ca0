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
* Stopping (:meth:`Spool.drain`): what is still in memory gets ``wait``
  seconds more of retries, then goes to a fallback directory (same layout) if
  one is set; whatever neither took is lost and reported item by item. While
  draining, the newest snapshot of each run and subsystem goes first: a
  cumulative snapshot holds all earlier content, so if only some fit, the ones
  that fit lose the least. (Those may then reach the disk before older names
  of their run; names stay unique and ordered by time.)

* Clock: a run folder the spool creates gets a ``.overwatch-timezone`` marker
  saying ``UTC`` before its first snapshot, so processing and replay never read
  a new run as archived local time (:mod:`overwatch.store.archive`). A folder
  that already exists keeps its clock: names added to it are in the zone it
  declares (or the data directory declares), so they sort and read with the
  names already there, and no marker re-declares its older files.
* Never over another file: a snapshot is linked into place (``replace=False``);
  a name another writer took meanwhile (another receiver process, an upload)
  gets the next free second instead, and a retry that finds its own bytes
  already there counts as written.

Rejected messages go to :mod:`receivers.quarantine`.

All file-system calls go through :class:`overwatch.store.layout.FileSystem`, so tests can make them fail
(e.g. ``ENOSPC`` from ``write``) at the OS-call level.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overwatch import names
from overwatch.store.archive import UTC, read_marker, write_marker
from overwatch.store.layout import FileSystem, atomic_write
from overwatch.timestamps import from_unix, snapshot_filename

log = logging.getLogger(__name__)

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


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


@dataclass
class DrainResult:
    """What :meth:`Spool.drain` did with the items still in memory at stop."""

    written: list[Item] = field(default_factory=list)  # into the data directory
    spilled: list[Item] = field(default_factory=list)  # into the fallback directory
    lost: list[Item] = field(default_factory=list)  # nowhere: in arrival order


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``data``."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def newest_first(items: list[Item]) -> list[Item]:
    """``items`` with the newest of each (run, subsystem) first (latest arrival first), then
    the others in arrival order: the order that loses least when only some can be written."""
    newest: dict[tuple[int, str] | str, int] = {}  # (run, subsystem) -> index of its newest
    for index, item in enumerate(items):
        parts = names.split_snapshot_relpath(item.relpath)
        newest[(parts[0], parts[1]) if parts else item.relpath] = index
    heads = sorted(newest.values(), reverse=True)
    chosen = set(heads)
    return [items[i] for i in heads] + [item for i, item in enumerate(items) if i not in chosen]


class Spool:
    """Snapshot writer of one receiver: unique names, atomic writes, memory buffer."""

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
        self._zones: dict[Path, str] = {}  # run folder -> zone of its names
        self._unmarked: set[Path] = set()  # run folders to create with a UTC marker

    # -- names -------------------------------------------------------------------
    def unique_relpath(self, run: int, subsystem: str, instant: float) -> str:
        """``Run<run>/<SYS>/<SYS>hists.<time>.root``, after the last name given and free."""
        second = int(instant)
        last = self._last_second.get((run, subsystem))
        if last is not None and second <= last:
            second = last + 1
        zone = self._zone(run)
        folder = f"{names.run_dir(run)}/{subsystem}"
        while True:
            relpath = f"{folder}/{snapshot_filename(subsystem, from_unix(second), zone)}"
            if relpath not in self._reserved and not self.fs.exists(self.data_dir / relpath):
                self._last_second[(run, subsystem)] = second
                return relpath
            second += 1

    def _zone(self, run: int) -> str:
        """The zone of a run folder's names; a folder still to create will say UTC."""
        run_dir = self.data_dir / names.run_dir(run)
        zone = self._zones.get(run_dir)
        if zone is None:
            if self.fs.exists(run_dir):
                zone = read_marker(run_dir) or read_marker(self.data_dir) or UTC
            else:
                zone = UTC
                self._unmarked.add(run_dir)
            self._zones[run_dir] = zone
        return zone

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

    def _write(self, item: Item, fallback: Path | None = None) -> None:
        run_name = item.relpath.partition("/")[0]
        run_dir = self.data_dir / run_name
        if fallback is None:
            if run_dir in self._unmarked:  # a new run: it says its clock before its first file
                write_marker(run_dir, UTC, fs=self.fs, fsync=self.fsync)
                self._unmarked.discard(run_dir)
            self._place(item)
            return
        # The spilled folder says the clock its names are in, to be moved back as it is.
        zone = self._zones.get(run_dir, UTC)
        write_marker(fallback / run_name, zone, fs=self.fs, fsync=self.fsync)
        # Never over an earlier spill of the same name: that one is reported lost instead.
        target = fallback / item.relpath
        atomic_write(target, item.data, fsync=self.fsync, fs=self.fs, replace=False)

    def _place(self, item: Item) -> None:
        """Write ``item`` under its name, or the next free one if another writer took it."""
        for _ in range(1000):
            target = self.data_dir / item.relpath
            try:
                atomic_write(target, item.data, fsync=self.fsync, fs=self.fs, replace=False)
                return
            except FileExistsError:
                if _holds(target, item.data):
                    return  # an earlier try of this very item got there
            parts = names.split_snapshot_relpath(item.relpath)
            if parts is None:  # a name this spool did not give: nothing to move it to
                raise FileExistsError(f"{target} exists")
            run, subsystem, _ = parts
            renamed = self.unique_relpath(run, subsystem, 0)  # after the last name given
            log.warning("%s was taken by another writer meanwhile: stored as %s",
                        item.relpath, renamed)  # fmt: skip
            self._reserved.discard(item.relpath)
            item.relpath = renamed
        raise FileExistsError(f"no free name for {item.relpath}")

    # -- stopping ------------------------------------------------------------------
    def drain(self, wait: float, fallback: str | Path | None = None) -> DrainResult:
        """Empty the memory buffer before exit: retry for ``wait`` seconds, then spill.

        Each round tries every item (newest of each run first): a smaller one may
        fit where a larger one did not. Never raises for the disk.
        """
        result = DrainResult()
        deadline = time.monotonic() + wait
        while self.pending:
            result.written += self._try_all(None)
            remaining = deadline - time.monotonic()
            if not self.pending or remaining <= 0:
                break
            time.sleep(min(max(self.retry_interval, 0.05), remaining))
        if self.pending and fallback:
            result.spilled = self._try_all(Path(fallback))
        result.lost = list(self.pending)
        if not self.pending:
            self.last_error = None
        return result

    def _try_all(self, fallback: Path | None) -> list[Item]:
        """Write each pending item once (into ``fallback``, default the data directory)."""
        done = []
        for item in newest_first(list(self.pending)):
            try:
                self._write(item, fallback)
            except OSError as error:
                self.last_error = f"{describe_os_error(error)}: {error}"
                continue
            self.pending_bytes -= len(item.data)
            self._reserved.discard(item.relpath)
            done.append(item)
        written = {id(item) for item in done}
        self.pending = deque(item for item in self.pending if id(item) not in written)
        return done

"""The data directory: where snapshots, caches, heartbeats and quarantine live.

Every path inside the data directory is named here and nowhere else (the
names themselves, ``Run<run>``, ``<SYS>`` and the snapshot file names, follow
:mod:`overwatch.names`); other modules ask :class:`DataDir`:

```
<data>/Run<run>/<SYS>/<SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root   cumulative snapshots (never edited)
<data>/Run<run>/.overwatch-timezone                           zone of the run's names (receivers: UTC)
<data>/.overwatch-timezone                                    zone of every unmarked run (optional)
<data>/<SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root              old receivers' snapshots (read only)
<data>/cache/Run<run>/<SYS>/...                               array cache built by processing
<data>/cache/Run<run>/<SYS>/trends/                           trend chunks of that run's subsystem
<data>/status/receiver-<SYS>.json                             receiver heartbeats
<data>/status/notifications.json                              alarm notification counters (processing)
<data>/quarantine/<SYS>.<UTC time>.<n>.bin (+ .reason.json)   payloads refused by a receiver
<data>/quarantine/<SYS>.index.jsonl (+ <SYS>.index.1.jsonl)    one reason per refusal (kept or not)
<data>/.secret_key                                            the web's session key (default place)
```

Files appear atomically: written under a temporary name in the same
directory, flushed to disk, then renamed, so a reader never sees half a file
(:func:`atomic_write`, the one implementation of that).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from overwatch import names

CACHE_DIR = "cache"
TREND_DIR = "trends"
STATUS_DIR = "status"
HEARTBEAT_PREFIX = "receiver-"
NOTIFICATIONS_FILE = "notifications.json"
QUARANTINE_DIR = "quarantine"
SECRET_KEY_FILE = ".secret_key"
#: A one-line file naming the time zone of the snapshot names beside it (see overwatch.store.archive).
TIMEZONE_MARKER = ".overwatch-timezone"


class FileSystem:
    """The OS calls an atomic write makes; tests subclass it to inject failures
    (e.g. ``ENOSPC`` from ``write``) at the OS-call level."""

    def makedirs(self, path: Path) -> None:
        os.makedirs(path, exist_ok=True)

    def open_new(self, path: Path, mode: int = 0o644) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)

    def link(self, source: Path, target: Path) -> None:
        os.link(source, target)

    def fsync_dir(self, path: Path) -> None:
        fsync_directory(path)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)


_counter = itertools.count()

#: What :func:`atomic_write` takes: bytes (or any buffer), text (written as UTF-8), or an
#: iterable of buffers written one after the other (a large copy or an array's header
#: and data need not be joined in memory first).
Content = bytes | bytearray | memoryview | str | Iterable[bytes | bytearray | memoryview]


def _blocks(data: Content) -> Iterable[memoryview]:
    if isinstance(data, str):
        yield memoryview(data.encode("utf-8"))
        return
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:  # not a buffer: an iterable of them
        for block in data:  # type: ignore[union-attr]
            yield memoryview(block).cast("B")
    else:
        yield view.cast("B")  # TypeError for a buffer that is not contiguous


def atomic_write(
    path: str | Path,
    data: Content,
    *,
    fsync: bool = True,
    fs: FileSystem | None = None,
    mode: int = 0o644,
    replace: bool = True,
) -> Path:
    """Write ``data`` to ``path`` so that readers see all of it or nothing.

    Temporary file ``.<name>.<pid>.<n>.tmp`` in the same directory, fsync,
    rename, fsync of the directory. ``fsync=False`` skips both fsyncs (derived
    data, heartbeats: still atomic, just not durable across a power cut).
    ``mode`` is the new file's permission bits (before the umask).
    ``replace=False`` never replaces an existing file: the temporary file is
    hard-linked into place instead of renamed, and ``FileExistsError`` says
    another writer was first (so concurrent creators agree on one content).
    Raises ``OSError``; nothing is left behind then (the temporary file is removed).
    """
    fs = fs or FileSystem()
    path = Path(path)
    fs.makedirs(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")
    fd = fs.open_new(temporary, mode)
    try:
        try:
            for view in _blocks(data):
                while view:
                    written = fs.write(fd, view)
                    view = view[written:]
            if fsync:
                fs.fsync(fd)
        finally:
            fs.close(fd)
        if replace:
            fs.rename(temporary, path)
        else:
            fs.link(temporary, path)
    except BaseException:
        try:
            fs.unlink(temporary)
        except OSError:
            pass
        raise
    if not replace:
        try:
            fs.unlink(temporary)  # the content is in place under its name
        except OSError:
            pass
    if fsync:
        fs.fsync_dir(path.parent)
    return path


def fsync_directory(directory: str | Path) -> None:
    """Make a rename durable (the directory entry itself must reach the disk)."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class SnapshotFile:
    run: int
    subsystem: str
    path: Path


class DataDir:
    """Paths inside one data directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- snapshots -------------------------------------------------------------------
    def run_dir(self, run: int) -> Path:
        return self.root / names.run_dir(run)

    def subsystem_dir(self, run: int, subsystem: str) -> Path:
        return self.run_dir(run) / names.check_subsystem(subsystem)

    def snapshot_path(self, run: int, subsystem: str, name: str) -> Path:
        """Where the snapshot file ``name`` of a run's subsystem is.

        In its subsystem folder; an old receiver's name that is not there lies
        flat in the data directory, where those receivers wrote it.
        """
        path = self.subsystem_dir(run, subsystem) / name
        if names.RECEIVER_FILE_PATTERN.fullmatch(name) and not path.exists():
            return self.root / name
        return path

    def timezone_marker(self, run: int | None = None) -> Path:
        """The file declaring the zone of a run's names (``run=None``: of the whole directory)."""
        return (self.run_dir(run) if run is not None else self.root) / TIMEZONE_MARKER

    # -- processing's derived data -----------------------------------------------------
    @property
    def cache_root(self) -> Path:
        """Everything processing derives (array cache, trends): deleting it loses no data."""
        return self.root / CACHE_DIR

    def cache_dir(self, run: int, subsystem: str) -> Path:
        return self.cache_root / names.run_dir(run) / names.check_subsystem(subsystem)

    def trend_dir(self, run: int, subsystem: str) -> Path:
        return self.cache_dir(run, subsystem) / TREND_DIR

    def cache_runs(self) -> list[int]:
        """Runs with a folder in the cache, ascending."""
        try:
            entries = list(os.scandir(self.cache_root))
        except FileNotFoundError:
            return []
        runs = (names.parse_run_dir(entry.name) for entry in entries if entry.is_dir())
        return sorted(run for run in runs if run is not None)

    # -- receivers ---------------------------------------------------------------------
    @property
    def status_dir(self) -> Path:
        return self.root / STATUS_DIR

    def heartbeat_file(self, subsystem: str) -> Path:
        """Where the heartbeat of ``subsystem``'s receiver lives."""
        return self.status_dir / f"{HEARTBEAT_PREFIX}{names.check_subsystem(subsystem)}.json"

    def heartbeat_files(self) -> dict[str, Path]:
        """Subsystem -> heartbeat file, for every heartbeat on disk (sorted by subsystem)."""
        try:
            entries = list(os.scandir(self.status_dir))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        found = {}
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            subsystem = stem.removeprefix(HEARTBEAT_PREFIX)
            if (
                dot
                and suffix == "json"
                and stem.startswith(HEARTBEAT_PREFIX)
                and names.is_subsystem(subsystem)
            ):
                found[subsystem] = Path(entry.path)
        return dict(sorted(found.items()))

    @property
    def login_throttle_file(self) -> Path:
        """Failed sign-ins per user and address, shared by every web worker (SQLite)."""
        return self.status_dir / "login-throttle.sqlite3"

    @property
    def notifications_file(self) -> Path:
        """Counters of processing's alarm notification dispatcher, for the status page."""
        return self.status_dir / NOTIFICATIONS_FILE

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE_DIR

    def quarantine_files(self, subsystem: str, stamp: str, unique: str) -> tuple[Path, Path]:
        """(payload, reason) files of one refused message: ``<SYS>.<stamp>.<unique>.bin`` and
        ``.reason.json`` beside it."""
        stem = f"{names.check_subsystem(subsystem)}.{stamp}.{unique}"
        return self.quarantine_dir / f"{stem}.bin", self.quarantine_dir / f"{stem}.reason.json"

    def quarantine_index(self, subsystem: str, generation: int = 0) -> Path:
        """The log of every refusal of ``subsystem`` (``<SYS>.index.jsonl``, one JSON
        object a line); ``generation=1`` is the rotated older part."""
        middle = ".1" if generation else ""
        return self.quarantine_dir / f"{names.check_subsystem(subsystem)}.index{middle}.jsonl"

    # -- web ---------------------------------------------------------------------------
    @property
    def secret_key_file(self) -> Path:
        """Default place of the key that signs the web's session cookies."""
        return self.root / SECRET_KEY_FILE

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.root.resolve()))

    def iter_snapshots(self) -> Iterator[SnapshotFile]:
        """Every snapshot file on disk, by run, subsystem and file name (time order)."""
        if not self.root.is_dir():
            return
        runs = []
        for entry in self.root.iterdir():
            run = names.parse_run_dir(entry.name)
            if run is not None and entry.is_dir():
                runs.append((run, entry))
        for run, run_dir in sorted(runs):
            for subsystem_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
                if not names.is_subsystem(subsystem_dir.name):
                    continue
                for file in sorted(subsystem_dir.iterdir()):
                    if names.is_snapshot_file(file.name, subsystem_dir.name):
                        yield SnapshotFile(run, subsystem_dir.name, file)

"""The data directory: where snapshots, caches, heartbeats and quarantine live.

```
<data>/Run<run>/<SYS>/<SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root   cumulative snapshots (never edited)
<data>/cache/Run<run>/<SYS>/...                               array cache built by processing
<data>/status/receiver-<SYS>.json                             receiver heartbeats
<data>/quarantine/                                            payloads refused by a receiver
```

Files appear atomically: written under a temporary name in the same
directory, flushed to disk, then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from overwatch import names


class FileSystem:
    """The OS calls an atomic write makes; tests subclass it to inject failures
    (e.g. ``ENOSPC`` from ``write``) at the OS-call level."""

    def makedirs(self, path: Path) -> None:
        os.makedirs(path, exist_ok=True)

    def open_new(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)

    def fsync_dir(self, path: Path) -> None:
        fsync_directory(path)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)


_counter = itertools.count()


def atomic_write(
    path: str | Path, data: bytes, *, fsync: bool = True, fs: FileSystem | None = None
) -> Path:
    """Write ``data`` to ``path`` so that readers see all of it or nothing.

    Temporary file in the same directory, fsync, rename, fsync of the directory.
    Raises ``OSError``; nothing is left behind then (the temporary file is removed).
    """
    fs = fs or FileSystem()
    path = Path(path)
    fs.makedirs(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")
    fd = fs.open_new(temporary)
    try:
        try:
            view = memoryview(data)
            while view:
                written = fs.write(fd, view)
                view = view[written:]
            if fsync:
                fs.fsync(fd)
        finally:
            fs.close(fd)
        fs.rename(temporary, path)
    except BaseException:
        try:
            fs.unlink(temporary)
        except OSError:
            pass
        raise
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

    def subsystem_dir(self, run: int, subsystem: str) -> Path:
        return self.root / names.run_dir(run) / names.check_subsystem(subsystem)

    def cache_dir(self, run: int, subsystem: str) -> Path:
        return self.root / "cache" / names.run_dir(run) / names.check_subsystem(subsystem)

    @property
    def status_dir(self) -> Path:
        return self.root / "status"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

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

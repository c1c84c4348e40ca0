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

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RUN_DIR = re.compile(r"^Run(\d+)$")
SNAPSHOT_FILE = re.compile(r"^(?P<sys>[A-Za-z0-9]+)hists\.\d{4}(_\d{2}){5}\.root$")


def atomic_write(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see all of it or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            if fsync:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if fsync:
        fsync_directory(path.parent)
    return path


def fsync_directory(directory: str | Path) -> None:
    """Make a rename durable (the directory entry itself must reach the disk)."""
    descriptor = os.open(directory, os.O_RDONLY)
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
        return self.root / f"Run{run}" / subsystem

    def cache_dir(self, run: int, subsystem: str) -> Path:
        return self.root / "cache" / f"Run{run}" / subsystem

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
            match = RUN_DIR.match(entry.name)
            if match and entry.is_dir():
                runs.append((int(match.group(1)), entry))
        for run, run_dir in sorted(runs):
            for subsystem_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
                for file in sorted(subsystem_dir.iterdir()):
                    match = SNAPSHOT_FILE.match(file.name)
                    if match and match.group("sys") == subsystem_dir.name:
                        yield SnapshotFile(run, subsystem_dir.name, file)

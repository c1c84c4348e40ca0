"""Finding snapshot files: which subsystem directories hold files to look at."""

from __future__ import annotations

import os
import time
from pathlib import Path

from overwatch import names
from overwatch.store.layout import DataDir

Key = tuple[int, str]


class Scanner:
    """Lists snapshot files, skipping subsystem directories unchanged since last time."""

    SETTLE = 2.0  # seconds: a directory modified this recently is listed again (mtime ticks)

    def __init__(self, data_dir: str | Path) -> None:
        self.data = DataDir(data_dir)
        self._seen: dict[Path, tuple[int, float]] = {}

    def scan(self, force: set[Key] | None = None) -> dict[Key, list[str]]:
        force = force or set()
        found: dict[Key, list[str]] = {}
        root = self.data.root
        if not root.is_dir():
            return found
        for run_entry in os.scandir(root):
            run = names.parse_run_dir(run_entry.name)
            if run is None or not run_entry.is_dir():
                continue
            for sub_entry in os.scandir(run_entry.path):
                # A folder that is no subsystem name cannot hold snapshot files.
                if not names.is_subsystem(sub_entry.name) or not sub_entry.is_dir():
                    continue
                key = (run, sub_entry.name)
                path = Path(sub_entry.path)
                mtime = sub_entry.stat().st_mtime_ns
                seen = self._seen.get(path)
                if key not in force and seen and seen[0] == mtime:
                    if seen[1] - mtime / 1e9 > self.SETTLE:
                        continue
                listed_at = time.time()
                found[key] = [
                    n for n in os.listdir(path) if names.is_snapshot_file(n, sub_entry.name)
                ]
                self._seen[path] = (mtime, listed_at)
        return found

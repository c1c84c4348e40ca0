"""Finding snapshot files: which subsystem directories hold files to look at."""

from __future__ import annotations

import os
import time
from pathlib import Path

from overwatch.store.layout import SNAPSHOT_FILE, DataDir

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
            if not (run_entry.name.startswith("Run") and run_entry.name[3:].isdigit()):
                continue
            if not run_entry.is_dir():
                continue
            run = int(run_entry.name[3:])
            for sub_entry in os.scandir(run_entry.path):
                if not sub_entry.is_dir():
                    continue
                key = (run, sub_entry.name)
                path = Path(sub_entry.path)
                mtime = sub_entry.stat().st_mtime_ns
                seen = self._seen.get(path)
                if key not in force and seen and seen[0] == mtime:
                    if seen[1] - mtime / 1e9 > self.SETTLE:
                        continue
                listed_at = time.time()
                names = [
                    n
                    for n in os.listdir(path)
                    if SNAPSHOT_FILE.match(n) and n.startswith(f"{sub_entry.name}hists.")
                ]
                self._seen[path] = (mtime, listed_at)
                found[key] = names
        return found

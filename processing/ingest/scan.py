"""Finding snapshot files: which subsystem directories hold files to look at.

Every visible ``.root`` file of a ``Run<N>/<SYS>/`` folder is listed, whether or
not its name reads as a snapshot (the pipeline records the ones that do not as
bad, with the reason), and so are the old receivers' files lying flat in the
data directory (``<SYS>histos_<run>_<mode>_<time>.root``), under the run and
subsystem their names give (see :mod:`overwatch.store.archive`).

A worker owning some subsystems only (``processing.workers``) passes ``owns``:
the folders and flat files of other subsystems are never listed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from overwatch import names
from overwatch.store.archive import is_candidate
from overwatch.store.layout import DataDir

Key = tuple[int, str]


class Scanner:
    """Lists snapshot files, skipping subsystem directories unchanged since last time."""

    SETTLE = 2.0  # seconds: a directory modified this recently is listed again (mtime ticks)

    def __init__(self, data_dir: str | Path, owns: Callable[[str], bool] | None = None) -> None:
        self.data = DataDir(data_dir)
        self.owns = owns or (lambda subsystem: True)  # noqa: ARG005 - None: every subsystem
        self._seen: dict[Path, tuple[int, float]] = {}
        self._flat: dict[Key, int] = {}  # (run, subsystem) -> old receivers' files seen flat

    def scan(self, force: set[Key] | None = None) -> dict[Key, list[str]]:
        force = force or set()
        found: dict[Key, list[str]] = {}
        root = self.data.root
        if not root.is_dir():
            return found
        flat: dict[Key, list[str]] = {}
        run_entries = []
        for run_entry in os.scandir(root):
            match = names.RECEIVER_FILE_PATTERN.fullmatch(run_entry.name)
            if match is not None and not self.owns(match["subsystem"]):
                continue
            if match is not None and names.is_run(int(match["run"])):
                flat.setdefault((int(match["run"]), match["subsystem"]), []).append(run_entry.name)
            elif names.parse_run_dir(run_entry.name) is not None and run_entry.is_dir():
                run_entries.append(run_entry)
        for key in flat:  # the folder's files decide the order too: list them again with these
            if key not in self._flat or self._flat[key] != len(flat[key]):
                force = force | {key}
        self._flat = {key: len(files) for key, files in flat.items()}
        for run_entry in run_entries:
            run = names.parse_run_dir(run_entry.name)
            for sub_entry in os.scandir(run_entry.path):
                # A folder that is no subsystem name cannot hold snapshot files.
                if not names.is_subsystem(sub_entry.name) or not sub_entry.is_dir():
                    continue
                if not self.owns(sub_entry.name):  # another worker's
                    continue
                key = (run, sub_entry.name)
                path = Path(sub_entry.path)
                mtime = sub_entry.stat().st_mtime_ns
                seen = self._seen.get(path)
                if key not in force and seen and seen[0] == mtime:
                    if seen[1] - mtime / 1e9 > self.SETTLE:
                        continue
                listed_at = time.time()
                found[key] = [n for n in os.listdir(path) if is_candidate(n)]
                self._seen[path] = (mtime, listed_at)
        for key, files in flat.items():  # with the folder's own files: together they are in order
            if key in found or key in force:
                found[key] = list(dict.fromkeys(found.get(key, []) + files))
        return found

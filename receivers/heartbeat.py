"""The receiver's heartbeat: a small JSON file a monitor reads to tell alive from silent.

Written to ``DataDir.heartbeat_file(SYS)`` (``<data-dir>/status/receiver-<SYS>.json``),
replaced atomically at least every ``heartbeat_interval`` seconds and whenever
the receiver's state changes. The format (fields, counters, states) is defined
once in :mod:`overwatch.notices`, with its encoder and decoder; this module
keeps the counters and times of one running receiver and writes them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from overwatch.notices import COUNTERS, FormatError, decode_heartbeat, encode_heartbeat
from overwatch.store.layout import DataDir, FileSystem, atomic_write
from receivers.spool import describe_os_error

log = logging.getLogger(__name__)

__all__ = ["COUNTERS", "Heartbeat", "read_status", "status_path"]


def status_path(data_dir: str | Path, subsystem: str) -> Path:
    """Where the heartbeat of ``subsystem``'s receiver lives (``DataDir.heartbeat_file``)."""
    return DataDir(data_dir).heartbeat_file(subsystem)


def read_status(data_dir: str | Path, subsystem: str) -> dict[str, Any] | None:
    """The last heartbeat of a receiver, or None if it never wrote one (or it is unreadable)."""
    try:
        return decode_heartbeat(status_path(data_dir, subsystem).read_bytes())
    except (OSError, FormatError):
        return None


class Heartbeat:
    """Counters and times of one receiver, written to its status file on a schedule."""

    def __init__(
        self,
        data_dir: str | Path,
        subsystem: str,
        *,
        interval: float = 5.0,
        info: dict[str, Any] | None = None,
        fs: FileSystem | None = None,
    ) -> None:
        self.path = status_path(data_dir, subsystem)
        self.interval = interval
        self.fs = fs or FileSystem()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.fields: dict[str, Any] = {
            "subsystem": subsystem,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **(info or {}),
            "state": "starting",
            "started": time.time(),
            "last_contact": None,
            "last_snapshot": None,
            "last_snapshot_path": None,
            "last_run": None,
            "last_seq": None,
            "last_error": None,
        }
        self.pending = {"count": 0, "bytes": 0, "limit": 0}
        self._next_write = 0.0
        self._failing = False

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def set_state(self, state: str) -> None:
        """Change the state; a change is written at once so a monitor sees it."""
        if self.fields["state"] != state:
            self.fields["state"] = state
            self._next_write = 0.0

    def update(self, **fields: Any) -> None:
        self.fields.update(fields)

    def document(self) -> dict[str, Any]:
        return {
            **self.fields,
            "updated": time.time(),
            "counters": dict(self.counters),
            "pending": dict(self.pending),
        }

    def maybe_write(self, *, force: bool = False) -> bool:
        """Write the status file if due (or ``force``); never raises."""
        now = time.monotonic()
        if not force and now < self._next_write:
            return False
        self._next_write = now + self.interval
        try:
            data = encode_heartbeat(self.document())
        except FormatError:  # a bug, not the disk: say so every time, keep receiving
            log.exception("cannot encode the heartbeat of %s", self.path)
            return False
        try:
            # No fsync: a heartbeat is rewritten within seconds, a lost one costs nothing.
            atomic_write(self.path, data, fsync=False, fs=self.fs)
        except OSError as error:
            if not self._failing:
                log.error("cannot write the heartbeat %s: %s", self.path, describe_os_error(error))
            self._failing = True
            return False
        self._failing = False
        return True

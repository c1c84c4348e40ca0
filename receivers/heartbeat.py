"""The receiver's heartbeat: a small JSON file a monitor reads to tell alive from silent.

``<data-dir>/status/receiver-<SYS>.json``, replaced atomically at least every
``heartbeat_interval`` seconds and whenever the receiver's state changes::

    {
      "subsystem": "EMC", "pid": 1234, "host": "...", "connect": "tcp://...",
      "pattern": "req", "state": "receiving",
      "started": <unix>, "updated": <unix>,
      "last_contact": <unix or null>,      # last message of any kind from the sender
      "last_snapshot": <unix or null>,     # last snapshot stored (or queued)
      "last_snapshot_path": "Run1/EMC/EMChists....root", "last_run": 1, "last_seq": 7,
      "counters": {"received": 0, "stored": 0, ...},   # see COUNTERS
      "pending": {"count": 0, "bytes": 0, "limit": 1073741824},
      "last_error": null
    }

``state`` is one of ``starting``, ``receiving``, ``no reply`` (sender silent,
reconnecting with back-off), ``disk full`` (snapshots waiting in memory) and
``stopped``. Times are unix seconds (UTC).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from overwatch.store.layout import DataDir, FileSystem, atomic_write
from receivers.spool import describe_os_error

log = logging.getLogger(__name__)

#: Every counter a receiver keeps, in the order shown to users.
COUNTERS = (
    "received",  # messages received, of any kind
    "stored",  # snapshots written to disk
    "duplicates",  # payload identical to the previous one: not stored again
    "empty",  # empty payload: nothing to store
    "run_zero",  # run 0 (no run going on): nothing to store
    "refused",  # the sender answered with an error
    "quarantined",  # rejected as bad input, copy kept under quarantine/
    "dropped",  # lost because the memory buffer was full (SUB only)
    "ignored",  # other topics that matched the subscription prefix
    "timeouts",  # requests without a reply in time (or silent subscriptions)
    "reconnects",  # sockets closed and reopened
    "notices",  # "new snapshot" notices sent
)


def status_path(data_dir: str | Path, subsystem: str) -> Path:
    """Where the heartbeat of ``subsystem``'s receiver lives (``DataDir.heartbeat_file``)."""
    return DataDir(data_dir).heartbeat_file(subsystem)


def read_status(data_dir: str | Path, subsystem: str) -> dict[str, Any] | None:
    """The last heartbeat of a receiver, or None if it never wrote one (or it is unreadable)."""
    try:
        return json.loads(status_path(data_dir, subsystem).read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
        data = json.dumps(self.document(), indent=1).encode("utf-8")
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

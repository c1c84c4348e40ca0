"""Processing workers: which subsystems a worker owns, and its claim on them in ZODB.

Several ``overwatch process`` workers may run on one or several machines
against the same database and a shared data directory. Each owns a set of
subsystems and processes only their chains (run, subsystem), so a snapshot is
never processed by two workers.

**Ownership** (:class:`Ownership`) is one of:

- every subsystem (no ``--subsystems`` nor ``--share``: a single worker, as before);
- a list (``--subsystems EMC,TPC``);
- a share (``--share K/N``, 1 <= K <= N): every subsystem whose stable hash,
  ``zlib.crc32(name.encode("ascii")) % N``, equals ``K - 1``. CRC-32 is the
  same on every machine and Python version (``hash()`` is salted per process),
  so workers started with ``--share 1/2`` and ``--share 2/2`` on two hosts
  split the subsystems between them whatever names appear later.

Two ownerships overlap when some subsystem name could belong to both: a list
overlaps what owns one of its names; ``K/N`` and ``J/M`` overlap unless
``K - 1`` and ``J - 1`` differ modulo ``gcd(N, M)`` (by the Chinese remainder
theorem some hash then falls in both); "every subsystem" overlaps everything.

**Claims.** At start a worker claims its ownership in one transaction on
``OverwatchRoot.workers`` (name -> :class:`~overwatch.store.models.Worker`).
It refuses (:class:`ClaimRefused`, exit 2) when an *alive* worker of another
name, or a running one of the same name, owns an overlapping set; alive means
a heartbeat within ``status.dead_seconds`` (and, for a worker of the same host,
its process still there, so a killed worker restarts at once). The records of dead workers
whose ownership overlaps are taken over (removed, with a log line), so a
crashed worker's subsystems can be restarted elsewhere at once once it shows
dead. The claim writes the ``workers`` mapping itself, so two workers
claiming at the same time conflict in ZODB and the retried one sees the
other's claim: claims are exclusive even when they race.

**Heartbeat.** While it runs, a worker rewrites only its own record
(``last_seen``, ``last_pass``, ``processed``) every :func:`heartbeat_seconds`:
one small transaction touching one object no other worker writes, so it never
conflicts. If its record was taken over meanwhile (it stalled longer than
``dead_seconds`` and another worker claimed its subsystems), the heartbeat
raises :class:`ClaimLost` and the worker stops rather than process twice. A
worker that stops cleanly marks its record ``stopped`` (shown dead on the
status page, and no longer blocking a claim).

**Notice relay.** Receivers push their notices to one address, which one
worker holds (:mod:`processing.scheduler`). Every other worker binds a
listener of its own on a free port and writes its address in its record
(``notify``, with its heartbeat); the holder reads the records of the alive
workers of its host (:func:`notice_routes`, with each of its heartbeats) and
passes each notice of a subsystem it does not own on to the worker that owns
it. So every worker of a host is woken within milliseconds of a snapshot, and
``--share`` can use every core; a worker of another host goes on without
notices as before (its address would be this host's loopback).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import ZODB
from persistent.mapping import PersistentMapping

from overwatch import names
from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import Worker

log = logging.getLogger(__name__)

__all__ = [
    "ClaimLost",
    "ClaimRefused",
    "Ownership",
    "WorkerClaim",
    "heartbeat_seconds",
    "share_of",
]


class ClaimRefused(RuntimeError):
    """An alive worker already owns some of the subsystems; the text names it."""


class ClaimLost(RuntimeError):
    """This worker's record was taken over by another worker (it was seen as dead)."""


def share_of(subsystem: str, parts: int) -> int:
    """The share (1..parts) a subsystem falls in: its stable CRC-32 modulo ``parts``, plus one."""
    return zlib.crc32(subsystem.encode("ascii")) % parts + 1


@dataclass(frozen=True)
class Ownership:
    """The subsystems one worker processes: all, a list, or a share K of N."""

    subsystems: frozenset[str] | None = None  # None: not a list
    share: tuple[int, int] | None = None  # (K, N)

    @classmethod
    def parse(cls, subsystems: str | None = None, share: str | None = None) -> Ownership:
        """From ``--subsystems EMC,TPC`` or ``--share K/N``; ValueError says what is wrong."""
        if subsystems and share:
            raise ValueError("give --subsystems or --share, not both")
        if subsystems:
            listed = [s.strip() for s in subsystems.split(",") if s.strip()]
            if not listed:
                raise ValueError(f"--subsystems {subsystems!r} names no subsystem")
            return cls(subsystems=frozenset(names.check_subsystem(s) for s in listed))
        if share:
            part, _, parts = share.partition("/")
            try:
                k, n = int(part), int(parts)
            except ValueError:
                raise ValueError(f"--share {share!r}: expected K/N, e.g. 1/2") from None
            if not 1 <= k <= n:
                raise ValueError(f"--share {share!r}: K must be between 1 and N")
            return cls(share=(k, n))
        return cls()

    @classmethod
    def of(cls, record: Worker) -> Ownership:
        """The ownership a stored worker record claims."""
        if record.subsystems:
            return cls(subsystems=frozenset(record.subsystems))
        if record.share:
            k, n = record.share.split("/")
            return cls(share=(int(k), int(n)))
        return cls()

    @property
    def everything(self) -> bool:
        return self.subsystems is None and self.share is None

    def owns(self, subsystem: str) -> bool:
        if self.subsystems is not None:
            return subsystem in self.subsystems
        if self.share is not None:
            return share_of(subsystem, self.share[1]) == self.share[0]
        return True

    def overlaps(self, other: Ownership) -> bool:
        """Whether some subsystem name could belong to both."""
        if self.everything or other.everything:
            return True
        if self.subsystems is not None:
            return any(other.owns(s) for s in self.subsystems)
        if other.subsystems is not None:
            return any(self.owns(s) for s in other.subsystems)
        (k, n), (j, m) = self.share, other.share  # type: ignore[misc]
        return (k - 1) % math.gcd(n, m) == (j - 1) % math.gcd(n, m)

    def describe(self) -> str:
        """How the status page and messages name it: ``EMC,TPC``, ``share 1/2`` or ``all``."""
        if self.subsystems is not None:
            return ",".join(sorted(self.subsystems))
        if self.share is not None:
            return f"share {self.share[0]}/{self.share[1]}"
        return "all"


def heartbeat_seconds(late_seconds: float, dead_seconds: float) -> float:
    """How often a worker rewrites its record: well within ``late`` (never shown late
    while it runs), at least every half second."""
    return max(0.5, min(late_seconds / 3, dead_seconds / 4))


def default_name(ownership: Ownership) -> str:
    """The host name plus the subsystems (``host:EMC,TPC``; ``host`` for all)."""
    host = socket.gethostname()
    return host if ownership.everything else f"{host}:{ownership.describe()}"


def _alive(record: Worker, now: float, dead_seconds: float) -> bool:
    """Running and heard from within ``dead_seconds``; a worker of this host whose
    process is gone (killed, crashed) is dead at once, so a restart need not wait."""
    if record.state != "running" or now - record.last_seen >= dead_seconds:
        return False
    if record.host == socket.gethostname() and record.pid != os.getpid():
        return _process_exists(record.pid)
    return True


def _process_exists(pid: int) -> bool:
    """Whether a process of this host runs under ``pid`` (a zombie, killed but not yet
    reaped by its parent, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (not Linux): trust kill
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class WorkerClaim:
    """One worker's record: claimed at start, kept fresh by heartbeats, released at stop."""

    def __init__(self, db: ZODB.DB, name: str, ownership: Ownership, dead_seconds: float) -> None:
        self.db = db
        self.name = name
        self.ownership = ownership
        self.dead_seconds = dead_seconds
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = 0.0
        #: Where this worker takes notices relayed by the holder of the receivers' address
        #: ("" : it holds that address, or takes none); written with the heartbeat.
        self.notify = ""

    def claim(self, now: float | None = None) -> list[str]:
        """Claim the ownership; returns the names of dead workers taken over.

        Raises :class:`ClaimRefused` naming the alive worker that owns an overlap.
        """
        now = time.time() if now is None else now
        me = self.ownership

        def work(root) -> list[str]:
            ow = overwatch_root(root)
            if ow.workers is None:  # databases from before workers
                ow.workers = PersistentMapping()
            taken = []
            for name, other in list(ow.workers.items()):
                if not me.overlaps(Ownership.of(other)) and name != self.name:
                    continue
                if _alive(other, now, self.dead_seconds):
                    age = max(0.0, now - other.last_seen)
                    raise ClaimRefused(
                        f"worker {name!r} on {other.host} (pid {other.pid}) owns "
                        f"{Ownership.of(other).describe()} and is alive (seen {age:.0f} s "
                        f"ago), which overlaps {me.describe()}: stop it first, or choose "
                        "other subsystems (--subsystems, --share)"
                    )
                if name != self.name:
                    taken.append(name)
                del ow.workers[name]
            record = Worker(self.name, self.host, self.pid, now)
            record.subsystems = tuple(sorted(me.subsystems or ()))
            record.share = f"{me.share[0]}/{me.share[1]}" if me.share else ""
            ow.workers[self.name] = record
            return taken

        taken = transact(self.db, work, note=f"worker {self.name} claims {me.describe()}")
        self.started = now
        for name in taken:
            log.warning("worker %r was dead: its subsystems are taken over by %r", name, self.name)
        log.info("worker %r owns %s", self.name, me.describe())
        return taken

    def _mine(self, ow) -> Worker:
        record = (ow.workers or {}).get(self.name)
        if record is None or record.pid != self.pid or record.started != self.started:
            raise ClaimLost(
                f"worker {self.name!r}: its claim on {self.ownership.describe()} was taken "
                "over by another worker (this one was silent for status.dead_seconds)"
            )
        return record

    def heartbeat(self, last_pass: float, processed: int, now: float | None = None) -> None:
        """Say this worker is alive; raises :class:`ClaimLost` if its claim is gone."""
        now = time.time() if now is None else now

        def work(root) -> None:
            record = self._mine(overwatch_root(root))
            record.last_seen = now
            record.last_pass = last_pass
            record.processed = processed
            if getattr(record, "notify", "") != self.notify:
                record.notify = self.notify

        transact(self.db, work, note=f"worker {self.name} heartbeat")

    def notice_routes(self, now: float | None = None) -> list[tuple[Ownership, str]]:
        """(ownership, relay address) of the other alive workers of this host taking notices."""
        now = time.time() if now is None else now

        def work(ow) -> list[tuple[Ownership, str]]:
            routes = []
            for name, record in (ow.workers or {}).items():
                address = getattr(record, "notify", "")
                if name == self.name or not address or record.host != self.host:
                    continue
                if _alive(record, now, self.dead_seconds):
                    routes.append((Ownership.of(record), address))
            return routes

        return read(self.db, work)

    def release(self, last_pass: float, processed: int) -> None:
        """Mark the record stopped (a clean stop): no longer alive, no longer blocking."""

        def work(root) -> None:
            record = self._mine(overwatch_root(root))
            record.state = "stopped"
            record.last_pass = last_pass
            record.processed = processed

        try:
            transact(self.db, work, note=f"worker {self.name} stops")
        except ClaimLost:
            pass  # someone else owns it now: nothing of ours to mark

"""Persistent classes kept in ZODB: the browsable metadata of Overwatch.

Only names and plain data are stored here, never functions or open handles:
detector plugins are looked up by name at run time, so a database outlives
any change of code. Histogram arrays are not stored here either; they live in
the array cache on disk (see ``processing``), and the snapshot files are the
source of truth from which all of this can be rebuilt (``overwatch db rebuild``).

Times are unix seconds (float, UTC) throughout.

Receivers keep no record here: by design they never open the database (the
data path must keep storing snapshots when the database is down, and a
``file://`` storage admits one process only). Their state is the heartbeat
file they write (``overwatch.notices``), which the status page reads. An
older database may still hold an empty ``receivers`` container on its root;
nothing reads it.
"""

from __future__ import annotations

import time

from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

#: Bump when the shape of stored data changes; add a step to ``migrations``.
SCHEMA_VERSION = 2

ROOT_KEY = "overwatch"


class OverwatchRoot(Persistent):
    """Entry point of the database (``connection.root()["overwatch"]``)."""

    def __init__(self) -> None:
        self.schema_version = SCHEMA_VERSION
        self.runs = IOBTree()  # run number -> Run
        self.users = OOBTree()  # user name -> User
        self.processing = ProcessingStatus()
        self.alarms = IOBTree()  # alarm id -> Alarm (schema 2)
        # (run, subsystem, check, histogram path, trend or "") -> CheckState (schema 2)
        self.check_states = OOBTree()
        # slice id -> SliceRequest (on-demand slices; created on first use in older databases)
        self.slice_requests = OOBTree()
        self.workers = PersistentMapping()  # worker name -> Worker

    #: Class default, so databases from before processing workers load; the first
    #: worker's claim creates the mapping (see ``processing.workers``).
    workers: PersistentMapping | None = None


class ProcessingStatus(Persistent):
    """What the processing service last did, for the status page."""

    # Class defaults, so databases written before these fields need no schema step.
    # Both are plain dicts that processing replaces whole (never mutates in place):
    #: "Run<N>/<SYS>" -> {"failures", "error", "since", "next_retry"} of chains that
    #: keep failing (see processing.pipeline, "Failing chains").
    failing_chains: dict = {}  # noqa: RUF012 - replaced, never mutated
    #: Folder name -> why it is no run directory (e.g. a run number beyond MAX_RUN).
    bad_run_dirs: dict = {}  # noqa: RUF012 - replaced, never mutated

    def __init__(self) -> None:
        self.last_pass_started = 0.0
        self.last_pass_finished = 0.0
        self.last_snapshot_processed = 0.0  # timestamp of the newest snapshot handled
        self.snapshots_processed = 0
        self.last_error = ""


class Worker(Persistent):
    """One ``overwatch process`` worker and the subsystems it claimed (``processing.workers``).

    ``subsystems`` (a tuple of names) or ``share`` ("K/N") say what it owns;
    neither: every subsystem. ``last_seen`` is its heartbeat, ``last_pass``
    when its last pass finished, ``processed`` the snapshots it processed
    since it started. ``state`` is "running" or "stopped" (a clean stop). Only
    the worker itself writes its record after the claim, so heartbeats of
    several workers never conflict.
    """

    subsystems: tuple[str, ...] = ()
    share = ""
    state = "running"
    last_pass = 0.0
    processed = 0
    notify = ""  # address of its own notice listener, relayed to by the holder (workers.py)

    def __init__(self, name: str, host: str, pid: int, started: float) -> None:
        self.name = name
        self.host = host
        self.pid = pid
        self.started = started
        self.last_seen = started


class Run(Persistent):
    """One run; its subsystems hold the snapshots and slices."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.subsystems = OOBTree()  # name -> Subsystem

    @property
    def start(self) -> float:
        starts = [s.start for s in self.subsystems.values() if s.start]
        return min(starts) if starts else 0.0

    @property
    def end(self) -> float:
        return max((s.end for s in self.subsystems.values()), default=0.0)

    def is_ongoing(self, now: float, ongoing_seconds: float) -> bool:
        """A run is ongoing while some subsystem sent a snapshot in the last minutes."""
        return bool(self.subsystems) and now - self.end <= ongoing_seconds


class Subsystem(Persistent):
    """One subsystem within a run: its snapshots, latest slices and histogram list."""

    # Results of plugins and checks on the latest slice, written by processing
    # with the snapshot record and read by the web app. Class-level defaults so
    # objects stored before these existed read as "nothing evaluated yet".
    #: Rolled-up quality of the subsystem ("Good", "Medium", "Bad", "Null").
    quality = "Null"
    #: group name -> quality, in the plugin's group order (a plain dict).
    group_qualities: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated in place
    #: CheckResult.to_dict() of every check on the latest slice.
    check_results: tuple[dict, ...] = ()
    #: histogram path -> Annotation.to_dict() for the latest slice (only non-empty ones).
    annotations: dict[str, dict] = {}  # noqa: RUF012 - replaced, never mutated in place
    #: Errors raised by the detector plugin on the latest slice (shown on the status page).
    plugin_errors: tuple[str, ...] = ()
    #: Unix time of the slice those results belong to.
    evaluated_at = 0.0

    def __init__(self, run: int, name: str) -> None:
        self.run = run
        self.name = name
        self.start = 0.0  # first snapshot
        self.end = 0.0  # last snapshot
        self.n_events = 0.0  # from the configured events histogram, latest snapshot
        self.snapshots = OOBTree()  # timestamp -> SnapshotRecord
        self.bad_snapshots = OOBTree()  # file name -> reason
        self.slices = OOBTree()  # end timestamp -> TimeSlice (the "latest" slice of each snapshot)
        self.histograms = OOBTree()  # path -> HistogramInfo
        self.errors = PersistentList()  # HistogramError, newest last
        self.segments = 1  # cumulative segments (counter resets start a new one)

    def latest_snapshot(self) -> SnapshotRecord | None:
        return self.snapshots[self.snapshots.maxKey()] if len(self.snapshots) else None

    def add_error(self, error: HistogramError, keep: int = 1000) -> None:
        self.errors.append(error)
        if len(self.errors) > keep:
            del self.errors[: len(self.errors) - keep]


class SnapshotRecord(Persistent):
    """One cumulative snapshot file that processing has read."""

    #: Histograms whose counter reset at this snapshot (processing sets it; class default
    #: so records written before the attribute existed read as 0).
    resets = 0

    def __init__(
        self,
        timestamp: float,
        filename: str,
        n_histograms: int,
        cache_file: str,
        size: int = 0,
    ) -> None:
        self.timestamp = timestamp
        self.filename = filename  # relative to the data directory
        self.n_histograms = n_histograms
        self.cache_file = cache_file  # relative to the data directory
        self.size = size
        self.processed_at = time.time()


class TimeSlice(Persistent):
    """Content that arrived between two snapshots (or the run start and one).

    ``start`` is 0.0 for a slice that starts at the beginning of the run.
    ``key`` identifies an on-demand slice (interval + options); empty for the
    latest slices written by processing.
    """

    def __init__(
        self,
        run: int,
        subsystem: str,
        start: float,
        end: float,
        n_histograms: int,
        key: str = "",
        options: dict | None = None,
    ) -> None:
        self.run = run
        self.subsystem = subsystem
        self.start = start
        self.end = end
        self.n_histograms = n_histograms
        self.key = key
        self.options = PersistentMapping(options or {})
        self.created = time.time()


class SliceRequest(Persistent):
    """An on-demand time slice someone asked for: enough to recompute it in any process.

    Keyed by its id (a hash of run, subsystem, interval and every option, see
    ``processing.slices.spec``). ``start`` is None for a slice from the run
    start; ``options`` is a plain dict of the validated values (defaults
    included), replaced, never mutated. The slice's histograms are not stored:
    web processes keep recent ones in memory and recompute the others from here.
    """

    def __init__(
        self, slice_id: str, run: int, subsystem: str, start: float | None, end: float,
        options: dict,
    ) -> None:  # fmt: skip
        self.slice_id = slice_id
        self.run = run
        self.subsystem = subsystem
        self.start = start
        self.end = end
        self.options = dict(options)
        self.created = time.time()
        self.last_used = self.created


class HistogramInfo(Persistent):
    """What is known of one histogram path within a run's subsystem."""

    def __init__(self, path: str, class_name: str, first_seen: float) -> None:
        self.path = path
        self.class_name = class_name
        self.first_seen = first_seen
        self.last_seen = first_seen


class HistogramError(Persistent):
    """A histogram that could not be processed at one snapshot (e.g. binning change)."""

    def __init__(self, path: str, timestamp: float, message: str) -> None:
        self.path = path
        self.timestamp = timestamp
        self.message = message


class User(Persistent):
    """A web user. Passwords and API tokens are stored only as hashes.

    ``session_epoch`` is part of every session cookie's fingerprint: raising it
    (sign-out, password change) ends every session the user has open.
    ``token_times`` maps a token hash to when it was issued (tokens issued
    before it existed have none). ``can_upload``: the user's API tokens may
    store snapshots (``POST /api/upload``); set with ``overwatch users allow-upload``.
    """

    # Class-level defaults, so users stored before these fields load unchanged.
    session_epoch = 0
    token_times: PersistentMapping | None = None
    can_upload = False

    def __init__(self, name: str, password_hash: str) -> None:
        self.name = name
        self.password_hash = password_hash
        self.token_hashes = PersistentList()
        self.token_times = PersistentMapping()
        self.session_epoch = 0
        self.created = time.time()


class Alarm(Persistent):
    """One episode of a check at a raising quality (Bad, or Medium if configured).

    Qualities are stored as their names ("Bad"), not as enum objects, so the
    database never depends on a class of the code. ``trend`` is "" for a check
    of the histogram itself. ``time`` is when the alarm was opened (wall
    clock); ``first_seen`` and ``last_seen`` are the slice end times of the
    episode's first and latest raising results, ``occurrences`` their number;
    ``cleared_at`` is the slice end time at which the check was judged back
    (see ``processing.analysis.alarms.manager``).
    """

    # Class-level defaults, so alarms stored before episodes existed load
    # unchanged (no schema step): one occurrence, seen at ``time``.
    occurrences = 1
    first_seen = 0.0
    last_seen = 0.0

    def __init__(
        self,
        alarm_id: int,
        time: float,
        run: int,
        subsystem: str,
        check: str,
        path: str,
        trend: str,
        group: str,
        quality: str,
        message: str,
    ) -> None:
        self.id = alarm_id
        self.time = time
        self.run = run
        self.subsystem = subsystem
        self.check = check
        self.path = path
        self.trend = trend
        self.group = group
        self.quality = quality
        self.message = message
        self.acknowledged_by = ""
        self.acknowledged_at = 0.0
        self.cleared_at = 0.0
        self.last_notified = 0.0
        self.notifications = 0

    @property
    def active(self) -> bool:
        return not self.cleared_at


class CheckState(Persistent):
    """Where one check on one target stands: last non-Null quality and episode counters.

    The counters (class-level defaults, so states stored before them load as
    "no streak") are the manager's: consecutive raising results while no alarm
    is open (``raising_streak``, since the slice ``episode_start``, worst
    quality ``episode_quality``) and consecutive non-raising results while one
    is (``clear_streak``).
    """

    raising_streak = 0
    clear_streak = 0
    episode_start = 0.0
    episode_quality = "Null"

    def __init__(self, quality: str, since: float) -> None:
        self.quality = quality
        self.since = since  # when the check reached this quality
        self.alarm_id = 0  # the open alarm of this target (0: none)
        self.last_notified = 0.0  # unused since alarms by episode (kept: stored states have it)

"""The status page: is the data path healthy? (in the spirit of the DQM² mirror).

For every receiver: its last heartbeat, last contact with its sender and last
snapshot, coloured green (alive), amber (late) or red (dead) with the
thresholds ``status.late_seconds`` and ``status.dead_seconds``. A receiver is
as bad as the older of its heartbeat and its last snapshot, so both a dead
receiver process and a silent sender show. Also: how far processing lags
behind the newest snapshot (how long the newest received snapshot has
waited for a pass), whether the database answers, and the free disk
space of the data directory. Chains (run, subsystem) that processing isolated
because they keep failing are listed with their error and next retry (red:
their data waits), and folders named like run directories that hold no valid
run with the reason (amber).

Processing workers (``processing.workers``): one row per ``Worker`` record
(name, host, pid, what it owns, last pass, snapshots processed), coloured by
its heartbeat age with the same thresholds; a worker that stopped cleanly is
dead too. Any dead worker makes the processing status dead (its subsystems
are not processed), a late one late. A database from before workers has no
records: no rows, and the status is judged by the passes as before.

Receivers write their heartbeat to ``DataDir.heartbeat_file(SYS)``
(``<data>/status/receiver-<SYS>.json``); this module lists those files with
``DataDir.heartbeat_files`` and reads them with ``overwatch.notices``'
decoder rather than importing the receivers package. They are the only
record of a receiver: receivers never open the database (by design, see
``overwatch.store.models``), so the receiver rows do not depend on it and still
show when the database is down.

Alarm notifications: the dispatcher lives in the processing process, whose
memory the web cannot see; it saves its counters per notifier (queued,
pending, delivered, failed, dropped, retries) to
``DataDir.notifications_file`` (``<data>/status/notifications.json``, written
atomically, see ``processing.analysis.alarms.notifiers``), and this page reads
that file: like the heartbeats, it shows when the database is down. A queue
that dropped or failed notices is red, one with notices waiting or retrying
amber; counters older than ``status.dead_seconds`` while processing claims to
run are shown as stale.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from typing import Any

from flask import Blueprint, Response, render_template

from overwatch.notices import FormatError, decode_heartbeat
from overwatch.store.db import redact  # the one rule; pages show URIs through it
from overwatch.store.layout import DataDir
from webapp.context import overwatch, resources
from webapp.http import json_response

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)

ALIVE, LATE, DEAD, UNKNOWN = "alive", "late", "dead", "unknown"
_RANK = {ALIVE: 0, UNKNOWN: 1, LATE: 2, DEAD: 3}
#: Free disk below these fractions shows amber, then red.
DISK_LATE_FRACTION = 0.15
DISK_DEAD_FRACTION = 0.05
#: Processing records a pass that found nothing new at most this often (seconds).
PASS_RECORD_SECONDS = 60.0


def level(age: float | None, late: float, dead: float) -> str:
    """Colour class of something last seen ``age`` seconds ago."""
    if age is None:
        return UNKNOWN
    if age >= dead:
        return DEAD
    if age >= late:
        return LATE
    return ALIVE


def worst(*levels: str) -> str:
    return max(levels, key=_RANK.__getitem__)


def _age(now: float, when: Any) -> float | None:
    return max(0.0, now - float(when)) if isinstance(when, int | float) and when > 0 else None


def _heartbeat_files(data_dir: DataDir) -> dict[str, dict[str, Any]]:
    beats: dict[str, dict[str, Any]] = {}
    try:
        files = data_dir.heartbeat_files()
    except OSError:
        return beats
    for subsystem, path in files.items():
        try:
            beats[subsystem] = decode_heartbeat(path.read_bytes())
        except (OSError, FormatError) as error:
            log.warning("unreadable heartbeat %s: %s", path, error)
            beats[subsystem] = {"state": "unreadable heartbeat file", "last_error": str(error)}
    return beats


def receiver_rows(
    beats: dict[str, dict], now: float, late: float, dead: float
) -> list[dict[str, Any]]:
    """One row per receiver that wrote a heartbeat file."""
    rows = []
    for subsystem in sorted(beats):
        beat = beats[subsystem]
        heartbeat = beat.get("updated")
        contact = beat.get("last_contact")
        snapshot = beat.get("last_snapshot")
        heartbeat_age = _age(now, heartbeat)
        # No snapshot yet: count from the receiver's start, so a sender that never sends shows.
        snapshot_age = _age(now, snapshot) if snapshot else _age(now, beat.get("started"))
        state = str(beat.get("state") or "unknown")
        status = worst(level(heartbeat_age, late, dead), level(snapshot_age, late, dead))
        if state == "stopped":
            status = DEAD
        rows.append(
            {
                "subsystem": subsystem,
                "status": status,
                "state": state,
                "heartbeat": heartbeat,
                "heartbeat_age": heartbeat_age,
                "last_contact": contact,
                "contact_age": _age(now, contact),
                "last_snapshot": snapshot,
                "snapshot_age": _age(now, snapshot),
                "last_snapshot_path": beat.get("last_snapshot_path"),
                "last_run": beat.get("last_run"),
                "counters": beat.get("counters") or {},
                "last_error": beat.get("last_error"),
            }
        )
    return rows


_COUNTERS = ("queued", "pending", "delivered", "failed", "dropped", "attempts", "failures")


def _unknown_notifications(error: str) -> dict[str, Any]:
    return {
        "status": UNKNOWN, "error": error, "updated": None, "age": None, "running": False,
        "stale": False, "queue_size": None, "notifiers": [],
        "totals": dict.fromkeys(_COUNTERS, 0),
    }  # fmt: skip


def notification_view(data_dir: DataDir, now: float, dead: float) -> dict[str, Any]:
    """The notification counters processing saved, with a status colour; {} if none yet."""
    path = data_dir.notifications_file
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("unreadable notification counters %s: %s", path, error)
        return _unknown_notifications(f"unreadable {path.name}: {error}")
    raw = document.get("notifiers") if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        return _unknown_notifications(f"unexpected content in {path.name}")
    counters = _COUNTERS
    rows = []
    for name in sorted(raw):
        entry = raw[name] if isinstance(raw[name], dict) else {}
        row: dict[str, Any] = {"name": str(name)}
        for key in counters:
            value = entry.get(key, 0)
            row[key] = value if isinstance(value, int) and not isinstance(value, bool) else 0
        row["last_error"] = str(entry.get("last_error") or "")
        if row["dropped"] or row["failed"]:
            row["status"] = DEAD
        elif row["pending"] or row["last_error"]:
            row["status"] = LATE
        else:
            row["status"] = ALIVE
        rows.append(row)
    updated = document.get("updated")
    age = _age(now, updated)
    running = bool(document.get("running"))
    stale = running and age is not None and age >= dead
    status = worst(*(r["status"] for r in rows)) if rows else ALIVE
    return {
        "status": worst(status, LATE) if stale else status,
        "updated": updated,
        "age": age,
        "running": running,
        "stale": stale,
        "queue_size": document.get("queue_size"),
        "error": "",
        "notifiers": rows,
        "totals": {key: sum(r[key] for r in rows) for key in counters},
    }


def failing_chains(recorded: dict) -> list[dict[str, Any]]:
    """Chains processing isolated after failures (``ProcessingStatus.failing_chains``)."""
    rows = []
    for chain, entry in sorted(recorded.items()):
        entry = entry if isinstance(entry, dict) else {}
        rows.append(
            {
                "chain": str(chain),
                "failures": int(entry.get("failures") or 0),
                "error": str(entry.get("error") or ""),
                "since": entry.get("since"),
                "next_retry": entry.get("next_retry"),
            }
        )
    return rows


#: The bad snapshot files the status page lists: of the newest runs, at most this many.
BAD_SNAPSHOT_RUNS = 20
BAD_SNAPSHOT_ROWS = 50


def bad_snapshots(root) -> list[dict[str, Any]]:
    """Files processing could not read (names or contents), newest runs first, with why."""
    rows: list[dict[str, Any]] = []
    for number in list(root.runs.keys())[-BAD_SNAPSHOT_RUNS:][::-1]:
        for subsystem, sub in root.runs[number].subsystems.items():
            for name, reason in sub.bad_snapshots.items():
                rows.append({"run": number, "subsystem": subsystem, "file": name,
                             "reason": str(reason)})  # fmt: skip
                if len(rows) >= BAD_SNAPSHOT_ROWS:
                    return rows
    return rows


def worker_rows(root, now: float, late: float, dead: float) -> list[dict[str, Any]]:
    """One row per processing worker record, by name."""
    rows = []
    for name, record in sorted((root.workers or {}).items()):
        seen = _age(now, record.last_seen)
        state = str(record.state)
        status = DEAD if state == "stopped" else level(seen, late, dead)
        share = str(record.share or "")
        owns = (
            ",".join(record.subsystems) if record.subsystems else
            f"share {share}" if share else "all"
        )  # fmt: skip
        rows.append(
            {
                "name": str(name),
                "host": str(record.host),
                "pid": int(record.pid),
                "subsystems": list(record.subsystems),
                "share": share,
                "owns": owns,
                "state": state,
                "status": status,
                "started": record.started,
                "last_seen": record.last_seen,
                "heartbeat_age": seen,
                "last_pass": record.last_pass or None,
                "pass_age": _age(now, record.last_pass),
                "processed": int(record.processed),
            }
        )
    return rows


def _database_view(
    now: float, late: float, dead: float
) -> tuple[bool, dict[str, Any], list[dict[str, Any]], str]:
    """(reachable, processing status, worker rows, error text) from the database."""
    try:
        root = overwatch()
        proc = root.processing
        processing = {
            "last_pass_started": proc.last_pass_started,
            "last_pass_finished": proc.last_pass_finished,
            "last_snapshot_processed": proc.last_snapshot_processed,
            "snapshots_processed": proc.snapshots_processed,
            "last_error": proc.last_error,
            "failing_chains": failing_chains(proc.failing_chains),
            "bad_run_dirs": [
                {"name": str(name), "reason": str(reason)}
                for name, reason in sorted(proc.bad_run_dirs.items())
            ],
            "bad_snapshots": bad_snapshots(root),
        }
        return True, processing, worker_rows(root, now, late, dead), ""
    except Exception as error:  # the page must render even when the database is gone
        log.warning("status page: database unreachable: %s", error)
        return False, {}, [], f"{type(error).__name__}: {error}"


def collect(now: float | None = None) -> dict[str, Any]:
    """Everything the status page and ``/api/status`` show."""
    now = time.time() if now is None else now
    res = resources()
    late, dead = res.settings.status.late_seconds, res.settings.status.dead_seconds
    data_dir = DataDir(res.data_dir)
    reachable, processing, workers, db_error = _database_view(now, late, dead)
    receivers = receiver_rows(_heartbeat_files(data_dir), now, late, dead)

    newest = max((r["last_snapshot"] or 0.0 for r in receivers), default=0.0)
    finished = processing.get("last_pass_finished") or 0.0
    # Lag: how long the newest received snapshot has waited for a processing pass.
    lag = max(0.0, now - newest) if newest > finished else 0.0
    pass_age = _age(now, finished)
    # Processing records an idle pass only once a minute: allow for that before "late".
    allowance = PASS_RECORD_SECONDS + res.settings.processing.interval
    idle = None if pass_age is None else max(0.0, pass_age - allowance)
    processing_status = (
        UNKNOWN if not reachable else worst(level(idle, late, dead), level(lag, late, dead))
    )
    if processing.get("last_error") or processing.get("bad_run_dirs"):
        processing_status = worst(processing_status, LATE)
    if processing.get("failing_chains"):  # data of those chains is not processed
        processing_status = worst(processing_status, DEAD)
    if workers:  # a dead worker's subsystems are not processed
        processing_status = worst(processing_status, *(w["status"] for w in workers))
    for row in processing.get("failing_chains", []):
        retry = row["next_retry"]
        row["retry_in"] = max(0.0, retry - now) if isinstance(retry, int | float) else None

    try:
        usage = shutil.disk_usage(data_dir.root)
        free_fraction = usage.free / usage.total if usage.total else 0.0
        disk = {
            "path": str(data_dir.root),
            "free_bytes": usage.free,
            "total_bytes": usage.total,
            "free_fraction": free_fraction,
            "status": DEAD
            if free_fraction < DISK_DEAD_FRACTION
            else LATE
            if free_fraction < DISK_LATE_FRACTION
            else ALIVE,
        }
    except OSError as error:
        disk = {"path": str(data_dir.root), "status": DEAD, "error": str(error)}

    return {
        "now": now,
        "thresholds": {"late_seconds": late, "dead_seconds": dead},
        "receivers": receivers,
        "processing": {
            **processing,
            "status": processing_status,
            "lag_seconds": lag,
            "pass_age": pass_age,
            "newest_snapshot": newest or None,
        },
        "database": {
            "reachable": reachable,
            "uri": redact(res.settings.database.uri),
            "error": db_error,
        },
        "disk": disk,
        "workers": workers,
        "notifications": notification_view(data_dir, now, dead),
    }


@bp.route("/status")
def page() -> Response:
    return Response(render_template("status.html", status=collect()))


@bp.route("/api/status")
def api() -> Response:
    return json_response(collect())

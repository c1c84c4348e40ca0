"""Read-only look-ups in the database, returning plain data for pages and API alike.

Everything returned is copied out of persistent objects (numbers, strings,
lists, dicts), so it stays valid after the request's connection closes and
can go straight to ``json`` or a template.
"""

from __future__ import annotations

import math
from typing import Any

import processing
from overwatch import names
from overwatch.store.models import OverwatchRoot, Run, Subsystem

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 25


class NotFound(LookupError):
    """A run or subsystem that the database does not know; the text names it."""


class BadRequest(ValueError):
    """A query parameter out of range; the text says what is allowed."""


def parse_page(page: str | None, per_page: str | None) -> tuple[int, int]:
    """Validated ``(page, per_page)`` from query-string values (1-based pages)."""
    try:
        number = int(page) if page not in (None, "") else 1
        size = int(per_page) if per_page not in (None, "") else DEFAULT_PER_PAGE
    except ValueError as error:
        raise BadRequest("page and per_page must be whole numbers") from error
    if number < 1:
        raise BadRequest("page must be 1 or more")
    if not 1 <= size <= MAX_PER_PAGE:
        raise BadRequest(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return number, size


def get_run(root: OverwatchRoot, run: int) -> Run:
    found = root.runs.get(run) if names.is_run(run) else None
    if found is None:
        raise NotFound(f"run {run} not found")
    return found


def get_subsystem(root: OverwatchRoot, run: int, subsystem: str) -> Subsystem:
    found = get_run(root, run).subsystems.get(subsystem)
    if found is None:
        raise NotFound(f"subsystem {subsystem!r} not found in run {run}")
    return found


def open_alarms(root: OverwatchRoot) -> dict[tuple[int, str], int]:
    """Open (not yet closed) alarms per (run, subsystem)."""
    counts: dict[tuple[int, str], int] = {}
    for alarm in root.alarms.values():
        if alarm.active:
            key = (alarm.run, alarm.subsystem)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _subsystem_summary(sub: Subsystem, alarms: int = 0) -> dict[str, Any]:
    # No "age" here: it would change the body (and so the ETag) every second.
    # "quality": rolled-up check quality of the latest slice (Good/Medium/Bad/Null).
    return {
        "snapshots": len(sub.snapshots),
        "last_snapshot": sub.end,
        "quality": sub.quality,
        "open_alarms": alarms,
    }


def _run_summary(
    run: Run, now: float, ongoing_seconds: float, alarms: dict[tuple[int, str], int]
) -> dict[str, Any]:
    subsystems = {
        name: _subsystem_summary(sub, alarms.get((run.number, name), 0))
        for name, sub in run.subsystems.items()
    }
    return {
        "run": run.number,
        # None, not 0.0 (1970), for a run none of whose snapshots could be read yet.
        "start": run.start or None,
        "end": run.end or None,
        "ongoing": run.is_ongoing(now, ongoing_seconds),
        "open_alarms": sum(s["open_alarms"] for s in subsystems.values()),
        "subsystems": subsystems,
    }


def list_runs(
    root: OverwatchRoot, page: int, per_page: int, now: float, ongoing_seconds: float
) -> dict[str, Any]:
    """One page of runs, newest (highest number) first."""
    total = len(root.runs)
    pages = max(1, math.ceil(total / per_page))
    high = total - (page - 1) * per_page  # exclusive index into the ascending keys
    low = max(0, high - per_page)
    numbers = list(root.runs.keys()[low:high])[::-1] if high > 0 else []
    alarms = open_alarms(root) if numbers else {}
    return {
        "runs": [_run_summary(root.runs[n], now, ongoing_seconds, alarms) for n in numbers],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": pages,
    }


def run_detail(root: OverwatchRoot, run: int, now: float, ongoing_seconds: float) -> dict[str, Any]:
    """A run with what the page and API show of each subsystem."""
    found = get_run(root, run)
    alarms = open_alarms(root)
    subsystems = {}
    for name, sub in found.subsystems.items():
        subsystems[name] = {
            **_subsystem_summary(sub, alarms.get((run, name), 0)),
            "start": sub.start or None,
            "end": sub.end or None,
            "events": sub.n_events,
            "slices": len(sub.slices),
            # The histograms (and other objects) of its newest snapshot; derived ones apart.
            "histograms": sum(processing.is_present(i) for i in sub.histograms.values()),
            "errors": len(sub.errors),
            "bad_snapshots": len(sub.bad_snapshots),
            "group_qualities": dict(sub.group_qualities),  # latest slice, plugin group order
            "evaluated_at": sub.evaluated_at or None,
        }
    return {
        "run": found.number,
        "start": found.start or None,
        "end": found.end or None,
        "ongoing": found.is_ongoing(now, ongoing_seconds),
        "open_alarms": sum(s["open_alarms"] for s in subsystems.values()),
        "subsystems": subsystems,
    }


def histogram_infos(root: OverwatchRoot, run: int, subsystem: str) -> dict[str, dict[str, Any]]:
    """Path -> class and first/last time seen, of every histogram of a subsystem."""
    sub = get_subsystem(root, run, subsystem)
    return {
        path: {
            "class_name": info.class_name,
            "first_seen": info.first_seen,
            "last_seen": processing.seen_until(sub, info),
            "present": processing.is_present(info),
        }
        for path, info in sub.histograms.items()
    }


def snapshot_files(root: OverwatchRoot, run: int, subsystem: str) -> list[dict[str, Any]]:
    """The snapshot files of a subsystem, oldest first (for the download list)."""
    sub = get_subsystem(root, run, subsystem)
    return [
        {"timestamp": rec.timestamp, "filename": rec.filename, "size": rec.size}
        for rec in sub.snapshots.values()
    ]


def recent_errors(root: OverwatchRoot, run: int, subsystem: str, limit: int = 20) -> list[dict]:
    sub = get_subsystem(root, run, subsystem)
    return [
        {"path": e.path, "timestamp": e.timestamp, "message": e.message}
        for e in list(sub.errors)[-limit:][::-1]
    ]

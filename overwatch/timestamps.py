"""Snapshot file names <-> instants, and run-relative time (pendulum).

Why one module: the time in a snapshot's name is the only record of when its
content was taken, and three generations of files write it differently:

* new Overwatch files, ``EMChists.2026_11_22_02_21_53.root``: zero-padded
  ``YYYY_MM_DD_HH_MM_SS`` in **UTC**, under ``Run<run>/<SYS>/``;
* archived Overwatch files: the same name, but the time is **Europe/Zurich**
  local time. Nothing in the name says which, so the caller (e.g. a replay of
  an archived run) passes ``archived=True``;
* the old receiver's files, ``EMChistos_123456_B_2015_3_14_2_3_5.root``: run,
  mode and an unpadded time, always **Europe/Zurich** local time.

Daylight-saving rules for Zurich local times:

* Autumn (last Sunday of October): 02:00-02:59 happens twice. A single name
  carries no hint, so an ambiguous wall time is resolved to the EARLIER
  instant (first occurrence, CEST, UTC+2). :func:`parse_sequence` does better
  for the names of one run given in the order they were written: when the
  earlier reading would go backwards in time relative to the previous name, it
  takes the later occurrence (CET, UTC+1), keeping the instants monotonic. A
  plain lexicographic sort interleaves the two passes through the repeated
  hour, which no rule can undo from names alone; order such names by file
  modification time (or arrival order) first.
* Spring (last Sunday of March): 02:00-02:59 does not exist. Such a name
  (only a hand-made one; clocks skip the hour) is shifted forward by the gap,
  pendulum's default rule: 02:30 reads as 03:30 CEST, i.e. 01:30 UTC.

Names have one-second resolution: sub-second parts of an instant are dropped.
Every instant returned is in UTC: besides being what the store keeps, this
avoids a PEP 495 trap (an ambiguous local time with ``fold=1`` never compares
equal to the same instant in another zone).
Naive datetimes are refused everywhere, because guessing their zone is exactly
the bug this module exists to prevent.

What a name looks like (subsystem rule, run directories, both name patterns)
is defined once in :mod:`overwatch.names`; this module adds what its time means.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

import pendulum
from pendulum import DateTime

from overwatch import names

logger = logging.getLogger(__name__)

ARCHIVE_TIMEZONE = "Europe/Zurich"
"""Zone of archived Overwatch names and of all old-receiver names."""

_TIME_FORMAT = "YYYY_MM_DD_HH_mm_ss"  # pendulum tokens for the zero-padded form
_TIME_FIELDS = names.TIME_FIELDS  # what a name's time consists of: overwatch.names says


class NameForm(enum.Enum):
    """Which generation wrote a name, hence its layout and time zone."""

    OVERWATCH = "overwatch"  # <SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root, UTC
    ARCHIVED = "archived"  # same layout, Europe/Zurich local time
    RECEIVER = "receiver"  # <SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root, Europe/Zurich


@dataclass(frozen=True)
class SnapshotName:
    """What a snapshot file name says: subsystem, instant (UTC) and, if known, run and mode."""

    subsystem: str
    instant: DateTime
    run: int | None = None
    mode: str | None = None
    form: NameForm = NameForm.OVERWATCH

    def format(self) -> str:
        """The file name this describes, in its own form (the inverse of parsing).

        An instant in the second pass through the autumn hour formats to the same
        wall time as the first pass; parsing that name alone gives the first.
        """
        if self.form is NameForm.OVERWATCH:
            return snapshot_filename(self.subsystem, self.instant)
        local = _aware(self.instant).in_tz(ARCHIVE_TIMEZONE)
        if self.form is NameForm.ARCHIVED:
            return names.snapshot_file(self.subsystem, local.format(_TIME_FORMAT))
        if self.run is None or self.mode is None:
            raise ValueError("an old-receiver name needs both run and mode")
        stamp = "_".join(str(getattr(local, name)) for name in _TIME_FIELDS)
        return names.receiver_snapshot_file(self.subsystem, self.run, self.mode, stamp)


# --------------------------------------------------------------------------- helpers


def _aware(instant: datetime) -> DateTime:
    """Pendulum view of an aware datetime; a naive one is refused (its zone is a guess)."""
    if not isinstance(instant, datetime):
        raise TypeError(f"expected a datetime, got {instant!r}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()}: attach a time zone (new names are UTC)"
        )
    return pendulum.instance(instant)


def _localize(wall: tuple[int, ...], tz: str) -> tuple[DateTime, DateTime | None]:
    """Instant of a wall time in ``tz``, plus the later instant if the wall time is ambiguous."""
    early = pendulum.datetime(*wall, tz=tz, fold=0)
    late = pendulum.datetime(*wall, tz=tz, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early.in_tz("UTC"), None
    if tuple(getattr(late, name) for name in _TIME_FIELDS) != wall:
        # Nonexistent (spring gap): pendulum's default shifts it forward.
        logger.debug("wall time %s does not exist in %s; shifted to %s", wall, tz, late)
        return late.in_tz("UTC"), None
    return early.in_tz("UTC"), late.in_tz("UTC")


def _run_from_parents(path: PurePosixPath, subsystem: str) -> int | None:
    """Run number from a ``Run<N>/<SYS>/`` prefix, when the name is given as such a path."""
    parents = path.parts[:-1]
    if len(parents) >= 2 and parents[-1] == subsystem:
        return names.parse_run_dir(parents[-2])
    return None


def check_timezone(zone: object) -> str:
    """``zone`` if it is a time zone name pendulum knows (``UTC``, ``Europe/Zurich``); else ValueError."""
    if not isinstance(zone, str) or not zone.strip():
        raise ValueError(
            f"invalid time zone {zone!r}: expected a name such as UTC or {ARCHIVE_TIMEZONE}"
        )
    try:
        pendulum.timezone(zone)
    except Exception as error:  # pendulum raises its own InvalidTimezone
        raise ValueError(
            f"unknown time zone {zone!r}: expected a name such as UTC or {ARCHIVE_TIMEZONE}"
        ) from error
    return zone


def _zone(archived: bool | None, timezone: str | None) -> str:
    """The zone an Overwatch-form name is read in: ``timezone`` if given, else by ``archived``."""
    if timezone is not None:
        return timezone
    return ARCHIVE_TIMEZONE if archived else "UTC"


def _parse(name: str, zone: str) -> tuple[SnapshotName, DateTime | None]:
    """Parse a name (Overwatch form read in ``zone``); also return the later reading when its
    wall time is ambiguous."""
    path = PurePosixPath(str(name))
    # names.InvalidName (a ValueError) names both accepted forms.
    layout, match = names.match_snapshot_name(path.name)
    if layout is names.FileForm.OVERWATCH:
        form = NameForm.OVERWATCH if zone == "UTC" else NameForm.ARCHIVED
        tz = zone
        run, mode = _run_from_parents(path, match["subsystem"]), None
    else:
        form, tz = NameForm.RECEIVER, ARCHIVE_TIMEZONE
        run, mode = int(match["run"]), match["mode"]
    wall = tuple(int(match[field]) for field in _TIME_FIELDS)
    try:
        instant, later = _localize(wall, tz)
    except ValueError as exc:
        raise ValueError(f"{name!r}: the time in the name is not a valid date ({exc})") from exc
    snapshot = SnapshotName(match["subsystem"], instant, run=run, mode=mode, form=form)
    return snapshot, later


# --------------------------------------------------------------------------- public API


def snapshot_filename(subsystem: str, instant: datetime, timezone: str = "UTC") -> str:
    """Name of a new snapshot, e.g. ``EMChists.2026_11_22_02_21_53.root`` (time in UTC).

    ``timezone``: the wall time of another zone, for a folder whose names are in
    it (an archived run folder that declares Europe/Zurich).
    """
    names.check_subsystem(subsystem)  # before the time: a bad name is the first thing to say
    return names.snapshot_file(subsystem, _aware(instant).in_tz(timezone).format(_TIME_FORMAT))


def snapshot_relpath(run: int, subsystem: str, instant: datetime) -> str:
    """Path of a new snapshot inside the data directory: ``Run<run>/<SYS>/<SYS>hists.<time>.root``."""
    return f"{names.run_dir(run)}/{subsystem}/{snapshot_filename(subsystem, instant)}"


def parse_snapshot_filename(
    name: str, *, archived: bool | None = None, timezone: str | None = None
) -> SnapshotName:
    """Read subsystem, instant (UTC) and, where the name has them, run and mode.

    ``archived=True`` reads an Overwatch-form name as Europe/Zurich local time
    (archived Overwatch data); ``None`` or ``False`` reads it as UTC (new files).
    ``timezone`` names the zone outright and wins over ``archived``.
    Old-receiver names are always Europe/Zurich, whatever ``archived`` says.
    ``name`` may be a bare file name or a path; a ``Run<N>/<SYS>/`` prefix
    supplies the run of an Overwatch-form name. An ambiguous autumn wall time
    gives the earlier instant (see the module docs). Raises ``ValueError`` for
    anything else.
    """
    return _parse(name, _zone(archived, timezone))[0]


def parse_sequence(
    names: Iterable[str],
    *,
    archived: bool = True,
    timezone: str | None = None,
    errors: dict[str, str] | None = None,
) -> list[SnapshotName]:
    """Parse the names of one run's subsystem, in the order written, keeping instants monotonic.

    Why: across the repeated autumn hour the earlier reading of a name can lie
    before its predecessor; then the later occurrence (CET) is the right one.
    A step backwards that DST cannot explain is kept as parsed and logged.
    ``timezone`` (else ``archived``) is the zone of Overwatch-form names.
    With ``errors`` a name that cannot be parsed is recorded there (name ->
    reason) and left out; without it, it raises ``ValueError``.
    """
    zone = _zone(archived, timezone)
    result: list[SnapshotName] = []
    for name in names:
        try:
            snapshot, later = _parse(name, zone)
        except ValueError as error:
            if errors is None:
                raise
            errors[name] = str(error)
            continue
        if result and snapshot.instant < result[-1].instant:
            previous = result[-1].instant
            if later is not None and later >= previous:
                snapshot = SnapshotName(
                    snapshot.subsystem, later, snapshot.run, snapshot.mode, snapshot.form
                )
            else:
                logger.warning(
                    "snapshot %s (%s) is earlier than its predecessor (%s): names not in time order?",
                    name,
                    snapshot.instant,
                    previous,
                )
        result.append(snapshot)
    return result


_INSTANT_HINT = (
    "expected unix seconds (e.g. 1767225600) or an ISO 8601 time with a zone "
    "(e.g. 2026-01-01T00:00:00Z)"
)


def parse_instant(text: str) -> float:
    """Unix seconds from text: a number of seconds, or an ISO 8601 time with a zone.

    A time without a zone is refused: guessing it is how archived data got read
    two hours off. Raises ``ValueError`` saying what is expected.
    """
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text[:60]!r}: {_INSTANT_HINT}") from None
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(
                f"{text[:60]!r} has no zone: add one (Z for UTC, or e.g. +02:00)"
            ) from None
        try:
            value = instant.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text[:60]!r} is out of range") from None
    if not math.isfinite(value):
        raise ValueError(f"{text[:60]!r}: {_INSTANT_HINT}")
    return value


def minutes_since(start: datetime, instant: datetime) -> float:
    """Minutes from ``start`` (usually the run start) to ``instant``; negative if before."""
    return (_aware(instant) - _aware(start)).total_seconds() / 60.0


def instant_at(start: datetime, minutes: float) -> DateTime:
    """The UTC instant ``minutes`` after ``start``: the inverse of :func:`minutes_since`."""
    return _aware(start).in_tz("UTC") + timedelta(minutes=minutes)


def to_unix(instant: datetime) -> float:
    """Seconds since the Unix epoch, as in the wire header's ``timestamp``."""
    return _aware(instant).timestamp()


def from_unix(seconds: float) -> DateTime:
    """UTC instant of a Unix timestamp (e.g. a wire header's ``timestamp``)."""
    return pendulum.from_timestamp(seconds, tz="UTC")

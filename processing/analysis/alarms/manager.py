"""Turning check results into alarms stored in ZODB, and acknowledging them.

Alarms by episode. A *target* is (run, subsystem, check, histogram path,
trend). Its results form episodes: an alarm opens after ``open_after`` (K)
consecutive raising results (Bad, or Medium if in ``raise_on``), stays open
while the check keeps raising, and closes (``cleared_at``) after
``close_after`` (M) consecutive non-raising, non-Null results. One episode is
one alarm, however the check flickers inside it: with K >= 1 and M >= 1 a
check alternating Good/Bad either never opens an alarm (K >= 2) or keeps one
open (M >= 2); it cannot open one alarm per flip.

Null ("cannot tell", e.g. no data in the slice) is no evidence either way: it
neither counts towards opening nor towards closing, and it leaves both
counters as they are (Bad, Null, Bad counts as two consecutive Bad results).

While open, the alarm is updated rather than replaced: ``occurrences`` (the
number of raising results of the episode, the K that opened it included),
``last_seen`` (slice end time of the latest raising result), ``message`` of
that latest result; ``first_seen`` is the slice end time of the first raising
result of the episode. A Medium episode that turns Bad (both raising) is
escalated in place: its quality becomes Bad and it is announced again at once.

Notifications: once when the alarm opens (whatever happened to earlier
episodes of the target), then a reminder every ``renotify_minutes`` while it
is open and not acknowledged (checked on every result of the target). No
notice is sent when it closes: the alarms page shows ``cleared_at``, and a
shifter's mailbox should hold only what needs action.

Transactions: :meth:`AlarmManager.update` and :meth:`AlarmManager.acknowledge`
run inside the caller's ZODB transaction (e.g. within ``overwatch.store.db.transact``).
Notifications are handed to ``notify`` (normally
:meth:`processing.analysis.alarms.notifiers.NotificationDispatcher.enqueue`) by an
after-commit hook of that transaction, only when it commits: an alarm that
was rolled back (conflict, retry) is never announced, and the retried
transaction announces it once.

Writes: a target whose quality and counters do not change (a steady Good
check) writes nothing; an open alarm is rewritten once per raising result.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import transaction

from overwatch.quality import Quality
from overwatch.store.models import Alarm, CheckState, OverwatchRoot

log = logging.getLogger(__name__)


def format_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class AlarmNotice:
    """A plain copy of an alarm to announce; safe to use after the transaction ends."""

    alarm_id: int
    time: float
    run: int
    subsystem: str
    check: str
    path: str
    trend: str
    group: str
    quality: str
    message: str
    reminder: bool = False
    occurrences: int = 1
    first_seen: float = 0.0
    last_seen: float = 0.0

    @classmethod
    def from_alarm(cls, alarm: Alarm, reminder: bool = False) -> AlarmNotice:
        return cls(
            alarm.id,
            alarm.time,
            alarm.run,
            alarm.subsystem,
            alarm.check,
            alarm.path,
            alarm.trend,
            alarm.group,
            alarm.quality,
            alarm.message,
            reminder,
            alarm.occurrences,
            alarm.first_seen or alarm.time,
            alarm.last_seen or alarm.time,
        )

    @property
    def target(self) -> str:
        return f"{self.path} (trend {self.trend})" if self.trend else self.path

    def subject(self) -> str:
        prefix = "Reminder: " if self.reminder else ""
        return f"{prefix}{self.quality}: {self.subsystem} {self.check} on {self.target} (run {self.run})"

    def text(self) -> str:
        """One paragraph a shifter can act on, for every notifier."""
        head = "Reminder, not acknowledged yet: " if self.reminder else ""
        first = self.first_seen or self.time
        last = self.last_seen or first
        seen = f"Seen {self.occurrences} time{'s' if self.occurrences != 1 else ''}"
        seen += f", first {format_time(first)}" + (
            f", last {format_time(last)}" if last != first else ""
        )
        return (
            f"{head}Overwatch alarm #{self.alarm_id}: {self.quality} in {self.subsystem}, "
            f"run {self.run}: check {self.check} on {self.target} (group {self.group}): "
            f"{self.message}. Raised {format_time(self.time)}. {seen}."
        )


def alarm_to_dict(alarm: Alarm) -> dict[str, Any]:
    """Plain data of an alarm, e.g. for ``GET /api/alarms``.

    Alarms stored before episodes existed read as one occurrence seen at ``time``.
    """
    return {
        "id": alarm.id,
        "time": alarm.time,
        "run": alarm.run,
        "subsystem": alarm.subsystem,
        "check": alarm.check,
        "histogram": alarm.path,
        "trend": alarm.trend or None,
        "group": alarm.group,
        "quality": alarm.quality,
        "message": alarm.message,
        "occurrences": alarm.occurrences,
        "first_seen": alarm.first_seen or alarm.time,
        "last_seen": alarm.last_seen or alarm.first_seen or alarm.time,
        "acknowledged": bool(alarm.acknowledged_by),
        "acknowledged_by": alarm.acknowledged_by or None,
        "acknowledged_at": alarm.acknowledged_at or None,
        "active": alarm.active,
        "cleared_at": alarm.cleared_at or None,
        "notifications": alarm.notifications,
        "last_notified": alarm.last_notified or None,
    }


def _set(obj: Any, name: str, value: Any) -> None:
    """Assign only a changed value: every assignment rewrites a persistent object."""
    if getattr(obj, name) != value:
        setattr(obj, name, value)


class AlarmManager:
    """Opens one alarm per episode of raising results and schedules its notifications."""

    def __init__(
        self,
        raise_on: Iterable[Quality | str] = (Quality.BAD,),
        renotify_minutes: float = 30.0,
        notify: Callable[[AlarmNotice], Any] | None = None,
        *,
        open_after: int = 2,
        close_after: int = 3,
    ) -> None:
        qualities = frozenset(Quality.parse(q) for q in raise_on)
        if not qualities or not qualities <= {Quality.BAD, Quality.MEDIUM}:
            raise ValueError(
                f"alarms.raise_on: expected Bad and/or Medium, got {sorted(q.value for q in qualities)}"
            )
        if renotify_minutes <= 0:
            raise ValueError(f"alarms.renotify_minutes: expected > 0, got {renotify_minutes}")
        for name, value in (("open_after", open_after), ("close_after", close_after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"alarms.{name}: expected an integer >= 1, got {value!r}")
        self.raise_on = qualities
        self.renotify_seconds = renotify_minutes * 60.0
        self.notify = notify
        #: Told (action, alarm as a dict) of every alarm opened, escalated or closed,
        #: after the transaction commits (processing publishes them as live events).
        self.on_change: Callable[[str, dict[str, Any]], Any] | None = None
        self.open_after = open_after
        self.close_after = close_after

    @classmethod
    def from_settings(
        cls, settings: Any, notify: Callable[[AlarmNotice], Any] | None = None
    ) -> AlarmManager:
        """From ``Settings.alarms`` (:class:`overwatch.config.AlarmSettings`)."""
        return cls(
            settings.raise_on,
            settings.renotify_minutes,
            notify,
            open_after=settings.open_after,
            close_after=settings.close_after,
        )

    # ------------------------------------------------------------------ updates

    def update(
        self,
        root: OverwatchRoot,
        evaluation: Any,
        now: float | None = None,
        *,
        slice_end: float | None = None,
    ) -> list[Alarm]:
        """Count an evaluation into each target's episode; return the alarms opened.

        ``evaluation`` is a :class:`processing.analysis.checks.EvaluationResult`
        of the slice ending at ``slice_end`` (default: ``now``, the wall-clock
        time). Runs in the caller's transaction; notifications due are sent
        after it commits.
        """
        now = _time.time() if now is None else now
        seen = now if slice_end is None else slice_end
        states = root.check_states
        opened: list[Alarm] = []
        notices: list[AlarmNotice] = []
        changes: list[tuple[str, Alarm]] = []
        for result in evaluation.results:
            quality = result.quality
            key = (
                evaluation.run,
                evaluation.subsystem,
                result.check,
                result.path,
                result.trend or "",
            )
            state = states.get(key)
            if quality is Quality.NULL:  # no evidence: counters stay, reminders go on
                if state is not None and state.alarm_id:
                    notices.extend(self._reminder(root, state, now))
                continue
            if state is None:
                state = states[key] = CheckState(quality.value, now)
            elif state.quality != quality.value:
                state.quality = quality.value
                state.since = now
            alarm = self._open_alarm(root, state)
            if quality in self.raise_on:
                _set(state, "clear_streak", 0)
                if alarm is None:
                    if state.raising_streak == 0:
                        state.episode_start = seen
                        state.episode_quality = quality.value
                    elif quality.severity > Quality.parse(state.episode_quality).severity:
                        state.episode_quality = quality.value
                    state.raising_streak += 1
                    if state.raising_streak >= self.open_after:
                        alarm = self._raise(root, evaluation, result, state, now, seen)
                        opened.append(alarm)
                        changes.append(("opened", alarm))
                        notices.append(self._announce(alarm, now, reminder=False))
                else:
                    alarm.occurrences += 1
                    _set(alarm, "last_seen", seen)
                    _set(alarm, "message", result.message)
                    if quality.severity > Quality.parse(alarm.quality).severity:
                        alarm.quality = quality.value  # escalation: announce it at once
                        log.warning("alarm #%d escalated to %s", alarm.id, alarm.quality)
                        changes.append(("escalated", alarm))
                        if not alarm.acknowledged_by:
                            notices.append(self._announce(alarm, now, reminder=False))
                    else:
                        notices.extend(self._reminder(root, state, now))
            else:
                _set(state, "raising_streak", 0)
                if alarm is not None:
                    state.clear_streak += 1
                    if state.clear_streak >= self.close_after:
                        alarm.cleared_at = seen
                        state.alarm_id = 0
                        state.clear_streak = 0
                        log.info("alarm #%d cleared", alarm.id)
                        changes.append(("closed", alarm))
                    else:
                        notices.extend(self._reminder(root, state, now))
        if notices and self.notify is not None:
            self._after_commit(root, notices)
        if changes and self.on_change is not None:
            told = tuple((action, alarm_to_dict(alarm)) for action, alarm in changes)
            self._transaction(root).addAfterCommitHook(self._tell, args=(told,))
        return opened

    @staticmethod
    def _open_alarm(root: OverwatchRoot, state: CheckState) -> Alarm | None:
        """The target's open alarm, or None (forgetting an id that is gone or closed)."""
        if not state.alarm_id:
            return None
        alarm = root.alarms.get(state.alarm_id)
        if alarm is None or alarm.cleared_at:
            state.alarm_id = 0
            _set(state, "clear_streak", 0)
            return None
        return alarm

    def _raise(
        self,
        root: OverwatchRoot,
        evaluation: Any,
        result: Any,
        state: CheckState,
        now: float,
        seen: float,
    ) -> Alarm:
        alarms = root.alarms
        alarm_id = alarms.maxKey() + 1 if len(alarms) else 1
        alarm = Alarm(
            alarm_id,
            now,
            evaluation.run,
            evaluation.subsystem,
            result.check,
            result.path,
            result.trend or "",
            result.group,
            state.episode_quality,
            result.message,
        )
        alarm.occurrences = state.raising_streak
        alarm.first_seen = state.episode_start or seen
        alarm.last_seen = seen
        alarms[alarm_id] = alarm
        state.alarm_id = alarm_id
        state.raising_streak = 0
        log.warning(
            "alarm #%d: %s in %s run %d: %s on %s: %s",
            alarm_id,
            alarm.quality,
            alarm.subsystem,
            alarm.run,
            alarm.check,
            alarm.path,
            alarm.message,
        )
        return alarm

    @staticmethod
    def _announce(alarm: Alarm, now: float, reminder: bool) -> AlarmNotice:
        alarm.last_notified = now
        alarm.notifications += 1
        return AlarmNotice.from_alarm(alarm, reminder=reminder)

    def _reminder(self, root: OverwatchRoot, state: CheckState, now: float) -> list[AlarmNotice]:
        """A reminder of the target's open, unacknowledged alarm if one is due now."""
        alarm = root.alarms.get(state.alarm_id)
        if alarm is None or alarm.acknowledged_by or alarm.cleared_at:
            return []
        if alarm.last_notified and now - alarm.last_notified < self.renotify_seconds:
            return []
        return [self._announce(alarm, now, reminder=alarm.notifications > 0)]

    @staticmethod
    def _transaction(root: OverwatchRoot) -> Any:
        jar = getattr(root, "_p_jar", None)
        return jar.transaction_manager.get() if jar is not None else transaction.get()

    def _after_commit(self, root: OverwatchRoot, notices: list[AlarmNotice]) -> None:
        self._transaction(root).addAfterCommitHook(self._send, args=(tuple(notices),))

    def _tell(self, committed: bool, changes: tuple[tuple[str, dict[str, Any]], ...]) -> None:
        if not committed:
            return
        for action, alarm in changes:
            try:
                self.on_change(action, alarm)  # type: ignore[misc]
            except Exception:  # telling pages must never undo or block processing
                log.exception("could not announce alarm #%s %s", alarm.get("id"), action)

    def _send(self, committed: bool, notices: tuple[AlarmNotice, ...]) -> None:
        if not committed:
            return
        for notice in notices:
            try:
                self.notify(notice)  # type: ignore[misc]
            except Exception:  # announcing must never undo or block processing
                log.exception("could not queue the notification of alarm #%d", notice.alarm_id)

    # ------------------------------------------------------------------ acknowledgement

    @staticmethod
    def acknowledge(
        root: OverwatchRoot, alarm_id: int, user: str, now: float | None = None
    ) -> Alarm:
        """Mark an alarm as seen by ``user`` (stops its reminders). The first acknowledgement counts.

        Raises LookupError for an unknown id. Runs in the caller's transaction.
        """
        if not user:
            raise ValueError("an acknowledgement needs the name of the user")
        alarm = root.alarms.get(int(alarm_id))
        if alarm is None:
            raise LookupError(f"no alarm with id {alarm_id}")
        if not alarm.acknowledged_by:
            alarm.acknowledged_by = user
            alarm.acknowledged_at = _time.time() if now is None else now
            log.info("alarm #%d acknowledged by %s", alarm.id, user)
        return alarm


def acknowledge(root: OverwatchRoot, alarm_id: int, user: str, now: float | None = None) -> Alarm:
    """Module-level :meth:`AlarmManager.acknowledge` (needs no manager, e.g. for the web)."""
    return AlarmManager.acknowledge(root, alarm_id, user, now)


def list_alarms(
    root: OverwatchRoot,
    run: int | None = None,
    subsystem: str | None = None,
    quality: Quality | str | None = None,
    *,
    active: bool | None = None,
    acknowledged: bool | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Alarms as plain dicts, newest first, filtered by the arguments that are not None.

    ``quality`` is a Quality or its name in any case; an unknown name raises
    ValueError (the web API answers 400 with its message).
    """
    wanted = Quality.parse(quality).value if quality is not None else None
    found: list[dict[str, Any]] = []
    for alarm_id in reversed(list(root.alarms.keys())):
        alarm = root.alarms[alarm_id]
        if run is not None and alarm.run != run:
            continue
        if subsystem is not None and alarm.subsystem != subsystem:
            continue
        if wanted is not None and alarm.quality != wanted:
            continue
        if active is not None and alarm.active != active:
            continue
        if acknowledged is not None and bool(alarm.acknowledged_by) != acknowledged:
            continue
        found.append(alarm_to_dict(alarm))
        if limit is not None and len(found) >= limit:
            break
    return found

"""Turning check results into alarms stored in ZODB, and acknowledging them.

An alarm is raised on a *transition*: when a check's quality on a target
(run, subsystem, check, histogram path, trend) becomes a raising quality
(Bad, or Medium if configured) from a non-raising one, or escalates (Medium
to Bad when both raise). Staying Bad raises nothing more; Bad -> Good closes
the alarm (``cleared_at``) and a later Bad raises a new one. A Null result
("cannot tell") changes nothing: a check flickering between Bad and "no data"
does not raise an alarm per slice.

Notifications (no storms): a target is notified at most once every
``renotify_minutes``. A new alarm inside that time is stored but notified
only once the time has passed; an open, unacknowledged alarm is re-notified
(a reminder) every ``renotify_minutes``; an acknowledged one never again.

Transactions: :meth:`AlarmManager.update` and :meth:`AlarmManager.acknowledge`
run inside the caller's ZODB transaction (e.g. within ``overwatch.store.db.transact``).
Notifications are handed to ``notify`` (normally
:meth:`processing.analysis.alarms.notifiers.NotificationDispatcher.enqueue`) by an
after-commit hook of that transaction, only when it commits: an alarm that
was rolled back (conflict, retry) is never announced, and the retried
transaction announces it once.
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
        return (
            f"{head}Overwatch alarm #{self.alarm_id}: {self.quality} in {self.subsystem}, "
            f"run {self.run}: check {self.check} on {self.target} (group {self.group}): "
            f"{self.message}. Raised {format_time(self.time)}."
        )


def alarm_to_dict(alarm: Alarm) -> dict[str, Any]:
    """Plain data of an alarm, e.g. for ``GET /api/alarms``."""
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
        "acknowledged": bool(alarm.acknowledged_by),
        "acknowledged_by": alarm.acknowledged_by or None,
        "acknowledged_at": alarm.acknowledged_at or None,
        "active": alarm.active,
        "cleared_at": alarm.cleared_at or None,
        "notifications": alarm.notifications,
        "last_notified": alarm.last_notified or None,
    }


class AlarmManager:
    """Raises alarms on quality transitions and schedules their notifications."""

    def __init__(
        self,
        raise_on: Iterable[Quality | str] = (Quality.BAD,),
        renotify_minutes: float = 30.0,
        notify: Callable[[AlarmNotice], Any] | None = None,
    ) -> None:
        qualities = frozenset(Quality.parse(q) for q in raise_on)
        if not qualities or not qualities <= {Quality.BAD, Quality.MEDIUM}:
            raise ValueError(
                f"alarms.raise_on: expected Bad and/or Medium, got {sorted(q.value for q in qualities)}"
            )
        if renotify_minutes <= 0:
            raise ValueError(f"alarms.renotify_minutes: expected > 0, got {renotify_minutes}")
        self.raise_on = qualities
        self.renotify_seconds = renotify_minutes * 60.0
        self.notify = notify

    @classmethod
    def from_settings(
        cls, settings: Any, notify: Callable[[AlarmNotice], Any] | None = None
    ) -> AlarmManager:
        """From ``Settings.alarms`` (:class:`overwatch.config.AlarmSettings`)."""
        return cls(settings.raise_on, settings.renotify_minutes, notify)

    # ------------------------------------------------------------------ updates

    def update(self, root: OverwatchRoot, evaluation: Any, now: float | None = None) -> list[Alarm]:
        """Compare an evaluation with the stored qualities; return the alarms raised.

        ``evaluation`` is a :class:`processing.analysis.checks.EvaluationResult`. Runs in
        the caller's transaction; notifications due are sent after it commits.
        """
        now = _time.time() if now is None else now
        states = root.check_states
        raised: list[Alarm] = []
        notices: list[AlarmNotice] = []
        for result in evaluation.results:
            quality = result.quality
            if quality is Quality.NULL:
                continue  # no information: neither a transition nor a recovery
            key = (
                evaluation.run,
                evaluation.subsystem,
                result.check,
                result.path,
                result.trend or "",
            )
            state = states.get(key)
            if state is None:
                state = states[key] = CheckState(Quality.NULL.value, now)
            previous = Quality.parse(state.quality)
            raising = quality in self.raise_on
            if quality is not previous:
                was_raising = previous in self.raise_on
                if raising and (not was_raising or quality.severity > previous.severity):
                    self._close(root, state, now)
                    alarm = self._raise(root, evaluation, result, now)
                    state.alarm_id = alarm.id
                    raised.append(alarm)
                elif not raising:
                    self._close(root, state, now)
                state.quality = quality.value
                state.since = now
            if raising and state.alarm_id:
                notice = self._due(root, state, now)
                if notice is not None:
                    notices.append(notice)
        if notices and self.notify is not None:
            self._after_commit(root, notices)
        return raised

    def _raise(self, root: OverwatchRoot, evaluation: Any, result: Any, now: float) -> Alarm:
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
            result.quality.value,
            result.message,
        )
        alarms[alarm_id] = alarm
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
    def _close(root: OverwatchRoot, state: CheckState, now: float) -> None:
        if state.alarm_id:
            alarm = root.alarms.get(state.alarm_id)
            if alarm is not None and not alarm.cleared_at:
                alarm.cleared_at = now
            state.alarm_id = 0

    def _due(self, root: OverwatchRoot, state: CheckState, now: float) -> AlarmNotice | None:
        """A notice for the target's open alarm if one may be sent now, else None."""
        alarm = root.alarms.get(state.alarm_id)
        if alarm is None or alarm.acknowledged_by or alarm.cleared_at:
            return None
        if state.last_notified and now - state.last_notified < self.renotify_seconds:
            return None
        notice = AlarmNotice.from_alarm(alarm, reminder=alarm.notifications > 0)
        state.last_notified = now
        alarm.last_notified = now
        alarm.notifications += 1
        return notice

    def _after_commit(self, root: OverwatchRoot, notices: list[AlarmNotice]) -> None:
        jar = getattr(root, "_p_jar", None)
        current = jar.transaction_manager.get() if jar is not None else transaction.get()
        current.addAfterCommitHook(self._send, args=(tuple(notices),))

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

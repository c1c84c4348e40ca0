"""Alarms by episode of raising check results, and their notifications.

``AlarmManager.update(root, evaluation, now, slice_end=...)`` (inside the
caller's ZODB transaction) opens one alarm per episode (``alarms.open_after``
consecutive Bad, or Medium, results; closed after ``alarms.close_after``
others) and hands the notifications due to a :class:`NotificationDispatcher`
after the commit; the dispatcher delivers them in the background (log,
e-mail, webhook), retrying until delivered.
"""

from processing.analysis.alarms.manager import (
    AlarmManager,
    AlarmNotice,
    acknowledge,
    alarm_to_dict,
    list_alarms,
)
from processing.analysis.alarms.notifiers import (
    EmailNotifier,
    LogNotifier,
    NotificationDispatcher,
    WebhookNotifier,
    build_dispatcher,
)

__all__ = [
    "AlarmManager",
    "AlarmNotice",
    "EmailNotifier",
    "LogNotifier",
    "NotificationDispatcher",
    "WebhookNotifier",
    "acknowledge",
    "alarm_to_dict",
    "build_dispatcher",
    "list_alarms",
]

"""Alarms raised by check quality transitions, and their notifications.

``AlarmManager.update(root, evaluation, now)`` (inside the caller's ZODB
transaction) stores alarms on transitions to Bad (or Medium) and hands the
notifications due to a :class:`NotificationDispatcher` after the commit; the
dispatcher delivers them in the background (log, e-mail, webhook).
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

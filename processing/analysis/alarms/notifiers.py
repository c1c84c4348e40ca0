"""Delivering alarm notifications: log, e-mail over SMTP, webhook.

Delivery never blocks processing: :meth:`NotificationDispatcher.enqueue`
only puts the notice into one bounded queue per notifier and returns at once
(a full queue drops the notice and logs it). One background thread per
notifier delivers, so a hanging webhook does not delay e-mails. A failed
delivery is retried ``retry_attempts`` times in all, with pauses doubling
from ``backoff`` up to ``max_backoff`` seconds; every failure is logged.

Rate limit: a notifier sends at most one message every ``min_interval``
seconds; notices queued meanwhile go out together in the next message (up to
``max_batch``), so a burst of alarms (a whole detector going Bad) makes one
e-mail, not forty.
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import threading
import time
import urllib.request
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

from processing.analysis.alarms.manager import AlarmNotice

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Sends a batch of notices; raises on failure (the dispatcher retries).

    A notifier may set ``min_interval`` (seconds) to override the dispatcher's rate limit.
    """

    name: str

    def send(self, notices: Sequence[AlarmNotice]) -> None: ...


def batch_text(notices: Sequence[AlarmNotice]) -> str:
    if len(notices) == 1:
        return notices[0].text()
    return f"{len(notices)} Overwatch alarms:\n" + "\n".join(f"- {n.text()}" for n in notices)


class LogNotifier:
    """Writes each notice to the log (always on: the log is the record of last resort)."""

    name = "log"
    min_interval = 0.0  # a log line per alarm costs nothing; never hold them back

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("overwatch.alarms")

    def send(self, notices: Sequence[AlarmNotice]) -> None:
        for notice in notices:
            level = logging.ERROR if notice.quality == "Bad" else logging.WARNING
            self.logger.log(level, "%s", notice.text())


class EmailNotifier:
    """Sends one plain-text e-mail per batch through an SMTP server (no authentication)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        mail_from: str,
        mail_to: Sequence[str],
        timeout: float = 10.0,
    ) -> None:
        if not mail_to:
            raise ValueError("an e-mail notifier needs at least one recipient (alarms.mail_to)")
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.mail_to = list(mail_to)
        self.timeout = timeout

    def message(self, notices: Sequence[AlarmNotice]) -> EmailMessage:
        message = EmailMessage()
        if len(notices) == 1:
            subject = notices[0].subject()
        else:
            worst = "Bad" if any(n.quality == "Bad" for n in notices) else notices[0].quality
            subject = f"{len(notices)} alarms ({worst}): " + ", ".join(
                sorted({n.subsystem for n in notices})
            )
        message["Subject"] = f"[Overwatch] {subject}"
        message["From"] = self.mail_from
        message["To"] = ", ".join(self.mail_to)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="overwatch")
        message.set_content(batch_text(notices) + "\n")
        return message

    def send(self, notices: Sequence[AlarmNotice]) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(self.message(notices))


class WebhookNotifier:
    """POSTs Slack-compatible JSON ``{"text": ...}``; any non-2xx answer is a failure."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"alarms.webhook_url: expected an http(s):// URL, got {url!r}")
        self.url = url
        self.timeout = timeout

    def send(self, notices: Sequence[AlarmNotice]) -> None:
        body = json.dumps({"text": batch_text(notices)}).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        # urlopen raises HTTPError for 4xx/5xx, URLError for refused or unreachable servers.
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


class _Worker(threading.Thread):
    """Delivers one notifier's queue: batches, rate limit, retries with back-off."""

    def __init__(self, notifier: Notifier, dispatcher: NotificationDispatcher) -> None:
        super().__init__(name=f"overwatch-notify-{notifier.name}", daemon=True)
        self.notifier = notifier
        self.d = dispatcher
        self.queue: queue.Queue[AlarmNotice] = queue.Queue(maxsize=dispatcher.queue_size)
        self.stats = {"queued": 0, "dropped": 0, "attempts": 0, "delivered": 0, "failed": 0}
        self.busy = False
        self.min_interval = getattr(notifier, "min_interval", dispatcher.min_interval)
        self._last_sent = float("-inf")

    def run(self) -> None:
        stop = self.d.stopping
        while not stop.is_set():
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.busy = True
            try:
                wait = self._last_sent + self.min_interval - time.monotonic()
                if wait > 0:
                    stop.wait(wait)  # rate limit: later notices join this batch meanwhile
                batch = [first]
                while len(batch) < self.d.max_batch:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                self._deliver(batch)
                for _ in batch:
                    self.queue.task_done()
            finally:
                self.busy = False

    def _deliver(self, batch: list[AlarmNotice]) -> None:
        ids = ", ".join(f"#{n.alarm_id}" for n in batch)
        delay = self.d.backoff
        attempts = self.d.retry_attempts
        for attempt in range(1, attempts + 1):
            self.stats["attempts"] += 1
            try:
                self.notifier.send(batch)
            except Exception as exc:
                log.warning(
                    "%s notification of alarm(s) %s failed (attempt %d of %d): %s",
                    self.notifier.name,
                    ids,
                    attempt,
                    attempts,
                    exc,
                )
                if attempt == attempts or self.d.stopping.wait(delay):
                    break
                delay = min(delay * 2, self.d.max_backoff)
            else:
                self._last_sent = time.monotonic()
                self.stats["delivered"] += len(batch)
                return
        self._last_sent = time.monotonic()
        self.stats["failed"] += len(batch)
        log.error("gave up the %s notification of alarm(s) %s", self.notifier.name, ids)


class NotificationDispatcher:
    """Background, non-blocking delivery of notices to several notifiers."""

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        queue_size: int = 1000,
        retry_attempts: int = 5,
        backoff: float = 2.0,
        max_backoff: float = 300.0,
        min_interval: float = 0.0,
        max_batch: int = 50,
    ) -> None:
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be at least 1")
        self.queue_size = queue_size
        self.retry_attempts = retry_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.min_interval = min_interval
        self.max_batch = max(1, max_batch)
        self.stopping = threading.Event()
        self._workers = [_Worker(notifier, self) for notifier in notifiers]
        self._started = False

    @property
    def notifiers(self) -> list[Notifier]:
        return [worker.notifier for worker in self._workers]

    def start(self) -> NotificationDispatcher:
        if not self._started:
            for worker in self._workers:
                worker.start()
            self._started = True
        return self

    def enqueue(self, notice: AlarmNotice) -> bool:
        """Queue a notice for every notifier; never blocks. False if some queue was full."""
        accepted = True
        for worker in self._workers:
            try:
                worker.queue.put_nowait(notice)
                worker.stats["queued"] += 1
            except queue.Full:
                worker.stats["dropped"] += 1
                accepted = False
                log.error(
                    "%s notification queue full (%d): dropped alarm #%d",
                    worker.notifier.name,
                    self.queue_size,
                    notice.alarm_id,
                )
        return accepted

    __call__ = enqueue  # so a dispatcher can be given as AlarmManager(notify=...)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per notifier: queued, dropped, attempts, delivered, failed."""
        return {worker.notifier.name: dict(worker.stats) for worker in self._workers}

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued notice was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.queue.unfinished_tasks == 0 and not w.busy for w in self._workers):
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering; notices still queued are logged as not sent."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
            left = worker.queue.qsize()
            if left:
                log.warning(
                    "%d %s notification(s) not sent at shutdown", left, worker.notifier.name
                )

    def __enter__(self) -> NotificationDispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_dispatcher(settings: Any, *, min_interval: float = 60.0) -> NotificationDispatcher:
    """The notifiers ``Settings.alarms`` asks for (the log always), not yet started."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.smtp_host and settings.mail_to:
        notifiers.append(
            EmailNotifier(
                settings.smtp_host, settings.smtp_port, settings.mail_from, settings.mail_to
            )
        )
    elif settings.smtp_host or settings.mail_to:
        log.warning("e-mail notifications need both alarms.smtp_host and alarms.mail_to; none sent")
    if settings.webhook_url:
        notifiers.append(WebhookNotifier(settings.webhook_url))
    return NotificationDispatcher(
        notifiers, retry_attempts=settings.retry_attempts, min_interval=min_interval
    )

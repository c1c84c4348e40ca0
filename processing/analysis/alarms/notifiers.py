"""Delivering alarm notifications: log, e-mail over SMTP, webhook.

Delivery never blocks processing: :meth:`NotificationDispatcher.enqueue`
only puts the notice into one bounded queue per notifier (``alarms.queue_size``)
and returns at once. One background thread per notifier delivers, so a
hanging webhook does not delay e-mails.

No notice is lost while a notifier is slow or down: a failed delivery is
retried with pauses doubling from ``backoff`` up to ``max_backoff`` seconds;
after ``retry_attempts`` failed attempts the failure is logged as an error,
and delivery goes on being retried every ``max_backoff`` seconds until it
succeeds or the process stops. Notices keep queuing meanwhile; the queue
bounds the memory: once full, a new notice is dropped, logged and counted
(``dropped``). Notices still queued when the process stops are logged and
counted as ``failed``. Delivery is at least once: a batch is resent whole, so
a notifier that reports a failure after actually sending (a webhook that
timed out after accepting) may send it twice; one that fails truthfully
delivers every notice exactly once.

Counters per notifier (:meth:`NotificationDispatcher.stats`): ``queued``
(accepted), ``pending`` (queued or being sent now), ``delivered``,
``dropped`` (queue full), ``failed`` (never sent: stopped before delivery),
``attempts`` and ``failures`` (failed attempts, i.e. retries). The web
process cannot see them in processing's memory, so with ``status_file``
(``DataDir.notifications_file``) a writer thread saves them as JSON
atomically, at most once a second while they change and once at stop; the
status page reads that file, which works even when the database is down.

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
from pathlib import Path
from typing import Any, Protocol

from overwatch.store.layout import atomic_write
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
    """Delivers one notifier's queue: batches, rate limit, retries until delivered."""

    def __init__(self, notifier: Notifier, dispatcher: NotificationDispatcher) -> None:
        super().__init__(name=f"overwatch-notify-{notifier.name}", daemon=True)
        self.notifier = notifier
        self.d = dispatcher
        self.queue: queue.Queue[AlarmNotice] = queue.Queue(maxsize=dispatcher.queue_size)
        self.stats = {
            "queued": 0,
            "delivered": 0,
            "failed": 0,
            "dropped": 0,
            "attempts": 0,
            "failures": 0,
        }
        self.busy = False
        self.sending = 0  # notices taken off the queue, not yet delivered
        self.last_error = ""
        self.min_interval = getattr(notifier, "min_interval", dispatcher.min_interval)
        self._last_sent = float("-inf")

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] += n
        self.d.changed()

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
                self.sending = len(batch)
                self._deliver(batch)
                for _ in batch:
                    self.queue.task_done()
            finally:
                self.sending = 0
                self.busy = False

    def _deliver(self, batch: list[AlarmNotice]) -> None:
        ids = ", ".join(f"#{n.alarm_id}" for n in batch)
        delay = self.d.backoff
        attempts = self.d.retry_attempts
        attempt = 0
        while True:
            attempt += 1
            self.count("attempts")
            try:
                self.notifier.send(batch)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                self.count("failures")
                if attempt < attempts:
                    log.warning(
                        "%s notification of alarm(s) %s failed (attempt %d of %d): %s",
                        self.notifier.name, ids, attempt, attempts, exc,
                    )  # fmt: skip
                else:
                    log.error(
                        "%s notification of alarm(s) %s failed %d times: %s; "
                        "retrying every %gs until delivered",
                        self.notifier.name, ids, attempt, exc, self.d.max_backoff,
                    )  # fmt: skip
                    delay = self.d.max_backoff
                if self.d.stopping.wait(delay):
                    break
                delay = min(delay * 2, self.d.max_backoff)
            else:
                self._last_sent = time.monotonic()
                self.last_error = ""
                self.count("delivered", len(batch))
                if attempt > 1:
                    log.info(
                        "%s notification of alarm(s) %s delivered after %d attempts",
                        self.notifier.name, ids, attempt,
                    )  # fmt: skip
                return
        self.count("failed", len(batch))
        log.error("%s notification of alarm(s) %s not sent: stopping", self.notifier.name, ids)

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.stats,
            "pending": self.queue.qsize() + self.sending,
            "last_error": self.last_error,
        }


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
        status_file: str | Path | None = None,
        status_interval: float = 1.0,
    ) -> None:
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be at least 1")
        if queue_size < 1:
            raise ValueError("alarms.queue_size must be at least 1")
        self.queue_size = queue_size
        self.retry_attempts = retry_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.min_interval = min_interval
        self.max_batch = max(1, max_batch)
        self.status_file = Path(status_file) if status_file is not None else None
        self.status_interval = status_interval
        self.stopping = threading.Event()
        self._changed = threading.Event()
        # The writer thread and callers both save counters: one at a time, so an
        # older snapshot never lands after a newer one.
        self._status_lock = threading.Lock()
        self._workers = [_Worker(notifier, self) for notifier in notifiers]
        self._writer: threading.Thread | None = None
        self._started_at = 0.0
        self._started = False

    @property
    def notifiers(self) -> list[Notifier]:
        return [worker.notifier for worker in self._workers]

    def start(self) -> NotificationDispatcher:
        if not self._started:
            self._started_at = time.time()
            for worker in self._workers:
                worker.start()
            if self.status_file is not None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="overwatch-notify-status", daemon=True
                )
                self._writer.start()
            self._started = True
        return self

    def enqueue(self, notice: AlarmNotice) -> bool:
        """Queue a notice for every notifier; never blocks. False if some queue was full."""
        accepted = True
        for worker in self._workers:
            try:
                worker.queue.put_nowait(notice)
                worker.count("queued")
            except queue.Full:
                worker.count("dropped")
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
        """Counters per notifier: queued, pending, delivered, failed, dropped, attempts, failures."""
        return {
            worker.notifier.name: {k: v for k, v in worker.snapshot().items() if k != "last_error"}
            for worker in self._workers
        }

    def status(self) -> dict[str, Any]:
        """The document of the status file: counters, last error per notifier, times."""
        return {
            "updated": time.time(),
            "started": self._started_at,
            "running": self._started and not self.stopping.is_set(),
            "queue_size": self.queue_size,
            "notifiers": {worker.notifier.name: worker.snapshot() for worker in self._workers},
        }

    def changed(self) -> None:
        self._changed.set()

    def write_status(self) -> None:
        """Save :meth:`status` to ``status_file`` now (atomically; errors are logged)."""
        if self.status_file is None:
            return
        try:
            with self._status_lock:
                data = json.dumps(self.status(), indent=1).encode("utf-8")
                atomic_write(self.status_file, data, fsync=False)
        except OSError as error:
            log.warning("cannot write %s: %s", self.status_file, error)

    def _write_loop(self) -> None:
        self.write_status()
        while not self.stopping.is_set():
            if self._changed.wait(self.status_interval):
                self._changed.clear()
                self.write_status()
                self.stopping.wait(self.status_interval)  # at most once per interval

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued notice was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.queue.unfinished_tasks == 0 and not w.busy for w in self._workers):
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering; notices still queued are logged and counted as failed."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if worker.is_alive():
                worker.join(max(0.0, deadline - time.monotonic()))
            left = worker.queue.qsize()
            if left:
                worker.count("failed", left)
                log.warning(
                    "%d %s notification(s) not sent at shutdown", left, worker.notifier.name
                )
        if self._writer is not None:
            self._writer.join(max(0.0, deadline - time.monotonic()))
        self.write_status()

    def __enter__(self) -> NotificationDispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_dispatcher(
    settings: Any, *, min_interval: float = 60.0, status_file: str | Path | None = None
) -> NotificationDispatcher:
    """The notifiers ``Settings.alarms`` asks for (the log always), not yet started.

    ``status_file`` (normally ``DataDir.notifications_file``) receives the counters.
    """
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
        notifiers,
        queue_size=settings.queue_size,
        retry_attempts=settings.retry_attempts,
        min_interval=min_interval,
        status_file=status_file,
    )

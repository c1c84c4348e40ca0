"""Notifications delivered to real local servers: SMTP (aiosmtpd) and HTTP webhooks.

Also: failing servers are retried until they deliver (attempts counted; what is
still queued at shutdown counts as failed), and a hanging server never blocks
the caller that enqueues.
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from overwatch.config import AlarmSettings
from overwatch.quality import Quality
from overwatch.store.db import open_db, overwatch_root, transact
from processing.analysis.alarms import (
    AlarmManager,
    AlarmNotice,
    EmailNotifier,
    LogNotifier,
    NotificationDispatcher,
    WebhookNotifier,
    build_dispatcher,
)
from processing.analysis.checks import CheckResult, EvaluationResult

pytestmark = pytest.mark.integration

DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notice(alarm_id: int = 1, message: str = "last value = 3 outside [0, 0]") -> AlarmNotice:
    return AlarmNotice(
        alarm_id, 1_700_000_000.0, 300, "EMC", "emc-hot-cells", "EMCal/SM03/cellHits",
        "hot_cells", "EMCal", "Bad", message,
    )  # fmt: skip


def wait_for(predicate, timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------- servers


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


class _Web:
    """A webhook receiver: records JSON bodies, answers ``status``, may hang."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.requests = 0
        self.status = 200
        self.hang = threading.Event()  # while set, requests wait for ``release``
        self.release = threading.Event()
        self.lock = threading.Lock()


@pytest.fixture
def web_server() -> Iterator[tuple[str, _Web]]:
    state = _Web()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server hook)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests += 1
            if state.hang.is_set():
                state.release.wait(20)
            if state.status == 200:
                with state.lock:
                    state.bodies.append(
                        {"content_type": self.headers["Content-Type"], **json.loads(body)}
                    )
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def dispatchers() -> Iterator[list[NotificationDispatcher]]:
    """Dispatchers created by a test, stopped at teardown."""
    created: list[NotificationDispatcher] = []
    yield created
    for dispatcher in created:
        dispatcher.stop(timeout=2)


def started(dispatchers: list, *notifiers, **options) -> NotificationDispatcher:
    dispatcher = NotificationDispatcher(notifiers, **options).start()
    dispatchers.append(dispatcher)
    return dispatcher


# --------------------------------------------------------------------------- delivery


def test_email_is_delivered_to_a_real_smtp_server(smtp_server, dispatchers) -> None:
    port, mailbox = smtp_server
    mailer = EmailNotifier("127.0.0.1", port, "overwatch@test", ["shift@test", "expert@test"])
    dispatcher = started(dispatchers, mailer)
    assert dispatcher.enqueue(notice())
    assert wait_for(lambda: mailbox.messages)
    sender, recipients, message = mailbox.messages[0]
    assert sender == "overwatch@test"
    assert recipients == ["shift@test", "expert@test"]
    assert message["Subject"].startswith(
        "[Overwatch] Bad: EMC emc-hot-cells on EMCal/SM03/cellHits"
    )
    body = message.get_content()
    assert "Overwatch alarm #1" in body and "last value = 3 outside [0, 0]" in body
    assert "run 300" in body and "hot_cells" in body
    assert dispatcher.wait_idle(DEADLINE)
    assert dispatcher.stats()["email"] == {
        "queued": 1, "pending": 0, "dropped": 0, "attempts": 1, "failures": 0, "delivered": 1,
        "failed": 0,
    }  # fmt: skip


def test_webhook_posts_slack_compatible_json(web_server, dispatchers) -> None:
    url, web = web_server
    dispatcher = started(dispatchers, WebhookNotifier(url))
    dispatcher.enqueue(notice(message="mean = 9 outside [1, 2]"))
    assert wait_for(lambda: web.bodies)
    (body,) = web.bodies
    assert body["content_type"] == "application/json"
    assert set(body) == {"content_type", "text"}
    assert body["text"] == notice(message="mean = 9 outside [1, 2]").text()


def test_alarm_from_the_manager_reaches_the_webhook_after_commit(web_server, dispatchers) -> None:
    url, web = web_server
    dispatcher = started(dispatchers, LogNotifier(), WebhookNotifier(url))
    manager = AlarmManager(notify=dispatcher.enqueue, open_after=1)  # about delivery: K=1
    result = CheckResult("rate", "HLT", "events", "event_rate", "Rates", Quality.BAD, "dropped")
    db = open_db("memory://")
    try:
        transact(
            db,
            lambda root: manager.update(overwatch_root(root), EvaluationResult(9, "HLT", [result])),
        )
    finally:
        db.close()
    assert wait_for(lambda: web.bodies)
    assert "check rate on events (trend event_rate)" in web.bodies[0]["text"]
    assert "run 9" in web.bodies[0]["text"]


def test_rate_limit_batches_a_burst_into_one_message(web_server, dispatchers) -> None:
    url, web = web_server
    dispatcher = started(dispatchers, WebhookNotifier(url), min_interval=1.0)
    dispatcher.enqueue(notice(1))
    assert wait_for(lambda: web.bodies)
    for alarm_id in range(2, 7):  # a burst right after: held back, then sent together
        dispatcher.enqueue(notice(alarm_id))
    assert dispatcher.wait_idle(DEADLINE)
    assert web.requests == 2
    assert web.bodies[1]["text"].startswith("5 Overwatch alarms:")
    assert all(f"alarm #{i}:" in web.bodies[1]["text"] for i in range(2, 7))


# --------------------------------------------------------------------------- failures


def test_http_500_is_retried_until_the_server_takes_it(web_server, dispatchers, caplog) -> None:
    url, web = web_server
    web.status = 500
    dispatcher = started(
        dispatchers, WebhookNotifier(url), retry_attempts=3, backoff=0.05, max_backoff=0.1
    )
    dispatcher.enqueue(notice())
    assert wait_for(lambda: web.requests >= 5)  # beyond retry_attempts: not given up
    assert "attempt 2 of 3" in caplog.text
    assert "failed 3 times" in caplog.text and "retrying every 0.1s until delivered" in caplog.text
    assert dispatcher.stats()["webhook"]["pending"] == 1
    web.status = 200
    assert dispatcher.wait_idle(DEADLINE)
    stats = dispatcher.stats()["webhook"]
    assert (stats["delivered"], stats["failed"], stats["pending"]) == (1, 0, 0)
    assert stats["failures"] == stats["attempts"] - 1 >= 5
    assert len(web.bodies) == 1  # delivered once


def test_a_failure_then_success_is_delivered(web_server, dispatchers) -> None:
    url, web = web_server
    web.status = 500
    dispatcher = started(dispatchers, WebhookNotifier(url), retry_attempts=5, backoff=0.2)
    dispatcher.enqueue(notice())
    assert wait_for(lambda: web.requests >= 1)
    web.status = 200
    assert dispatcher.wait_idle(DEADLINE)
    assert len(web.bodies) == 1 and dispatcher.stats()["webhook"]["delivered"] == 1


def test_connection_refused_smtp_is_retried_and_counted_failed_at_stop(dispatchers, caplog) -> None:
    port = free_port()  # nothing listens there
    mailer = EmailNotifier("127.0.0.1", port, "overwatch@test", ["shift@test"], timeout=5)
    dispatcher = started(dispatchers, mailer, retry_attempts=2, backoff=0.05, max_backoff=0.05)
    dispatcher.enqueue(notice())
    dispatcher.enqueue(notice(2))
    assert wait_for(lambda: dispatcher.stats()["email"]["attempts"] >= 4)
    assert not dispatcher.wait_idle(0.2)  # still trying
    dispatcher.stop(timeout=5)
    stats = dispatcher.stats()["email"]
    assert (stats["delivered"], stats["failed"], stats["queued"]) == (0, 2, 2)
    assert "refused" in caplog.text.lower() and "not sent" in caplog.text


def test_a_hanging_server_never_blocks_the_caller(web_server, dispatchers, caplog) -> None:
    url, web = web_server
    web.hang.set()
    dispatcher = started(
        dispatchers, LogNotifier(), WebhookNotifier(url, timeout=15), queue_size=20
    )
    started_at = time.monotonic()
    results = [dispatcher.enqueue(notice(i)) for i in range(1, 101)]
    elapsed = time.monotonic() - started_at
    assert elapsed < 1.0  # 100 enqueues while the webhook hangs
    assert wait_for(lambda: web.requests == 1)  # the worker is stuck in its first request
    assert not all(results)  # the bounded queue overflowed ...
    stats = dispatcher.stats()
    assert stats["webhook"]["dropped"] > 0
    assert stats["webhook"]["queued"] + stats["webhook"]["dropped"] == 100
    # ... while the log notifier, on its own thread, kept delivering
    assert wait_for(
        lambda: dispatcher.stats()["log"]["delivered"] + dispatcher.stats()["log"]["dropped"] == 100
    )
    assert dispatcher.stats()["log"]["delivered"] >= 20
    assert "queue full" in caplog.text
    web.release.set()
    assert dispatcher.wait_idle(DEADLINE)


def test_build_dispatcher_from_settings(web_server, smtp_server) -> None:
    url, _ = web_server
    port, _ = smtp_server
    only_log = build_dispatcher(AlarmSettings())
    assert [n.name for n in only_log.notifiers] == ["log"]
    full = build_dispatcher(
        AlarmSettings(
            smtp_host="127.0.0.1", smtp_port=port, mail_to=["a@test"], webhook_url=url,
            retry_attempts=2,
        )
    )  # fmt: skip
    assert [n.name for n in full.notifiers] == ["log", "email", "webhook"]
    assert full.retry_attempts == 2 and full.queue_size == 1000
    sized = build_dispatcher(AlarmSettings(queue_size=7), status_file="x/notifications.json")
    assert sized.queue_size == 7 and str(sized.status_file) == "x/notifications.json"
    with pytest.raises(ValueError, match="webhook_url"):
        build_dispatcher(AlarmSettings(webhook_url="ftp://x"))

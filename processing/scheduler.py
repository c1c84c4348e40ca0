"""Running the pipeline: an APScheduler interval job, woken early by receivers' notices.

The job runs a pass every ``processing.interval`` seconds (coalescing missed
runs, never two at once). A receiver announces each new snapshot with a
one-frame JSON notice ``{"run", "subsystem", "path"}`` on a ZMQ PUSH socket;
processing binds the PULL end at ``receiver.notify_address`` (the format and
the listener are ``overwatch.notices``'). The listener thread turns a notice
into ``next_run_time = now`` for the job, so a snapshot is processed within a
second instead of an interval.

A notice that arrives while a pass is running is not lost: the job keeps
passing while notices came in during its pass (it is not re-armed meanwhile,
which APScheduler would only refuse), and after it returns a job listener
re-arms it if one slipped in at the very end. Notices are only hints
(the pass scans the data directory anyway), so a dropped notice delays
processing by at most one interval.

Alarm notifications: the service owns the notification dispatcher the
pipeline's alarm manager hands notices to. It is started before the first
pass and stopped after the last one: notices of that pass still queued get
``drain`` seconds to go out, then whatever is left is logged as not sent.

Live events: with ``events_address`` the service binds an
``overwatch.events.EventPublisher`` there; the pipeline publishes a
``snapshot`` event after each commit and the alarm manager an ``alarm`` event
per alarm opened, escalated or closed. Event notices from the web app (an
acknowledgement) come in on the notice socket and are republished as they are.

Several workers (``processing.workers``): notices stay one PUSH/PULL socket,
so receivers and the web app are unchanged. The rule: the worker that binds
``receiver.notify_address`` first holds it; it is woken by the notices of the
subsystems it owns and passes the others on to their owners. A worker owning
only some subsystems that finds the address taken binds a listener of its
own on a free port of the same host and says where in its worker record;
the holder relays it the notices of its subsystems (``processing.workers``,
"Notice relay": routes re-read with each heartbeat, sent without blocking,
a notice nobody takes is dropped: the owner's scan every
``processing.interval`` seconds finds the file anyway). A worker owning every
subsystem still refuses to start without its notices, as before. Likewise only the worker
that binds ``processing.events_address`` publishes live events (and
republishes the web app's); pages show the other workers' snapshots when
they poll. Each worker's claim is kept alive by a second job, the heartbeat
(``WorkerClaim.heartbeat`` every ``heartbeat`` seconds, concurrent with a
pass so a long pass does not look like a death); if the claim was taken over
the service stops processing and sets :attr:`ProcessingService.lost`.

At stop the service logs the pipeline's stage times per snapshot
(:mod:`processing.timings`: read, counter resets, cache, analysis, commit, other).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler

from overwatch.events import EventPublisher
from overwatch.notices import Notice, NoticeListener, encode_notice
from processing.analysis.alarms import NotificationDispatcher
from processing.pipeline import Key, Pipeline
from processing.workers import ClaimLost, WorkerClaim

log = logging.getLogger(__name__)

JOB_ID = "process"
HEARTBEAT_JOB_ID = "heartbeat"


class ProcessingService:
    """The scheduled pipeline plus its notice listener."""

    def __init__(
        self,
        pipeline: Pipeline,
        interval: float,
        notify_address: str | None = None,
        *,
        dispatcher: NotificationDispatcher | None = None,
        drain: float = 2.0,
        events_address: str | None = None,
        worker: WorkerClaim | None = None,
        heartbeat: float = 10.0,
        notify_required: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.worker = worker
        self.heartbeat = heartbeat
        #: Set when this worker's claim was taken over: it processes no more.
        self.lost = threading.Event()
        self.interval = interval
        self.dispatcher = dispatcher
        self.drain = drain
        self._hints: set[Key] = set()
        self._lock = threading.Lock()
        self._pending = threading.Event()
        self._in_pass = False  # a running job re-checks _pending itself; no need to re-arm it
        self._failed = False
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.add_listener(self._after_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        # Bound here, so a second processing service on the same address fails at once.
        self.events = EventPublisher(events_address) if events_address else None
        if self.events is not None:
            pipeline.events = self.events
            if pipeline.alarms is not None:
                pipeline.alarms.on_change = self._alarm_changed
        self._listener = None
        #: Other workers' (ownership, relay address), when this one holds the notices.
        self._routes: list = []
        self._relays: dict[str, object] = {}  # address -> PUSH socket (listener thread's)
        if notify_address:
            on_event = self.events.republish if self.events else None
            try:
                self._listener = NoticeListener(notify_address, on_event=on_event)
            except Exception as error:
                if notify_required:
                    raise
                self._listener = self._relayed(notify_address, error, on_event)
        self._listening = threading.Event()  # set to stop the listener thread
        self._listener_thread: threading.Thread | None = None

    def _relayed(self, notify_address: str, error: Exception, on_event):
        """A listener of this worker's own, for notices the holder of the address relays."""
        host = notify_address.rpartition(":")[0]
        try:
            listener = NoticeListener(f"{host}:*", on_event=on_event)
        except Exception as second:
            log.warning(
                "notices on %s are taken (%s) and no address of %s is free for relayed ones "
                "(%s): processing every %gs without them",
                notify_address, error, host, second, self.interval,
            )  # fmt: skip
            return None
        if self.worker is not None:
            self.worker.notify = listener.address
        log.info(
            "notices on %s are taken (%s), likely by another worker: taking those it relays "
            "on %s",
            notify_address, error, listener.address,
        )  # fmt: skip
        return listener

    @property
    def notify_address(self) -> str | None:
        return self._listener.address if self._listener else None

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self._scheduler.add_job(
            self._job,
            "interval",
            seconds=self.interval,
            id=JOB_ID,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        if self.worker is not None:
            self._scheduler.add_job(
                self._beat, "interval", seconds=self.heartbeat, id=HEARTBEAT_JOB_ID,
                coalesce=True, max_instances=1, misfire_grace_time=None,
                next_run_time=datetime.now(UTC),  # at once: say where relayed notices go
            )  # fmt: skip
        self._scheduler.start()
        if self._listener is not None:
            self._listener_thread = threading.Thread(
                target=self._listener.listen,
                args=(self._on_notice, self._listening),
                name="notice-listener",
                daemon=True,
            )
            self._listener_thread.start()
        log.info(
            "processing %s every %gs%s",
            self.pipeline.data.root,
            self.interval,
            f", woken by notices on {self.notify_address}" if self._listener else "",
        )

    def _alarm_changed(self, action: str, alarm: dict) -> None:
        assert self.events is not None
        self.events.publish("alarm", action=action, alarm=alarm)

    def _on_notice(self, notice: Notice) -> None:
        owns = self.pipeline.owns
        if owns is not None and not owns(notice["subsystem"]):
            self._relay(notice)  # another worker's subsystem: its owner scans it anyway
            return
        self.wake((notice["run"], notice["subsystem"]))

    def _relay(self, notice: Notice) -> None:
        """Pass a notice on to the worker owning its subsystem (listener thread)."""
        import zmq

        for ownership, address in self._routes:
            if not ownership.owns(notice["subsystem"]):
                continue
            sock = self._relays.get(address)
            if sock is None:
                sock = self._relays[address] = zmq.Context.instance().socket(zmq.PUSH)
                sock.setsockopt(zmq.SNDHWM, 100)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(address)
            try:
                sock.send(encode_notice(notice["run"], notice["subsystem"], notice["path"]),
                          zmq.NOBLOCK)  # fmt: skip
            except zmq.Again:
                log.debug("worker at %s takes no notices: dropped one", address)

    def _beat(self) -> None:
        """The worker's heartbeat (a scheduler job of its own)."""
        assert self.worker is not None
        try:
            self.worker.heartbeat(self.pipeline.last_pass_finished, self.pipeline.processed_total)
            if self._listener is not None and not self.worker.notify:  # it holds the address
                self._routes = self.worker.notice_routes()
        except ClaimLost as error:
            log.error("%s: processing stops", error)
            self.lost.set()
            for job in (JOB_ID, HEARTBEAT_JOB_ID):
                try:
                    self._scheduler.remove_job(job)
                except Exception:  # already gone
                    log.debug("job %s already removed", job)
        except Exception as error:  # the database away: shown late, then dead, until it is back
            log.warning("worker heartbeat not recorded: %s", error)

    def wake(self, key: Key | None = None) -> None:
        """Run a pass now (called by the listener thread)."""
        with self._lock:
            if key is not None:
                self._hints.add(key)
        self._pending.set()
        if self._in_pass:
            return
        try:
            self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
        except Exception:  # not started yet or shutting down: the next pass will see the file
            log.debug("could not wake the processing job", exc_info=True)

    def _job(self) -> None:
        self._in_pass = True
        try:
            self._passes()
        finally:
            self._in_pass = False

    def _passes(self) -> None:
        while not self.lost.is_set():
            self._pending.clear()
            with self._lock:
                hints, self._hints = self._hints, set()
            report = self.pipeline.run_pass(hints)
            if report.processed or report.bad or report.failed:
                log.info(
                    "pass: %d processed, %d bad, %d failed",
                    report.processed,
                    report.bad,
                    len(report.failed),
                )
            self._failed = bool(report.failed)
            if self._failed or not self._pending.is_set():
                return  # after a failure wait for the interval instead of spinning

    def _after_job(self, event) -> None:
        # A notice that came after the job's last look at _pending but before it ended.
        if self._pending.is_set() and not self._failed and self._scheduler.running:
            self.wake()

    def stop(self) -> None:
        if self._listener_thread is not None:
            self._listening.set()  # the thread closes the socket on its way out
            self._listener_thread.join(timeout=5)
            self._listener_thread = None
            for sock in self._relays.values():  # the listener thread's, and it has ended
                sock.close(linger=0)
            self._relays.clear()
        elif self._listener is not None and not self._listening.is_set():
            self._listening.set()
            self._listener.close()  # never started: nobody else would close it
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self.pipeline.times.snapshots:  # what each snapshot cost, for sizing a machine
            log.info("%s", self.pipeline.times.describe())
        if self.worker is not None and not self.lost.is_set():
            try:
                self.worker.release(self.pipeline.last_pass_finished, self.pipeline.processed_total)
            except Exception:  # shown dead once its heartbeat is old: nothing is lost
                log.warning("could not mark the worker stopped", exc_info=True)
        if self.events is not None:
            self.events.close()
        if self.dispatcher is not None:
            if not self.dispatcher.wait_idle(self.drain):
                log.warning("alarm notifications still pending after %gs: stopping", self.drain)
            self.dispatcher.stop()

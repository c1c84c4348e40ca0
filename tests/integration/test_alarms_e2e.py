"""Faults injected by the simulator raise the right alarms, delivered by e-mail and webhook.

Snapshots are written into a data directory as a receiver writes them
(``snapshot_relpath`` names at the simulated instants, atomic writes), then
processed. Alarms must exist right after processing the ``alarms.open_after``-th
snapshot (default 2) whose slice contains a fault, and not before; mail goes to a real SMTP server (aiosmtpd) and the
webhook to a real HTTP server, both on 127.0.0.1. Clean data raises nothing;
the real scheduler (woken by notices) and the real ``overwatch process``
command keep the trends growing across restarts; a shifter acknowledges an
alarm through the web API (``POST /api/alarms/<id>/ack``).
"""

from __future__ import annotations

import email
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import zmq
from aiosmtpd.controller import Controller

from overwatch import timestamps
from overwatch.config import AlarmSettings, ProcessingSettings
from overwatch.store.db import open_db, read
from overwatch.store.layout import atomic_write
from processing.analysis.alarms import AlarmManager, build_dispatcher
from processing.analysis.live import load_engine
from processing.analysis.trending import TrendStore, trend_dir
from processing.pipeline import Pipeline
from processing.scheduler import ProcessingService
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import T0, free_port, wait_for
from tests.unit.test_web_support import make_app
from webapp import users

pytestmark = pytest.mark.integration

RUN = 42
STEP = 30.0  # simulated seconds between snapshots
HOT = ("EMC", "emc-hot-cells", "EMCal/SM03/cellHits", "hot_cells", "Bad")
DEAD = ("EMC", "emc-dead-cells", "EMCal/SM07/cellHits", "dead_cells", "Bad")
RATE = ("EMC", "emc-event-rate-drop", "EMCTrigger/events", "event_rate", "Bad")
FAULTS = [  # (alarm expected, fault)
    (HOT, {"kind": "hot_channel", "subsystem": "EMC", "at_minute": 3, "cell": [3, 10, 5],
           "factor": 20}),
    (DEAD, {"kind": "dead_region", "subsystem": "EMC", "at_minute": 6, "supermodule": 7,
            "eta": [0, 8], "phi": [0, 8]}),
    (RATE, {"kind": "rate_drop", "subsystem": "EMC", "at_minute": 9, "factor": 0.1}),
]  # fmt: skip


# --------------------------------------------------------------------------- servers


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd hook)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"

    def text(self) -> str:
        return "\n".join(m.get_content() for m in self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server hook)
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --------------------------------------------------------------------------- helpers


def write(data: Path, sim: DetectorSimulator, subsystem: str) -> Path:
    """A snapshot as a receiver writes it: the simulated instant in the name, atomic rename."""
    path = data / timestamps.snapshot_relpath(sim.run, subsystem, timestamps.from_unix(sim.now))
    atomic_write(path, sim.payload(subsystem), fsync=False)
    return path


def stored_alarms(db) -> dict[int, tuple]:
    def work(ow) -> dict[int, tuple]:
        return {
            a.id: (a.subsystem, a.check, a.path, a.trend, a.quality) for a in ow.alarms.values()
        }

    return read(db, work)


#: A rate is judged over a window of a minute: its drop shows once a whole window is in it.
DELAY = {RATE: 60.0}


def expected_alarms(seconds: float) -> set[tuple]:
    """Alarms once the slice ending ``seconds`` after the run start has been processed."""
    # An alarm opens after alarms.open_after consecutive Bad slices: K - 1 slices after the first.
    later = (AlarmSettings().open_after - 1) * STEP
    return {
        alarm
        for alarm, fault in FAULTS
        if seconds >= fault["at_minute"] * 60 + DELAY.get(alarm, 1) + later
    }


def trend_points(data: Path, subsystem: str, run: int = RUN) -> int:
    return len(TrendStore(trend_dir(data, run, subsystem), readonly=True))


# --------------------------------------------------------------------------- tests


def test_faults_raise_the_right_alarm_after_open_after_slices(tmp_path, smtp, webhook) -> None:
    (smtp_port, mailbox), (url, hooks) = smtp, webhook
    settings = AlarmSettings(
        smtp_host="127.0.0.1", smtp_port=smtp_port, mail_to=["shift@example.org"],
        webhook_url=url, retry_attempts=3,
    )  # fmt: skip
    app, db = make_app(tmp_path, db=open_db(f"file://{tmp_path / 'ow.fs'}"))
    data = tmp_path / "data"
    dispatcher = build_dispatcher(settings, min_interval=0.0).start()
    try:
        pipeline = Pipeline(
            data, db, ProcessingSettings(), checks=load_engine(),
            alarms=AlarmManager.from_settings(settings, notify=dispatcher.enqueue),
        )  # fmt: skip
        sim = DetectorSimulator(["EMC"], run=RUN, seed=11, start_time=T0,
                                faults=[f for _, f in FAULTS])  # fmt: skip
        for _ in range(22):  # 11 minutes
            sim.advance(STEP)
            write(data, sim, "EMC")
            assert pipeline.run_pass().processed == 1
            seconds = sim.now - T0
            assert set(stored_alarms(db).values()) == expected_alarms(seconds), seconds
        assert len(stored_alarms(db)) == 3  # each raised once, none for the data around them
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.stop()
    assert dispatcher.stats()["email"]["delivered"] == 3
    mail = mailbox.text()
    hooked = "\n".join(body["text"] for body in hooks)
    for _, check, path, _, _ in (HOT, DEAD, RATE):
        assert f"check {check} on {path}" in mail
        assert f"check {check} on {path}" in hooked
    assert mailbox.messages[0]["To"] == "shift@example.org"

    # A shifter acknowledges the hot cell through the web API.
    users.add_user(db, "shifter", "correct horse battery")
    token = users.issue_token(db, "shifter")
    hot_id = next(i for i, alarm in stored_alarms(db).items() if alarm == HOT)
    client = app.test_client()
    answer = client.post(f"/api/alarms/{hot_id}/ack", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["acknowledged_by"] == "shifter"
    listed = client.get("/api/alarms?acknowledged=1", headers={"Authorization": f"Bearer {token}"})
    assert [a["id"] for a in listed.get_json()["alarms"]] == [hot_id]
    db.close()


def test_thirty_clean_minutes_raise_no_alarm(tmp_path) -> None:
    data = tmp_path / "data"
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    notices = []
    pipeline = Pipeline(
        data, db, ProcessingSettings(), checks=load_engine(), alarms=AlarmManager(notify=notices.append)
    )  # fmt: skip
    sim = DetectorSimulator(["EMC", "TPC", "HLT"], run=RUN, seed=5, start_time=T0, tick=5.0)
    for _ in range(30):
        sim.advance(60)
        for subsystem in sim.subsystems:
            write(data, sim, subsystem)
        assert pipeline.run_pass().processed == 3
    assert stored_alarms(db) == {} and notices == []

    def qualities(ow) -> dict[str, tuple[str, int]]:
        return {
            name: (sub.quality, len(sub.check_results))
            for name, sub in ow.runs[RUN].subsystems.items()
        }

    # The checks did run (Good, not "cannot tell"), on every subsystem: EMC's 40 cell-map
    # checks and every subsystem's event rate and counter-reset checks.
    assert read(db, qualities) == {"EMC": ("Good", 42), "HLT": ("Good", 2), "TPC": ("Good", 2)}
    assert [trend_points(data, s) for s in sim.subsystems] == [30, 30, 30]
    db.close()


def test_alarm_latency_with_the_scheduler_and_trends_across_restarts(tmp_path) -> None:
    """Snapshot written + notice -> alarm committed, with the real scheduler; then a restart."""
    data = tmp_path / "data"
    faults = [
        {"kind": "hot_channel", "subsystem": "EMC", "at_minute": m, "cell": [sm, 5, 5], "factor": 30}
        for m, sm in ((1, 1), (2, 4), (3, 9), (4, 13), (5, 17))
    ]  # fmt: skip
    sim = DetectorSimulator(["EMC"], run=RUN, seed=3, start_time=T0, faults=faults, tick=2.0)
    payloads = []
    for _ in range(12):  # generated first: the latency is processing's, not the simulator's
        sim.advance(STEP)
        payloads.append((sim.now, sim.payload("EMC")))
    db = open_db(f"file://{tmp_path / 'ow.fs'}")
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    latencies: list[float] = []
    try:

        def serve(payloads):
            # K=1: this measures processing's latency (snapshot -> alarm), not the episode rule.
            settings = AlarmSettings(open_after=1)
            dispatcher = build_dispatcher(settings, min_interval=0.0)
            alarms = AlarmManager.from_settings(settings, notify=dispatcher.enqueue)
            pipeline = Pipeline(data, db, ProcessingSettings(), checks=load_engine(), alarms=alarms)
            service = ProcessingService(
                pipeline, 600.0, "tcp://127.0.0.1:*", dispatcher=dispatcher
            )  # a long interval: only the notices wake it
            service.start()
            push.connect(service.notify_address)
            try:
                for ts, payload in payloads:
                    path = data / timestamps.snapshot_relpath(RUN, "EMC", timestamps.from_unix(ts))
                    count = len(stored_alarms(db))
                    started = time.perf_counter()
                    atomic_write(path, payload, fsync=False)
                    notice = {"run": RUN, "subsystem": "EMC", "path": str(path.relative_to(data))}
                    push.send(json.dumps(notice).encode())
                    if any(ts - T0 > f["at_minute"] * 60 >= ts - T0 - STEP for f in faults):
                        wait_for(lambda c=count: len(stored_alarms(db)) > c, 30, "the alarm")
                        latencies.append(time.perf_counter() - started)
                    else:
                        wait_for(lambda t=ts: processed(db, t), 30, "the snapshot")
            finally:
                push.disconnect(service.notify_address)
                service.stop()

        serve(payloads[:6])
        assert trend_points(data, "EMC") == 6
        serve(payloads[6:])  # a restart: a new pipeline and scheduler on the same data
    finally:
        push.close(linger=0)
    assert trend_points(data, "EMC") == 12
    raised = sorted(alarm[2] for alarm in stored_alarms(db).values())
    assert raised == [f"EMCal/SM{sm:02d}/cellHits" for sm in (1, 4, 9, 13, 17)]
    db.close()
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(
        f"alarm latency over {len(latencies)} faults: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
    )
    assert p95 < 10.0


def processed(db, ts: float) -> bool:
    def work(ow) -> bool:
        run = ow.runs.get(RUN)
        return run is not None and "EMC" in run.subsystems and ts in run.subsystems["EMC"].snapshots

    return read(db, work)


def test_overwatch_process_notifies_and_keeps_trends_across_restarts(tmp_path, smtp) -> None:
    """The real command: notices in, e-mail out, a clean stop on SIGTERM, trends continued."""
    port, mailbox = smtp
    data, database = tmp_path / "data", tmp_path / "ow.fs"
    notify = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "overwatch.yaml"
    config.write_text(
        f"receiver:\n  notify_address: {notify}\n"
        "processing:\n  interval: 600\n"
        f"alarms:\n  smtp_host: 127.0.0.1\n  smtp_port: {port}\n  mail_to: [shift@example.org]\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    sim = DetectorSimulator(["EMC"], run=RUN, seed=9, start_time=T0, tick=2.0,
                            faults=[{"kind": "hot_channel", "subsystem": "EMC", "at_minute": 2,
                                     "cell": [3, 10, 5], "factor": 30}])  # fmt: skip
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(notify)

    cache = data / "cache" / f"Run{RUN}" / "EMC"
    log = tmp_path / "process.log"

    def run_process(snapshots: int) -> None:
        command = [sys.executable, "-m", "overwatch.cli", "--config", str(config), "process",
                   "--data-dir", str(data), "--db", f"file://{database}"]  # fmt: skip
        with open(log, "a") as errors:  # a file, not a pipe: a chatty child never blocks
            child = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                     stderr=errors, text=True)  # fmt: skip
        try:
            assert "processing" in child.stdout.readline()  # started: the listener is bound
            for _ in range(snapshots):
                sim.advance(STEP)
                path = write(data, sim, "EMC")
                notice = {"run": RUN, "subsystem": "EMC", "path": str(path.relative_to(data))}
                push.send(json.dumps(notice).encode())
                stem = path.name[: -len(".root")]
                wait_for(lambda s=stem: any(p.name.startswith(s) for p in cache.glob("*")), 60,
                         "the snapshot's cache file")  # fmt: skip
            # SIGTERM now: the pass that wrote the cache file finishes (and commits) first.
        finally:
            child.send_signal(signal.SIGTERM)
            child.communicate(timeout=60)
        assert child.returncode == 0, log.read_text()[-3000:]

    try:
        run_process(3)  # minutes 0.5-1.5: clean
        assert mailbox.messages == []
        run_process(3)  # a restart; minute 2-2.5 holds the hot cell
        wait_for(lambda: mailbox.messages, 30, "the alarm e-mail")
    finally:
        push.close(linger=0)
    assert "check emc-hot-cells on EMCal/SM03/cellHits" in mailbox.text()
    assert trend_points(data, "EMC") == 6
    db = open_db(f"file://{database}")
    try:
        assert list(stored_alarms(db).values()) == [HOT]
        assert read(db, lambda ow: len(ow.runs[RUN].subsystems["EMC"].snapshots)) == 6
    finally:
        db.close()

"""The replay sender: plans, REP and XPUB sockets on loopback, real receivers in threads.

Sources are real ROOT files on disk (``write_snapshot``, the receivers' layout)
read by :func:`overwatch.store.archive.read_source`; receivers are
:class:`receivers.zmq_receiver.Receiver` on real sockets.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from overwatch import cli, rootio, timestamps
from overwatch.config import ReceiverSettings
from overwatch.histogram import Axis, Histogram
from overwatch.store.archive import read_source
from receivers import wire
from receivers.replay import ReplayError, ReplayPlan, ReplaySender
from receivers.replay_command import Progress, parse_speed
from receivers.zmq_receiver import Receiver
from tests.processing_helpers import snapshot_path, wait_for, write_snapshot

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC: long past, so loops may shift it


def content(k: int, name: str = "h") -> list[Histogram]:
    h = Histogram.empty(name, [Axis.regular(10, 0, 1)], "TH1D")
    h.fill(np.full(10 * k, 0.55))
    return [h]


def make_source(root: Path, times: dict[str, list[float]], run: int = 5) -> dict[str, list[Path]]:
    """Cumulative snapshots of ``run`` at the given instants, per subsystem."""
    written = {}
    for subsystem, instants in times.items():
        written[subsystem] = [
            write_snapshot(root, run, subsystem, t, content(k))
            for k, t in enumerate(instants, start=1)
        ]
    return written


def receiver_settings(**overrides) -> ReceiverSettings:
    values = dict(
        interval=0.05, timeout=3.0, max_backoff=0.5, heartbeat_interval=0.2, notify_address=""
    )
    values.update(overrides)
    return ReceiverSettings(**values)


class Running:
    """Threads of one test (sender and receivers), stopped and joined at the end."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.results: dict[str, object] = {}

    def start(self, name: str, target, *args) -> None:
        def run() -> None:
            self.results[name] = target(*args)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)
        assert not any(t.is_alive() for t in self.threads)


@pytest.fixture
def running():
    box = Running()
    yield box
    box.close()


def receive(running: Running, data: Path, subsystem: str, endpoint: str, pattern="req", **kw):
    receiver = Receiver(receiver_settings(**kw), data, subsystem, endpoint, pattern)
    running.start(f"receiver-{subsystem}", receiver.run, running.stop)
    return receiver


def stored(data: Path, run: int, subsystem: str) -> list[Path]:
    folder = data / f"Run{run}" / subsystem
    return sorted(folder.glob(f"{subsystem}hists.*.root")) if folder.exists() else []


def request(socket: zmq.Socket, subsystem: str) -> tuple[dict, bytes]:
    socket.send(wire.encode_request(subsystem))
    assert socket.poll(5000), "no answer from the replay"
    head, payload = socket.recv_multipart()
    return json.loads(head), payload


@pytest.fixture
def req_socket():
    sockets = []

    def connect(endpoint: str) -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sockets.append(sock)
        return sock

    yield connect
    for sock in sockets:
        sock.close(linger=0)


# --------------------------------------------------------------------------- the wire


def test_pending_travels_in_the_header_and_a_bad_one_is_a_bad_header() -> None:
    header = wire.Header(run=5, subsystem="EMC", seq=2, timestamp=T0, pending=3)
    assert json.loads(header.encode())["pending"] == 3
    assert wire.parse_header(header.encode()) == header
    assert wire.parse_header(wire.Header(5, "EMC").encode()).pending is None
    base = {"run": 5, "subsystem": "EMC", "mode": "B", "seq": 1}
    for bad, message in ((-1, "must not be negative"), ("2", "must be an integer")):
        with pytest.raises(wire.WireError, match=f"'pending' {message}"):
            wire.parse_header(json.dumps({**base, "pending": bad}).encode())


# --------------------------------------------------------------------------- the plan


def test_plan_selects_renumbers_and_refuses_what_the_source_does_not_hold(tmp_path) -> None:
    for run in (7, 9):
        make_source(tmp_path, {"EMC": [T0 + run, T0 + run + 10], "TPC": [T0 + run + 1]}, run=run)
    source = read_source(tmp_path)
    plan = ReplayPlan(source, runs=[9], subsystems=["TPC"], run_as=100)
    assert [(i.run, i.subsystem) for i in plan.items()] == [(100, "TPC")]
    assert plan.run_map == {9: 100} and plan.total == 1
    both = ReplayPlan(source, run_as=2_147_483_646)
    assert both.run_map == {7: 2_147_483_646, 9: 2_147_483_647}  # in the order of the numbers
    with pytest.raises(ReplayError, match=r"cannot renumber 2 run\(s\) from 2147483647"):
        ReplayPlan(source, run_as=2_147_483_647)
    with pytest.raises(ReplayError, match=r"subsystem HLT not in the source \(it holds EMC, TPC\)"):
        ReplayPlan(source, subsystems=["EMC", "HLT"])
    with pytest.raises(ReplayError, match="invalid subsystem"):
        ReplayPlan(source, subsystems=["emc/.."])
    with pytest.raises(ReplayError, match=r"run 8 not in the source \(it holds runs 7, 9\)"):
        ReplayPlan(source, runs=[8])


def test_plan_keeps_true_instants_and_shortens_long_idle_stretches(tmp_path) -> None:
    times = [T0, T0 + 30, T0 + 86_400 * 90, T0 + 86_400 * 90 + 20]  # 3 months between
    make_source(tmp_path, {"EMC": times})
    plan = ReplayPlan(read_source(tmp_path), max_gap=45)
    items = plan.items()
    assert [i.timestamp for i in items] == times
    assert [i.offset for i in items] == [0, 30, 75, 95]
    looped = ReplayPlan(read_source(tmp_path), loop=True, max_gap=45)
    assert looped.total is None
    second = looped.items(1)
    assert looped.shift == times[-1] - times[0] + looped.step
    assert [i.timestamp for i in second] == [t + looped.shift for t in times]
    assert second[0].offset > items[-1].offset  # each pass after the previous one


def test_plan_takes_the_mode_of_old_receiver_names(tmp_path) -> None:
    wall = timestamps.from_unix(T0).in_timezone(timestamps.ARCHIVE_TIMEZONE)
    name = f"EMChistos_123_C_{wall.format('YYYY_M_D_H_m_s')}.root"
    rootio.write_file(tmp_path / name, content(1))
    plan = ReplayPlan(read_source(tmp_path))
    [item] = plan.items()
    assert (item.run, item.mode, item.timestamp) == (123, "C", T0)


# --------------------------------------------------------------------------- REP


def test_rep_serves_each_subsystem_in_order_to_real_receivers(tmp_path, running) -> None:
    source_dir, data = tmp_path / "source", tmp_path / "data"
    written = make_source(
        source_dir,
        {"EMC": [T0 + 60 * i for i in range(8)], "TPC": [T0 + 5 + 60 * i for i in range(6)]},
    )
    sender = ReplaySender(ReplayPlan(read_source(source_dir)), "tcp://127.0.0.1:*", speed=None)
    running.start("sender", sender.serve, running.stop)
    for subsystem in ("EMC", "TPC"):
        receive(running, data, subsystem, sender.endpoint)
    wait_for(lambda: running.results.get("sender"), 30, "the replay to finish")
    summary = running.results["sender"]
    assert summary.complete and summary.served == {"EMC": 8, "TPC": 6}
    assert summary.bytes == sum(p.stat().st_size for ps in written.values() for p in ps)
    for subsystem, paths in written.items():
        count = len(paths)
        wait_for(lambda s=subsystem, n=count: len(stored(data, 5, s)) == n, 10, subsystem)
        got = stored(data, 5, subsystem)
        assert [p.name for p in got] == [p.name for p in paths]  # true UTC names, in order
        assert [p.read_bytes() for p in got] == [p.read_bytes() for p in paths]


def test_rep_spacing_is_the_original_divided_by_speed(tmp_path, running) -> None:
    gaps = [2.0, 4.0, 1.0, 3.0]
    instants = list(np.cumsum([0.0, *gaps]) + T0)
    make_source(tmp_path / "source", {"EMC": instants})
    served_at: list[float] = []
    sender = ReplaySender(
        ReplayPlan(read_source(tmp_path / "source")),
        "tcp://127.0.0.1:*",
        speed=5.0,
        progress=lambda item, n, total: served_at.append(time.monotonic()),
    )
    running.start("sender", sender.serve, running.stop)
    receiver = receive(running, tmp_path / "data", "EMC", sender.endpoint, interval=0.02)
    wait_for(lambda: running.results.get("sender"), 30, "the replay to finish")
    measured = np.diff(served_at)
    # A receiver polling every 0.02 s takes each one within a poll of its due time.
    np.testing.assert_allclose(measured, np.array(gaps) / 5.0, atol=0.08)
    wait_for(lambda: receiver.counters["stored"] == 5, 5, "5 stored")
    # The receiver's side: the files were written at that pace too.
    written = [p.stat().st_mtime for p in stored(tmp_path / "data", 5, "EMC")]
    np.testing.assert_allclose(np.diff(written), np.array(gaps) / 5.0, atol=0.1)
    # Between due times the receiver was answered the last one again: duplicates.
    assert receiver.counters["duplicates"] > 0
    assert running.results["sender"].repeated["EMC"] == receiver.counters["duplicates"]


def test_rep_refusals_repeats_and_pending(tmp_path, running, req_socket) -> None:
    make_source(tmp_path, {"EMC": [T0, T0 + 1, T0 + 2], "TPC": [T0 + 4]})
    sender = ReplaySender(ReplayPlan(read_source(tmp_path)), "tcp://127.0.0.1:*", speed=2.0)
    started = time.monotonic()
    running.start("sender", sender.serve, running.stop)
    sock = req_socket(sender.endpoint)
    head, _ = request(sock, "TPC")  # due after 2 s
    assert head["error"].startswith("replay: nothing due yet for TPC (its first snapshot in")
    head, first = request(sock, "EMC")
    assert (head["seq"], head["timestamp"], head["pending"]) == (1, T0, 0)
    again, payload = request(sock, "EMC")  # the next is due 0.5 s later: the last again
    assert (again["seq"], payload) == (1, first)
    head, _ = request(sock, "HLT")
    assert head["error"] == "replay: HLT is not replayed (this replay serves EMC, TPC)"
    sock.send(b"not json")
    sock.poll(5000)
    assert "replay: bad request" in json.loads(sock.recv_multipart()[0])["error"]
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))  # EMC 2 and 3 both due
    head, _ = request(sock, "EMC")
    assert (head["seq"], head["timestamp"], head["pending"]) == (2, T0 + 1, 1)
    head, _ = request(sock, "EMC")
    assert (head["seq"], head["pending"]) == (3, 0)
    head, _ = request(sock, "EMC")
    assert head["error"] == "replay finished: all 3 snapshot(s) of EMC served"
    time.sleep(max(0.0, started + 2.1 - time.monotonic()))
    head, _ = request(sock, "TPC")
    assert head["subsystem"] == "TPC" and head["timestamp"] == T0 + 4
    wait_for(lambda: "sender" in running.results, 10, "the replay to end")
    summary = running.results["sender"]
    assert summary.complete and summary.served == {"EMC": 3, "TPC": 1}
    assert summary.repeated == {"EMC": 1, "TPC": 0} and summary.refused == 4


def test_rep_max_speed_says_how_many_are_pending(tmp_path, running, req_socket) -> None:
    make_source(tmp_path, {"EMC": [T0 + i for i in range(4)]})
    sender = ReplaySender(ReplayPlan(read_source(tmp_path)), "tcp://127.0.0.1:*", speed=None)
    running.start("sender", sender.serve, running.stop)
    sock = req_socket(sender.endpoint)
    assert [request(sock, "EMC")[0]["pending"] for _ in range(4)] == [3, 2, 1, 0]


def test_a_req_receiver_asks_again_at_once_while_snapshots_are_pending(tmp_path, running) -> None:
    make_source(tmp_path / "source", {"EMC": [T0 + i for i in range(10)]})
    sender = ReplaySender(ReplayPlan(read_source(tmp_path / "source")), "tcp://127.0.0.1:*",
                          speed=None)  # fmt: skip
    running.start("sender", sender.serve, running.stop)
    started = time.monotonic()
    receiver = receive(running, tmp_path / "data", "EMC", sender.endpoint, interval=30.0)
    wait_for(lambda: receiver.counters["stored"] == 10, 10, "10 stored")
    assert time.monotonic() - started < 10  # not 9 intervals of 30 s
    time.sleep(0.5)  # the last said "pending": 0, so the receiver waits its interval now
    assert receiver.counters["received"] == 10


def test_run_as_and_filters_reach_the_stored_names(tmp_path, running) -> None:
    make_source(tmp_path / "source", {"EMC": [T0, T0 + 10], "TPC": [T0 + 1]}, run=5)
    plan = ReplayPlan(read_source(tmp_path / "source"), subsystems=["EMC"], run_as=77)
    sender = ReplaySender(plan, "tcp://127.0.0.1:*", speed=None)
    running.start("sender", sender.serve, running.stop)
    data = tmp_path / "data"
    receive(running, data, "EMC", sender.endpoint)
    wait_for(lambda: len(stored(data, 77, "EMC")) == 2, 15, "run 77 stored")
    assert [p.name for p in stored(data, 77, "EMC")] == [
        snapshot_path(data, 77, "EMC", t).name for t in (T0, T0 + 10)
    ]
    assert not (data / "Run5").exists()


def test_loop_moves_timestamps_on_and_stops_before_the_future(tmp_path, running) -> None:
    now = time.time()
    instants = [float(int(now)) - 100, float(int(now)) - 90]
    make_source(tmp_path / "source", {"EMC": instants})
    plan = ReplayPlan(read_source(tmp_path / "source"), loop=True)
    assert plan.shift == 20  # span 10 s + a typical interval of 10 s
    sender = ReplaySender(plan, "tcp://127.0.0.1:*", speed=None)
    running.start("sender", sender.serve, running.stop)
    data = tmp_path / "data"
    receiver = receive(running, data, "EMC", sender.endpoint)
    wait_for(lambda: "sender" in running.results, 30, "the loop to end by itself")
    summary = running.results["sender"]
    # Pass 6 would end 10 s ahead of now: five passes were served, then the loop ended.
    assert summary.passes == 5 and summary.served == {"EMC": 10} and summary.complete
    assert "loop ended before pass 6" in summary.note and "in the future" in summary.note
    wait_for(lambda: receiver.counters["stored"] == 10, 10, "10 stored")
    expected = [t + k * 20 for k in range(5) for t in instants]
    assert [p.name for p in stored(data, 5, "EMC")] == [
        snapshot_path(data, 5, "EMC", t).name for t in expected
    ]


def test_a_file_gone_before_it_is_due_is_reported_not_skipped_silently(tmp_path, running) -> None:
    written = make_source(tmp_path / "source", {"EMC": [T0, T0 + 1, T0 + 2]})
    plan = ReplayPlan(read_source(tmp_path / "source"))
    written["EMC"][1].unlink()
    sender = ReplaySender(plan, "tcp://127.0.0.1:*", speed=None)
    running.start("sender", sender.serve, running.stop)
    receive(running, tmp_path / "data", "EMC", sender.endpoint)
    wait_for(lambda: "sender" in running.results, 15, "the replay to end")
    summary = running.results["sender"]
    assert summary.served == {"EMC": 2}
    [(path, reason)] = summary.unreadable
    assert path == written["EMC"][1] and "cannot read it when due" in reason
    assert any(f"NOT SENT {path}" in line for line in summary.lines())


# --------------------------------------------------------------------------- PUB


def test_pub_waits_for_a_subscriber_of_every_subsystem_then_loses_nothing(
    tmp_path, running
) -> None:
    written = make_source(
        tmp_path / "source",
        {"EMC": [T0 + i for i in range(30)], "TPC": [T0 + i for i in range(30)]},
    )
    plan = ReplayPlan(read_source(tmp_path / "source"))
    sender = ReplaySender(plan, "tcp://127.0.0.1:*", "pub", speed=None)
    running.start("sender", sender.serve, running.stop)
    data = tmp_path / "data"
    emc = receive(running, data, "EMC", sender.endpoint, "sub")
    time.sleep(1.0)  # EMC is subscribed by now; TPC is not
    assert sender.summary.total == 0 and emc.counters["received"] == 0
    receive(running, data, "TPC", sender.endpoint, "sub")
    wait_for(lambda: "sender" in running.results, 30, "the replay to end")
    assert running.results["sender"].served == {"EMC": 30, "TPC": 30}
    for subsystem, paths in written.items():
        wait_for(lambda s=subsystem: len(stored(data, 5, s)) == 30, 15, f"30 {subsystem}")
        assert [p.read_bytes() for p in stored(data, 5, subsystem)] == [
            p.read_bytes() for p in paths
        ]


def test_pub_publishes_when_due(tmp_path, running) -> None:
    gaps = [1.0, 3.0, 2.0]
    make_source(tmp_path / "source", {"EMC": list(np.cumsum([0.0, *gaps]) + T0)})
    arrivals: list[float] = []
    sender = ReplaySender(ReplayPlan(read_source(tmp_path / "source")), "tcp://127.0.0.1:*",
                          "pub", speed=4.0)  # fmt: skip
    running.start("sender", sender.serve, running.stop)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"EMC")
    sub.connect(sender.endpoint)
    try:
        while len(arrivals) < 4:
            assert sub.poll(5000), "nothing published"
            topic, head, _ = sub.recv_multipart()
            arrivals.append(time.monotonic())
            assert topic == b"EMC" and json.loads(head)["seq"] == len(arrivals)
    finally:
        sub.close(linger=0)
    np.testing.assert_allclose(np.diff(arrivals), np.array(gaps) / 4.0, atol=0.05)


# --------------------------------------------------------------------------- the command


def test_command_errors_exit_2_with_a_reason(tmp_path, capsys) -> None:
    make_source(tmp_path / "source", {"EMC": [T0]})
    (tmp_path / "empty").mkdir()
    bind = ["--bind", "tcp://127.0.0.1:*"]
    cases = [
        ([str(tmp_path / "missing")], "is not a folder"),
        ([str(tmp_path / "empty")], "holds no readable snapshot"),
        ([str(tmp_path / "source"), "--subsystems", "EMC,TPC"], "subsystem TPC not in the source"),
        ([str(tmp_path / "source"), "--runs", "6"], "run 6 not in the source"),
        ([str(tmp_path / "source"), "--timezone", "Mars/Olympus"], "Mars/Olympus"),
        ([str(tmp_path / "source"), "--max-gap", "0"], "longest gap must be positive"),
    ]
    for argv, message in cases:
        assert cli.main(["replay", *argv, *bind]) == 2
        assert message in capsys.readouterr().err
    for speed in ("0", "-1", "fast", "nan", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["replay", str(tmp_path / "source"), *bind, "--speed", speed])
        assert exit_info.value.code == 2
        assert f"invalid speed {speed!r}" in capsys.readouterr().err
    assert parse_speed("max") is None and parse_speed("MAX") is None and parse_speed("2.5") == 2.5


def test_progress_in_place_on_a_terminal_and_by_lines_otherwise(tmp_path) -> None:
    make_source(tmp_path, {"EMC": [T0 + i for i in range(25)]})
    items = ReplayPlan(read_source(tmp_path)).items()
    lines, tty = io.StringIO(), io.StringIO()
    by_lines, in_place = Progress(lines, 25, tty=False), Progress(tty, 25, tty=True)
    for n, item in enumerate(items, start=1):
        by_lines(item, n, 25)
        in_place(item, n, 25)
    assert [line.split(" snapshots")[0] for line in lines.getvalue().splitlines()] == [
        "replay  40% 10/25", "replay  80% 20/25", "replay 100% 25/25",
    ]  # fmt: skip
    in_place.finish()
    drawn = tty.getvalue()  # the project's tqdm bar, redrawn in place
    assert "\r" in drawn and "replay: 100%" in drawn and "25/25" in drawn
    assert drawn.count("\n") <= 1
    stopped = Progress(io.StringIO(), None, tty=True)
    stopped(items[0], 1, None)
    stopped.finish()  # a loop stopped: its line is ended once
    assert stopped.stream.getvalue().count("\n") == 1


def test_bad_files_of_the_source_are_listed(tmp_path) -> None:
    make_source(tmp_path, {"EMC": [T0]})
    bad = tmp_path / "Run5" / "EMC" / "EMChists.2023_02_30_00_00_00.root"
    bad.write_bytes(b"x")
    os.utime(bad, (T0, T0))
    from receivers.replay_command import _describe

    source = read_source(tmp_path)
    lines = _describe(source, ReplayPlan(source))
    assert lines[0].startswith("1 snapshot(s) of run(s) 5, subsystems EMC")
    assert lines[1] == "1 file(s) of the source cannot be replayed:"
    assert lines[2].startswith(f"  BAD {bad}: invalid snapshot name")

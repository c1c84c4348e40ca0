"""Simulator -> receiver over real ZeroMQ sockets on loopback, both patterns.

Stored bytes are compared with what the sender sent (the simulator's dump of
every payload and header), file names with the header timestamps.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from overwatch.notices import NoticeListener
from overwatch.timestamps import from_unix, parse_snapshot_filename, snapshot_filename
from receivers.heartbeat import read_status
from receivers.simulator import DetectorSimulator
from receivers.simulator_server import SimulatorServer
from receivers.zmq_receiver import Receiver, Status
from tests.integration.receiver_helpers import (
    SAMPLES,
    ScriptedPub,
    ScriptedRep,
    free_port,
    header,
    make_payload,
    overwatch_process,
    running,
    settings,
    stop_process,
    stored_files,
    wait_for,
    wait_for_line,
)

pytestmark = pytest.mark.integration


def sent_payloads(dump: Path, subsystem: str) -> dict[str, tuple[dict, bytes]]:
    """sha256 of each payload the simulator sent -> (header, payload)."""
    sent = {}
    for path in sorted(dump.glob(f"{subsystem}.*.root")):
        data = path.read_bytes()
        head = json.loads(path.with_name(path.name[: -len(".root")] + ".json").read_bytes())
        sent[hashlib.sha256(data).hexdigest()] = (head, data)
    return sent


def check_stored_against_sent(data_dir: Path, dump: Path, subsystem: str, run: int) -> int:
    """Every stored file is a sent payload, byte for byte, named after its header time."""
    sent = sent_payloads(dump, subsystem)
    files = stored_files(data_dir, subsystem)
    for path in files:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert digest in sent, f"{path.name} is not byte-identical to any sent payload"
        head, _ = sent[digest]
        assert path.parent == data_dir / f"Run{run}" / subsystem
        assert path.name == snapshot_filename(subsystem, from_unix(math.floor(head["timestamp"])))
    seqs = sorted(sent[hashlib.sha256(p.read_bytes()).hexdigest()][0]["seq"] for p in files)
    assert seqs == list(range(1, len(seqs) + 1)), "a sent snapshot is missing"
    return len(files)


def test_rep_simulator_process_to_receiver_with_notices(tmp_path):
    port = free_port()
    dump = tmp_path / "sent"
    simulator = overwatch_process(
        ["simulate", "--subsystems", "EMC,TPC", "--bind", f"tcp://127.0.0.1:{port}",
         "--pattern", "rep", "--run", "7", "--seed", "3", "--speed", "30", "--dump-dir", str(dump)],
        cwd=tmp_path,
    )  # fmt: skip
    listener = NoticeListener(f"tcp://127.0.0.1:{free_port()}")
    data_dir = tmp_path / "data"
    try:
        wait_for_line(simulator, "simulating")
        receiver = Receiver(
            settings(interval=0.1, notify_address=listener.address),
            data_dir,
            "EMC",
            f"tcp://127.0.0.1:{port}",
            "req",
        )
        notices = []
        with running(receiver):
            while len(notices) < 4:
                notice = listener.receive(timeout=15)
                assert notice is not None, "no new-snapshot notice"
                notices.append((time.time(), notice))
    finally:
        listener.close()
        stop_process(simulator)
    count = check_stored_against_sent(data_dir, dump, "EMC", run=7)
    assert count >= 4
    assert receiver.counters["stored"] == count
    for arrived, notice in notices:
        assert notice["run"] == 7 and notice["subsystem"] == "EMC"
        path = data_dir / notice["path"]
        assert path.is_file()  # complete before it is announced
        assert arrived - path.stat().st_mtime < 1.0
    status = read_status(data_dir, "EMC")
    assert status["state"] == "stopped"
    assert status["counters"]["stored"] == count
    assert status["last_run"] == 7 and status["last_contact"] >= status["last_snapshot"] > 0


def test_pub_sub_in_process_simulator(tmp_path):
    dump = tmp_path / "sent"
    simulator = DetectorSimulator(["TPC", "HLT"], run=3, seed=5)
    server = SimulatorServer(
        simulator, "tcp://127.0.0.1:*", "pub", speed=20, interval=0.15, dump_dir=dump
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    data_dir = tmp_path / "data"
    receiver = Receiver(settings(interval=0.15), data_dir, "TPC", server.endpoint, "sub")
    try:
        with running(receiver):
            wait_for(lambda: len(stored_files(data_dir, "TPC")) >= 4, what="4 TPC snapshots")
    finally:
        stop.set()
        thread.join(10)
    # A subscriber joins late: the first published messages never reach it.
    sent = sent_payloads(dump, "TPC")
    files = stored_files(data_dir, "TPC")
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert digests <= set(sent)
    for path in files:
        head = sent[hashlib.sha256(path.read_bytes()).hexdigest()][0]
        assert path.name == snapshot_filename("TPC", from_unix(math.floor(head["timestamp"])))
        assert path.parent.parent.name == "Run3"
    assert not (data_dir / "Run3" / "HLT").exists()
    assert receiver.counters["quarantined"] == 0 and receiver.counters["ignored"] == 0


def test_sub_ignores_other_topics_sharing_the_prefix(tmp_path):
    pub = ScriptedPub()
    receiver = Receiver(settings(), tmp_path, "EMC", pub.endpoint, "sub")
    good = make_payload(1)
    try:
        with running(receiver):
            # Repeat until the subscription is up (ZMQ drops what a late subscriber missed).
            wait_for(
                lambda: (
                    pub.send([b"EMCAL", header(subsystem="EMCAL"), make_payload(9)])
                    or receiver.counters["ignored"]
                ),
                what="the EMCAL message to arrive",
            )
            pub.send([b"EMC", header(timestamp=1_700_000_000), good])
            wait_for(lambda: receiver.counters["stored"] == 1, what="the EMC snapshot")
    finally:
        pub.close()
    assert [p.read_bytes() for p in stored_files(tmp_path)] == [good]
    assert receiver.counters["quarantined"] == 0


def test_every_root_sample_is_stored_byte_identical(tmp_path):
    samples = sorted(SAMPLES.glob("*.root"))
    assert len(samples) == 17
    base = 1_750_000_000
    rep = ScriptedRep(
        [
            [header(seq=i + 1, timestamp=base + 10 * i), p.read_bytes()]
            for i, p in enumerate(samples)
        ]
    )
    receiver = Receiver(settings(interval=0.01), tmp_path, "EMC", rep.endpoint, "req")
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] == len(samples), what="all samples")
    finally:
        rep.stop()
    for i, sample in enumerate(samples):
        stored = tmp_path / "Run1" / "EMC" / snapshot_filename("EMC", from_unix(base + 10 * i))
        assert stored.read_bytes() == sample.read_bytes(), sample.name
    assert receiver.counters["quarantined"] == 0


def test_run_zero_empty_duplicate_and_refusal_store_nothing(tmp_path):
    a, b = make_payload(1), make_payload(2)
    rep = ScriptedRep(
        [
            [header(run=0, seq=1), a],  # no run going on
            [header(seq=2), b""],  # empty payload
            [header(seq=3, timestamp=1_700_000_000), a],
            [header(seq=4, timestamp=1_700_000_005), a],  # sender repeats itself after end of run
            [header(seq=5, timestamp=1_700_000_010), b],
        ]
    )
    receiver = Receiver(settings(interval=0.01), tmp_path, "EMC", rep.endpoint, "req")
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["refused"] >= 1, what="the end of the script")
    finally:
        rep.stop()
    files = stored_files(tmp_path)
    assert [p.read_bytes() for p in files] == [a, b]
    assert [p.name for p in files] == [
        snapshot_filename("EMC", from_unix(1_700_000_000)),
        snapshot_filename("EMC", from_unix(1_700_000_010)),
    ]
    counters = receiver.counters
    assert (counters["run_zero"], counters["empty"], counters["duplicates"]) == (1, 1, 1)
    assert counters["stored"] == 2 and counters["quarantined"] == 0


def test_identical_bytes_under_a_new_run_are_that_runs_first_snapshot(tmp_path):
    """The duplicate check is per (run, subsystem): a new run starting from the same content
    (e.g. all histograms still empty) keeps its first snapshot."""
    a, b = make_payload(1), make_payload(2)
    rep = ScriptedRep(
        [
            [header(run=7, seq=1, timestamp=1_700_000_000), a],
            [header(run=7, seq=2, timestamp=1_700_000_005), a],  # run 7 repeats itself
            [header(run=8, seq=1, timestamp=1_700_000_010), a],  # run 8 starts the same
            [header(run=8, seq=2, timestamp=1_700_000_015), b],
        ]
    )
    receiver = Receiver(settings(interval=0.01), tmp_path, "EMC", rep.endpoint, "req")
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["refused"] >= 1, what="the end of the script")
    finally:
        rep.stop()
    assert [p.read_bytes() for p in sorted(tmp_path.glob("Run7/EMC/*.root"))] == [a]
    assert [p.read_bytes() for p in sorted(tmp_path.glob("Run8/EMC/*.root"))] == [a, b]
    assert receiver.counters["duplicates"] == 1 and receiver.counters["stored"] == 3


def test_same_second_snapshots_are_all_kept_and_receive_time_names(tmp_path):
    payloads = [make_payload(i) for i in range(3)]
    stamp = 1_700_000_000.25
    messages = [[header(seq=i + 1, timestamp=stamp + 0.1 * i), p] for i, p in enumerate(payloads)]
    untimed = make_payload(10)
    messages.append([header(seq=4), untimed])  # no timestamp: named by receive time
    rep = ScriptedRep(messages)
    receiver = Receiver(settings(interval=0.01), tmp_path, "EMC", rep.endpoint, "req")
    before = time.time()
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] == 4, what="4 snapshots")
    finally:
        rep.stop()
    after = time.time()
    run_dir = tmp_path / "Run1" / "EMC"
    for i, payload in enumerate(payloads):  # bumped by whole seconds, arrival order kept
        assert (
            run_dir / snapshot_filename("EMC", from_unix(1_700_000_000 + i))
        ).read_bytes() == payload
    [late] = [p for p in stored_files(tmp_path) if p.read_bytes() == untimed]
    instant = parse_snapshot_filename(late.name).instant.timestamp()
    assert math.floor(before) <= instant <= after


def test_sigterm_finishes_and_exits_zero(tmp_path):
    simulator = DetectorSimulator(["EMC"], seed=1)
    server = SimulatorServer(simulator, "tcp://127.0.0.1:*", "rep", speed=20)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    data_dir = tmp_path / "data"
    receiver = overwatch_process(
        ["receive", "--subsystem", "EMC", "--connect", server.endpoint, "--pattern", "req",
         "--interval", "0.1", "--data-dir", str(data_dir), "--notify", ""],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: len(stored_files(data_dir)) >= 2, timeout=30, what="stored snapshots")
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(15) == 0
    finally:
        stop_process(receiver)
        stop.set()
        thread.join(10)
    status = read_status(data_dir, "EMC")
    assert status["state"] == "stopped"
    assert status["counters"]["stored"] == len(stored_files(data_dir))
    leftovers = [p for p in data_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_lazy_pirate_reconnects_after_sender_restart(tmp_path):
    port = free_port()
    args = ["simulate", "--subsystems", "EMC", "--bind", f"tcp://127.0.0.1:{port}", "--speed", "10"]
    first = overwatch_process(args, cwd=tmp_path)
    data_dir = tmp_path / "data"
    receiver = Receiver(
        settings(interval=0.1, timeout=0.5, max_backoff=0.4),
        data_dir,
        "EMC",
        f"tcp://127.0.0.1:{port}",
        "req",
    )
    second = None
    try:
        wait_for_line(first, "simulating")
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] >= 2, what="snapshots before the restart")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            wait_for(
                lambda: receiver.counters["timeouts"] >= 2, what="timeouts while the sender is down"
            )
            wait_for(
                lambda: (read_status(data_dir, "EMC") or {}).get("state") == "no reply",
                what="heartbeat state 'no reply'",
            )
            stored_before = receiver.counters["stored"]
            second = overwatch_process(args, cwd=tmp_path)
            wait_for(
                lambda: receiver.counters["stored"] >= stored_before + 2,
                timeout=30,
                what="snapshots after the restart",
            )
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    assert receiver.counters["reconnects"] >= 2
    assert receiver.counters["quarantined"] == 0
    assert len(stored_files(data_dir)) == receiver.counters["stored"]


def test_notices_never_block_without_a_listener(tmp_path):
    payloads = [make_payload(i, n=1, bins=5) for i in range(40)]
    rep = ScriptedRep(
        [[header(seq=i + 1, timestamp=1_700_000_000 + i), p] for i, p in enumerate(payloads)]
    )
    # Nobody binds this address: notices queue up to the high-water mark, then are dropped;
    # either way the receiver goes on at full speed.
    receiver = Receiver(
        settings(interval=0.001, notify_address=f"tcp://127.0.0.1:{free_port()}"),
        tmp_path, "EMC", rep.endpoint, "req",
    )  # fmt: skip
    try:
        with running(receiver):
            wait_for(lambda: receiver.counters["stored"] == 40, what="40 snapshots")
    finally:
        rep.stop()
    assert len(stored_files(tmp_path)) == 40
    assert receiver.counters["notices"] + receiver.notifier.dropped == 40
    assert os.listdir(tmp_path / "status") == ["receiver-EMC.json"]


def test_refusal_from_simulator_for_unknown_subsystem(tmp_path):
    simulator = DetectorSimulator(["EMC"], seed=1)
    server = SimulatorServer(simulator, "tcp://127.0.0.1:*", "rep")
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    receiver = Receiver(settings(interval=0.05), tmp_path, "TPC", server.endpoint, "req")
    try:
        assert receiver.handle_message([b'{"error": "x"}', b""]).status is Status.REFUSED
        with running(receiver):
            wait_for(lambda: receiver.counters["refused"] >= 3, what="refusals")
    finally:
        stop.set()
        thread.join(10)
    assert stored_files(tmp_path, "TPC") == []
    assert read_status(tmp_path, "TPC")["counters"]["refused"] >= 3


@pytest.mark.parametrize("jitter", [0.0, 0.5])
def test_jitter_spreads_the_request_times(tmp_path, jitter):
    """receiver.jitter draws each wait in interval * (1 ± jitter); 0 keeps it periodic."""
    sender = ScriptedRep([])
    receiver = Receiver(settings(interval=0.1, jitter=jitter), tmp_path, "TPC", sender.endpoint)
    try:
        with running(receiver):
            wait_for(lambda: len(sender.arrivals) >= 41, what="41 requests")
    finally:
        sender.stop()
    gaps = [b - a for a, b in zip(sender.arrivals, sender.arrivals[1:41], strict=False)]
    assert 0.1 * (1 - jitter) - 0.01 <= min(gaps) and max(gaps) <= 0.1 * (1 + jitter) + 0.03
    if jitter:
        assert min(gaps) < 0.075 and max(gaps) > 0.125, gaps  # spread over most of the range
    else:
        assert max(gaps) - min(gaps) < 0.03, gaps


def test_one_process_receives_several_subsystems(tmp_path):
    """``--subsystem EMC,TPC,HLT``: each subsystem stored, announced and heartbeated as by its
    own receiver; the first requests spread over the interval; SIGTERM stops them all."""
    simulator = DetectorSimulator(["EMC", "TPC", "HLT"], seed=2)
    server = SimulatorServer(simulator, "tcp://127.0.0.1:*", "rep", speed=20)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    data_dir = tmp_path / "data"
    notify = f"tcp://127.0.0.1:{free_port()}"
    listener = NoticeListener(notify)
    started = time.time()
    receiver = overwatch_process(
        ["receive", "--subsystem", "EMC,TPC,HLT", "--connect", server.endpoint, "--pattern",
         "req", "--interval", "1.5", "--jitter", "0", "--data-dir", str(data_dir),
         "--notify", notify],
        cwd=tmp_path,
    )  # fmt: skip
    noticed: dict[str, list[str]] = {}
    try:
        while sum(len(v) >= 2 for v in noticed.values()) < 3:
            notice = listener.receive(timeout=30)
            assert notice is not None, f"notices so far: {noticed}"
            noticed.setdefault(notice["subsystem"], []).append(notice["path"])
        receiver.send_signal(signal.SIGTERM)
        assert receiver.wait(15) == 0
    finally:
        stop_process(receiver)
        listener.close()
        stop.set()
        thread.join(10)
    firsts = {}
    for subsystem in ("EMC", "TPC", "HLT"):
        files = stored_files(data_dir, subsystem)
        assert {str(p.relative_to(data_dir)) for p in files} >= set(noticed[subsystem])
        status = read_status(data_dir, subsystem)
        assert status["state"] == "stopped"
        assert status["counters"]["stored"] == len(files)
        firsts[subsystem] = min(p.stat().st_mtime for p in files) - started
    # Subsystem k of 3 asks first k/3 of the 1.5 s interval after start: 0, 0.5 and 1 s.
    assert firsts["EMC"] + 0.3 < firsts["TPC"] < firsts["HLT"] - 0.3, firsts


def test_receive_refuses_a_subsystem_named_twice(tmp_path):
    receiver = overwatch_process(
        ["receive", "--subsystem", "EMC,EMC", "--connect", "tcp://127.0.0.1:5555",
         "--data-dir", str(tmp_path), "--notify", ""],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        assert receiver.wait(30) == 2
    finally:
        stop_process(receiver)
    assert "names a subsystem twice" in Path(receiver.log_file.name).read_text()

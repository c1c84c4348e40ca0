"""The receiver's disk side without sockets: atomic writes, names, disk full, quarantine, heartbeat.

Disk full is injected at the OS-call level by a FileSystem whose write() raises
ENOSPC (the real-file-system version is tests/integration/test_receiver_disk_full.py).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time

import pytest
import zmq

from overwatch import rootio
from overwatch.config import ReceiverSettings
from overwatch.histogram import Axis, Histogram
from overwatch.timestamps import from_unix, snapshot_filename
from receivers import wire
from receivers.heartbeat import Heartbeat, read_status, status_path
from receivers.notify import Notifier
from receivers.quarantine import Quarantine, read_index
from receivers.spool import FileSystem, Item, Spool, atomic_write
from receivers.zmq_receiver import Receiver, Status

T0 = 1_700_000_000


class FullDisk(FileSystem):
    """os.write fails with ENOSPC while ``full`` is set (like a full partition)."""

    def __init__(self) -> None:
        self.full = False
        self.writes = 0

    def write(self, fd: int, data: memoryview) -> int:
        self.writes += 1
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(fd, data)


def payload(seed: int) -> bytes:
    h = Histogram.empty("h", [Axis.regular(4, 0.0, 1.0)], "TH1F")
    h.fill([0.1 * (seed % 10)])
    h.title = f"payload {seed}"
    return rootio.to_bytes([h])


def test_atomic_write_leaves_only_the_target(tmp_path):
    atomic_write(tmp_path / "a" / "b.root", b"content")
    assert (tmp_path / "a" / "b.root").read_bytes() == b"content"
    assert os.listdir(tmp_path / "a") == ["b.root"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    disk = FullDisk()
    disk.full = True
    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "x.root", b"data", fs=disk)
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_unique_names_bump_by_whole_seconds(tmp_path):
    spool = Spool(tmp_path)
    first = spool.unique_relpath(3, "EMC", T0 + 0.7)
    assert first == f"Run3/EMC/{snapshot_filename('EMC', from_unix(T0))}"
    spool.store(Item(first, b"a"))
    second = spool.unique_relpath(3, "EMC", T0 + 0.9)
    assert second.endswith(snapshot_filename("EMC", from_unix(T0 + 1)))
    assert (
        spool.unique_relpath(4, "EMC", T0) == f"Run4/EMC/{snapshot_filename('EMC', from_unix(T0))}"
    )


def test_disk_full_keeps_items_in_order_and_writes_them_later(tmp_path, caplog):
    disk = FullDisk()
    spool = Spool(tmp_path, pending_limit_bytes=10, retry_interval=0.01, fs=disk)
    disk.full = True
    with caplog.at_level(logging.ERROR):
        names = []
        for i, data in enumerate([b"first", b"second!", b"third"]):
            names.append(spool.unique_relpath(1, "EMC", T0))  # same second: reserved names bump
            result = spool.store(Item(names[-1], data), keep=i < 2)
            assert result.status == ("pending" if i < 2 else "dropped") and result.flushed == []
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["DISK FULL"]
    assert spool.pending_bytes == 12 and len(set(names)) == 3
    assert not spool.has_room(1)
    assert not list(tmp_path.rglob("*.root"))
    disk.full = False
    time.sleep(0.02)
    written = spool.flush()
    assert [item.data for item in written] == [b"first", b"second!"]
    assert [(tmp_path / n).read_bytes() for n in names[:2]] == [b"first", b"second!"]
    assert spool.pending_bytes == 0 and spool.last_error is None


def test_receiver_handle_message_on_a_full_disk(tmp_path):
    """REQ keeps what it was sent beyond the bound; SUB drops it; both write it all later."""
    disk = FullDisk()
    first = payload(0)
    settings = ReceiverSettings(pending_limit_bytes=len(first) + 10, notify_address="")
    req = Receiver(
        settings, tmp_path / "req", "EMC", "tcp://127.0.0.1:1", "req", fs=disk, retry_interval=0
    )
    sub = Receiver(
        settings, tmp_path / "sub", "EMC", "tcp://127.0.0.1:1", "sub", fs=disk, retry_interval=0
    )
    disk.full = True
    frames = [
        [wire.Header(run=1, subsystem="EMC", seq=i, timestamp=T0 + i).encode(), payload(i)]
        for i in range(2)
    ]
    outcomes_req = [req.handle_message(f) for f in frames]
    outcomes_sub = [sub.handle_message([b"EMC", *f]) for f in frames]
    assert [o.status for o in outcomes_req] == [Status.PENDING, Status.PENDING]
    assert [o.status for o in outcomes_sub] == [Status.PENDING, Status.DROPPED]
    assert "disk full" in outcomes_req[0].reason
    assert req.heartbeat.fields["state"] == "disk full" and sub.counters["dropped"] == 1
    disk.full = False
    req._housekeeping()
    sub._housekeeping()
    for receiver, count in ((req, 2), (sub, 1)):
        stored = sorted((receiver.data_dir / "Run1" / "EMC").iterdir())
        assert [p.read_bytes() for p in stored] == [f[1] for f in frames[:count]]
        assert (
            receiver.counters["stored"] == count
            and receiver.heartbeat.fields["state"] != "disk full"
        )


def test_quarantine_keeps_payload_and_reason(tmp_path):
    kept = Quarantine(tmp_path, "TPC").keep(
        b"\x00bad", "bad header: not JSON", header=b"{x", frames=[2, 4]
    )
    assert kept.parent == tmp_path / "quarantine" and kept.read_bytes() == b"\x00bad"
    record = json.loads(kept.with_name(kept.name.replace(".bin", ".reason.json")).read_text())
    assert record["reason"] == "bad header: not JSON" and record["header"] == "{x"
    assert record["frame_bytes"] == [2, 4] and record["subsystem"] == "TPC"


def test_quarantine_on_a_full_disk_is_reported_not_raised(tmp_path, caplog):
    disk = FullDisk()
    disk.full = True
    with caplog.at_level(logging.ERROR):
        assert Quarantine(tmp_path, "EMC", fs=disk).keep(b"x", "why") is None
    assert "disk full" in caplog.text


def test_heartbeat_file(tmp_path):
    beat = Heartbeat(tmp_path, "HLT", interval=60, info={"connect": "tcp://x:1"})
    beat.count("stored", 3)
    assert beat.maybe_write()
    assert not beat.maybe_write()  # not due yet
    beat.set_state("no reply")  # a state change is written at once
    assert beat.maybe_write()
    status = read_status(tmp_path, "HLT")
    assert status["state"] == "no reply" and status["counters"]["stored"] == 3
    assert status["connect"] == "tcp://x:1" and status["updated"] >= status["started"]
    assert status_path(tmp_path, "HLT") == tmp_path / "status" / "receiver-HLT.json"
    assert read_status(tmp_path, "EMC") is None


def test_notifier_never_blocks_and_counts_drops():
    context = zmq.Context.instance()
    # A port nobody binds: the queue fills to the high-water mark, then notices are dropped.
    with zmq.Context() as probe:
        sock = probe.socket(zmq.PULL)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        sock.close(linger=0)
    notifier = Notifier(f"tcp://127.0.0.1:{port}", context=context, hwm=3)
    started = time.monotonic()
    sent = [notifier.notify(1, "EMC", f"Run1/EMC/{i}") for i in range(20)]
    assert time.monotonic() - started < 1.0
    assert notifier.dropped == sent.count(False) > 0
    notifier.close()
    assert Notifier("").notify(1, "EMC", "x") is False  # disabled


class SmallDisk(FileSystem):
    """A disk with ``free`` bytes left: a write beyond them fails with ENOSPC."""

    def __init__(self, free: int) -> None:
        self.free = free

    def write(self, fd: int, data: memoryview) -> int:
        if len(data) > self.free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.free -= len(data)
        return super().write(fd, data)


def _pending_spool(tmp_path, disk, runs=(5, 5, 5, 6, 6)) -> tuple[Spool, list[Item]]:
    spool = Spool(tmp_path / "data", retry_interval=0.01, fs=disk)
    items = []
    for i, run in enumerate(runs):
        item = Item(spool.unique_relpath(run, "EMC", T0 + i), payload(i))
        assert spool.store(item, keep=True).status == "pending"
        items.append(item)
    return spool, items


def test_drain_writes_the_newest_of_each_run_first_and_reports_the_rest(tmp_path):
    """Defect 4: room for two snapshots at stop: the newest of run 5 and of run 6."""
    disk = SmallDisk(0)
    spool, items = _pending_spool(tmp_path, disk)
    disk.free = 2 * len(items[0].data) + 10  # payloads are equally long
    started = time.monotonic()
    result = spool.drain(0.2)
    assert time.monotonic() - started >= 0.2  # waited for space before giving up
    assert [i.relpath for i in result.written] == [items[4].relpath, items[2].relpath]
    assert result.spilled == [] and result.lost == [items[0], items[1], items[3]]
    assert (tmp_path / "data" / items[2].relpath).read_bytes() == items[2].data
    assert spool.pending_bytes == sum(len(i.data) for i in result.lost)


def test_drain_spills_to_the_fallback_directory(tmp_path):
    disk = FullDisk()
    disk.full = True
    spool, items = _pending_spool(tmp_path, disk, runs=(5, 6))
    disk.full = False  # the data disk stays full below: only the fallback takes data

    class DataDirFull(FileSystem):
        def write(self, fd, data):
            if not os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "spill")):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(fd, data)

    spool.fs = DataDirFull()
    result = spool.drain(0, tmp_path / "spill")
    assert result.written == [] and result.lost == []
    assert [i.relpath for i in result.spilled] == [items[1].relpath, items[0].relpath]
    for item in items:
        assert (tmp_path / "spill" / item.relpath).read_bytes() == item.data


def test_drain_with_room_writes_everything_at_once(tmp_path):
    disk = FullDisk()
    disk.full = True
    spool, items = _pending_spool(tmp_path, disk, runs=(5,))
    disk.full = False
    started = time.monotonic()
    result = spool.drain(30)
    assert time.monotonic() - started < 5
    assert result.written == items and result.lost == [] and spool.last_error is None


def test_receiver_stop_on_a_full_disk_reports_every_lost_snapshot(tmp_path, caplog):
    disk = SmallDisk(0)
    settings = ReceiverSettings(notify_address="", stop_wait=0.1)
    receiver = Receiver(settings, tmp_path, "EMC", "tcp://127.0.0.1:1", "req", fs=disk)
    outcomes = [
        receiver.handle_message(
            [wire.Header(run=run, subsystem="EMC", seq=i, timestamp=T0 + i).encode(), payload(i)]
        )
        for i, run in enumerate((7, 7, 8))
    ]
    assert [o.status for o in outcomes] == [Status.PENDING] * 3
    # Room for one snapshot (the newest, of run 8) and the heartbeats (< 2000 bytes).
    assert len(payload(0)) > 2000
    disk.free = len(payload(0)) + 2000
    stop = threading.Event()
    stop.set()
    with caplog.at_level(logging.ERROR, logger="receivers"):
        result = receiver.run(stop)
    assert [i.relpath for i in result.written] == [outcomes[2].path]
    assert [i.relpath for i in result.lost] == [outcomes[0].path, outcomes[1].path]
    [lost] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LOST")]
    assert "LOST 2 snapshot(s) of EMC" in lost and "disk full" in lost
    assert f"run 7: {outcomes[0].path}, {outcomes[1].path}" in lost
    assert receiver.counters["stored"] == 1


def _message(run: int, seq: int, data: bytes, timestamp: float | None = T0) -> list[bytes]:
    return [wire.Header(run=run, subsystem="EMC", seq=seq, timestamp=timestamp).encode(), data]


def test_duplicate_check_is_per_run(tmp_path):
    """Defect 11: the same bytes as a new run's first snapshot are that run's snapshot."""
    receiver = Receiver(
        ReceiverSettings(notify_address=""), tmp_path, "EMC", "tcp://127.0.0.1:1", "req"
    )
    same = payload(1)
    statuses = [
        receiver.handle_message(_message(run, seq, same, T0 + seq)).status
        for seq, run in enumerate((10, 10, 11, 11, 10))
    ]
    assert statuses == ["stored", "duplicate", "stored", "duplicate", "duplicate"]
    assert [p.read_bytes() for p in sorted(tmp_path.glob("Run11/EMC/*.root"))] == [same]
    assert receiver.counters["duplicates"] == 3


def test_future_timestamp_is_quarantined_and_the_run_goes_on(tmp_path):
    """Defect 5: one snapshot dated 2096 does not date the rest of its run."""
    receiver = Receiver(
        ReceiverSettings(notify_address="", max_clock_skew=60),
        tmp_path, "EMC", "tcp://127.0.0.1:1", "req",
    )  # fmt: skip
    now = time.time()
    future = receiver.handle_message(_message(3, 1, payload(1), 3_976_000_000.0))
    assert future.status == Status.QUARANTINED
    assert "future timestamp" in future.reason and "max_clock_skew 60 s" in future.reason
    assert receiver.handle_message(_message(3, 2, payload(2), now + 30)).status == "stored"
    assert receiver.handle_message(_message(3, 3, payload(3), now - 86_400)).status == "stored"
    names = [p.name for p in sorted(tmp_path.glob("Run3/EMC/*.root"))]
    assert len(names) == 2 and all(not n.startswith("EMChists.2096") for n in names)
    [record] = read_index(tmp_path, "EMC")
    assert record["reason"] == future.reason


def test_future_timestamp_restamped_with_the_receipt_time(tmp_path, caplog):
    receiver = Receiver(
        ReceiverSettings(notify_address="", restamp_future=True),
        tmp_path, "EMC", "tcp://127.0.0.1:1", "req",
    )  # fmt: skip
    before = int(time.time())
    with caplog.at_level(logging.WARNING, logger="receivers"):
        outcomes = [
            receiver.handle_message(_message(4, i, payload(i), 3_976_000_000.0)) for i in (1, 2)
        ]
    after = time.time()
    assert [o.status for o in outcomes] == ["stored", "stored"]
    assert outcomes[0].header.timestamp <= after
    stamps = {snapshot_filename("EMC", from_unix(t)) for t in range(before, int(after) + 3)}
    assert {p.name for p in tmp_path.glob("Run4/EMC/*.root")} <= stamps
    said = [r.getMessage() for r in caplog.records if "receipt time" in r.getMessage()]
    assert len(said) == 1 and "run 4" in said[0]
    assert read_index(tmp_path, "EMC") == []

"""The receiver's disk side without sockets: atomic writes, names, disk full, quarantine, heartbeat.

Disk full is injected at the OS-call level by a FileSystem whose write() raises
ENOSPC (the real-file-system version is tests/integration/test_receiver_disk_full.py).
"""

from __future__ import annotations

import errno
import json
import logging
import os
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
    spool = Spool(tmp_path)
    kept = spool.quarantine(
        b"\x00bad", "bad header: not JSON", subsystem="TPC", header=b"{x", frames=[2, 4]
    )
    assert kept.parent == tmp_path / "quarantine" and kept.read_bytes() == b"\x00bad"
    record = json.loads(kept.with_name(kept.name.replace(".bin", ".reason.json")).read_text())
    assert record["reason"] == "bad header: not JSON" and record["header"] == "{x"
    assert record["frame_bytes"] == [2, 4] and record["subsystem"] == "TPC"


def test_quarantine_on_a_full_disk_is_reported_not_raised(tmp_path, caplog):
    disk = FullDisk()
    disk.full = True
    with caplog.at_level(logging.ERROR):
        assert Spool(tmp_path, fs=disk).quarantine(b"x", "why", subsystem="EMC") is None
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

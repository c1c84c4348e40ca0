"""The quarantine's bounds and its index of reasons (receivers/quarantine.py), on real files.

Disk full is injected at the OS-call level (ENOSPC from write), as in test_receiver_spool.py.
"""

from __future__ import annotations

import json
import os

from overwatch.config import ReceiverSettings
from receivers import wire
from receivers.quarantine import MAX_WAITING, Quarantine, read_index
from receivers.zmq_receiver import Receiver, Status
from tests.unit.test_receiver_spool import T0, FullDisk, payload


def _copies(data_dir) -> list[str]:
    return sorted(p.name for p in (data_dir / "quarantine").glob("*.bin"))


def test_an_oversized_payload_keeps_only_its_start(tmp_path):
    big = os.urandom(300_000)
    kept = Quarantine(tmp_path, "EMC", payload_bytes=4096).keep(big, "oversized message")
    assert kept.read_bytes() == big[:4096]
    note = json.loads(kept.with_name(kept.name.replace(".bin", ".reason.json")).read_text())
    assert note["payload_bytes"] == 300_000 and note["kept_bytes"] == 4096
    [record] = read_index(tmp_path, "EMC")
    assert record["kept"] == kept.name and record["payload_bytes"] == 300_000


def test_count_bound_evicts_the_oldest_and_every_reason_stays(tmp_path):
    quarantine = Quarantine(tmp_path, "EMC", max_files=3)
    kept = []
    for i in range(5):
        path = quarantine.keep(b"x" * 100, f"reason {i}", received=T0 + i)
        os.utime(path, ns=(T0 + i, (T0 + i) * 10**9))  # mtimes in arrival order
        kept.append(path.name)
    assert _copies(tmp_path) == sorted(kept[2:])
    assert len(list((tmp_path / "quarantine").glob("*.reason.json"))) == 3
    records = read_index(tmp_path, "EMC")
    assert [r["reason"] for r in records] == [f"reason {i}" for i in range(5)]
    assert [r["kept"] for r in records] == kept


def test_size_bound_counts_every_subsystem_and_never_keeps_what_cannot_fit(tmp_path):
    emc = Quarantine(tmp_path, "EMC", max_bytes=12_000, payload_bytes=5000)
    tpc = Quarantine(tmp_path, "TPC", max_bytes=12_000, payload_bytes=5000)
    first = emc.keep(b"a" * 5000, "first", received=T0)
    os.utime(first, ns=(T0, T0 * 10**9))
    tpc.keep(b"b" * 5000, "second", received=T0 + 1)
    tpc.keep(b"c" * 5000, "third", received=T0 + 2)  # two do not fit with the third
    assert not first.exists()
    total = sum(p.stat().st_size for p in (tmp_path / "quarantine").glob("*.*.*.*"))
    assert total <= 12_000
    tiny = Quarantine(tmp_path, "HLT", max_bytes=100)
    assert tiny.keep(b"d" * 5000, "too big for the bound") is None
    [record] = read_index(tmp_path, "HLT")
    assert record["kept"] is None and "bound" in record["not_kept"]
    assert [r["reason"] for r in read_index(tmp_path, "TPC")] == ["second", "third"]


def test_the_index_rotates_instead_of_growing(tmp_path):
    quarantine = Quarantine(tmp_path, "EMC", max_files=0, index_bytes=2000)
    for i in range(40):
        quarantine.keep(b"", f"reason {i}")
    index = tmp_path / "quarantine" / "EMC.index.jsonl"
    older = tmp_path / "quarantine" / "EMC.index.1.jsonl"
    assert index.stat().st_size <= 2000 and older.stat().st_size <= 2000
    reasons = [r["reason"] for r in read_index(tmp_path, "EMC")]
    assert reasons == [f"reason {i}" for i in range(40 - len(reasons), 40)]
    assert _copies(tmp_path) == []


def test_a_reason_refused_by_a_full_disk_is_indexed_when_space_returns(tmp_path, caplog):
    """Defect 13: the reason was only in the log; now it waits and reaches the index."""
    disk = FullDisk()
    receiver = Receiver(
        ReceiverSettings(notify_address=""), tmp_path, "EMC", "tcp://127.0.0.1:1", "req",
        fs=disk, retry_interval=0,
    )  # fmt: skip
    disk.full = True
    outcome = receiver.handle_message([b"{not json", b"payload"])
    assert outcome.status == Status.QUARANTINED and outcome.path is None
    assert read_index(tmp_path, "EMC") == []
    assert "cannot write the quarantine index" in caplog.text
    receiver._housekeeping()  # still full: still waiting, nothing half-written
    assert read_index(tmp_path, "EMC") == [] and len(receiver.quarantine.waiting) == 1
    disk.full = False
    good = wire.Header(run=1, subsystem="EMC", seq=1, timestamp=T0).encode()
    receiver.handle_message([good, b"root but not really"])  # a second one, after space returned
    records = read_index(tmp_path, "EMC")
    assert [r["reason"].split(":")[0] for r in records] == ["bad header", "bad payload"]
    assert records[0]["kept"] is None and records[0]["not_kept"] == "disk full"
    assert records[0]["header"] == "{not json" and records[0]["payload_bytes"] == 7
    assert records[1]["kept"] is not None


def test_reasons_beyond_the_memory_bound_are_counted_in_the_index(tmp_path):
    disk = FullDisk()
    quarantine = Quarantine(tmp_path, "EMC", fs=disk, retry_interval=0)
    disk.full = True
    for i in range(MAX_WAITING + 5):
        quarantine.keep(b"x", f"reason {i}")
    disk.full = False
    assert quarantine.flush() == MAX_WAITING + 1
    records = read_index(tmp_path, "EMC")
    assert len(records) == MAX_WAITING + 1
    assert records[-1]["reason"].startswith("5 further refusal(s)")


def test_receiver_quarantine_bounds_come_from_the_settings(tmp_path):
    settings = ReceiverSettings(
        notify_address="", quarantine_max_files=2, quarantine_payload_bytes=10
    )
    receiver = Receiver(settings, tmp_path, "EMC", "tcp://127.0.0.1:1", "req")
    for i in range(4):
        head = wire.Header(run=1, subsystem="EMC", seq=i, timestamp=T0).encode()
        assert receiver.handle_message([head, b"x" * 50 + payload(i)]).status == "quarantined"
    assert len(_copies(tmp_path)) == 2
    assert all(p.stat().st_size == 10 for p in (tmp_path / "quarantine").glob("*.bin"))
    assert len(read_index(tmp_path, "EMC")) == 4

"""The receivers' one intake: the rules a snapshot meets after its transport, and field parsing."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
import zmq

from overwatch.config import ReceiverSettings
from overwatch.notices import NoticeListener
from overwatch.store.layout import FileSystem
from receivers import wire
from receivers.intake import (
    Check,
    FieldError,
    Intake,
    Status,
    parse_instant,
    snapshot_header,
)
from receivers.quarantine import read_index

#: 2025-11-22 10:00:00 UTC
T0 = 1_763_805_600.0


def root_file(tmp_path: Path, seed: int = 0, name: str = "snap.root") -> bytes:
    """A ROOT file written by uproot: two histograms, one in a directory."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"{seed}-{name}"
    with uproot.recreate(path) as file:
        file["events"] = np.histogram(rng.random(100 + seed), bins=10, range=(0, 1))
        file["EMCal/cell hits"] = np.histogram(rng.normal(size=200), bins=20, range=(-3, 3))
    return path.read_bytes()


class FullDisk(FileSystem):
    """``write`` fails with ENOSPC while ``full`` is set."""

    def __init__(self) -> None:
        self.full = False

    def write(self, fd: int, data: memoryview) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(fd, data)


def make_intake(tmp_path: Path, notify: str = "", **settings: object) -> Intake:
    values = {"notify_address": notify, "fsync": False, **settings}
    return Intake(ReceiverSettings(**values), tmp_path / "data", "EMC", source="a test", hold=False)


def header(run: int = 1, timestamp: float | None = T0, subsystem: str = "EMC") -> wire.Header:
    return wire.Header(run=run, subsystem=subsystem, timestamp=timestamp)


def stored(tmp_path: Path) -> list[str]:
    root = tmp_path / "data"
    return sorted(
        str(p.relative_to(root)) for p in root.glob("Run*/*/*") if not p.name.startswith(".")
    )


# -------------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1763805600", T0),
        (" 1763805600.5 ", T0 + 0.5),
        ("2025-11-22T10:00:00Z", T0),
        ("2025-11-22T11:00:00+01:00", T0),
        ("2025-11-22 10:00:00.250+00:00", T0 + 0.25),
    ],
)
def test_instants_are_unix_seconds_or_iso_times_with_a_zone(text: str, expected: float) -> None:
    assert parse_instant(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-11-22T10:00:00", "has no zone"),
        ("2025-11-22", "has no zone"),
        ("yesterday", "expected unix seconds"),
        ("nan", "expected unix seconds"),
        ("inf", "expected unix seconds"),
        ("", "expected unix seconds"),
    ],
)
def test_bad_instants_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(FieldError, match=message) as raised:
        parse_instant(text)
    assert raised.value.field == "timestamp"


def test_a_header_from_fields_follows_the_wire_rules() -> None:
    made = snapshot_header("42", "TPC", mode="C", timestamp=T0)
    assert made == wire.Header(run=42, subsystem="TPC", mode="C", seq=0, timestamp=T0)
    assert snapshot_header("0", "EMC").run == wire.NO_RUN  # the wire's "no run"
    assert snapshot_header(7, "EMC").run == 7


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"run": "abc"}, "run"),
        ({"run": "-3"}, "run"),
        ({"run": "2147483648"}, "run"),  # beyond 2**31 - 1
        ({"run": True}, "run"),
        ({"run": "0", "allow_no_run": False}, "run"),
        ({"run": 0, "allow_no_run": False}, "run"),
        ({"subsystem": "EM/C"}, "subsystem"),
        ({"subsystem": ""}, "subsystem"),
        ({"mode": "B!"}, "mode"),
        ({"timestamp": 1e12}, "timestamp"),  # after the year 3000
        ({"timestamp": -1.0}, "timestamp"),
    ],
)
def test_a_wrong_field_is_named(fields: dict, field: str) -> None:
    arguments = {"run": "5", "subsystem": "EMC", **fields}
    with pytest.raises(FieldError) as raised:
        snapshot_header(arguments.pop("run"), arguments.pop("subsystem"), **arguments)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


# -------------------------------------------------------------------------- the rules


def test_a_valid_snapshot_is_stored_verbatim_and_announced(tmp_path: Path) -> None:
    context = zmq.Context()
    listener = NoticeListener("tcp://127.0.0.1:*", context=context)
    try:
        intake = Intake(
            ReceiverSettings(notify_address=listener.address, fsync=False),
            tmp_path / "data", "EMC", source="a test", hold=False, context=context,
        )  # fmt: skip
        payload = root_file(tmp_path)
        outcome = intake.accept(header(), payload, received=T0 + 1)
        assert outcome.status == Status.STORED
        assert outcome.path == "Run1/EMC/EMChists.2025_11_22_10_00_00.root"
        assert (tmp_path / "data" / outcome.path).read_bytes() == payload
        notice = listener.receive(5.0)
        assert notice == {"run": 1, "subsystem": "EMC", "path": outcome.path}
        counters = intake.counters
        assert counters["stored"] == 1 and counters["notices"] == 1
        assert counters["stored_bytes"] == len(payload)  # the bytes metric per receiver
        assert intake.heartbeat.fields["last_snapshot_path"] == outcome.path
        intake.close()
    finally:
        listener.close()
        context.term()


def test_names_are_unique_and_never_go_backwards(tmp_path: Path) -> None:
    intake = make_intake(tmp_path)
    paths = [
        intake.accept(header(timestamp=stamp), root_file(tmp_path, seed), received=T0).path
        for seed, stamp in enumerate([T0, T0, T0 - 30, T0 + 0.5])
    ]
    assert paths == [
        "Run1/EMC/EMChists.2025_11_22_10_00_00.root",
        "Run1/EMC/EMChists.2025_11_22_10_00_01.root",
        "Run1/EMC/EMChists.2025_11_22_10_00_02.root",
        "Run1/EMC/EMChists.2025_11_22_10_00_03.root",
    ]
    assert intake.accept(header(timestamp=None), root_file(tmp_path, 9), received=T0 + 60).path == (
        "Run1/EMC/EMChists.2025_11_22_10_01_00.root"  # no timestamp: the receipt time
    )


def test_duplicates_run_zero_and_empty_store_nothing(tmp_path: Path) -> None:
    intake = make_intake(tmp_path)
    payload = root_file(tmp_path)
    assert intake.accept(header(), payload).status == Status.STORED
    assert intake.accept(header(timestamp=T0 + 5), payload).status == Status.DUPLICATE
    # The same bytes as the first snapshot of another run are stored: a new run starts.
    assert intake.accept(header(run=2), payload).status == Status.STORED
    assert intake.accept(header(run=wire.NO_RUN), payload).status == Status.RUN_ZERO
    assert intake.accept(header(), b"").status == Status.EMPTY
    assert stored(tmp_path) == [
        "Run1/EMC/EMChists.2025_11_22_10_00_00.root",
        "Run2/EMC/EMChists.2025_11_22_10_00_00.root",
    ]
    counters = intake.counters
    assert (counters["duplicates"], counters["run_zero"], counters["empty"]) == (1, 1, 1)


def test_bytes_that_are_not_root_are_quarantined_with_the_reason(tmp_path: Path) -> None:
    intake = make_intake(tmp_path)
    outcome = intake.accept(header(), b"not a ROOT file at all", received=T0, source="alice")
    assert outcome.status == Status.QUARANTINED and outcome.check == Check.PAYLOAD
    assert outcome.reason.startswith("bad payload:")
    assert Path(outcome.path).read_bytes() == b"not a ROOT file at all"
    (record,) = read_index(tmp_path / "data", "EMC")
    assert record["reason"] == outcome.reason
    assert '"run":1' in record["header"]  # the header the snapshot came with
    assert stored(tmp_path) == [] and intake.counters["quarantined"] == 1


def test_size_limit_and_future_timestamps(tmp_path: Path) -> None:
    payload = root_file(tmp_path)
    intake = make_intake(tmp_path, max_message_bytes=len(payload) - 1, max_clock_skew=60)
    big = intake.accept(header(), payload, received=T0)
    assert big.status == Status.QUARANTINED and big.check == Check.SIZE
    assert intake.too_big(len(payload)) == big.reason
    assert intake.too_big(len(payload) - 1) is None
    # Run 0 with too many bytes is still said to be too big: the size comes first.
    assert intake.accept(header(run=0), payload).check == Check.SIZE

    intake = make_intake(tmp_path, max_clock_skew=60)
    ahead = intake.accept(header(timestamp=T0 + 61), payload, received=T0)
    assert ahead.status == Status.QUARANTINED and ahead.check == Check.CLOCK
    assert "ahead of this receiver's clock" in ahead.reason
    assert intake.accept(header(timestamp=T0 + 59), payload, received=T0).status == Status.STORED


def test_restamp_future_stores_under_the_receipt_time(tmp_path: Path) -> None:
    intake = make_intake(tmp_path, max_clock_skew=60, restamp_future=True)
    outcome = intake.accept(header(timestamp=T0 + 3600), root_file(tmp_path), received=T0)
    assert outcome.status == Status.STORED
    assert outcome.path == "Run1/EMC/EMChists.2025_11_22_10_00_00.root"


def test_another_subsystem_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="intake of EMC"):
        make_intake(tmp_path).accept(header(subsystem="TPC"), root_file(tmp_path))


def test_a_full_disk_without_holding_drops_at_once_and_loses_nothing_stored(tmp_path: Path) -> None:
    disk = FullDisk()
    intake = Intake(
        ReceiverSettings(notify_address="", fsync=False),
        tmp_path / "data", "EMC", source="a test", hold=False, fs=disk,
    )  # fmt: skip
    first = root_file(tmp_path, 1)
    kept = intake.accept(header(), first).path
    disk.full = True
    second = root_file(tmp_path, 2)
    outcome = intake.accept(header(timestamp=T0 + 60), second)
    assert outcome.status == Status.DROPPED and "disk full" in outcome.reason
    assert intake.spool.pending == type(intake.spool.pending)()  # nothing held in memory
    folder = tmp_path / "data" / "Run1" / "EMC"
    assert sorted(p.name for p in folder.iterdir()) == [Path(kept).name]  # no temporary left
    assert (tmp_path / "data" / kept).read_bytes() == first
    disk.full = False  # the sender sends it again: not a duplicate, stored now
    again = intake.accept(header(timestamp=T0 + 60), second)
    assert again.status == Status.STORED
    assert (tmp_path / "data" / again.path).read_bytes() == second


def test_a_holding_intake_keeps_the_snapshot_in_memory_and_writes_it_later(tmp_path: Path) -> None:
    disk = FullDisk()
    intake = Intake(
        ReceiverSettings(notify_address="", fsync=False),
        tmp_path / "data", "EMC", source="a test", fs=disk, retry_interval=0.0,
    )  # fmt: skip
    disk.full = True
    payload = root_file(tmp_path)
    outcome = intake.accept(header(), payload)
    assert outcome.status == Status.PENDING and intake.heartbeat.fields["state"] == "disk full"
    disk.full = False
    intake.housekeeping()
    assert (tmp_path / "data" / outcome.path).read_bytes() == payload
    assert intake.counters["stored"] == 1


def test_writers_of_one_folder_never_pick_the_same_name(tmp_path: Path) -> None:
    """Separate intakes (as in separate web workers), same run, subsystem and second."""
    writers, each = 6, 5
    payloads = [[root_file(tmp_path, w * 100 + i) for i in range(each)] for w in range(writers)]
    intakes = [
        Intake(ReceiverSettings(notify_address=""), tmp_path / "data", "EMC", source=f"w{w}",
               hold=False)  # fsync on: the window between choosing and renaming is real
        for w in range(writers)
    ]  # fmt: skip
    start = threading.Barrier(writers)
    outcomes: list = []

    def write(w: int) -> None:
        start.wait()
        for payload in payloads[w]:
            outcomes.append(intakes[w].accept(header(), payload, received=time.time()))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o.status for o in outcomes] == [Status.STORED] * (writers * each)
    paths = [o.path for o in outcomes]
    assert len(set(paths)) == len(paths) == len(stored(tmp_path))
    on_disk = {(tmp_path / "data" / p).read_bytes() for p in paths}
    assert on_disk == {p for group in payloads for p in group}  # every upload kept, intact

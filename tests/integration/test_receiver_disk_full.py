"""A really full disk (a 1 MiB tmpfs), real sockets: nothing acknowledged is lost.

Mounting needs root; without it (or where mounting is not allowed) the tests
skip with the reason. The same logic is also tested without privileges in
tests/unit/test_receiver_spool.py through an injected file system.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from overwatch.timestamps import from_unix, snapshot_filename
from receivers.heartbeat import read_status
from receivers.quarantine import read_index
from receivers.zmq_receiver import Receiver
from tests.integration.receiver_helpers import (
    ScriptedPub,
    ScriptedRep,
    header,
    make_payload,
    overwatch_process,
    running,
    settings,
    stop_process,
    stored_files,
    wait_for,
)

pytestmark = pytest.mark.integration
BASE = 1_700_000_000


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` to the last byte; return the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as stream:
        for chunk in (65_536, 4096, 1):
            try:
                while True:
                    stream.write(b"\0" * chunk)
            except OSError:
                continue
    return filler


def _disk_full_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("DISK FULL")]


def test_req_keeps_snapshots_in_memory_stops_polling_and_writes_them_later(small_disk, caplog):
    data_dir = small_disk / "data"
    payloads = [make_payload(i) for i in range(3)]
    rep = ScriptedRep([])
    # Room for two snapshots in memory: with two pending, the receiver stops asking.
    limit = len(payloads[0]) + len(payloads[1]) + 10
    receiver = Receiver(
        settings(pending_limit_bytes=limit),
        data_dir,
        "EMC",
        rep.endpoint,
        "req",
        retry_interval=0.1,
    )
    with caplog.at_level(logging.ERROR, logger="receivers"), running(receiver):
        wait_for(lambda: read_status(data_dir, "EMC"), what="the first heartbeat")
        filler = fill(small_disk)
        rep.messages.extend(
            [header(seq=i + 1, timestamp=BASE + i), p] for i, p in enumerate(payloads)
        )
        wait_for(lambda: len(receiver.spool.pending) == 2, what="two snapshots waiting in memory")
        asked = len(rep.requests)
        time.sleep(0.5)  # long enough for several polls at a 0.05 s interval
        assert len(rep.requests) == asked, "the receiver kept polling with a full buffer"
        assert receiver.heartbeat.fields["state"] == "disk full"
        assert stored_files(data_dir) == []
        assert len(_disk_full_lines(caplog)) == 1

        filler.unlink()
        wait_for(lambda: receiver.counters["stored"] == 3, what="all snapshots on disk")
        wait_for(lambda: read_status(data_dir, "EMC")["state"] == "receiving", what="state back")
    rep.stop()
    for i, payload in enumerate(payloads):
        path = data_dir / "Run1" / "EMC" / snapshot_filename("EMC", from_unix(BASE + i))
        assert path.read_bytes() == payload
    assert receiver.counters["dropped"] == 0
    assert not any(p.name.endswith(".tmp") for p in data_dir.rglob("*"))


def test_sub_drops_beyond_the_memory_bound_and_writes_the_rest(small_disk, caplog):
    data_dir = small_disk / "data"
    payloads = [make_payload(i) for i in range(4)]
    pub = ScriptedPub()
    limit = len(payloads[0]) + len(payloads[1]) + 10
    receiver = Receiver(
        settings(pending_limit_bytes=limit),
        data_dir,
        "EMC",
        pub.endpoint,
        "sub",
        retry_interval=0.1,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="receivers"), running(receiver):
            # Wait for the subscription with run-0 messages (stored never).
            wait_for(
                lambda: (
                    pub.send([b"EMC", header(run=0), payloads[0]]) or receiver.counters["run_zero"]
                ),
                what="the subscription",
            )
            filler = fill(small_disk)
            for i, payload in enumerate(payloads):
                pub.send([b"EMC", header(seq=i + 1, timestamp=BASE + i), payload])
                wait_for(lambda i=i: receiver.counters["received"] >= i + 2, what=f"message {i}")
            wait_for(lambda: receiver.counters["dropped"] == 2, what="two dropped messages")
            assert len(receiver.spool.pending) == 2
            assert len(_disk_full_lines(caplog)) == 1
            dropped = [r for r in caplog.records if r.getMessage().startswith("dropped snapshot")]
            assert len(dropped) == 2

            filler.unlink()
            wait_for(lambda: receiver.counters["stored"] == 2, what="kept snapshots on disk")
    finally:
        pub.close()
    assert [p.read_bytes() for p in stored_files(data_dir)] == payloads[:2]


def _sigterm_on_a_full_disk(small_disk, tmp_path, monkeypatch, fallback: Path | None):
    """A real ``overwatch receive`` holding five snapshots of runs 5 and 6 in memory, stopped."""
    data_dir = small_disk / "data"
    monkeypatch.setenv("OVERWATCH_RECEIVER__STOP_WAIT", "0.5")
    monkeypatch.setenv("OVERWATCH_RECEIVER__FALLBACK_DIR", str(fallback or ""))
    rep = ScriptedRep([])
    process = overwatch_process(
        ["receive", "--subsystem", "EMC", "--connect", rep.endpoint, "--interval", "0.05",
         "--data-dir", str(data_dir), "--notify", ""],
        tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: read_status(data_dir, "EMC"), what="the first heartbeat")
        filler = fill(small_disk)
        runs = (5, 5, 5, 6, 6)
        payloads = [make_payload(i) for i in range(len(runs))]
        rep.messages.extend(
            [header(run=run, seq=i + 1, timestamp=BASE + i), payloads[i]]
            for i, run in enumerate(runs)
        )
        wait_for(lambda: rep.finished, what="five snapshots handed over")
        # The next request comes once the receiver has handled (kept in memory) the last one.
        asked = len(rep.requests)
        wait_for(lambda: len(rep.requests) > asked, what="the last snapshot handled")
        assert stored_files(data_dir) == []
        code = stop_process(process)
    finally:
        stop_process(process)
        rep.stop()
    log_text = Path(process.log_file.name).read_text()
    relpaths = [
        f"Run{run}/EMC/{snapshot_filename('EMC', from_unix(BASE + i))}"
        for i, run in enumerate(runs)
    ]
    filler.unlink()
    return code, log_text, relpaths, payloads


def test_sigterm_on_a_full_disk_exits_non_zero_naming_every_lost_snapshot(
    small_disk, tmp_path, monkeypatch
):
    """It used to log "stopping with 5 snapshot(s) still unwritten" and exit 0."""
    code, log_text, relpaths, _ = _sigterm_on_a_full_disk(small_disk, tmp_path, monkeypatch, None)
    assert code == 1
    [lost] = [line for line in log_text.splitlines() if "LOST 5 snapshot(s) of EMC" in line]
    assert "disk full" in lost
    assert (
        f"run 5: {', '.join(relpaths[:3])}" in lost and f"run 6: {', '.join(relpaths[3:])}" in lost
    )


def test_sigterm_on_a_full_disk_spills_to_the_fallback_directory(small_disk, tmp_path, monkeypatch):
    spill = tmp_path / "spill"  # another file system, with room
    code, log_text, relpaths, payloads = _sigterm_on_a_full_disk(
        small_disk, tmp_path, monkeypatch, spill
    )
    assert code == 0 and "LOST" not in log_text
    assert "spilled 5 snapshot(s) to the fallback directory" in log_text
    for relpath, payload in zip(relpaths, payloads, strict=True):
        assert (spill / relpath).read_bytes() == payload
    assert stored_files(small_disk / "data") == []


def test_a_bad_message_on_a_full_disk_is_indexed_when_space_returns(small_disk):
    data_dir = small_disk / "data"
    rep = ScriptedRep([])
    receiver = Receiver(settings(), data_dir, "EMC", rep.endpoint, "req", retry_interval=0.1)
    try:
        with running(receiver):
            wait_for(lambda: read_status(data_dir, "EMC"), what="the first heartbeat")
            filler = fill(small_disk)
            rep.messages.append([b"{not json", make_payload(1)])
            wait_for(lambda: receiver.counters["quarantined"] == 1, what="the bad message")
            assert read_index(data_dir, "EMC") == []
            filler.unlink()
            records = wait_for(lambda: read_index(data_dir, "EMC"), what="the reason indexed")
    finally:
        rep.stop()
    [record] = records
    assert record["reason"].startswith("bad header: header is not JSON")
    assert record["kept"] is None and record["not_kept"] == "disk full"

"""Processing workers: the ownership and share rules, claims, refusal, take-over, status rows."""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from overwatch import cli
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, overwatch_root, read, transact
from processing.ingest.scan import Scanner
from processing.pipeline import ChainFailure, Pipeline
from processing.scheduler import ProcessingService
from processing.workers import (
    ClaimLost,
    ClaimRefused,
    Ownership,
    WorkerClaim,
    heartbeat_seconds,
    share_of,
)
from receivers.notify import Notifier
from tests.processing_helpers import T0, free_port, wait_for, write_snapshot
from tests.unit.test_web_support import add_user, login, make_app

NAMES = ["EMC", "TPC", "HLT", "ITS", "TOF", "TRD", "FMD", "V0", "ZDC", "MCH", "MID", "PHS"]


@pytest.fixture
def db():
    database = open_db("memory://")
    yield database
    database.close()


def hist(counts) -> Histogram:
    counts = np.asarray(counts, dtype=np.float64)
    h = Histogram.empty("events", [Axis.regular(len(counts) - 2, 0, 1)], "TH1D")
    h.values = np.asfortranarray(counts)
    h.entries = float(counts.sum())
    h.stats = h.compute_stats()
    return h


def workers(db) -> dict[str, tuple]:
    return read(db, lambda ow: {n: (w.pid, w.state, w.last_seen) for n, w in ow.workers.items()})


# -- the share and ownership rules ---------------------------------------------------


def test_share_is_crc32_modulo_n_plus_one_and_partitions_the_names() -> None:
    assert share_of("EMC", 2) == zlib.crc32(b"EMC") % 2 + 1
    for n in (1, 2, 3, 5):
        shares = [Ownership.parse(share=f"{k}/{n}") for k in range(1, n + 1)]
        for name in NAMES:  # each name in exactly one share
            assert sum(s.owns(name) for s in shares) == 1
    # Stable across processes (Python's hash() is salted per process; this must not be).
    other = subprocess.run(
        [sys.executable, "-c", "from processing.workers import share_of;"
         "print([share_of(n, 3) for n in ('EMC', 'TPC', 'HLT')])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert other.stdout.strip() == str([share_of(n, 3) for n in ("EMC", "TPC", "HLT")])


def test_lists_shares_and_everything_overlap_as_documented() -> None:
    emc_tpc, hlt, tpc = (Ownership.parse(s) for s in ("EMC,TPC", "HLT", " TPC "))
    everything = Ownership.parse()
    assert emc_tpc.owns("EMC") and not emc_tpc.owns("HLT")
    assert everything.everything and everything.owns("ANY")
    assert not emc_tpc.overlaps(hlt) and emc_tpc.overlaps(tpc)
    assert everything.overlaps(hlt) and hlt.overlaps(everything)
    half1, half2 = Ownership.parse(share="1/2"), Ownership.parse(share="2/2")
    assert not half1.overlaps(half2)
    assert half1.overlaps(Ownership.parse(share="3/4"))  # 2 = 0 mod 2
    assert not half1.overlaps(Ownership.parse(share="2/4"))
    assert Ownership.parse(share="1/2").overlaps(Ownership.parse(share="2/3"))  # gcd 1
    in_first = next(n for n in NAMES if share_of(n, 2) == 1)
    in_second = next(n for n in NAMES if share_of(n, 2) == 2)
    assert half1.overlaps(Ownership.parse(in_first))
    assert not half1.overlaps(Ownership.parse(in_second))
    assert (emc_tpc.describe(), half1.describe(), everything.describe()) == (
        "EMC,TPC", "share 1/2", "all",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("subsystems", "share", "message"),
    [
        ("EMC", "1/2", "not both"),
        (" , ", None, "names no subsystem"),
        ("EMC,T-PC", None, "invalid subsystem 'T-PC'"),
        (None, "2", "expected K/N"),
        (None, "a/b", "expected K/N"),
        (None, "3/2", "between 1 and N"),
        (None, "0/2", "between 1 and N"),
    ],
)
def test_bad_ownership_arguments_are_refused(subsystems, share, message) -> None:
    with pytest.raises(ValueError, match=message):
        Ownership.parse(subsystems, share)


def test_heartbeat_is_well_within_late_and_dead() -> None:
    assert heartbeat_seconds(60, 300) == 20
    assert heartbeat_seconds(2, 4) == pytest.approx(2 / 3)
    assert heartbeat_seconds(0.1, 0.2) == 0.5


# -- scanning and processing only what is owned -------------------------------------------


def test_scanner_and_pipeline_skip_subsystems_they_do_not_own(tmp_path, db) -> None:
    for k in range(2):
        for name in ("EMC", "TPC", "HLT"):
            write_snapshot(tmp_path, 3, name, T0 + 60 * k, [hist([0, k + 1, 0])])
    (tmp_path / "HLThistos_3_B_2026_01_01_00_00_00.root").write_bytes(b"flat, not owned")
    owned = Ownership.parse("EMC,TPC")
    assert set(Scanner(tmp_path, owned.owns).scan()) == {(3, "EMC"), (3, "TPC")}
    assert set(Scanner(tmp_path).scan()) == {(3, "EMC"), (3, "TPC"), (3, "HLT")}

    first = Pipeline(tmp_path, db, owns=owned.owns, analysis=False).run_until_idle()
    assert (first.processed, first.failed) == (4, [])
    assert read(db, lambda ow: sorted(ow.runs[3].subsystems)) == ["EMC", "TPC"]
    second = Pipeline(tmp_path, db, owns=Ownership.parse("HLT").owns, analysis=False)
    report = second.run_until_idle()
    # HLT's two files, and the flat file which is no ROOT file: bad, recorded, not lost.
    assert (report.processed, report.bad, second.processed_total) == (2, 1, 2)
    counts = read(db, lambda ow: {n: len(s.snapshots) for n, s in ow.runs[3].subsystems.items()})
    assert counts == {"EMC": 2, "TPC": 2, "HLT": 2}


def test_failing_chains_of_other_workers_are_kept(tmp_path, db) -> None:
    def record(root):
        overwatch_root(root).processing.failing_chains = {"Run1/HLT": {"failures": 2}}

    transact(db, record)
    pipeline = Pipeline(tmp_path, db, owns=Ownership.parse("EMC").owns, analysis=False)
    pipeline.failing[(1, "EMC")] = ChainFailure(1, "boom", 0.0, 0.0)
    pipeline._record_health()
    chains = read(db, lambda ow: dict(ow.processing.failing_chains))
    assert set(chains) == {"Run1/HLT", "Run1/EMC"}
    pipeline.failing.clear()
    pipeline._record_health()
    assert set(read(db, lambda ow: dict(ow.processing.failing_chains))) == {"Run1/HLT"}


# -- claims -------------------------------------------------------------------------------


def test_disjoint_workers_claim_and_an_overlapping_one_is_refused(db) -> None:
    a = WorkerClaim(db, "a", Ownership.parse("EMC,TPC"), dead_seconds=30)
    b = WorkerClaim(db, "b", Ownership.parse("HLT"), dead_seconds=30)
    assert a.claim() == [] and b.claim() == []
    with pytest.raises(ClaimRefused, match=r"worker 'a' on .* owns EMC,TPC and is alive"):
        WorkerClaim(db, "c", Ownership.parse("TPC,ITS"), dead_seconds=30).claim()
    with pytest.raises(ClaimRefused, match="worker 'a'"):  # everything overlaps everyone
        WorkerClaim(db, "all", Ownership.parse(), dead_seconds=30).claim()
    with pytest.raises(ClaimRefused, match="worker 'b'"):  # the same name twice
        WorkerClaim(db, "b", Ownership.parse("ITS"), dead_seconds=30).claim()
    assert set(workers(db)) == {"a", "b"}


def test_a_dead_claim_is_taken_over_and_the_dead_worker_stops(db) -> None:
    a = WorkerClaim(db, "a", Ownership.parse("EMC,TPC"), dead_seconds=30)
    a.claim(now=time.time() - 31)  # its last heartbeat is older than dead_seconds
    c = WorkerClaim(db, "c", Ownership.parse("TPC"), dead_seconds=30)
    assert c.claim() == ["a"]
    assert set(workers(db)) == {"c"}
    with pytest.raises(ClaimLost, match="taken over"):
        a.heartbeat(last_pass=1.0, processed=3)
    c.heartbeat(last_pass=5.0, processed=7)
    record = read(db, lambda ow: (ow.workers["c"].last_pass, ow.workers["c"].processed))
    assert record == (5.0, 7)


def test_a_stopped_worker_no_longer_blocks(db) -> None:
    a = WorkerClaim(db, "a", Ownership.parse(share="1/2"), dead_seconds=300)
    a.claim()
    a.release(last_pass=2.0, processed=4)
    assert workers(db)["a"][1] == "stopped"
    again = WorkerClaim(db, "a", Ownership.parse(share="1/2"), dead_seconds=300)
    assert again.claim() == []  # its own name: replaced, not "taken over"
    assert workers(db)["a"][1] == "running"


def test_a_worker_of_this_host_whose_process_is_gone_is_dead_at_once(db) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    old = WorkerClaim(db, "old", Ownership.parse("EMC"), dead_seconds=300)
    old.pid = int(gone.stdout)  # as if that process had claimed, then been killed
    old.claim()
    assert WorkerClaim(db, "new", Ownership.parse("EMC"), dead_seconds=300).claim() == ["old"]


def test_a_killed_worker_not_yet_reaped_is_dead_too(db) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.time() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.time() < deadline, "the child did not end"
            time.sleep(0.05)
        old = WorkerClaim(db, "old", Ownership.parse("EMC"), dead_seconds=300)
        old.pid = zombie.pid  # exited, not reaped (its parent, this test, has not waited)
        old.claim()
        assert WorkerClaim(db, "new", Ownership.parse("EMC"), dead_seconds=300).claim() == ["old"]
    finally:
        zombie.wait()


def test_a_database_from_before_workers_gets_its_mapping(db) -> None:
    def forget(root):
        del overwatch_root(root).workers  # the class default (None) shows through

    transact(db, forget)
    assert read(db, lambda ow: ow.workers) is None
    WorkerClaim(db, "a", Ownership.parse("EMC"), dead_seconds=30).claim()
    assert set(workers(db)) == {"a"}


def test_process_refuses_to_start_on_an_alive_workers_subsystems(tmp_path, capsys) -> None:
    uri = f"file://{tmp_path / 'ow.fs'}"
    database = open_db(uri)
    try:
        WorkerClaim(database, "emc-worker", Ownership.parse("EMC"), dead_seconds=300).claim()
    finally:
        database.close()
    (tmp_path / "data").mkdir()
    argv = ["process", "--once", "--data-dir", str(tmp_path / "data"), "--db", uri]
    assert cli.main([*argv, "--subsystems", "TPC,EMC"]) == 2
    assert "worker 'emc-worker'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse: one or the other
        cli.main([*argv, "--subsystems", "TPC", "--share", "1/2"])
    assert refused.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert cli.main([*argv, "--share", "5/2"]) == 2
    assert "between 1 and N" in capsys.readouterr().err
    assert cli.main([*argv, "--subsystems", "TPC", "--worker", "tpc"]) == 0
    database = open_db(uri)
    try:
        assert workers(database)["tpc"][1] == "stopped"  # --once releases its claim
    finally:
        database.close()


# -- the status page ------------------------------------------------------------------------


def test_status_lists_workers_and_a_dead_one_makes_processing_dead(tmp_path) -> None:
    app, db = make_app(tmp_path)
    add_user(db)
    client = app.test_client()
    login(client, "alice")
    assert client.get("/api/status").get_json()["workers"] == []
    now = time.time()
    WorkerClaim(db, "emc", Ownership.parse("EMC,TPC"), dead_seconds=300).claim(now=now - 1)
    # A share holding none of the listed workers' subsystems (so the claims are disjoint).
    k = next(k for k in range(1, 8) if k not in {share_of(n, 7) for n in ("EMC", "TPC", "HLT")})
    WorkerClaim(db, "part", Ownership.parse(share=f"{k}/7"), dead_seconds=300).claim(now=now - 90)
    status = client.get("/api/status").get_json()
    rows = {w["name"]: w for w in status["workers"]}
    assert (rows["emc"]["status"], rows["emc"]["owns"], rows["emc"]["subsystems"]) == (
        "alive", "EMC,TPC", ["EMC", "TPC"],
    )  # fmt: skip
    assert (rows["part"]["status"], rows["part"]["owns"]) == ("late", f"share {k}/7")
    assert status["processing"]["status"] in ("late", "dead")
    WorkerClaim(db, "gone", Ownership.parse("HLT"), dead_seconds=300).claim(now=now - 400)
    status = client.get("/api/status").get_json()
    assert {w["name"]: w["status"] for w in status["workers"]}["gone"] == "dead"
    assert status["processing"]["status"] == "dead"
    page = client.get("/status").get_data(as_text=True)
    assert "Processing workers" in page
    assert 'data-worker="gone" data-status="dead"' in page
    assert 'data-worker="emc" data-status="alive"' in page


# -- the service: notices of other workers' subsystems, heartbeats, a lost claim -------------


def test_service_ignores_other_subsystems_notices_and_stops_when_its_claim_is_lost(
    tmp_path, db
) -> None:
    ownership = Ownership.parse("EMC")
    claim = WorkerClaim(db, "emc", ownership, dead_seconds=30)
    claim.claim()
    pipeline = Pipeline(tmp_path, db, owns=ownership.owns, analysis=False)
    service = ProcessingService(
        pipeline, 60.0, f"tcp://127.0.0.1:{free_port()}", worker=claim, heartbeat=0.5
    )
    notifier = Notifier(service.notify_address)
    service.start()
    try:
        write_snapshot(tmp_path, 2, "HLT", T0, [hist([0, 1, 0])])
        notifier.notify(2, "HLT", "Run2/HLT/x.root")
        write_snapshot(tmp_path, 2, "EMC", T0, [hist([0, 1, 0])])
        notifier.notify(2, "EMC", "Run2/EMC/x.root")  # woken long before the 60 s interval
        wait_for(lambda: pipeline.processed_total == 1, 10, "the EMC snapshot processed")
        wait_for(lambda: workers(db)["emc"][2] > claim.started, 10, "a heartbeat")
        assert read(db, lambda ow: sorted(ow.runs[2].subsystems)) == ["EMC"]

        def take_over(root):  # as a worker that saw this one dead would
            record = overwatch_root(root).workers["emc"]
            record.pid += 1

        transact(db, take_over)
        wait_for(service.lost.is_set, 10, "the service to notice its claim is lost")
    finally:
        notifier.close()
        service.stop()
    assert workers(db)["emc"][1] == "running"  # not ours any more: left as the other wrote it


def test_the_holder_of_the_notices_relays_those_of_other_workers_subsystems(tmp_path, db) -> None:
    """Two workers sharing the subsystems: the one that finds the receivers' address taken
    takes the notices of its subsystems from the holder, so both wake at once."""
    address = f"tcp://127.0.0.1:{free_port()}"
    services, pipelines = [], []
    for k in (1, 2):
        ownership = Ownership.parse(share=f"{k}/2")
        claim = WorkerClaim(db, f"w{k}", ownership, dead_seconds=30)
        claim.claim()
        pipeline = Pipeline(tmp_path, db, owns=ownership.owns, analysis=False)
        services.append(
            ProcessingService(
                pipeline, 600.0, address, worker=claim, heartbeat=0.2, notify_required=False
            )
        )  # the 600 s interval: only a notice can wake a worker in time
        pipelines.append(pipeline)
    holder, other = services
    assert holder.notify_address == address
    assert other.notify_address not in (None, address)  # a listener of its own
    assert other.worker.notify == other.notify_address
    notifier = Notifier(address)
    for service in services:
        service.start()
    try:
        wait_for(lambda: workers_notify(db)["w2"] == other.notify_address, 10, "the record")
        wait_for(lambda: holder._routes, 10, "the holder to read the route")
        first, second = (next(s for s in NAMES if share_of(s, 2) == k) for k in (1, 2))
        for run, subsystem in ((2, second), (3, first), (4, second)):
            write_snapshot(tmp_path, run, subsystem, T0, [hist([0, 1, 0])])
            notifier.notify(run, subsystem, f"Run{run}/{subsystem}/x.root")
        wait_for(lambda: pipelines[1].processed_total == 2, 10, f"{second} woken by relay")
        wait_for(lambda: pipelines[0].processed_total == 1, 10, f"{first} woken")
    finally:
        notifier.close()
        for service in services:
            service.stop()


def workers_notify(db) -> dict[str, str]:
    return read(db, lambda ow: {n: r.notify for n, r in ow.workers.items()})

"""The deployed shape: a shared database, a simulator, two receivers and processing, all processes.

Run on both shared backends: a ZEO server (``runzeo``) and PostgreSQL through
RelStorage (the session's server, ``tests/postgres_support.py``). The test
process is the reader. It checks that every snapshot the receivers wrote gets
exactly one record and one latest slice, that slices read from the shared
database equal an independent uproot computation, and that processing rides out
a restart of the database server (``runzeo`` stopped and started again;
``pg_ctl stop -m fast`` then ``start``): snapshots written while the server is
down are processed once it is back on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from overwatch import timestamps
from overwatch.store.db import open_db, read
from processing.slices.reader import SliceReader
from tests.processing_helpers import assert_matches, free_port, independent_slice, wait_for

pytestmark = pytest.mark.integration

SUBSYSTEMS = ("EMC", "HLT")
RUN = 1


class Processes:
    """Started subprocesses, stopped (TERM, then KILL) at teardown."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *argv: str) -> subprocess.Popen:
        log = open(self.cwd / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the child
        child = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        self.running[name] = child
        return child

    def overwatch(self, name: str, *argv: str) -> subprocess.Popen:
        return self.start(name, sys.executable, "-m", "overwatch.cli", *argv)

    def stop(self, name: str) -> None:
        child = self.running.pop(name)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log(self, name: str) -> str:
        return (self.cwd / f"{name}.log").read_text(errors="replace")[-3000:]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def snapshot_files(data: Path, subsystem: str) -> list[Path]:
    directory = data / f"Run{RUN}" / subsystem
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{subsystem}hists.*.root"))


class Zeo:
    """``runzeo`` serving a file, as one of the test's processes."""

    def __init__(self, procs: Processes, path: Path) -> None:
        self.procs, self.port = procs, free_port()
        runzeo = str(Path(sys.executable).parent / "runzeo")
        self.argv = ["runzeo", runzeo, "-a", f"127.0.0.1:{self.port}", "-f", str(path)]
        self.uri = f"zeo://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.procs.start(*self.argv)  # the same port and file each time
        wait_for(lambda: port_open(self.port), 30, "the ZEO server to listen")

    def stop(self) -> None:
        self.procs.stop("runzeo")


class Postgres:
    """The session's PostgreSQL server and a fresh database on it."""

    def __init__(self, server, uri: str) -> None:
        self.server, self.uri = server, uri

    def start(self) -> None:
        if not self.server.running():
            self.server.start()  # the same port and data

    def stop(self) -> None:
        self.server.stop()


def timestamp_of(path: Path) -> float:
    return timestamps.to_unix(timestamps.parse_snapshot_filename(path.name).instant)


def recorded(db) -> dict[str, dict[float, float]]:
    """Subsystem -> {snapshot time: start of its latest slice}, for what is committed."""

    def work(ow):
        run = ow.runs.get(RUN)
        if run is None:
            return {}
        result = {}
        for name, sub in run.subsystems.items():
            assert set(sub.snapshots.keys()) == set(sub.slices.keys())
            result[name] = {t: s.start for t, s in sub.slices.items()}
        return result

    return read(db, work)


def caught_up(db, data: Path) -> bool:
    done = recorded(db)
    return all(
        snapshot_files(data, s)
        and {timestamp_of(p) for p in snapshot_files(data, s)} == set(done.get(s, {}))
        for s in SUBSYSTEMS
    )


@pytest.fixture(params=["zeo", "postgresql"])
def system(request, tmp_path):
    data = tmp_path / "data"
    sim_port, notify_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path),
        OVERWATCH_PROCESSING__INTERVAL="1.0",
        OVERWATCH_RECEIVER__NOTIFY_ADDRESS=f"tcp://127.0.0.1:{notify_port}",
        # The simulator runs 60 times faster than the clock, so its snapshots are dated
        # up to hours ahead, which receivers refuse by default (receiver.max_clock_skew).
        OVERWATCH_RECEIVER__MAX_CLOCK_SKEW="86400",
    )
    procs = Processes(tmp_path, env)
    if request.param == "zeo":
        database = Zeo(procs, tmp_path / "zeo.fs")
    else:
        database = Postgres(
            request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_uri")
        )
    try:
        database.start()
        uri = database.uri
        procs.overwatch("process", "process", "--data-dir", str(data), "--db", uri)
        procs.overwatch(
            "simulate", "simulate", "--subsystems", ",".join(SUBSYSTEMS), "--seed", "5",
            "--bind", f"tcp://127.0.0.1:{sim_port}", "--pattern", "rep", "--speed", "60",
        )  # fmt: skip
        for subsystem in SUBSYSTEMS:
            procs.overwatch(
                f"receive-{subsystem}", "receive", "--subsystem", subsystem, "--data-dir", str(data),
                "--connect", f"tcp://127.0.0.1:{sim_port}", "--interval", "1",
            )  # fmt: skip
        yield procs, data, uri, database
    finally:
        procs.stop_all()
        if isinstance(database, Postgres):
            database.start()  # back for the session's next test, even after a failure


def test_receivers_processing_and_a_database_restart(system) -> None:
    procs, data, uri, database = system
    db = open_db(uri)
    try:
        wait_for(
            lambda: all(len(recorded(db).get(s, {})) >= 3 for s in SUBSYSTEMS),
            90, "three processed snapshots per subsystem",
        )  # fmt: skip
    finally:
        db.close()

    # The database server goes away; receivers keep writing snapshots.
    database.stop()
    counts = {s: len(snapshot_files(data, s)) for s in SUBSYSTEMS}
    wait_for(
        lambda: all(len(snapshot_files(data, s)) >= counts[s] + 3 for s in SUBSYSTEMS),
        60, "snapshots written while the database is down",
    )  # fmt: skip
    database.start()  # the same port and data
    wait_for(lambda: all(len(snapshot_files(data, s)) >= counts[s] + 5 for s in SUBSYSTEMS), 60,
             "more snapshots")  # fmt: skip
    for subsystem in SUBSYSTEMS:
        procs.stop(f"receive-{subsystem}")

    db = open_db(uri)
    try:
        try:
            wait_for(lambda: caught_up(db, data), 120, "processing to catch up after the restart")
        except AssertionError:
            raise AssertionError(procs.log("process")) from None
        done = recorded(db)
        reader = SliceReader(data, db)
        for subsystem in SUBSYSTEMS:
            files = snapshot_files(data, subsystem)
            times = [timestamp_of(p) for p in files]
            assert reader.snapshot_times(RUN, subsystem) == times
            assert [done[subsystem][t] for t in times] == [0.0, *times[:-1]]
            paths = [p for p, _ in reader.histogram_paths(RUN, subsystem)]
            # Latest slices across the outage and an arbitrary interval, against uproot.
            for first, last in ((1, 2), (len(files) - 2, len(files) - 1), (0, len(files) - 1)):
                got = reader.slice_between(RUN, subsystem, times[first], times[last])
                assert sorted(got) == sorted(paths)
                for path in paths[:: max(1, len(paths) // 6)]:
                    assert_matches(got[path], independent_slice(files[first], files[last], path))
            events = reader.cumulative(
                RUN, subsystem, "EMCTrigger/events" if subsystem == "EMC" else "events"
            )
            assert events.entries == independent_slice(None, files[-1], events.name)["entries"]
            assert np.all(reader.latest_slice(RUN, subsystem, paths[0]).values >= 0)
    finally:
        db.close()
    assert procs.running["process"].poll() is None, procs.log("process")

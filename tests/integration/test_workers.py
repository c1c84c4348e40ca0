"""Two processing workers on disjoint subsystems and one web server, separate processes, one ZEO.

Worker A owns EMC,TPC, worker B owns HLT; both share the data directory and the
notice address (A binds it, B goes on without notices on its short interval).
Every snapshot gets exactly one record, and each worker's count of processed
snapshots equals the files of its own subsystems, so none was processed by
both. Then A is killed (SIGKILL): ``/api/status`` shows it dead (and processing
dead) within ``status.dead_seconds`` while B goes on processing new snapshots
and nobody processes A's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read
from tests.processing_helpers import T0, free_port, wait_for, write_snapshot
from tests.unit.test_web_support import BIN, _port_open, add_user, http_ok, stop_process
from webapp import users

pytestmark = pytest.mark.integration

RUN = 1
OWNED = {"a": ("EMC", "TPC"), "b": ("HLT",)}


def hist(k: int) -> Histogram:
    counts = np.array([0.0, 10.0 * (k + 1), 5.0 * (k + 1), 0.0])
    h = Histogram.empty("events", [Axis.regular(2, 0, 1)], "TH1D")
    h.values = np.asfortranarray(counts)
    h.entries = float(counts.sum())
    h.stats = h.compute_stats()
    return h


def add_snapshots(data: Path, subsystems, first: int, count: int) -> None:
    for k in range(first, first + count):
        for name in subsystems:
            write_snapshot(data, RUN, name, T0 + 60 * k, [hist(k)])


def files(data: Path, subsystem: str) -> int:
    return len(list((data / f"Run{RUN}" / subsystem).glob("*.root")))


def records(db) -> dict[str, int]:
    def work(ow):
        run = ow.runs.get(RUN)
        return {n: len(s.snapshots) for n, s in run.subsystems.items()} if run else {}

    return read(db, work)


def status(url: str, token: str) -> dict:
    request = urllib.request.Request(
        url + "/api/status", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def workers(url: str, token: str) -> dict[str, dict]:
    return {w["name"]: w for w in status(url, token)["workers"]}


@pytest.fixture
def site(tmp_path):
    data, fs = tmp_path / "data", tmp_path / "ow.fs"
    add_snapshots(data, ("EMC", "TPC", "HLT"), 0, 3)
    db = open_db(f"file://{fs}")
    try:
        add_user(db, "shifter")
        token = users.issue_token(db, "shifter")
    finally:
        db.close()
    zeo_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        "OVERWATCH_PROCESSING__INTERVAL": "0.5",
        "OVERWATCH_STATUS__LATE_SECONDS": "1.5",
        "OVERWATCH_STATUS__DEAD_SECONDS": "3",
    }
    children: dict[str, subprocess.Popen] = {}

    def start(name: str, *argv: str, **extra: str) -> subprocess.Popen:
        with (tmp_path / f"{name}.log").open("wb") as log:
            children[name] = subprocess.Popen(
                argv, cwd=tmp_path, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
            )
        return children[name]

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    try:
        start("zeo", str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", str(fs))
        wait_for(lambda: _port_open(zeo_port), 30, "the ZEO server")
        uri = f"zeo://127.0.0.1:{zeo_port}"
        url = f"http://127.0.0.1:{web_port}"
        start("web", str(BIN / "overwatch"), "web", "--db", uri, "--data-dir", str(data),
              "--host", "127.0.0.1", "--port", str(web_port), "--workers", "1")  # fmt: skip
        for name, owned in OWNED.items():  # A first: it holds the notice address
            start(name, str(BIN / "overwatch"), "process", "--db", uri, "--data-dir", str(data),
                  "--subsystems", ",".join(owned), "--worker", name,
                  OVERWATCH_PROCESSING__EVENTS_ADDRESS=f"tcp://127.0.0.1:{free_port()}")  # fmt: skip
            wait_for(lambda n=name: "as worker" in log(n) or children[n].poll() is not None,
                     30, f"worker {name} to start")  # fmt: skip
            assert children[name].poll() is None, log(name)
        wait_for(lambda: http_ok(url + "/healthz"), 60, "the web server")
        yield data, uri, url, token, children, log
    finally:
        for child in children.values():
            stop_process(child)


def test_two_workers_process_each_snapshot_once_and_a_killed_one_shows_dead(site) -> None:
    data, uri, url, token, children, log = site
    # B found the notice address taken: it takes the notices A relays on an address of its own.
    assert "taking those it relays" in log("b")
    db = open_db(uri)
    try:
        expected = {name: files(data, name) for name in ("EMC", "TPC", "HLT")}
        wait_for(lambda: records(db) == expected, 30, "the first snapshots processed")
        add_snapshots(data, ("EMC", "TPC", "HLT"), 3, 2)
        expected = {name: 5 for name in expected}
        wait_for(lambda: records(db) == expected, 30, "the new snapshots processed")

        def counted() -> dict[str, int]:
            return {n: w["processed"] for n, w in workers(url, token).items()}

        # Each worker processed exactly the files of its own subsystems: none twice.
        wait_for(lambda: counted() == {"a": 10, "b": 5}, 15, "the workers' heartbeats")
        rows = workers(url, token)
        assert {n: (w["status"], w["owns"]) for n, w in rows.items()} == {
            "a": ("alive", "EMC,TPC"), "b": ("alive", "HLT"),
        }  # fmt: skip
        assert status(url, token)["processing"]["status"] != "dead"
        # The second worker was refused: an alive one owns TPC.
        refused = subprocess.run(
            [str(BIN / "overwatch"), "process", "--once", "--db", uri, "--data-dir", str(data),
             "--subsystems", "TPC,ITS"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "worker 'a'" in refused.stderr

        children["a"].send_signal(signal.SIGKILL)
        children["a"].wait(10)
        wait_for(lambda: workers(url, token)["a"]["status"] == "dead", 15, "A shown dead")
        shown = status(url, token)
        assert shown["processing"]["status"] == "dead"
        assert {w["name"]: w["status"] for w in shown["workers"]}["b"] == "alive"

        add_snapshots(data, ("HLT", "EMC"), 5, 2)  # B goes on; nobody processes EMC now
        wait_for(lambda: records(db).get("HLT") == 7, 20, "B to process new snapshots")
        wait_for(lambda: workers(url, token)["b"]["processed"] == 7, 10, "B's heartbeat")
        assert records(db)["EMC"] == 5
        assert children["b"].poll() is None, log("b")
    finally:
        db.close()

"""Eight concurrent slice requests to a real ``overwatch web`` (gunicorn, 2 workers, ZEO)
while processing writes and processes new snapshots of the same run.

Every request must succeed, every histogram served must equal the independent
uproot subtraction of the snapshot files, a slice asked for in one worker must
be served by id by any worker, and no error may reach a user or the server log.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from overwatch.store.db import open_db
from processing.analysis.live import load_engine
from processing.pipeline import Pipeline
from receivers.simulator import DetectorSimulator
from tests.processing_helpers import independent_slice, snapshot_path
from tests.unit.test_ondemand import RUN, process, simulate
from tests.unit.test_web_support import (
    BIN,
    _port_open,
    add_user,
    free_port,
    http_ok,
    stop_process,
    wait_until,
)
from webapp import users

pytestmark = pytest.mark.integration


@dataclass
class Site:
    url: str
    token: str
    data_dir: Path
    db_uri: str
    sim: DetectorSimulator
    log: Path


@contextlib.contextmanager
def live_site(tmp_path: Path) -> Iterator[Site]:
    data_dir = tmp_path / "data"
    fs_path = tmp_path / "overwatch.fs"
    sim, _files = simulate(data_dir, snapshots=4)
    db = open_db(f"file://{fs_path}")
    try:
        process(data_dir, db)
        add_user(db, "expert")
        token = users.issue_token(db, "expert")
    finally:
        db.close()
    zeo_port, web_port = free_port(), free_port()
    zeo = subprocess.Popen(
        [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", str(fs_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web = None
    log = tmp_path / "web.log"
    try:
        wait_until(lambda: _port_open(zeo_port), 60, "the ZEO server")
        uri = f"zeo://127.0.0.1:{zeo_port}"
        with log.open("wb") as stream:
            web = subprocess.Popen(
                [str(BIN / "overwatch"), "web", "--db", uri, "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--port", str(web_port), "--workers", "2"],
                cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: web.poll() is not None or http_ok(url + "/healthz"), 60, "the web app")
        assert web.poll() is None, log.read_text()
        yield Site(url, token, data_dir, uri, sim, log)
    finally:
        if web is not None:
            stop_process(web)
        stop_process(zeo)


def call(site: Site, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        site.url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")}


def keep_processing(site: Site, stop: threading.Event, done: list[int]) -> None:
    """New snapshots of every subsystem, each processed at once (as the scheduler would)."""
    db = open_db(site.db_uri)
    try:
        pipeline = Pipeline(site.data_dir, db, checks=load_engine())
        while not stop.is_set() and done[0] < 6:
            simulate(site.data_dir, simulator=site.sim, snapshots=1)
            report = pipeline.run_until_idle()
            assert not report.failed, report.failed
            done[0] += report.processed
    finally:
        db.close()


REQUESTS = [
    ("EMC", {"start": 1, "end": 3}),
    ("EMC", {"start": 1, "end": 3, "options": {"scale_by_events": True}}),
    ("EMC", {"start": 0, "end": 3, "options": {"hot_channel_threshold": 5}}),
    ("EMC", {"start": 0, "end": 3, "options": {"hot_channel_threshold": 50}}),
    ("TPC", {"start": 1, "end": 2}),
    ("TPC", {"preset": "last:2"}),  # the newest snapshots, while new ones arrive
    ("HLT", {"start": 0, "end": 2}),
    ("HLT", {"start": 2, "end": 3}),
]
CHECKED = {
    "EMC": ["EMCal/SM03/cellHits", "EMCTrigger/events"],
    "TPC": ["TPC/trackPtEtaPhi", "events"],
    "HLT": ["HLT/triggerClasses", "events"],
}


def test_eight_concurrent_slices_while_processing_runs(tmp_path: Path) -> None:
    with live_site(tmp_path) as site:
        stop, processed = threading.Event(), [0]
        worker = threading.Thread(target=keep_processing, args=(site, stop, processed))
        answers: list[tuple[int, dict] | None] = [None] * len(REQUESTS)
        barrier = threading.Barrier(len(REQUESTS))

        def ask(i: int) -> None:
            subsystem, body = REQUESTS[i]
            barrier.wait(30)
            answers[i] = call(site, f"/api/runs/{RUN}/{subsystem}/slices", body)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(REQUESTS))]
        worker.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        wait_until(lambda: processed[0] >= 3 or not worker.is_alive(), 120, "processing")
        stop.set()
        worker.join(120)
        assert processed[0] >= 3  # processing really ran alongside the requests

        for (subsystem, body), answer in zip(REQUESTS, answers, strict=True):
            assert answer is not None and answer[0] == 201, (subsystem, body, answer)
            data = answer[1]
            interval = data["interval"]
            start, end = interval["start"], interval["end"]
            first = None if start is None else snapshot_path(site.data_dir, RUN, subsystem, start)
            last = snapshot_path(site.data_dir, RUN, subsystem, end)
            urls = {h["path"]: h["url"] for h in data["histograms"]}
            for path in CHECKED[subsystem]:
                for _ in range(2):  # twice: either worker may answer, by id
                    status, obj = call(site, urls[path])
                    assert status == 200, (path, obj)
                    expected = independent_slice(first, last, path)["values"].ravel(order="F")
                    if (
                        body.get("options", {}).get("scale_by_events")
                        and path != "EMCTrigger/events"
                    ):
                        expected = expected / data["n_events"]
                    np.testing.assert_allclose(obj["fArray"], expected, rtol=1e-12, err_msg=path)
            status, again = call(site, data["url"])
            assert status == 200 and again["id"] == data["id"]
        ids = {answer[1]["id"] for answer in answers}
        assert len(ids) == len(REQUESTS)  # other options or intervals: other slices
        emc5, emc50 = answers[2][1], answers[3][1]
        assert emc5["groups"]["SM03"] == "Bad" and emc50["groups"]["SM03"] == "Good"
        time.sleep(0.2)  # let the workers flush their log lines
        text = site.log.read_text()
        assert "Traceback" not in text and "error while serving" not in text, text[-3000:]

"""Shared builders of the web tests (settings, app, users, sign-in, stored runs), and their tests.

Other ``test_web_*`` modules import from here; the few tests below check that
the builders produce what the web app reads (so a broken builder fails here,
by name, rather than as a puzzling failure elsewhere).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import ZODB
from flask import Flask
from flask.testing import FlaskClient

from overwatch import rootio
from overwatch.config import Settings, load_settings
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, overwatch_root, transact
from overwatch.store.layout import atomic_write
from overwatch.store.models import Run, SnapshotRecord, Subsystem
from overwatch.timestamps import from_unix, snapshot_relpath
from webapp import users
from webapp.app import create_app

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
#: 2025-11-22 10:00:00 UTC: a fixed run start in the past, so file names are predictable.
T0 = 1_763_805_600.0


def make_settings(tmp_path: Path, **web: object) -> Settings:
    """Default settings (no user config files), with the data dir and key file under tmp_path."""
    settings = load_settings(search_user_dirs=False, env={})
    web_values = {"secret_key_file": str(tmp_path / "secret.key"), **web}
    return dataclasses.replace(
        settings,
        data=dataclasses.replace(settings.data, data_dir=str(tmp_path / "data")),
        database=dataclasses.replace(settings.database, uri=f"file://{tmp_path / 'ow.fs'}"),
        web=dataclasses.replace(settings.web, **web_values),
    )


def make_app(tmp_path: Path, db: ZODB.DB | None = None, **web: object) -> tuple[Flask, ZODB.DB]:
    settings = make_settings(tmp_path, **web)
    db = db if db is not None else open_db("memory://")
    app = create_app(settings, db=db, data_dir=settings.data.data_dir, testing=True)
    return app, db


def csrf_from(html: bytes) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1).decode()


def login(client: FlaskClient, name: str, password: str = PASSWORD, **environ: str):
    """Sign in through the real form (GET for the CSRF token, then POST)."""
    token = csrf_from(client.get("/login").data)
    return client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token},
        environ_base=environ,
    )


def add_user(db: ZODB.DB, name: str = "alice", password: str = PASSWORD) -> str:
    users.add_user(db, name, password)
    return name


def tiny_snapshot(seed: int) -> bytes:
    """A small ROOT file with histograms in two directories and one at the top level."""
    rng = np.random.default_rng(seed)
    hists = []
    for path in ("EMCal/cell hits", "EMCal/SM00/amplitude", "Trigger/classes", "events"):
        h = Histogram.empty(path, [Axis.regular(20, 0.0, 1.0)], "TH1F")
        h.fill(rng.random(50 + seed))
        hists.append(h)
    return rootio.to_bytes(hists)


def store_snapshot(
    db: ZODB.DB, data_dir: Path, run: int, subsystem: str, timestamp: float, payload: bytes
) -> str:
    """Write a snapshot file and record it (as processing would) in the database."""
    relpath = snapshot_relpath(run, subsystem, from_unix(timestamp))
    atomic_write(Path(data_dir) / relpath, payload, fsync=False)
    n = len(rootio.read_histograms(payload).histograms)

    def work(root: dict) -> None:
        runs = overwatch_root(root).runs
        if run not in runs:
            runs[run] = Run(run)
        subsystems = runs[run].subsystems
        if subsystem not in subsystems:
            subsystems[subsystem] = Subsystem(run, subsystem)
        sub = subsystems[subsystem]
        sub.snapshots[timestamp] = SnapshotRecord(timestamp, relpath, n, "", len(payload))
        sub.start = min(sub.start or timestamp, timestamp)
        sub.end = max(sub.end, timestamp)

    transact(db, work)
    return relpath


def test_store_snapshot_is_listed_by_the_api(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    relpath = store_snapshot(db, data_dir, 7, "EMC", T0, tiny_snapshot(1))
    assert relpath == "Run7/EMC/EMChists.2025_11_22_10_00_00.root"
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    detail = client.get("/api/runs/7").get_json()
    assert detail["run"] == 7
    assert detail["subsystems"]["EMC"]["snapshots"] == 1
    files = client.get("/api/runs/7/EMC/snapshots").get_json()["snapshots"]
    assert [f["filename"] for f in files] == [relpath]
    assert files[0]["url"] == f"/download/{relpath}"


def test_login_helper_signs_in_and_csrf_field_is_found(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db, "bob")
    client = app.test_client()
    response = login(client, "bob")
    assert response.status_code == 302
    assert response.headers["Location"] == "/runs"
    assert client.get("/runs").status_code == 200


# --------------------------------------------------------------------------- processed runs

#: Real ROOT files written by ROOT itself, in the ``shared`` folder beside the repository.
SAMPLES_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "root-samples"
#: Subsystem name -> sample file served as that subsystem's snapshot (every histogram class).
SAMPLE_SUBSYSTEMS = {
    "HEP": "uproot-hepdata-example.root",  # TH1F, TH2F, TProfile
    "PRF": "uproot-issue-227a.root",  # TProfile2D
    "QA": "uproot-issue-880.root",  # 200 TH1D/TH2D and a TH1I
    "LAB": "uproot-issue33.root",  # TH1F with bin labels
    "VAR": "uproot-issue-722.root",  # TH1D with variable binning
}
SAMPLE_RUN = 500


def generated_snapshot() -> bytes:
    """Classes no sample holds: TH3F, and a TH2D with one variable and one regular axis."""
    rng = np.random.default_rng(5)
    h3 = Histogram.empty(
        "volume/xyz",
        [Axis.regular(6, -3, 3), Axis.regular(5, -3, 3), Axis.regular(4, 0, 4)],
        "TH3F",
    )
    h3.fill(rng.normal(size=800), rng.normal(size=800), rng.uniform(0, 4, 800))
    h2 = Histogram.empty(
        "volume/variable xy",
        [Axis.from_edges([0, 1, 2, 4, 8, 16]), Axis.regular(8, -1, 1)],
        "TH2D",
        weighted=True,
    )
    h2.fill(rng.exponential(4, 500), rng.uniform(-1, 1, 500), weights=rng.uniform(0.5, 2, 500))
    return rootio.to_bytes([h3, h2])


def process(data_dir: Path, db: ZODB.DB) -> None:
    """One processing pass over everything on disk (what ``overwatch process --once`` does)."""
    from processing.pipeline import Pipeline

    report = Pipeline(data_dir, db).run_until_idle()
    assert not report.failed, report.failed


def write_snapshot(
    data_dir: Path, run: int, subsystem: str, timestamp: float, payload: bytes
) -> str:
    relpath = snapshot_relpath(run, subsystem, from_unix(timestamp))
    atomic_write(Path(data_dir) / relpath, payload, fsync=False)
    return relpath


def build_sample_run(data_dir: Path, db: ZODB.DB, run: int = SAMPLE_RUN) -> dict[str, str]:
    """A processed run whose subsystems are the sample files; returns subsystem -> snapshot file."""
    files = {
        name: write_snapshot(data_dir, run, name, T0, (SAMPLES_DIR / sample).read_bytes())
        for name, sample in SAMPLE_SUBSYSTEMS.items()
    }
    files["GEN"] = write_snapshot(data_dir, run, "GEN", T0, generated_snapshot())
    process(data_dir, db)
    return files


def build_simulated_run(
    data_dir: Path,
    db: ZODB.DB,
    run: int = 1,
    subsystems: tuple[str, ...] = ("EMC", "TPC", "HLT"),
    snapshots: int = 3,
    step: float = 60.0,
    start: float | None = None,
    simulator=None,
) -> dict[str, list[str]]:
    """A processed run from the detector simulator: ``snapshots`` snapshots per subsystem.

    ``simulator`` (a ``DetectorSimulator`` of ``run``) lets the caller go on with
    the same detectors afterwards, e.g. to write live snapshots.
    """
    from receivers.simulator import DetectorSimulator

    start = float(int(time.time()) - snapshots * step) if start is None else start
    if simulator is None:
        simulator = DetectorSimulator(
            subsystems=list(subsystems), start_time=start, seed=3, run=run
        )
    files: dict[str, list[str]] = {name: [] for name in subsystems}
    for _ in range(snapshots):
        simulator.advance(step)
        for name in subsystems:
            files[name].append(
                write_snapshot(data_dir, run, name, simulator.now, simulator.payload(name))
            )
    process(data_dir, db)
    return files


# --------------------------------------------------------------------------- a real server

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (graceful), then SIGKILL if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def overwatch(*args: str, cwd: Path, stdin: str | None = None) -> str:
    """Run the real ``overwatch`` command; fail the test with its stderr if it fails."""
    done = subprocess.run(
        [str(BIN / "overwatch"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"overwatch {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@dataclasses.dataclass
class Site:
    url: str
    token: str
    password: str
    data_dir: Path
    db_uri: str
    web: subprocess.Popen
    log: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    notify_address: str = ""  # where processing hears notices ("" without processing)
    processing: subprocess.Popen | None = None


@contextlib.contextmanager
def running_site(
    tmp_path: Path,
    workers: int = 2,
    *,
    processing: bool = False,
    snapshots: int = 3,
    step: float = 60.0,
    simulator=None,
    env_extra: dict[str, str] | None = None,
    prepare=None,
) -> Iterator[Site]:
    """Processed simulator data, a ZEO server and ``overwatch web`` (gunicorn) on free ports.

    Every process gets its own notice and live-event addresses (free ports), so
    sites of tests running at once never hear each other. With ``processing``,
    ``overwatch process`` runs too (woken by notices on ``Site.notify_address``)
    and publishes live events to the web server. ``prepare(data_dir, db)`` adds more
    data before the servers start.
    """
    data_dir = tmp_path / "data"
    fs_path = tmp_path / "overwatch.fs"
    notify = f"tcp://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": notify,
        "OVERWATCH_PROCESSING__EVENTS_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        **(env_extra or {}),
    }
    db = open_db(f"file://{fs_path}")
    try:
        subsystems = tuple(simulator.subsystems) if simulator is not None else ("EMC", "TPC", "HLT")
        build_simulated_run(data_dir, db, run=1, subsystems=subsystems, snapshots=snapshots,
                            step=step, simulator=simulator)  # fmt: skip
        if prepare is not None:
            prepare(data_dir, db)
        add_user(db, "shifter")
        token = users.issue_token(db, "shifter")
    finally:
        db.close()
    zeo_port, web_port = free_port(), free_port()
    zeo = subprocess.Popen(
        [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", str(fs_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web = worker = None
    log = tmp_path / "web.log"
    try:
        wait_until(lambda: _port_open(zeo_port), 60, "the ZEO server")
        uri = f"zeo://127.0.0.1:{zeo_port}"
        with log.open("wb") as stream:
            web = subprocess.Popen(
                [str(BIN / "overwatch"), "web", "--db", uri, "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--port", str(web_port), "--workers", str(workers)],
                cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        if processing:
            with (tmp_path / "processing.log").open("wb") as stream:
                worker = subprocess.Popen(
                    [str(BIN / "overwatch"), "process", "--db", uri, "--data-dir", str(data_dir)],
                    cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
        url = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: web.poll() is not None or http_ok(url + "/healthz"), 60, "the web app")
        assert web.poll() is None, log.read_text()
        yield Site(url, token, PASSWORD, data_dir, uri, web, log, env,
                   notify if processing else "", worker)  # fmt: skip
    finally:
        if worker is not None:
            stop_process(worker)
        if web is not None:
            stop_process(web)
        stop_process(zeo)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0

"""The web server while its database server is down (issue 13, defect 7).

On both shared backends: a real ZEO server (``runzeo``), and a real PostgreSQL
server (the session's, stopped with ``pg_ctl stop -m fast``; RelStorage's
``postgresql://``). The server is stopped under a real ``overwatch web``:
``/healthz`` must say so (it used to answer "reachable" from the client cache),
and requests that need the database must answer 503 with a message within
``web.database_timeout`` (they used to wait 30 s each, holding a thread). Once
the server is back on the same port, both answer 200 again by themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from overwatch.config import WebSettings
from overwatch.store.db import open_db
from tests.postgres_support import PostgresServer
from tests.unit.test_web_support import (
    BIN,
    _port_open,
    add_user,
    build_simulated_run,
    free_port,
    http_ok,
    stop_process,
    wait_until,
)
from webapp import users

pytestmark = pytest.mark.integration

TIMEOUT = WebSettings.database_timeout  # the default, which the server runs with
SLACK = 1.5  # seconds for HTTP, Python and a loaded machine on top of the timeout


class Zeo:
    """``runzeo`` on a fixed port and file, stopped and started again by the test."""

    def __init__(self, fs_path: Path, port: int) -> None:
        self.fs_path, self.port = fs_path, port
        self.uri = f"zeo://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "runzeo"), "-a", f"127.0.0.1:{self.port}", "-f", str(self.fs_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _port_open(self.port), 60, "the ZEO server")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


class Postgres:
    """A fresh database on the session's PostgreSQL server, which the test stops and starts."""

    def __init__(self, server: PostgresServer, uri: str) -> None:
        self.server, self.uri = server, uri

    def start(self) -> None:
        if not self.server.running():
            self.server.start()  # the same port and data

    def stop(self) -> None:
        if self.server.running():
            self.server.stop()


Database = Zeo | Postgres


def fill(uri: str, data_dir: Path) -> str:
    """A processed run and a user in the database a URI names; the user's token."""
    db = open_db(uri)
    try:
        build_simulated_run(data_dir, db, run=1, subsystems=("EMC", "TPC"), snapshots=2)
        add_user(db, "shifter")
        return users.issue_token(db, "shifter")
    finally:
        db.close()


@pytest.fixture(params=["zeo", "postgresql"])
def prepared(request, tmp_path: Path) -> Iterator[tuple[Path, Database, str]]:
    """A processed run and a user in a shared database whose server is (not yet, or no longer) up.

    ZEO: a file written directly, for a ZEO server not started yet. PostgreSQL:
    written through the server, which is then stopped (and started again at the end).
    """
    data_dir = tmp_path / "data"
    if request.param == "zeo":
        fs_path = tmp_path / "overwatch.fs"
        token = fill(f"file://{fs_path}", data_dir)
        database: Database = Zeo(fs_path, free_port())
    else:
        database = Postgres(
            request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_uri")
        )
        token = fill(database.uri, data_dir)
        database.stop()
    try:
        yield data_dir, database, token
    finally:
        if isinstance(database, Zeo):
            database.stop()
        else:
            database.start()  # the session's server is back for the next test


@contextlib.contextmanager
def web_server(tmp_path: Path, data_dir: Path, zeo: Database) -> Iterator[tuple[str, Path]]:
    """``overwatch web`` with the default options (two workers, each with its own client)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OVERWATCH_")},
        "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        "OVERWATCH_PROCESSING__EVENTS_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
    }
    port, log = free_port(), tmp_path / "web.log"
    with log.open("wb") as stream:
        web = subprocess.Popen(
            [str(BIN / "overwatch"), "web", "--db", zeo.uri,
             "--data-dir", str(data_dir), "--port", str(port)],
            cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_until(lambda: web.poll() is not None or _port_open(port), 60, "the web server")
        assert web.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop_process(web)


@pytest.fixture()
def site(tmp_path: Path, prepared) -> Iterator[tuple[str, str, Database, Path]]:
    data_dir, zeo, token = prepared
    zeo.start()
    with web_server(tmp_path, data_dir, zeo) as (url, log):
        wait_until(lambda: http_ok(url + "/healthz"), 60, "the web app")
        yield url, token, zeo, log


def timed(url: str, token: str = "", accept: str = "application/json") -> tuple[int, str, float]:
    """Status, body and seconds of one request (a generous client timeout: we measure)."""
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    start = time.monotonic()
    try:
        with urlopen(Request(url, headers=headers), timeout=60) as response:
            status, body = response.status, response.read().decode()
    except HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body, time.monotonic() - start


def recovered(url: str, token: str, paths: list[str], rounds: int = 5) -> None:
    """Wait (bounded) until ``rounds`` rounds in a row answer 200 on every path.

    Rounds in a row: each request may land on either worker, and each worker's
    database client reconnects by itself, a second or two apart.
    """
    streak = [0]

    def round_ok() -> bool:
        ok = all(timed(url + path, token)[0] == 200 for path in paths)
        streak[0] = streak[0] + 1 if ok else 0
        return streak[0] >= rounds

    wait_until(round_ok, 30, f"{rounds} rounds of 200 on {paths}")


def test_database_down_is_reported_fast_and_recovery_is_automatic(site) -> None:
    url, token, zeo, log = site
    # Warm every cache first: this is what let /healthz answer "reachable" with ZEO gone.
    paths = ["/api/runs", "/api/runs/1", "/api/runs/1/EMC/view"]
    for path in ["/healthz", *paths]:
        status, body, _ = timed(url + path, token)
        assert status == 200, (path, body)

    zeo.stop()
    status, body, seconds = timed(url + "/healthz")
    assert status == 503, body
    assert "unreachable" in json.loads(body)["error"], body
    assert seconds < TIMEOUT + SLACK, seconds
    for path in [*paths, "/api/runs/1/TPC/view"]:  # cached or not
        status, body, seconds = timed(url + path, token)
        assert status == 503, (path, body)
        assert "database is unreachable" in json.loads(body)["error"], body
        assert seconds < TIMEOUT + SLACK, (path, seconds)
    status, body, seconds = timed(url + "/runs/1/EMC", token, accept="text/html")
    assert status == 503 and "database is unreachable" in body, body
    assert seconds < TIMEOUT + SLACK, seconds
    assert "Traceback" not in log.read_text()

    zeo.start()  # same port, same data
    recovered(url, token, ["/healthz", *paths, "/api/runs/1/TPC/view", "/runs/1/EMC"])


def test_a_web_server_started_while_the_database_is_down_answers_503_then_recovers(
    tmp_path: Path, prepared
) -> None:
    data_dir, zeo, token = prepared
    with web_server(tmp_path, data_dir, zeo) as (url, log):
        for path in ("/healthz", "/api/runs", "/api/runs/1/EMC/view"):
            status, body, seconds = timed(url + path, token)
            assert status == 503 and "unreachable" in json.loads(body)["error"], body
            assert seconds < TIMEOUT + SLACK, (path, seconds)
        zeo.start()
        recovered(url, token, ["/healthz", "/api/runs", "/api/runs/1/EMC/view"])
        assert "Traceback" not in log.read_text()

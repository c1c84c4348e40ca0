"""``overwatch web`` on a ``file://`` database, the shipped default (issue 13, defect 1).

A FileStorage belongs to one process. The web server then runs one gunicorn
worker (with threads) and says so; a storage another process holds is one clear
error at start (the URI, ``zeo://`` instead, exit code 2), never a 500 per request.
The server runs with the default options: the database URI of
``config/overwatch.yaml`` (``file://data/overwatch.fs``, relative to the working
directory) and the default number of workers.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener, urlopen

import pytest

from overwatch.config import DatabaseSettings
from overwatch.store.db import open_db
from tests.unit.test_web_support import (
    BIN,
    PASSWORD,
    add_user,
    build_simulated_run,
    free_port,
    http_ok,
    stop_process,
    wait_until,
)
from webapp import users

pytestmark = pytest.mark.integration

DEFAULT_URI = DatabaseSettings.uri  # file://data/overwatch.fs


def isolated_env() -> dict[str, str]:
    """This test's own live-event and notice addresses, nothing else changed."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OVERWATCH_")},
        "OVERWATCH_RECEIVER__NOTIFY_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        "OVERWATCH_PROCESSING__EVENTS_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
    }


def prepare(cwd: Path) -> str:
    """A processed run and a user in ``<cwd>/data/overwatch.fs``; returns an API token."""
    assert DEFAULT_URI == "file://data/overwatch.fs"
    db = open_db(f"file://{cwd / 'data' / 'overwatch.fs'}")
    try:
        build_simulated_run(cwd / "data", db, run=1, subsystems=("EMC", "TPC"), snapshots=2)
        add_user(db, "shifter")
        return users.issue_token(db, "shifter")
    finally:
        db.close()


def start_web(cwd: Path, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("wb") as stream:
        return subprocess.Popen(
            [str(BIN / "overwatch"), "web", "--port", str(port)],
            cwd=cwd, stdout=stream, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen, Path]]:
    token = prepare(tmp_path)
    port, log = free_port(), tmp_path / "web.log"
    web = start_web(tmp_path, port, log, isolated_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: web.poll() is not None or http_ok(url + "/healthz"), 60, "the web app")
        assert web.poll() is None, log.read_text()
        yield url, token, web, log
    finally:
        stop_process(web)


def status_of(opener, request: Request | str) -> int:
    try:
        with opener.open(request, timeout=30) as response:
            response.read()
            return response.status
    except HTTPError as error:
        return error.code


def sign_in(url: str) -> tuple[object, list[int]]:
    jar = CookieJar()
    opener = build_opener(HTTPCookieProcessor(jar))
    try:
        with opener.open(url + "/login", timeout=30) as response:
            form = response.read().decode()
    except HTTPError as error:
        return opener, [error.code]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    data = urlencode({"username": "shifter", "password": PASSWORD, "csrf_token": token})
    landed = status_of(opener, Request(url + "/login", data=data.encode()))
    return opener, [200, landed]


def test_default_options_serve_every_request(served) -> None:
    url, token, web, log = served
    statuses: list[int] = []
    plain = build_opener()
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(7):  # fresh connections: with two workers, each lands on either
        opener, codes = sign_in(url)
        statuses += codes
        statuses.append(status_of(opener, url + "/runs"))
        statuses.append(status_of(opener, url + "/runs/1/EMC"))
        statuses.append(status_of(plain, url + "/healthz"))
        statuses.append(status_of(plain, Request(url + "/api/runs", headers=bearer)))
        statuses.append(status_of(plain, Request(url + "/api/runs/1", headers=bearer)))
        statuses.append(status_of(plain, Request(url + "/api/runs/1/TPC/view", headers=bearer)))
    assert len(statuses) >= 48
    assert [code for code in statuses if code >= 500] == [], statuses
    assert set(statuses) == {200}, statuses
    # One process holds the FileStorage, and the log says why.
    pid = web.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    text = log.read_text()
    assert "file://" in text and "1 worker" in text and "zeo://" in text, text


def test_a_storage_held_by_another_web_server_is_one_clear_error(served, tmp_path: Path) -> None:
    url, _token, _web, _log = served
    log = tmp_path / "second.log"
    second = start_web(tmp_path, free_port(), log, isolated_env())
    try:
        assert second.wait(60) == 2, log.read_text()
    finally:
        stop_process(second)
    text = log.read_text()
    assert DEFAULT_URI in text and "zeo://" in text and "Traceback" not in text, text
    with urlopen(url + "/healthz", timeout=10) as response:  # the first one goes on
        assert response.status == 200


def test_a_storage_held_by_processing_is_one_clear_error(tmp_path: Path) -> None:
    prepare(tmp_path)
    env = isolated_env()
    processing = subprocess.Popen(  # the real `overwatch process` on the default database
        [str(BIN / "overwatch"), "process"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        started = processing.stdout.readline().decode()
        while started and not started.startswith("processing "):  # printed once it holds the db
            started = processing.stdout.readline().decode()
        assert started, "overwatch process stopped before serving"
        log = tmp_path / "web.log"
        web = start_web(tmp_path, free_port(), log, env)
        try:
            assert web.wait(60) == 2, log.read_text()
        finally:
            stop_process(web)
        assert processing.poll() is None  # and processing goes on
    finally:
        stop_process(processing)
    text = log.read_text()
    assert DEFAULT_URI in text and "zeo://" in text and "Traceback" not in text, text

"""``overwatch web`` as deployed: gunicorn workers, a ZEO server, real HTTP on loopback."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import signal
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode, urlparse
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest

from tests.unit.test_web_support import PASSWORD, overwatch, running_site, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("server")) as running:
        yield running


def connect(site) -> http.client.HTTPConnection:
    parsed = urlparse(site.url)
    return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)


def get(conn, path: str, **headers: str) -> tuple[int, dict, bytes]:
    conn.request("GET", path, headers=headers)  # sent as is: no client-side normalisation
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_gunicorn_runs_two_workers(site) -> None:
    pid = site.web.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 2, children
    assert "Using worker: gthread" in site.log.read_text()


def test_health_and_json_over_keep_alive(site) -> None:
    conn = connect(site)
    status, _headers, body = get(conn, "/healthz")
    assert status == 200 and json.loads(body)["database"] == "reachable"
    auth = {"Authorization": f"Bearer {site.token}"}
    status, _headers, body = get(conn, "/api/runs", **auth)
    assert status == 200 and [r["run"] for r in json.loads(body)["runs"]] == [1]
    url = "/api/runs/1/EMC/histograms/EMCal/SM00/cellHits?slice=latest"
    status, headers, body = get(conn, url, **auth, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    obj = json.loads(gzip.decompress(body))
    assert obj["_typename"] == "TH2F" and sum(obj["fArray"]) > 0
    status, _headers, body = get(conn, url, **auth, **{"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    conn.close()


def test_anonymous_requests_are_refused(site) -> None:
    conn = connect(site)
    status, headers, body = get(conn, "/api/runs")
    assert status == 401 and "error" in json.loads(body)
    status, headers, _body = get(conn, "/runs/1/EMC")
    assert status == 302 and headers["Location"].startswith("/login?next=")
    status, _headers, body = get(conn, "/api/runs", Authorization="Bearer forged")
    assert status == 401
    conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/download/Run1/EMC/../../.secret_key",
        "/download/Run1/EMC/..%2F..%2F.secret_key",
        "/download/Run1/EMC/%2e%2e/%2e%2e/.secret_key",
        "/download/%2e%2e/.secret_key",
        "/download/..%5C.secret_key",
        "/download//etc/passwd",
        "/download/%2Fetc%2Fpasswd",
        "/download/Run1/EMC/x%00.root",
        "/api/runs/1/EMC/histograms/..%2F..%2F.secret_key",
        "/api/runs/1/EMC/histograms/%2e%2e/%2e%2e/.secret_key",
        "/static/..%2F..%2Fdata%2F.secret_key",
    ],
)
def test_traversal_over_real_http(site, path: str) -> None:
    secret = (site.data_dir / ".secret_key").read_bytes().strip()
    conn = connect(site)
    status, _headers, body = get(conn, path, Authorization=f"Bearer {site.token}")
    conn.close()
    assert status in (400, 404), (path, status)
    assert secret not in body and b"root:" not in body


def test_snapshot_download_over_http(site) -> None:
    conn = connect(site)
    auth = {"Authorization": f"Bearer {site.token}"}
    status, _headers, body = get(conn, "/api/runs/1/TPC/snapshots", **auth)
    latest = json.loads(body)["snapshots"][-1]
    status, headers, body = get(conn, latest["url"], **auth)
    conn.close()
    assert status == 200
    assert body == (site.data_dir / latest["filename"]).read_bytes()
    assert headers["Content-Type"] == "application/octet-stream"


def test_a_user_added_with_the_cli_can_sign_in_at_once(site, tmp_path: Path) -> None:
    overwatch("users", "add", "nightshift", "--db", site.db_uri, "--password-stdin",
              cwd=tmp_path, stdin=PASSWORD + "\n")  # fmt: skip
    jar = CookieJar()
    opener = build_opener(HTTPCookieProcessor(jar))
    form = opener.open(site.url + "/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    data = urlencode({"username": "nightshift", "password": PASSWORD, "csrf_token": token})
    landed = opener.open(Request(site.url + "/login", data=data.encode()), timeout=30)
    assert urlparse(landed.url).path == "/runs"
    assert b"ow-runs" in landed.read()
    cookie = next(c for c in jar if c.name == "overwatch_session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_sigterm_stops_the_server(tmp_path: Path) -> None:
    with running_site(tmp_path, workers=1) as running:
        running.web.send_signal(signal.SIGTERM)
        assert wait_until(lambda: running.web.poll() is not None, 30, "gunicorn to stop") is True
        assert running.web.returncode == 0

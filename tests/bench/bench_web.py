"""Web app throughput: histogram JSON against a static file of the same size.

A real deployment in miniature: a ZEO server, ``overwatch web`` (gunicorn,
2 workers x 4 threads) and one processed run holding a 100-bin TH1D. A
separate load-generator process runs 8 client threads, each with one
keep-alive connection and a bearer token, for a fixed time against

* ``/api/runs/<run>/<sys>/histograms/<path>``: the histogram's JSON
  (authentication, version look-up, per-process JSON cache), and
* ``/static/<file>``: a static file with exactly the same bytes, from the same server,

and reports completed requests per second. Neither asks for gzip, so both
bodies are the same size on the wire. ``wrk`` is used instead of the Python
load generator when it is installed (it costs the 2-core machine less CPU).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db
from overwatch.store.layout import atomic_write
from overwatch.timestamps import from_unix, snapshot_relpath

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STATIC_DIR = REPO / "webapp" / "static"
CLIENTS = 8
DURATION = 5.0
WARMUP = 1.0
HIST_PATH = "bench/h100"

LOAD_GENERATOR = textwrap.dedent(
    """
    import http.client, json, sys, threading, time
    host, port, path, token, clients, duration, warmup = sys.argv[1:8]
    port, clients, duration, warmup = int(port), int(clients), float(duration), float(warmup)
    headers = {"Authorization": "Bearer " + token}
    counts, failures = [0] * clients, [0] * clients
    start = time.monotonic() + warmup
    stop = start + duration

    def client(i):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if now >= start:
                if response.status == 200:
                    counts[i] += 1
                else:
                    failures[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"requests": sum(counts), "failures": sum(failures), "seconds": duration}))
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _http_status(url: str, token: str) -> int:
    import urllib.error
    import urllib.request

    try:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _prepare(tmp: Path) -> tuple[str, str]:
    """A processed run with one 100-bin TH1D, a user and a token; returns (db file, token)."""
    from processing.pipeline import Pipeline
    from webapp import users

    data_dir = tmp / "data"
    histogram = Histogram.empty(HIST_PATH, [Axis.regular(100, 0.0, 10.0)], "TH1D", title="bench")
    histogram.fill(np.random.default_rng(1).exponential(2.0, 100_000))
    stamp = time.time() - 60
    relpath = snapshot_relpath(1, "BEN", from_unix(stamp))
    atomic_write(data_dir / relpath, rootio.to_bytes([histogram]), fsync=False)
    fs_path = tmp / "overwatch.fs"
    db = open_db(f"file://{fs_path}")
    try:
        Pipeline(data_dir, db).run_until_idle()
        users.add_user(db, "bench", "bench password 123")
        token = users.issue_token(db, "bench")
    finally:
        db.close()
    return str(fs_path), token


def _load(host: str, port: int, path: str, token: str) -> float:
    """Completed requests per second against one URL, 8 keep-alive clients."""
    wrk = shutil.which("wrk")
    if wrk:
        done = subprocess.run(
            [wrk, "-t", "2", "-c", str(CLIENTS), "-d", f"{DURATION:.0f}s",
             "-H", f"Authorization: Bearer {token}", f"http://{host}:{port}{path}"],
            capture_output=True, text=True, timeout=DURATION + 60, check=True,
        )  # fmt: skip
        if "Non-2xx" in done.stdout:
            raise RuntimeError(f"failed requests against {path}:\n{done.stdout}")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_GENERATOR, host, str(port), path, token, str(CLIENTS),
         str(DURATION), str(WARMUP)],
        capture_output=True, text=True, timeout=DURATION + WARMUP + 60, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    if result["failures"]:
        raise RuntimeError(f"{result['failures']} failed requests against {path}")
    return result["requests"] / result["seconds"]


def run() -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="overwatch-bench-web-"))
    static_name = f".bench-{os.getpid()}.json"
    static_file = STATIC_DIR / static_name
    zeo = web = None
    try:
        fs_path, token = _prepare(tmp)
        zeo_port, web_port = _free_port(), _free_port()
        zeo = subprocess.Popen(
            [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", fs_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: _port_open(zeo_port), 60, "the ZEO server")
        log = (tmp / "web.log").open("wb")
        web = subprocess.Popen(
            [str(BIN / "overwatch"), "web", "--db", f"zeo://127.0.0.1:{zeo_port}",
             "--data-dir", str(tmp / "data"), "--host", "127.0.0.1", "--port", str(web_port),
             "--workers", "2", "--threads", "4"],
            cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{web_port}"
        json_path = f"/api/runs/1/BEN/histograms/{HIST_PATH}"
        _wait(lambda: _http_status(base + json_path, token) == 200, 90, "the web app")

        import urllib.request

        request = urllib.request.Request(
            base + json_path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        static_file.write_bytes(body)  # the very same bytes, served as a static file
        static_path = f"/static/{static_name}"
        assert _http_status(base + static_path, token) == 200

        json_rate = _load("127.0.0.1", web_port, json_path, token)
        static_rate = _load("127.0.0.1", web_port, static_path, token)
        return {
            "web_json_req_per_s": json_rate,
            "web_static_req_per_s": static_rate,
            "web_json_to_static_ratio": json_rate / static_rate,
            "web_json_body_bytes": float(len(body)),
        }
    finally:
        static_file.unlink(missing_ok=True)
        for process in (web, zeo):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")

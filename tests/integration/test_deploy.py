"""`overwatch deploy` of the example file (on free ports, a simulator as its source): every
program under supervisord, the demo's result (snapshots stored, processed, slices, JSON
served) from two workers on disjoint subsystems, and Ctrl-C stops every process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from overwatch.deploy import free_port

BIN = Path(sys.executable).parent
REPOSITORY = Path(__file__).resolve().parents[2]
SUBSYSTEMS = ("EMC", "TPC", "HLT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _deployment(tmp_path: Path) -> tuple[Path, dict]:
    """The shipped example with free ports, a temporary data directory and a simulator."""
    data = yaml.safe_load((REPOSITORY / "config" / "deploy.example.yaml").read_text())
    sender = f"tcp://127.0.0.1:{free_port()}"
    data["data_dir"] = str(tmp_path / "data")
    data["database"]["zeo"]["address"] = f"127.0.0.1:{free_port()}"
    for receiver in data["receivers"]:
        if receiver["pattern"] != "upload":
            receiver.update(pattern="req", connect=sender, interval=1.0)
    data["web"].update(port=free_port(), workers=1, threads=2)
    data["settings"]["receiver"]["notify_address"] = f"tcp://127.0.0.1:{free_port()}"
    data["settings"]["processing"] = {"interval": 2.0, "events_address":
                                      f"tcp://127.0.0.1:{free_port()}"}  # fmt: skip
    data["simulator"] = {"bind": sender, "subsystems": list(SUBSYSTEMS), "run": 1}
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def _overwatch(settings: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(BIN / "overwatch"), "--config", str(settings), *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return r.status, r.read()


def test_deploy_runs_every_program_serves_the_result_and_stops_on_ctrl_c(tmp_path) -> None:
    path, data = _deployment(tmp_path)
    data_dir = Path(data["data_dir"])
    url = f"http://127.0.0.1:{data['web']['port']}"
    deploy = subprocess.Popen(
        [str(BIN / "overwatch"), "deploy", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    pids: dict[str, int] = {}
    try:
        seen = ""
        deadline = time.monotonic() + 90
        while "Ctrl-C stops everything" not in seen and time.monotonic() < deadline:
            line = deploy.stdout.readline()
            if not line:
                break
            seen += line
        assert "Ctrl-C stops everything" in seen, seen
        assert f"web at {url}/" in seen
        expected = ["zeo", "simulator", "receiver-EMC", "receiver-TPC", "receiver-HLT",
                    "processing-calorimeter", "processing-tracking", "web"]  # fmt: skip
        assert f"programs: {', '.join(expected)}" in seen
        config = data_dir / "supervisord.conf"
        pids["supervisord"] = int((data_dir / "supervisord.pid").read_text())
        for name in expected:
            listed = subprocess.run(
                [str(BIN / "supervisorctl"), "-c", str(config), "pid", name],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            pids[name] = int(listed.stdout.strip())
            assert pids[name] > 0 and _alive(pids[name]), (name, listed.stdout)

        settings = data_dir / "overwatch.deploy.yaml"
        _overwatch(settings, "users", "add", "tester", "--password-stdin", stdin="secret-pw-1\n")
        token = _overwatch(settings, "users", "token", "tester")
        status, body = _get(f"{url}/healthz")
        assert status == 200, body
        # Every subsystem stored, processed by its own worker and sliced.
        deadline = time.monotonic() + 60
        while True:
            detail = json.loads(_get(f"{url}/api/runs/1", token)[1])["subsystems"]
            figures = {s: detail.get(s, {}) for s in SUBSYSTEMS}
            if all(
                f.get("snapshots", 0) >= 3 and f.get("slices", 0) >= 2 for f in figures.values()
            ):
                break
            assert time.monotonic() < deadline, figures
            time.sleep(1)
        for subsystem in SUBSYSTEMS:
            assert list((data_dir / "Run1" / subsystem).glob(f"{subsystem}hists.*.root"))
        view = json.loads(_get(f"{url}/api/runs/1/EMC/view?slice=latest", token)[1])
        assert view, view
        listing = json.loads(_get(f"{url}/api/runs/1/TPC/histograms", token)[1])["histograms"]
        quoted = urllib.request.quote(listing[0]["path"], safe="/")
        obj = json.loads(_get(f"{url}/api/runs/1/TPC/histograms/{quoted}?slice=latest", token)[1])
        assert obj["_typename"].startswith(("TH", "TProfile"))
        logs = {p.name for p in (data_dir / "logs").glob("*.log")}
        assert {f"{name}.log" for name in expected} <= logs

        deploy.send_signal(signal.SIGINT)
        rest, _ = deploy.communicate(timeout=90)
        assert deploy.returncode == 0, seen + rest
        assert "stopping every program" in rest
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [name for name, pid in pids.items() if _alive(pid)] == []
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
        for pid in pids.values():  # never leave a process behind a failed test
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

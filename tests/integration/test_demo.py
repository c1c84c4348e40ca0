"""`overwatch demo`: the whole chain under supervisord, checked from the outside.

Slow (a real ZEO server, simulator, three receivers, processing and gunicorn),
so one run covers both the timed smoke check and a clean Ctrl-C stop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from overwatch.demo import free_port

OVERWATCH = str(Path(sys.executable).parent / "overwatch")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (no pgrep on a bare machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def _demo_marks(data_dir: Path) -> list[str]:
    """What the command line of every process of a demo names: its data directory, or one
    of its loopback ports (the simulator's names no folder of the demo, only its port)."""
    config = (data_dir / "supervisord.conf").read_text()
    ports = set(re.findall(r"127\.0\.0\.1:(\d+)", config))
    return [str(data_dir), *(f"127.0.0.1:{port}" for port in sorted(ports))]


def _leftovers(marks: list[str], timeout: float = 30.0) -> list[str]:
    """Processes still naming one of ``marks`` after ``timeout`` seconds (none, if clean)."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted({c for mark in marks for c in _processes_mentioning(mark)})
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_demo_duration_serves_every_subsystem_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()
    demo = subprocess.Popen(
        [OVERWATCH, "demo", "--duration", "30", "--port", str(port), "--interval", "1",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # supervisord removes its pid file on a clean exit: read it while the demo runs.
        pid_file = data_dir / "supervisord.pid"
        deadline = time.monotonic() + 120
        while not pid_file.exists() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "supervisord wrote no pid file"
        supervisor_pid = int(pid_file.read_text().strip())
        marks = _demo_marks(data_dir)
        stdout, stderr = demo.communicate(timeout=240)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = stdout + stderr
    assert demo.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output
    # The shipped fault schedule is told at start and reaches the simulator.
    assert "simulated faults (" in output and "EMC dead_region (supermodule 7)" in output
    assert "--faults" in (data_dir / "supervisord.conf").read_text()
    simulator_log = (data_dir / "logs" / "simulator.log").read_text()
    assert "fault from minute 4 to minute 6: TPC rate_drop" in simulator_log
    assert re.search(r"login: demo\s+password: \S{8,}", output)
    for subsystem in ("EMC", "TPC", "HLT"):
        line = re.search(
            rf"^{subsystem}: snapshots (\d+), slices (\d+), histograms (\d+), json_served (\d+)",
            output,
            re.M,
        )
        assert line, output
        snapshots, slices, histograms, served = map(int, line.groups())
        assert snapshots >= 3 and slices >= 3 and histograms > 0 and served > 0
        assert list((data_dir / "Run1" / subsystem).glob(f"{subsystem}hists.*.root"))
    # supervisord and every program it started (the simulator included) are gone.
    assert not _alive(supervisor_pid)
    assert _leftovers(marks) == []


def test_demo_ctrl_c_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    port = free_port()
    demo = subprocess.Popen(
        [OVERWATCH, "demo", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "password:" not in seen and time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            seen += line
        assert "password:" in seen, seen
        supervisor_pid = int((data_dir / "supervisord.pid").read_text().strip())
        marks = _demo_marks(data_dir)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 0
        deadline = time.monotonic() + 30
        while _alive(supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(supervisor_pid)
        assert _leftovers(marks) == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()

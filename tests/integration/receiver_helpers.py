"""Shared pieces of the ingest tests: real senders on loopback, receivers in threads, polling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zmq

from overwatch import rootio
from overwatch.config import ReceiverSettings
from overwatch.histogram import Axis, Histogram
from receivers import wire
from receivers.zmq_receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / ".." / "shared" / "data" / "root-samples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def settings(**overrides) -> ReceiverSettings:
    """Receiver settings for tests: fast polling, short timeouts, no notices unless asked."""
    values = dict(
        interval=0.05, timeout=3.0, max_backoff=0.5, heartbeat_interval=0.2, notify_address=""
    )
    values.update(overrides)
    return ReceiverSettings(**values)


def make_payload(seed: int, n: int = 3, bins: int = 50) -> bytes:
    """A small, distinct ROOT file (n filled TH1F)."""
    rng = np.random.default_rng(seed)
    histograms = []
    for i in range(n):
        h = Histogram.empty(f"dir/h{i}", [Axis.regular(bins, 0.0, 1.0)], "TH1F")
        h.fill(rng.random(100))
        histograms.append(h)
    return rootio.to_bytes(histograms)


def header(
    run: int = 1, subsystem: str = "EMC", seq: int = 1, timestamp: float | None = None
) -> bytes:
    return wire.Header(
        run=run, subsystem=subsystem, mode="B", seq=seq, timestamp=timestamp
    ).encode()


class ScriptedRep:
    """A REP sender answering each request with the next scripted message.

    After the script it answers with a refusal ("script finished"), which a
    receiver counts and stores nothing for.
    """

    def __init__(self, messages: list[list[bytes]], endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.messages = list(messages)
        self.requests: list[bytes] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50, zmq.POLLIN):
                continue
            self.requests.append(self._socket.recv_multipart()[0])
            self.arrivals.append(time.monotonic())
            if self.messages:
                reply = self.messages.pop(0)
            else:
                reply = [wire.encode_refusal("script finished"), b""]
            self._socket.send_multipart(reply)

    @property
    def finished(self) -> bool:
        return not self.messages

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(linger=0)


class ScriptedPub:
    """A PUB sender publishing scripted messages, each repeated until it is taken out."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self._socket = zmq.Context.instance().socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._lock = threading.Lock()

    def send(self, frames: list[bytes]) -> None:
        with self._lock:
            self._socket.send_multipart(frames)

    def close(self) -> None:
        self._socket.close(linger=0)


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    """Run a receiver in a thread for the duration of the block; stop and join afterwards."""
    stop = threading.Event()
    thread = threading.Thread(target=receiver.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "receiver did not stop"


def stored_files(data_dir: Path, subsystem: str = "EMC") -> list[Path]:
    return sorted(data_dir.glob(f"Run*/{subsystem}/{subsystem}hists.*.root"))


def overwatch_process(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """Start ``overwatch ARGS`` as a real process (stdout piped, stderr to a log file)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(cwd / f"overwatch-{args[0]}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "overwatch.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        **kwargs,
    )
    process.log_file = log
    return process


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 30.0) -> str:
    """Read the process's stdout until a line starting with ``prefix`` (the ready signal)."""
    result: list[str] = []

    def reader() -> None:
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith(prefix):
                result.append(line)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise AssertionError(f"process did not print {prefix!r} within {timeout} s")
    return result[0]


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout:
        process.stdout.close()
    if getattr(process, "log_file", None):
        process.log_file.close()
    return process.returncode

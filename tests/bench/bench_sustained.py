"""Sustained load: 20 subsystems x 2,000 histograms, a snapshot of each every 10 s, for 5 minutes.

The whole data path as deployed, every part a real process on loopback:

- a sender (a thread of this process: the data source, not part of
  Overwatch) publishes on a ZeroMQ PUB socket one snapshot of each subsystem
  every :data:`PERIOD` seconds, the subsystems evenly staggered (one every
  0.5 s: 4,000 histograms/s). The payloads are ROOT files made before the
  timed part (``rootio.to_bytes`` of 2,000 histograms takes ~1.5 s), one
  cumulative series that serves every subsystem: snapshot k holds the fills
  of snapshots 0..k, so no counter ever goes down;
- ``overwatch receive --pattern sub --subsystem <all 20>``: one receiver
  process for the one sender, a receiver thread per subsystem
  (:mod:`receivers.commands`). Twenty receiver processes would hold ~75 MB
  each of mostly libraries (measured idle), 1.5 GB for a hash, a key-list
  check and a file write per snapshot; one process per sender is what a
  deployment with a sender serving many subsystems runs;
- ``overwatch process`` workers (:data:`WORKERS`, ``--share K/N``: the 20 names
  split 10/10) on a ZEO database (``runzeo``, as deployed), woken by the
  receivers' notices, with the default plugins and checks. Three of the names
  have built-in plugins (EMC, TPC, HLT); the series holds their events
  histograms and the EMC cell maps so their plugins and checks do real work.

Before the timed part every subsystem sends one snapshot of a warm-up run and
the bench waits until all are recorded: a fresh worker reads the histograms it
has never seen with uproot once (~7 s for 2,000) and imports its plugins, the
cost of a (re)start, printed apart as ``sustained_cold_start_s``; the figures
are of a running system. Figures (``run()``):

- ``sustained_hist_per_s``: histograms of the snapshots whose record was
  committed within the steady window (the timed run less its first round,
  a whole number of periods, so a system that keeps up counts exactly the
  offered 4,000/s, one that falls behind less);
- ``sustained_latency_p95_ms``: from the snapshot file written by the
  receiver (its mtime; it appears by rename right after) to its record seen
  committed in ZODB (polled every :data:`POLL` s, as bench_processing does),
  p95 over every snapshot of the timed run; every one must be recorded with
  all 2,000 histograms, else the bench fails;
- ``rss_mb``: peak over the run (sampled every second) of the summed VmRSS of
  every process of the system: receiver, workers, ZEO server and their
  children; the peaks per role are given too (``rss_<role>_mb``);
- ``stage_<stage>_ms``: where a worker's time goes per snapshot
  (:mod:`processing.timings`, logged by each worker at stop, averaged over the
  workers by snapshots): read, resets, cache, analysis, commit, other.

``OVERWATCH_BENCH_SUSTAINED_SECONDS`` shortens the timed part for trying it
out (default 300); ``OVERWATCH_BENCH_SUSTAINED_WORKERS`` sets the workers.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from overwatch import rootio, timestamps
from overwatch.histogram import Axis, Histogram
from overwatch.store.db import open_db, read
from processing.timings import STAGES
from receivers import wire

SUBSYSTEMS = (
    "EMC", "TPC", "HLT", "ITS", "TOF", "TRD", "PHS", "CPV", "HMP", "MCH",
    "MID", "MFT", "FT0", "FV0", "FDD", "ZDC", "ACO", "FMD", "PMD", "TST",
)  # fmt: skip
N_HISTOGRAMS = 2000
PERIOD = 10.0  # seconds between two snapshots of one subsystem
SECONDS = float(os.environ.get("OVERWATCH_BENCH_SUSTAINED_SECONDS", "300"))
WORKERS = int(os.environ.get("OVERWATCH_BENCH_SUSTAINED_WORKERS", "2"))
WARMUP_RUN, RUN = 1, 2
POLL = 0.025  # seconds between two looks at the database
RSS_EVERY = 1.0


# -- the payloads ------------------------------------------------------------------
def _histograms() -> list[Histogram]:
    """What the three built-in plugins read, then a detector-like mix up to 2,000."""
    made = [
        Histogram.empty("events", [Axis.regular(1, 0, 1)], "TH1D"),
        Histogram.empty("EMCTrigger/events", [Axis.regular(1, 0, 1)], "TH1D"),
    ]
    for sm in range(20):
        axes = [Axis.regular(48, 0, 48), Axis.regular(24, 0, 24)]
        made.append(Histogram.empty(f"EMCal/SM{sm:02d}/cellHits", axes, "TH2F"))
    i = 0
    while len(made) < N_HISTOGRAMS:
        folder, kind = f"D{i // 100:02d}", i % 5
        if kind == 0:
            h = Histogram.empty(f"{folder}/amp{i}", [Axis.regular(100, 0, 10)], "TH1F")
        elif kind == 1:
            axis = Axis.regular(200, 0, 10)
            h = Histogram.empty(f"{folder}/time{i}", [axis], "TH1D", weighted=True)
        elif kind == 2:
            axes = [Axis.regular(48, 0, 10), Axis.regular(24, 0, 10)]
            h = Histogram.empty(f"{folder}/map{i}", axes, "TH2F")
        elif kind == 3:
            h = Histogram.empty(f"{folder}/profile{i}", [Axis.regular(50, 0, 10)], "TProfile")
        else:
            h = Histogram.empty(f"{folder}/counts{i}", [Axis.regular(64, 0, 10)], "TH1I")
        made.append(h)
        i += 1
    return made


def _fill(histograms: list[Histogram], rng: np.random.Generator, events: int = 300) -> None:
    for h in histograms:
        if h.name.endswith("events"):
            h.fill(np.full(events, 0.5))
            continue
        x = rng.uniform(0, h.axes[0].high, events)
        if h.ndim == 2:
            h.fill(x, rng.uniform(0, h.axes[1].high, events))
        elif h.is_profile:
            h.fill(x, y=rng.normal(size=events))
        elif h.sumw2 is not None:
            h.fill(x, weights=rng.uniform(0.5, 2, events))
        else:
            h.fill(x)


def series(count: int, seed: int = 1) -> list[bytes]:
    """``count`` cumulative snapshots (ROOT file bytes) of the 2,000 histograms."""
    rng = np.random.default_rng(seed)
    histograms = _histograms()
    payloads = []
    for _ in range(count):
        _fill(histograms, rng)
        payloads.append(rootio.to_bytes(histograms))
    return payloads


# -- the processes -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class System:
    """The system's processes by role, their logs in the run folder."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, role: str, *argv: str) -> None:
        log = open(self.root / f"{role}.log", "wb")  # noqa: SIM115 - kept open for the child
        self.children[role] = subprocess.Popen(
            argv, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def overwatch(self, role: str, *argv: str) -> None:
        self.start(role, sys.executable, "-m", "overwatch.cli", *argv)

    def check_alive(self) -> None:
        for role, child in self.children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{role} exited ({child.returncode}): {self.log(role)[-2000:]}")

    def stop(self, role: str) -> None:
        child = self.children[role]
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)

    def stop_all(self) -> None:
        for role in list(self.children)[::-1]:  # receiver and workers before the database
            self.stop(role)

    def log(self, role: str) -> str:
        return (self.root / f"{role}.log").read_text(errors="replace")


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:  # gone
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pids: set[int]) -> dict[int, int]:
    """Every process under ``pids`` (themselves included) -> the root it descends from."""
    parent = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    roots = {}
    for pid in parent:
        current = pid
        while current > 1 and current not in pids:
            current = parent.get(current, 0)
        if current in pids:
            roots[pid] = current
    return roots


class MemorySampler(threading.Thread):
    """Peak of the summed VmRSS of the system's process trees, and peaks per role."""

    def __init__(self, system: System) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.system = system
        self.peak_kb = 0
        self.role_peak_kb: dict[str, int] = {}
        self.role_cpu: dict[str, float] = {}  # CPU seconds used so far, at the last sample
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(RSS_EVERY):
            self.sample()

    def sample(self) -> None:
        role_of = {child.pid: role for role, child in self.system.children.items()}
        per_role: dict[str, int] = {}
        cpu: dict[str, float] = {}
        for pid, root in _descendants(set(role_of)).items():
            role = role_of[root]
            per_role[role] = per_role.get(role, 0) + _rss_kb(pid)
            cpu[role] = cpu.get(role, 0.0) + _cpu_seconds(pid)
        self.role_cpu = cpu
        self.peak_kb = max(self.peak_kb, sum(per_role.values()))
        for role, kb in per_role.items():
            self.role_peak_kb[role] = max(self.role_peak_kb.get(role, 0), kb)


# -- the sender --------------------------------------------------------------------
class Sender:
    """The data source: a PUB socket sending scheduled snapshots (bench thread)."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.sent = 0

    def send(self, run: int, subsystem: str, payload: bytes) -> None:
        self.sent += 1
        head = wire.Header(run=run, subsystem=subsystem, seq=self.sent, timestamp=time.time())
        self.socket.send_multipart(wire.pub_message(head, payload), copy=False)

    def play(self, payloads: list[bytes], start: float, stop: threading.Event) -> None:
        """Round k: subsystem i's snapshot k at ``start + k * PERIOD + i * PERIOD / n``."""
        n = len(SUBSYSTEMS)
        for k, payload in enumerate(payloads):
            for i, subsystem in enumerate(SUBSYSTEMS):
                delay = start + k * PERIOD + i * PERIOD / n - time.time()
                if stop.wait(max(0.0, delay)):
                    return
                self.send(RUN, subsystem, payload)

    def close(self) -> None:
        self.socket.close(linger=0)


# -- measuring ---------------------------------------------------------------------
def _recorded(db, run: int, subsystems) -> dict[str, dict[float, int]]:
    """Subsystem -> {snapshot time: histograms read}, of what is committed for ``run``."""

    def work(ow) -> dict[str, dict[float, int]]:
        found = ow.runs.get(run)
        if found is None:
            return {}
        out = {}
        for name in subsystems:
            sub = found.subsystems.get(name)
            if sub is not None:
                out[name] = {t: r.n_histograms for t, r in sub.snapshots.items()}
        return out

    return read(db, work)


class Watch:
    """Snapshot files as they appear (their mtime) and when their records show up."""

    def __init__(self, data: Path, db, run: int) -> None:
        self.data, self.db, self.run = data, db, run
        self.written: dict[tuple[str, float], float] = {}  # (subsystem, time) -> mtime
        self.recorded: dict[tuple[str, float], float] = {}  # -> when its record was seen
        self.histograms: dict[tuple[str, float], int] = {}

    def look(self) -> None:
        for subsystem in SUBSYSTEMS:
            folder = self.data / f"Run{self.run}" / subsystem
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.name.endswith(".root"):
                    continue  # a receiver's temporary file
                parsed = timestamps.parse_snapshot_filename(entry.name)
                key = (subsystem, timestamps.to_unix(parsed.instant))
                if key not in self.written:
                    self.written[key] = entry.stat().st_mtime
        pending = {s for s, t in self.written.keys() - self.recorded.keys()}
        if not pending:
            return
        found = _recorded(self.db, self.run, pending)
        seen = time.time()
        for subsystem, times in found.items():
            for ts, count in times.items():
                key = (subsystem, ts)
                if key not in self.recorded:
                    self.recorded[key] = seen
                    self.histograms[key] = count

    def caught_up(self, expected: int) -> bool:
        return len(self.written) >= expected and self.written.keys() <= self.recorded.keys()


def _stage_times(logs: list[str]) -> tuple[dict[str, float], float]:
    """Per-stage ms per snapshot over the workers (weighted by snapshots), and the
    slowest first snapshot of a worker in seconds, from their stop lines."""
    pattern = re.compile(
        r"stage times per snapshot \((\d+) after the first\): (.*?); the first: (.*)"
    )
    totals, count, first = dict.fromkeys(STAGES, 0.0), 0, 0.0
    for text in logs:
        match = pattern.search(text)
        if match is None:
            raise RuntimeError(f"a worker logged no stage times: {text[-2000:]}")
        n = int(match.group(1))
        for name, ms in re.findall(r"(\w+)=([\d.]+)ms", match.group(2)):
            if name in totals:
                totals[name] += n * float(ms)
        count += n
        first = max(
            first, sum(float(ms) for _, ms in re.findall(r"(\w+)=([\d.]+)ms", match.group(3)))
        )
    return {name: total / max(count, 1) for name, total in totals.items()}, first / 1000.0


def _wait(predicate, timeout: float, what: str, system: System) -> None:
    deadline = time.time() + timeout
    while not predicate():
        system.check_alive()
        if time.time() > deadline:
            raise RuntimeError(f"no {what} within {timeout:g} s")
        time.sleep(POLL)


def run() -> dict[str, float]:
    rounds = max(2, math.ceil(SECONDS / PERIOD))
    payloads = series(rounds)
    with tempfile.TemporaryDirectory(prefix="bench-sustained-") as folder:
        root = Path(folder)
        data = root / "data"
        pub, notify, events, zeo = (_free_port() for _ in range(4))
        env = dict(os.environ)
        env.update(
            HOME=str(root),
            PYTHONUNBUFFERED="1",
            OVERWATCH_RECEIVER__NOTIFY_ADDRESS=f"tcp://127.0.0.1:{notify}",
            OVERWATCH_PROCESSING__EVENTS_ADDRESS=f"tcp://127.0.0.1:{events}",
        )
        system = System(root, env)
        sampler = MemorySampler(system)
        sender = Sender(f"tcp://127.0.0.1:{pub}")
        stop = threading.Event()
        db = None
        try:
            runzeo = str(Path(sys.executable).parent / "runzeo")
            system.start("zeo", runzeo, "-a", f"127.0.0.1:{zeo}", "-f", str(root / "zeo.fs"))
            _wait(lambda: _port_open(zeo), 30, "ZEO server", system)
            uri = f"zeo://127.0.0.1:{zeo}"
            for k in range(1, WORKERS + 1):
                share = ("--share", f"{k}/{WORKERS}") if WORKERS > 1 else ()
                system.overwatch(
                    f"process{k}", "process", "--data-dir", str(data), "--db", uri,
                    "--worker", f"bench{k}", *share,
                )  # fmt: skip
            system.overwatch(
                "receive", "receive", "--subsystem", ",".join(SUBSYSTEMS), "--pattern", "sub",
                "--connect", f"tcp://127.0.0.1:{pub}", "--interval", str(PERIOD),
                "--data-dir", str(data),
            )  # fmt: skip
            sampler.start()
            db = open_db(uri)

            # Warm-up run: every subsystem once, sent again until received (a subscriber
            # joins a little after it connects), processed by workers that start cold.
            cold = time.time()
            warm = Watch(data, db, WARMUP_RUN)
            while True:
                stored = {s for s, _ in warm.written}
                for subsystem in SUBSYSTEMS:
                    if subsystem not in stored:
                        sender.send(WARMUP_RUN, subsystem, payloads[0])
                deadline = time.time() + 5
                while time.time() < deadline and len(warm.written) < len(SUBSYSTEMS):
                    warm.look()
                    time.sleep(0.1)
                if len(warm.written) >= len(SUBSYSTEMS):
                    break
                system.check_alive()
                if time.time() - cold > 120:
                    raise RuntimeError("the receiver took no warm-up snapshot within 120 s")
            _wait(lambda: warm.look() or warm.caught_up(len(SUBSYSTEMS)), 300, "warm-up", system)
            cold_start = time.time() - cold

            # The timed run.
            sampler.sample()
            cpu_before, bench_before = dict(sampler.role_cpu), time.process_time()
            watch = Watch(data, db, RUN)
            start = time.time() + 1.0
            player = threading.Thread(
                target=sender.play, args=(payloads, start, stop), name="sender", daemon=True
            )
            player.start()
            expected = rounds * len(SUBSYSTEMS)
            while player.is_alive():
                watch.look()
                system.check_alive()
                time.sleep(POLL)
            _wait(lambda: watch.look() or watch.caught_up(expected), 120, "catching up", system)
            sampler.halt.set()
            sampler.join()
            sampler.sample()
            cpu = {r: sampler.role_cpu.get(r, 0.0) - cpu_before.get(r, 0.0) for r in cpu_before}
            cpu["bench"] = time.process_time() - bench_before
            timed = time.time() - start
        finally:
            stop.set()
            sender.close()
            if db is not None:
                db.close()
            sampler.halt.set()
            system.stop_all()
        if len(watch.written) != expected:
            raise RuntimeError(f"{len(watch.written)} snapshots written, {expected} sent")
        short = {k: n for k, n in watch.histograms.items() if n != N_HISTOGRAMS}
        if short:
            raise RuntimeError(f"snapshots recorded without all histograms: {short}")
        stages, first = _stage_times([system.log(f"process{k}") for k in range(1, WORKERS + 1)])
        logs = {role: system.log(role) for role in system.children}

    latencies = sorted(watch.recorded[k] - watch.written[k] for k in watch.written)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    window = (start + PERIOD, start + PERIOD * (rounds - 1))  # whole periods, past round 0
    inside = sum(window[0] <= t < window[1] for t in watch.recorded.values())
    figures = {
        "sustained_hist_per_s": inside * N_HISTOGRAMS / (window[1] - window[0]),
        "sustained_latency_p95_ms": 1000.0 * p95,
        "sustained_latency_median_ms": 1000.0 * statistics.median(latencies),
        "sustained_latency_max_ms": 1000.0 * latencies[-1],
        "sustained_seconds": rounds * PERIOD,
        "sustained_cold_start_s": cold_start,
        "sustained_first_snapshot_s": first,
        "rss_mb": sampler.peak_kb / 1024.0,
    }
    for role, kb in sorted(sampler.role_peak_kb.items()):
        figures[f"rss_{role}_mb"] = kb / 1024.0
    for name, ms in stages.items():
        figures[f"stage_{name}_ms"] = ms
    for role, seconds in sorted(cpu.items()):  # share of one core over the timed part
        figures[f"cpu_{role}_percent"] = 100.0 * seconds / timed
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    (out / "sustained-latencies.json").write_text(
        json.dumps(
            [
                {"subsystem": s, "time": t, "written": watch.written[(s, t)] - start,
                 "latency_ms": 1000.0 * (watch.recorded[(s, t)] - watch.written[(s, t)])}
                for s, t in sorted(watch.written, key=watch.written.get)
            ],
            indent=0,
        )
    )  # fmt: skip
    errors = [
        line
        for role, text in logs.items()
        if role != "zeo"  # the server logs every client that leaves at the end
        for line in text.splitlines()
        if " ERROR " in line
    ]
    if errors:
        print("errors logged:", json.dumps(errors[:10], indent=1), flush=True)
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value:.4g}")

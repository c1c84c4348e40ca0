"""A deterministic detector simulator: the trigger-farm mergers, as a library.

:class:`DetectorSimulator` keeps cumulative histograms per subsystem (the sets
of :mod:`receivers.simulator_sets`) and advances simulated time in fixed steps
(``tick``, 1 s by default). Each step draws a Poisson number of events per
subsystem and Poisson fills per bin, so the content at a given simulated time
depends only on the seed, the settings and the fault schedule, never on how
``advance`` was called (``advance(60)`` equals sixty ``advance(1)``). Payload
bytes still differ between calls because ROOT files carry a creation time and
a UUID; the histogram contents do not.

Runs: the simulator starts in run ``run``. With ``run_seconds`` it stops the
run after that long, keeps the final content unchanged (a sender still
publishing after the end of run: identical payloads) for ``gap_seconds``, then
starts run + 1 from empty histograms. :meth:`start_run` and :meth:`stop_run`
do the same by hand.

Faults are data (``Fault.from_dict`` or a YAML list, :func:`load_faults`);
``at_minute``/``until_minute`` count simulated minutes from the run start:

* ``hot_channel``: ``factor`` times the rate of one bin. EMC: ``cell: [sm, eta,
  phi]`` (0-based cell indices of ``EMCal/SMxx/cellHits``); any subsystem:
  ``histogram: PATH, bin: [ix, iy, ...]`` (ROOT bin numbers, 1-based).
* ``dead_region``: no more fills in a region. EMC: ``supermodule: sm`` with
  optional ``eta: [lo, hi]`` and ``phi: [lo, hi]`` cell ranges (hi exclusive);
  the supermodule's amplitude spectrum shrinks by the dead fraction. Any
  subsystem: ``histogram: PATH, bins: [[lo, hi], ...]`` (inclusive, per axis).
* ``rate_drop``: the event rate times ``factor`` (e.g. 0.1).
* ``counter_reset``: once, at ``at_minute``, every histogram restarts from
  zero, as when a merger restarts in the middle of a run.

The schedule itself is parsed and checked in :mod:`receivers.simulator_faults`.

The socket server built on this lives in :mod:`receivers.simulator_server`.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from overwatch import rootio
from overwatch.histogram import Histogram
from receivers.simulator_faults import FAULT_KINDS, Fault, FaultError, load_faults
from receivers.simulator_sets import EMC_COLUMNS, EMC_ROWS, Spec, build_specs

__all__ = ["FAULT_KINDS", "DetectorSimulator", "Fault", "FaultError", "load_faults"]

log = logging.getLogger(__name__)


class _Subsystem:
    """Cumulative state of one subsystem: all bins of all histograms in one flat vector."""

    def __init__(self, name: str, seed: int, histograms: int, faults: list[Fault]) -> None:
        layout_seed, fill_seed = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).spawn(2)
        self.name = name
        self.rng = np.random.default_rng(fill_seed)
        self.specs: list[Spec] = build_specs(name, np.random.default_rng(layout_seed), histograms)
        self.index = {spec.path: i for i, spec in enumerate(self.specs)}
        sizes = [int(np.prod(spec.shape)) for spec in self.specs]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.base_rate = np.concatenate([spec.rate.ravel(order="F") for spec in self.specs])
        self.events_bins = [
            int(self.offsets[i]) + 1 for i, s in enumerate(self.specs) if s.kind == "events"
        ]
        self.base_rate[self.events_bins] = 0.0  # the events counter is set, not drawn
        self.profiles = [i for i, s in enumerate(self.specs) if s.kind == "profile"]
        self.faults = faults
        self.done_resets: set[int] = set()  # one-shot faults already fired in this run
        self.version = 0
        self.reset()
        self._active: tuple[int, ...] = ()
        self.rate_factor = 1.0
        self.rate = self.base_rate.copy()

    def reset(self) -> None:
        self.counts = np.zeros_like(self.base_rate)
        self.entries = np.zeros(len(self.specs))
        self.sums = {i: np.zeros(int(self.offsets[i + 1] - self.offsets[i])) for i in self.profiles}
        self.squares = {i: np.zeros_like(self.sums[i]) for i in self.profiles}
        self.events = 0
        self.version += 1

    # -- faults ----------------------------------------------------------------
    def apply_faults(self, minute: float) -> None:
        for number, fault in enumerate(self.faults):
            if (
                fault.kind == "counter_reset"
                and minute >= fault.at_minute
                and number not in self.done_resets
            ):
                log.info("simulated fault: %s counters reset at minute %.1f", self.name, minute)
                self.reset()
                self.done_resets.add(number)
        active = tuple(
            n for n, f in enumerate(self.faults) if f.kind != "counter_reset" and f.active(minute)
        )
        if active == self._active:
            return
        self._active = active
        factor = np.ones_like(self.base_rate)
        self.rate_factor = 1.0
        for n in active:
            fault = self.faults[n]
            if fault.kind == "rate_drop":
                self.rate_factor *= float(fault.params["factor"])
            else:
                for index, value in self._fault_bins(fault):
                    factor[index] *= value
        self.rate = self.base_rate * factor
        log.info(
            "simulated faults now active in %s: %s",
            self.name,
            [self.faults[n].kind for n in active],
        )

    def _flat(self, path: str, bins: tuple[int, ...]) -> int:
        if path not in self.index:
            raise FaultError(f"fault: {self.name} has no histogram {path!r}")
        i = self.index[path]
        shape = self.specs[i].shape
        if len(bins) != len(shape) or any(not 0 <= b < n for b, n in zip(bins, shape, strict=True)):
            raise FaultError(
                f"fault: bin {list(bins)} is outside {path!r} (shape with flow {shape})"
            )
        return int(self.offsets[i]) + int(np.ravel_multi_index(bins, shape, order="F"))

    def _fault_bins(self, fault: Fault) -> list[tuple[Any, float]]:
        p = fault.params
        if fault.kind == "hot_channel":
            if "cell" in p:
                sm, eta, phi = (int(v) for v in p["cell"])
                return [
                    (
                        self._flat(f"EMCal/SM{sm:02d}/cellHits", (eta + 1, phi + 1)),
                        float(p["factor"]),
                    )
                ]
            return [
                (self._flat(p["histogram"], tuple(int(b) for b in p["bin"])), float(p["factor"]))
            ]
        if "supermodule" in p:
            sm = int(p["supermodule"])
            eta = p.get("eta", [0, EMC_COLUMNS])
            phi = p.get("phi", [0, EMC_ROWS])
            cells = [
                (e + 1, f + 1)
                for e in range(int(eta[0]), int(eta[1]))
                for f in range(int(phi[0]), int(phi[1]))
            ]
            out = [(self._flat(f"EMCal/SM{sm:02d}/cellHits", cell), 0.0) for cell in cells]
            live = 1.0 - len(cells) / (EMC_COLUMNS * EMC_ROWS)
            spec = self.index[f"EMCal/SM{sm:02d}/cellAmplitude"]
            out.append((slice(int(self.offsets[spec]), int(self.offsets[spec + 1])), live))
            return out
        ranges = [range(int(lo), int(hi) + 1) for lo, hi in p["bins"]]
        grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, len(ranges))
        return [(self._flat(p["histogram"], tuple(int(b) for b in row)), 0.0) for row in grid]

    # -- filling ---------------------------------------------------------------
    def fill(self, events: int) -> None:
        if events <= 0:
            return
        draws = self.rng.poisson(events * self.rate).astype(np.float64)
        draws[self.events_bins] = events
        self.counts += draws
        self.entries += np.add.reduceat(draws, self.offsets[:-1])
        for i in self.profiles:
            spec = self.specs[i]
            k = draws[self.offsets[i] : self.offsets[i + 1]]
            mean, sigma = spec.mean.ravel(order="F"), spec.sigma.ravel(order="F")
            total = k * mean + np.sqrt(k) * sigma * self.rng.standard_normal(k.size)
            scatter = sigma**2 * self.rng.gamma(np.maximum(k - 1, 0) / 2, 2.0)  # sigma^2 chi2(k-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                self.squares[i] += np.where(k > 0, total**2 / k, 0.0) + scatter
            self.sums[i] += np.where(k > 0, total, 0.0)
        self.events += events
        self.version += 1

    def histograms(self) -> dict[str, Histogram]:
        out = {}
        for i, spec in enumerate(self.specs):
            block = self.counts[self.offsets[i] : self.offsets[i + 1]].reshape(
                spec.shape, order="F"
            )
            profile = spec.kind == "profile"
            histogram = Histogram(
                name=spec.path,
                class_name=spec.class_name,
                axes=[axis.copy() for axis in spec.axes],
                values=self.sums[i].reshape(spec.shape, order="F").copy()
                if profile
                else block.copy(order="F"),
                sumw2=self.squares[i].reshape(spec.shape, order="F").copy() if profile else None,
                entries=float(self.entries[i]),
                title=spec.title,
                bin_entries=block.copy(order="F") if profile else None,
            )
            histogram.stats = histogram.compute_stats()
            out[spec.path] = histogram
        return out


class DetectorSimulator:
    """Cumulative histograms of several subsystems over simulated time (see the module docs)."""

    def __init__(
        self,
        subsystems: Iterable[str] = ("EMC", "TPC", "HLT"),
        *,
        run: int = 1,
        seed: int = 0,
        histograms: int = 0,
        event_rate: float = 1000.0,
        faults: Iterable[Fault | Mapping[str, Any]] = (),
        start_time: float | None = None,
        tick: float = 1.0,
        mode: str = "B",
        run_seconds: float | None = None,
        gap_seconds: float = 0.0,
    ) -> None:
        if tick <= 0 or event_rate < 0:
            raise ValueError("tick must be > 0 and event_rate >= 0")
        schedule = [
            f if isinstance(f, Fault) else Fault.from_dict(f, f"faults[{n}]")
            for n, f in enumerate(faults)
        ]
        names = list(dict.fromkeys(subsystems))
        if not names:
            raise ValueError("at least one subsystem is needed")
        self.subsystems = names
        self._state = {
            name: _Subsystem(name, seed, histograms, [f for f in schedule if f.subsystem == name])
            for name in names
        }
        for state in self._state.values():  # resolve fault targets now: a typo fails at start-up
            for fault in state.faults:
                if fault.kind in ("hot_channel", "dead_region"):
                    state._fault_bins(fault)
        self.run = run
        self.mode = mode
        self.event_rate = float(event_rate)
        self.tick = float(tick)
        self.start_time = time.time() if start_time is None else float(start_time)
        self.run_seconds = run_seconds
        self.gap_seconds = float(gap_seconds)
        self.elapsed = 0.0  # simulated seconds since start_time
        self._filled = 0.0  # simulated seconds already turned into fills (whole ticks)
        self.running = True
        self.run_started = 0.0
        self.run_stopped = 0.0
        self._payloads: dict[str, tuple[tuple[int, int], bytes]] = {}

    @property
    def now(self) -> float:
        """The simulated time as a unix timestamp."""
        return self.start_time + self.elapsed

    @property
    def run_minutes(self) -> float:
        """Simulated minutes since the current run started."""
        return (self.elapsed - self.run_started) / 60.0

    def advance(self, seconds: float) -> None:
        """Move simulated time forward, filling every whole tick passed."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.elapsed += seconds
        while self._filled + self.tick <= self.elapsed + 1e-9:
            self._step(self._filled)
            self._filled += self.tick

    def _step(self, t: float) -> None:
        if self.running and self.run_seconds and t - self.run_started >= self.run_seconds:
            self.stop_run(at=t)
        elif not self.running and self.run_seconds and t - self.run_stopped >= self.gap_seconds:
            self.start_run(self.run + 1, at=t)
        if not self.running:
            return
        minute = (t - self.run_started) / 60.0
        for state in self._state.values():
            state.apply_faults(minute)
            events = int(state.rng.poisson(self.event_rate * self.tick * state.rate_factor))
            state.fill(events)

    def start_run(self, run: int, at: float | None = None) -> None:
        """Begin ``run`` from empty histograms (fault minutes count from here)."""
        self.run = int(run)
        self.running = True
        self.run_started = self.elapsed if at is None else at
        for state in self._state.values():
            state.reset()
            state.done_resets.clear()
            state._active = ()
            state.rate_factor, state.rate = 1.0, state.base_rate.copy()
        log.info("simulated run %d started", self.run)

    def stop_run(self, at: float | None = None) -> None:
        """End the run: contents freeze, payloads repeat unchanged."""
        self.running = False
        self.run_stopped = self.elapsed if at is None else at
        log.info("simulated run %d stopped", self.run)

    def _subsystem(self, subsystem: str | None) -> _Subsystem:
        if subsystem is None:
            if len(self.subsystems) != 1:
                raise ValueError(
                    f"name a subsystem: this simulator has {', '.join(self.subsystems)}"
                )
            subsystem = self.subsystems[0]
        if subsystem not in self._state:
            raise KeyError(subsystem)
        return self._state[subsystem]

    def events(self, subsystem: str | None = None) -> int:
        """Events filled so far in the current cumulative segment."""
        return self._subsystem(subsystem).events

    def version(self, subsystem: str | None = None) -> tuple[int, int]:
        """Changes whenever the subsystem's content (or the run) changes."""
        return (self.run, self._subsystem(subsystem).version)

    def snapshot(self, subsystem: str | None = None) -> dict[str, Histogram]:
        """The current cumulative histograms of a subsystem, by path."""
        return self._subsystem(subsystem).histograms()

    def payload(self, subsystem: str | None = None) -> bytes:
        """ROOT file bytes of :meth:`snapshot`, regenerated only when the content changed."""
        state = self._subsystem(subsystem)
        version = self.version(state.name)
        cached = self._payloads.get(state.name)
        if cached is None or cached[0] != version:
            started = time.perf_counter()
            data = rootio.to_bytes(state.histograms().values())
            log.debug(
                "%s payload: %d histograms, %d bytes in %.3f s",
                state.name, len(state.specs), len(data), time.perf_counter() - started,
            )  # fmt: skip
            cached = (version, data)
            self._payloads[state.name] = cached
        return cached[1]

"""A deterministic detector simulator: the trigger-farm mergers, as a library.

:class:`DetectorSimulator` keeps cumulative histograms per subsystem (the sets
of :mod:`receivers.simulator_sets`) over simulated time. Events accumulate
continuously, as in a real merger: whenever a subsystem's content is asked for
(:meth:`~DetectorSimulator.snapshot`, :meth:`~DetectorSimulator.payload`,
:meth:`~DetectorSimulator.events`, :meth:`~DetectorSimulator.version`) the
subsystem is filled with the events of exactly the simulated time elapsed
since its last fill, ``dt``: a Poisson number with mean ``event_rate * dt *
rate_factor`` and Poisson bin fills for those events. A snapshot is therefore
cut whenever a receiver asks, and a slice between two snapshots holds the
events of its real, possibly uneven, length with only Poisson fluctuation: a
2.5 s slice has ~2.5 s of events, never "2 or 3 ticks".

A fill never straddles a fault boundary (``at_minute``/``until_minute``) or a
run boundary: it is split there, so faults start and end at their exact
simulated time whatever the request times. ``tick`` (optional) caps the length
of one fill; it changes nothing statistically (a sum of Poisson draws is a
Poisson draw) and is kept for callers that want fine-grained fills.

Determinism: each subsystem has its own random stream, so its content depends
only on the seed, the settings, the fault schedule and the simulated times at
which it was filled (the times its content was asked for, plus run ends).
The same seed and the same sequence of calls give the same histograms, bin by
bin. Different call sequences give statistically equivalent content, but not
equal bins: ``advance(60)`` and sixty ``advance(1)`` followed by a snapshot are
equal (both fill once, 60 s), a snapshot after each ``advance(1)`` is not.
Payload bytes differ between calls anyway because ROOT files carry a creation
time and a UUID.

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

The schedule itself is parsed and checked in :mod:`receivers.simulator_faults`;
the simulator also refuses, at construction, a fault for a subsystem it does
not simulate and a target (histogram, bin, cell) that does not exist, so a
typo fails at start instead of silently never happening.
``config/faults/demo.yaml`` is a documented example (the demo's schedule).

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
from receivers.simulator_faults import (
    FAULT_KINDS,
    Fault,
    FaultError,
    check_subsystems,
    load_faults,
)
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
        self.filled_to = 0.0  # simulated seconds (since the simulator's start) already filled
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
    def boundaries(self) -> list[float]:
        """Minutes of the run at which this subsystem's fault state changes."""
        out = {f.at_minute for f in self.faults}
        out.update(f.until_minute for f in self.faults if f.until_minute is not None)
        return sorted(out)

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
    def fill_span(self, seconds: float, minute: float, event_rate: float) -> None:
        """Fill ``seconds`` of events under the faults active at run minute ``minute``."""
        self.apply_faults(minute)
        if seconds <= 0:
            return
        self.fill(int(self.rng.poisson(event_rate * seconds * self.rate_factor)))

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
        tick: float | None = None,
        mode: str = "B",
        run_seconds: float | None = None,
        gap_seconds: float = 0.0,
    ) -> None:
        if (tick is not None and tick <= 0) or event_rate < 0:
            raise ValueError("tick must be > 0 (or None) and event_rate >= 0")
        schedule = [
            f if isinstance(f, Fault) else Fault.from_dict(f, f"faults[{n}]")
            for n, f in enumerate(faults)
        ]
        names = list(dict.fromkeys(subsystems))
        if not names:
            raise ValueError("at least one subsystem is needed")
        self.subsystems = names
        check_subsystems(schedule, names)
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
        self.tick = None if tick is None else float(tick)
        self.start_time = time.time() if start_time is None else float(start_time)
        self.run_seconds = run_seconds
        self.gap_seconds = float(gap_seconds)
        self.elapsed = 0.0  # simulated seconds since start_time
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

    def content_time(self, subsystem: str | None = None) -> float:
        """The simulated unix time that the subsystem's content corresponds to.

        While a run is going this is :attr:`now` (content is filled up to the
        moment it is asked for); after the run stopped it is the stop time.
        """
        state = self._fill(self._subsystem(subsystem))
        return self.start_time + state.filled_to

    def advance(self, seconds: float) -> None:
        """Move simulated time forward; fills happen when content is asked for.

        Run ends and starts that fall in the interval happen at their exact
        time: every subsystem is filled up to the end of run first.
        """
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self.elapsed + seconds
        while self.run_seconds:
            if self.running:
                at = self.run_started + self.run_seconds
                if at > target:
                    break
                self.stop_run(at=at)
            else:
                at = self.run_stopped + self.gap_seconds
                if at > target:
                    break
                self.start_run(self.run + 1, at=at)
        self.elapsed = target

    def _fill(self, state: _Subsystem, until: float | None = None) -> _Subsystem:
        """Fill ``state`` with the events from its last fill up to ``until`` (default: now).

        The span is cut at the subsystem's fault boundaries and in pieces of at
        most ``tick`` seconds; each piece is one Poisson draw under the faults
        active in it (judged at its middle, so a boundary never rounds the wrong way).
        """
        until = self.elapsed if until is None else until
        if not self.running or until <= state.filled_to:
            return state
        cuts = [self.run_started + 60.0 * m for m in state.boundaries()]
        t = state.filled_to
        while t < until:
            end = min([until, *(c for c in cuts if c > t)])
            if self.tick is not None:
                end = min(end, t + self.tick)
            middle = 0.5 * (t + end)
            state.fill_span(end - t, (middle - self.run_started) / 60.0, self.event_rate)
            t = end
        state.filled_to = until
        return state

    def start_run(self, run: int, at: float | None = None) -> None:
        """Begin ``run`` from empty histograms (fault minutes count from here)."""
        at = self.elapsed if at is None else float(at)
        self.run = int(run)
        self.running = True
        self.run_started = at
        for state in self._state.values():
            state.reset()
            state.done_resets.clear()
            state._active = ()
            state.rate_factor, state.rate = 1.0, state.base_rate.copy()
            state.filled_to = at
        log.info("simulated run %d started", self.run)

    def stop_run(self, at: float | None = None) -> None:
        """End the run: every subsystem is filled up to ``at``, then contents freeze."""
        at = self.elapsed if at is None else float(at)
        for state in self._state.values():
            self._fill(state, at)
        self.running = False
        self.run_stopped = at
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
        """Events filled so far in the current cumulative segment (filled up to now)."""
        return self._fill(self._subsystem(subsystem)).events

    def version(self, subsystem: str | None = None) -> tuple[int, int]:
        """Changes whenever the subsystem's content (or the run) changes (filled up to now)."""
        return (self.run, self._fill(self._subsystem(subsystem)).version)

    def snapshot(self, subsystem: str | None = None) -> dict[str, Histogram]:
        """The cumulative histograms of a subsystem, filled up to now, by path."""
        return self._fill(self._subsystem(subsystem)).histograms()

    def payload(self, subsystem: str | None = None) -> bytes:
        """ROOT file bytes of :meth:`snapshot`, regenerated only when the content changed."""
        state = self._fill(self._subsystem(subsystem))
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

"""The view service: every slice a page shows, computed once from the array cache.

Every caller asks this one service for what it shows of a slice
(:class:`~processing.slices.result.SliceView`): the run page, the histogram
page, the JSON API, ``overwatch slice``. A ``slice`` parameter is resolved by
:meth:`SliceService.resolve` to a :class:`~processing.slices.spec.SliceSpec`:

- ``cumulative`` (the whole run): from the run start to the latest snapshot;
- ``latest``: from the previous snapshot to the latest one (the run start if
  there is only one);
- a link (``<start>..<end>``, ``last:N``, each with ``;option=value``) or a
  slice id: an on-demand interval, as requested from the browser.

The two names take the plugin's default options unless the caller passes
others; they are slice specifications like any other, so ``cumulative`` is
exactly the on-demand slice from the run start to the last snapshot and
``latest`` the one between the last two snapshots. The slice is
``SliceReader.slice_between`` (arrays from the cache, no ROOT file read) and
goes through :func:`processing.analysis.slice_analysis.analyse_slice`, the
analysis the live pipeline runs, with the slice's options.

Context: :func:`processing.analysis.slice_analysis.slice_context`, the one rule.
Trend checks see the live trend points up to the slice's start followed by the
slice's own point (:class:`~processing.slices.result.SliceTrends`), so the
latest slice is judged as the live pipeline judged it, and a rate-drop check
of any interval compares its rate with the one before it.

Display: the plugin's ``transform`` (e.g. EMC ``scale_by_events``) applies
only to what is shown (:meth:`SliceView.shown`), lazily, per histogram;
trends and checks use the counts, as for live data.

Cache: views are kept per process in an LRU of ``max_entries`` slices
(``web.slice_cache_entries``), keyed by the slice id, which hashes run,
subsystem, interval and every option; the latest snapshot times behind the two
names are looked up at most once per ``times_ttl`` seconds per subsystem, so a
new snapshot shows at most that much later. Each on-demand slice's description
is written to ZODB (``OverwatchRoot.slice_requests``: id -> run, subsystem,
interval, options, created, last used), so any process (another gunicorn
worker, a restarted server) can recompute a slice from its id; links carry the
whole description anyway. At most ``max_requests`` descriptions are kept
(least recently used dropped first). Concurrent requests for the same new slice
in one process compute it once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ZODB
from BTrees.OOBTree import OOBTree

from overwatch.config import ProcessingSettings
from overwatch.lru import LRU
from overwatch.plugins import events_path, load_errors, load_plugin, validate_options
from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import SliceRequest
from processing.analysis.checks import CheckEngine
from processing.analysis.live import load_engine, window_size
from processing.analysis.slice_analysis import STACK_CLASS, analyse_slice, slice_context
from processing.analysis.trending import TrendStore, trend_dir
from processing.ingest.objects import split_parts
from processing.slices.reader import SliceReader, UnknownRun
from processing.slices.result import SliceTrends, SliceView
from processing.slices.spec import (
    VIEW_NAMES,
    WEB_LABELS,
    BadSliceLink,
    SliceSpec,
    parse_link,
    spec_from_link,
    validate_request,
    window_link,
)

log = logging.getLogger(__name__)

#: A slice's "last used" time in ZODB is refreshed at most this often (seconds).
TOUCH_SECONDS = 60.0
#: Descriptions kept in ZODB per cached slice (at least MIN_REQUESTS).
REQUESTS_PER_ENTRY = 50
MIN_REQUESTS = 1000


class UnknownSlice(LookupError):
    """No slice with that id is described in the database."""


@dataclass(frozen=True)
class Resolved:
    """What a ``slice`` parameter names now: the view and the link that keeps naming it."""

    view: SliceView
    #: "cumulative"/"latest", a moving window ("last:N;..."), or the fixed link of the spec.
    link: str
    #: minutes of a moving window, else None
    window: float | None = None

    @property
    def named(self) -> bool:
        return self.link in VIEW_NAMES


class SliceService:
    """Resolves, computes and caches the views of slices for one process (thread-safe)."""

    #: Descriptions in ZODB are counted (and the oldest dropped) every this many insertions.
    prune_every = 16

    def __init__(
        self,
        data_dir: str | Path,
        db: ZODB.DB,
        *,
        reader: SliceReader | None = None,
        settings: ProcessingSettings | None = None,
        engine: CheckEngine | None = None,
        max_entries: int = 16,
        max_requests: int | None = None,
        times_ttl: float = 1.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db = db
        self.reader = reader if reader is not None else SliceReader(data_dir, db)
        self.settings = settings if settings is not None else ProcessingSettings()
        self.max_entries = max(1, int(max_entries))
        self.max_requests = max_requests or max(MIN_REQUESTS, REQUESTS_PER_ENTRY * self.max_entries)
        self.times_ttl = times_ttl
        self._engine = engine
        self._engine_error = ""
        self._engine_loaded = engine is not None
        self._cache = LRU(self.max_entries)
        self._times = LRU(10_000)
        self._expected: dict[tuple[int, str], float] = {}  # announced, not seen yet
        self._named = LRU(10_000)
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self._touched: dict[str, float] = {}
        self._inserted = 0

    # -- checks -------------------------------------------------------------------------
    @property
    def engine(self) -> CheckEngine | None:
        """The checks (loaded once; a bad checks file means no qualities, and says why)."""
        if not self._engine_loaded:
            try:
                self._engine = load_engine(getattr(self.settings, "checks_file", "") or None)
            except Exception as error:  # noqa: BLE001 - slices still work without checks
                self._engine_error = f"checks not run: {error}"
                log.error("slice views: %s", self._engine_error)
            self._engine_loaded = True
        return self._engine

    # -- requests ------------------------------------------------------------------------
    def times(self, run: int, subsystem: str) -> tuple[list[float], float]:
        """(processed snapshot times, run start); UnknownRun/UnknownSubsystem if none."""
        times = self.reader.snapshot_times(run, subsystem)
        return times, run_start(self.db, run)

    def recent_times(self, run: int, subsystem: str) -> list[float]:
        """Processed snapshot times, looked up at most once per ``times_ttl`` seconds."""
        return self._recent(run, subsystem)[0]

    def version(self, run: int, subsystem: str) -> str:
        """Changes with every processed snapshot (cache keys); as fresh as :meth:`recent_times`."""
        return self._recent(run, subsystem)[1]

    def expect_snapshot(self, run: int, subsystem: str, timestamp: float) -> None:
        """A snapshot of ``run``/``subsystem`` was just processed (a live event said so).

        Requests look its times up again until they find it, instead of waiting out
        ``times_ttl``: this process's database view may lag the event by a moment.
        """
        key = (run, subsystem)
        self._expected[key] = max(timestamp, self._expected.get(key, timestamp))
        self._times.pop(key, None)

    def _recent(self, run: int, subsystem: str) -> tuple[list[float], str]:
        key = (run, subsystem)
        now = time.monotonic()
        known = self._times.get(key)
        if known is not None and now - known[0] < self.times_ttl:
            return known[1]
        found = self.reader.times_and_version(run, subsystem)
        expected = self._expected.get(key)
        if expected is None or (found[0] and found[0][-1] >= expected):
            self._expected.pop(key, None)
            self._times.put(key, (now, found))
        return found

    def named(
        self, run: int, subsystem: str, name: str, options: Mapping[str, Any] | None = None
    ) -> SliceSpec:
        """The spec of ``cumulative`` or ``latest`` now; ``options`` are checked (BadSliceLink)."""
        if name not in VIEW_NAMES:
            raise BadSliceLink(f"{name!r} is not one of {', '.join(VIEW_NAMES)}")
        # The hot path of every histogram request: the spec is remembered as long as the times.
        key = (run, subsystem, name, tuple(sorted((options or {}).items())))
        now = time.monotonic()
        known = self._named.get(key)
        waiting = (run, subsystem) in self._expected  # a snapshot announced, not seen yet
        if known is not None and now - known[0] < self.times_ttl and not waiting:
            return known[1]
        times = self.recent_times(run, subsystem)
        values, errors = validate_options(load_plugin(subsystem).options, dict(options or {}))
        if errors:
            problems = "; ".join(f"{name}: {why}" for name, why in sorted(errors.items()))
            raise BadSliceLink(f"bad plugin option for {subsystem}: {problems}")
        start = times[-2] if name == "latest" and len(times) > 1 else None
        spec = SliceSpec.create(run, subsystem, start, times[-1], values)
        self._named.put(key, (now, spec))
        return spec

    def resolve(
        self,
        run: int,
        subsystem: str,
        slice_param: str = "cumulative",
        options: Mapping[str, Any] | None = None,
    ) -> Resolved:
        """The view a ``slice`` parameter names now (see the module docs).

        ``options`` (plugin options from a query string) apply to the two names;
        a link carries its own. Raises BadSliceLink (malformed, or naming another
        run), UnknownSlice (an id nobody described), UnknownRun/UnknownSubsystem.
        """
        if slice_param in VIEW_NAMES:
            spec = self.named(run, subsystem, slice_param, options)
            return Resolved(self.get(spec, remember=False), slice_param)
        parsed = parse_link(slice_param)
        view = self.get(self.from_link(run, subsystem, slice_param))
        spec = view.spec
        if parsed.kind == "window":
            return Resolved(view, window_link(parsed.minutes, spec.options), parsed.minutes)
        return Resolved(view, spec.link())

    def validate(
        self,
        run: int,
        subsystem: str,
        *,
        start: Any = None,
        end: Any = None,
        options: Any = None,
        preset: Any = None,
        labels: Mapping[str, str] = WEB_LABELS,
    ) -> SliceSpec:
        """The slice a request asks for (see ``validate_request``); raises SliceRequestError."""
        times, begin = self.times(run, subsystem)
        return validate_request(
            load_plugin(subsystem), run, subsystem, times, begin,
            start=start, end=end, options=options, preset=preset, labels=labels,
        )  # fmt: skip

    def from_link(self, run: int, subsystem: str, link: str) -> SliceSpec:
        """The slice a link names (fixed, moving window or id); BadSliceLink if malformed."""
        parsed = parse_link(link)
        if parsed.kind == "id":
            spec = self.spec_for_id(parsed.slice_id)
            if (spec.run, spec.subsystem) != (run, subsystem):
                raise BadSliceLink(
                    f"slice {parsed.slice_id} belongs to run {spec.run} {spec.subsystem}, "
                    f"not run {run} {subsystem}"
                )
            return spec
        times = self.reader.snapshot_times(run, subsystem)
        return spec_from_link(load_plugin(subsystem), run, subsystem, parsed, times)

    def spec_for_id(self, slice_id: str) -> SliceSpec:
        """The description of a slice id kept in ZODB; UnknownSlice if there is none."""

        def work(ow) -> SliceSpec | None:
            record = getattr(ow, "slice_requests", {}).get(slice_id)
            if record is None:
                return None
            return SliceSpec.create(
                record.run, record.subsystem, record.start, record.end, record.options
            )

        spec = read(self.db, work)
        if spec is None:
            raise UnknownSlice(
                f"slice {slice_id} is unknown (not requested here, or forgotten long ago): "
                "open its link again or request it anew"
            )
        return spec

    # -- views ---------------------------------------------------------------------------
    def view(
        self,
        run: int,
        subsystem: str,
        slice_param: str = "cumulative",
        options: Mapping[str, Any] | None = None,
    ) -> SliceView:
        """The view a ``slice`` parameter names now (:meth:`resolve` without the link)."""
        return self.resolve(run, subsystem, slice_param, options).view

    def get(self, spec: SliceSpec, *, remember: bool = True) -> SliceView:
        """The slice's view: from this process's cache, or computed now (once per process)."""
        slice_id = spec.slice_id
        if remember:
            self.remember(spec, slice_id)
        found = self._cache.get(slice_id)
        if found is not None:
            return found
        with self._lock:
            gate = self._computing.setdefault(slice_id, threading.Lock())
        with gate:
            found = self._cache.get(slice_id)
            if found is not None:
                return found
            try:
                result = self.compute(spec)
            finally:
                with self._lock:
                    self._computing.pop(slice_id, None)
            self._cache.put(slice_id, result)
            return result

    def by_id(self, slice_id: str) -> SliceView:
        """A slice by id: cached, or recomputed from its description in ZODB."""
        found = self._cache.get(slice_id)
        if found is not None:
            return found
        return self.get(self.spec_for_id(slice_id))

    def cached(self) -> list[str]:
        """Ids of the slices this process holds, least recently used first."""
        return self._cache.keys()

    def compute(self, spec: SliceSpec) -> SliceView:
        """Slice, plugin, trend values and checks of one spec (no cache, no database write)."""
        started = time.perf_counter()
        run, subsystem = spec.run, spec.subsystem
        plugin = load_plugin(subsystem)
        raw, parts = split_parts(self.reader.slice_between(run, subsystem, spec.start, spec.end))
        listed = self.reader.paths_at(run, subsystem, spec.end)
        objects = {r.path: r for r in self.reader.objects_at(run, subsystem, spec.end)}
        times = self.reader.snapshot_times(run, subsystem)
        begin = run_start(self.db, run)
        events = events_path(plugin, self.settings.events_histogram, subsystem)
        resets = len(self.reader.resets_between(run, subsystem, spec.start, spec.end))
        context = slice_context(run, subsystem, spec.start, spec.end, raw, events, resets)
        engine = self.engine
        trends = None
        if engine is not None:
            store = self._trend_store(run, subsystem)
            window = window_size(engine)

            def trends(values: dict) -> SliceTrends:
                return SliceTrends(store, spec.start, spec.end, values, window)

        analysis = analyse_slice(
            raw, plugin, spec.option_values, context, engine=engine, trends=trends,
            objects=list(objects),
        )  # fmt: skip
        errors = list(analysis.errors)
        if subsystem in load_errors:
            errors.insert(0, load_errors[subsystem])
        if self._engine_error:
            errors.append(self._engine_error)
        histograms = analysis.histograms
        covered = [t for t in times if t <= spec.end and (spec.start is None or t > spec.start)]
        result = SliceView(
            spec=spec,
            plugin=plugin,
            context=dataclasses.replace(context, histograms=histograms),  # as hooks saw it
            run_start=begin,
            snapshots=len(covered),
            analysis=analysis,
            paths=[(p, c) for p, c in listed if p in raw]
            + [(p, r.class_name) for p, r in objects.items()]
            + [(p, histograms[p].class_name) for p in analysis.derived]
            + [(name, STACK_CLASS) for name in analysis.stacks],
            objects=objects,
            parts=parts,
            errors=errors,
            left_out=[p for p, _ in listed if p not in raw],
            seconds=time.perf_counter() - started,
        )
        log.debug("slice %s of run %d %s: %d histograms in %.1f ms", result.slice_id, run,
                  subsystem, len(histograms), 1e3 * result.seconds)  # fmt: skip
        return result

    def _trend_store(self, run: int, subsystem: str) -> TrendStore | None:
        try:
            directory = trend_dir(self.data_dir, run, subsystem)
            return TrendStore(directory, readonly=True) if directory.is_dir() else None
        except Exception as error:  # noqa: BLE001 - trend checks then see only the slice
            log.warning("run %d %s: trend store unreadable: %s", run, subsystem, error)
            return None

    # -- descriptions in ZODB -----------------------------------------------------------------
    def remember(self, spec: SliceSpec, slice_id: str | None = None) -> None:
        """Describe the slice in ZODB (or refresh its last use), so any process can recompute it."""
        slice_id = slice_id or spec.slice_id
        now = time.time()
        touched = self._touched.get(slice_id)
        if touched is not None and now - touched < TOUCH_SECONDS:
            return
        self._inserted += 1
        prune = self._inserted % self.prune_every == 1 % self.prune_every

        def work(root) -> None:
            ow = overwatch_root(root)
            requests = getattr(ow, "slice_requests", None)
            if requests is None:  # a database created before on-demand slices existed
                requests = ow.slice_requests = OOBTree()
            record = requests.get(slice_id)
            if record is None:
                requests[slice_id] = SliceRequest(
                    slice_id, spec.run, spec.subsystem, spec.start, spec.end, spec.option_values
                )
                if prune:
                    _prune(requests, self.max_requests)
            elif now - record.last_used >= TOUCH_SECONDS:
                record.last_used = now

        try:
            transact(self.db, work, note=f"on-demand slice {slice_id}")
        except Exception as error:  # noqa: BLE001 - this process can still serve it
            log.warning("could not record slice %s in the database: %s", slice_id, error)
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[slice_id] = now


def _prune(requests: OOBTree, keep: int) -> None:
    """Drop the least recently used descriptions down to 90 % of ``keep``."""
    count = len(requests)
    if count <= keep:
        return
    by_age = sorted(requests.items(), key=lambda item: item[1].last_used)
    for slice_id, _record in by_age[: count - int(keep * 0.9)]:
        del requests[slice_id]
    log.info("forgot %d old on-demand slice descriptions", count - int(keep * 0.9))


def run_start(db: ZODB.DB, run: int) -> float:
    """Earliest processed snapshot of a run over all its subsystems (minute 0 of the run)."""

    def work(ow) -> float:
        run_object = ow.runs.get(run)
        if run_object is None:
            raise UnknownRun(f"run {run} is unknown (not processed yet?)")
        if not run_object.start:
            raise UnknownRun(f"run {run} has no processed snapshot")
        return run_object.start

    return read(db, work)


__all__ = ["Resolved", "SliceService", "SliceTrends", "SliceView", "UnknownSlice", "run_start"]

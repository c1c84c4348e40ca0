"""On-demand time slices: computed from the array cache, analysed as live data is, cached.

An expert asks for the content of any interval of a run with chosen plugin
options (the web form, the JSON API, ``overwatch slice``). The request is
checked and snapped by :mod:`processing.slices.spec`; the slice is
``SliceReader.slice_between`` (arrays from the cache, no ROOT file read) and
goes through :func:`processing.analysis.slice_analysis.analyse_slice`, the function the live
pipeline uses, with the requested options: derived histograms, annotations,
trend values and check qualities are computed exactly as for live data.

Context: the interval is (base snapshot, end snapshot); the events are the
entries of the events histogram in the slice; a slice from the run start has
no known start, so, as for the live pipeline's first slice, its interval is
empty (``start == end``) and it has no rates. Trend checks see the live trend
points up to the slice's start followed by the slice's own point, so e.g. a
hot-cell check judges the hot cells found with the requested threshold and a
rate-drop check compares the slice's rate with the one before it.

Display: the plugin's ``transform`` (e.g. EMC ``scale_by_events``) applies
only to what is shown (:meth:`SliceResult.shown`), lazily, per histogram;
trends and checks use the counts, as for live data.

Cache: results are kept per process in an LRU of ``max_entries`` slices
(``web.slice_cache_entries``), keyed by the slice id, which hashes run,
subsystem, interval and every option. Each slice's description is written to
ZODB (``OverwatchRoot.slice_requests``: id -> run, subsystem, interval,
options, created, last used), so any process (another gunicorn worker, a
restarted server) can recompute a slice from its id; links carry the whole
description anyway. At most ``max_requests`` descriptions are kept (least
recently used dropped first). Concurrent requests for the same new slice in
one process compute it once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ZODB
from BTrees.OOBTree import OOBTree

from overwatch.config import ProcessingSettings
from overwatch.plugins import SliceContext, load_errors, load_plugin
from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import SliceRequest
from processing.analysis.checks import CheckEngine
from processing.analysis.slice_analysis import analyse_slice
from processing.analysis.trending import TrendStore, trend_dir
from processing.slices.reader import SliceReader, UnknownRun
from processing.slices.result import SliceResult, SliceTrends
from processing.slices.spec import (
    WEB_LABELS,
    BadSliceLink,
    SliceSpec,
    parse_link,
    spec_from_link,
    validate_request,
)

log = logging.getLogger(__name__)

#: A slice's "last used" time in ZODB is refreshed at most this often (seconds).
TOUCH_SECONDS = 60.0
#: Descriptions kept in ZODB per cached slice (at least MIN_REQUESTS).
REQUESTS_PER_ENTRY = 50
MIN_REQUESTS = 1000


class UnknownSlice(LookupError):
    """No slice with that id is described in the database."""


class SliceService:
    """Validates, computes and caches on-demand slices for one process (thread-safe)."""

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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db = db
        self.reader = reader if reader is not None else SliceReader(data_dir, db)
        self.settings = settings if settings is not None else ProcessingSettings()
        self.max_entries = max(1, int(max_entries))
        self.max_requests = max_requests or max(MIN_REQUESTS, REQUESTS_PER_ENTRY * self.max_entries)
        self._engine = engine
        self._engine_error = ""
        self._engine_loaded = engine is not None
        self._cache: OrderedDict[str, SliceResult] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self._touched: dict[str, float] = {}
        self._inserted = 0

    # -- checks -------------------------------------------------------------------------
    @property
    def engine(self) -> CheckEngine | None:
        """The checks (loaded once; a bad checks file means no qualities, and says why)."""
        if not self._engine_loaded:
            from processing.analysis.live import load_engine

            try:
                self._engine = load_engine(getattr(self.settings, "checks_file", "") or None)
            except Exception as error:  # noqa: BLE001 - slices still work without checks
                self._engine_error = f"checks not run: {error}"
                log.error("on-demand slices: %s", self._engine_error)
            self._engine_loaded = True
        return self._engine

    # -- requests ------------------------------------------------------------------------
    def times(self, run: int, subsystem: str) -> tuple[list[float], float]:
        """(processed snapshot times, run start); UnknownRun/UnknownSubsystem if none."""
        times = self.reader.snapshot_times(run, subsystem)
        return times, run_start(self.db, run)

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

    # -- results -------------------------------------------------------------------------
    def get(self, spec: SliceSpec, *, remember: bool = True) -> SliceResult:
        """The slice's result: from this process's cache, or computed now (once per process)."""
        slice_id = spec.slice_id
        if remember:
            self.remember(spec, slice_id)
        with self._lock:
            found = self._hit(slice_id)
            if found is not None:
                return found
            gate = self._computing.setdefault(slice_id, threading.Lock())
        with gate:
            with self._lock:
                found = self._hit(slice_id)
            if found is not None:
                return found
            try:
                result = self.compute(spec)
            finally:
                with self._lock:
                    self._computing.pop(slice_id, None)
            with self._lock:
                self._cache[slice_id] = result
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
            return result

    def by_id(self, slice_id: str) -> SliceResult:
        """A slice by id: cached, or recomputed from its description in ZODB."""
        with self._lock:
            found = self._hit(slice_id)
        if found is not None:
            return found
        return self.get(self.spec_for_id(slice_id))

    def cached(self) -> list[str]:
        """Ids of the slices this process holds, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _hit(self, slice_id: str) -> SliceResult | None:
        found = self._cache.get(slice_id)
        if found is not None:
            self._cache.move_to_end(slice_id)
        return found

    def compute(self, spec: SliceSpec) -> SliceResult:
        """Slice, plugin, trend values and checks of one spec (no cache, no database write)."""
        started = time.perf_counter()
        run, subsystem = spec.run, spec.subsystem
        plugin = load_plugin(subsystem)
        options = spec.option_values
        raw = self.reader.slice_between(run, subsystem, spec.start, spec.end)
        listed = self.reader.paths_at(run, subsystem, spec.end)
        begin = run_start(self.db, run)
        events_path = self.settings.events_histogram.get(subsystem) or plugin.events_histogram
        events = raw.get(events_path)
        context = SliceContext(
            run,
            subsystem,
            spec.end if spec.start is None else spec.start,
            spec.end,
            float(events.entries) if events is not None else 0.0,
            raw,
        )
        engine = self.engine
        trends = None
        if engine is not None:
            store = self._trend_store(run, subsystem)
            window = _window(engine)

            def trends(values: dict) -> SliceTrends:
                return SliceTrends(store, spec.start, spec.end, values, window)

        analysis = analyse_slice(raw, plugin, options, context, engine=engine, trends=trends)
        errors = list(analysis.errors)
        if subsystem in load_errors:
            errors.insert(0, load_errors[subsystem])
        if self._engine_error:
            errors.append(self._engine_error)
        histograms = analysis.histograms
        result = SliceResult(
            spec=spec,
            slice_id=spec.slice_id,
            plugin=plugin,
            context=dataclasses.replace(context, histograms=histograms),  # as hooks saw it
            run_start=begin,
            histograms=histograms,
            paths=[(p, c) for p, c in listed if p in raw]
            + [(p, histograms[p].class_name) for p in analysis.derived],
            derived=list(analysis.derived),
            annotations={
                path: note.to_dict()
                for path, note in analysis.annotations.items()
                if note.info or note.decorations or note.values
            },
            evaluation=analysis.evaluation.to_dict() if analysis.evaluation else None,
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


def _window(engine: CheckEngine) -> int:
    from processing.analysis.live import window_size

    return window_size(engine)


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


__all__ = ["SliceResult", "SliceService", "SliceTrends", "UnknownSlice", "run_start"]

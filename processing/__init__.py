"""Processing: from cumulative snapshots to time slices, views, trends, qualities and alarms.

This module is the public read API the web app (and any other reader) uses; nothing
outside ``processing`` imports its submodules. The stages, each a subpackage:

- ``processing.ingest``: scan, read each snapshot once, counter resets, array cache,
  the chain store of each (run, subsystem) and its ZODB records;
- ``processing.slices``: slice specifications and links, the reader over the cache,
  the view service (whole run, latest slice, on-demand intervals alike), exports;
- ``processing.analysis``: the one slice analysis (plugins, trends, checks), trend
  stores, alarms;
- ``processing.compare``: statistical tests against a reference, reports;
- ``processing.detectors``: the built-in detector plugins.

Reading a slice (one service per process; see :mod:`processing.slices.service`)::

    service = SliceService(data_dir, db, settings=settings.processing)
    view = service.view(run, "EMC", "cumulative")      # or "latest", a link, a slice id
    view.to_dict()                                     # histograms, derived, stacks, groups,
                                                       # annotations, checks, qualities, slice
    view.jsroot("EMCal/SM03/cellHits")                 # TBufferJSON of one path as shown

Names are imported on first use, so importing a plugin module or one stage does
not import every other stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overwatch.lazy import lazy_exports

#: Public name -> the module that defines it.
_EXPORTS = {
    # the view service and what it answers
    "SliceService": "processing.slices.service",
    "SliceView": "processing.slices.result",
    "Resolved": "processing.slices.service",
    "UnknownSlice": "processing.slices.service",
    "run_start": "processing.slices.service",
    "SliceReader": "processing.slices.reader",
    "UnknownRun": "processing.slices.reader",
    "UnknownSubsystem": "processing.slices.reader",
    "UnknownHistogram": "processing.slices.reader",
    "SliceRangeError": "processing.slices.reader",
    "CacheError": "processing.ingest.cache",
    "is_present": "processing.ingest.records",
    "seen_until": "processing.ingest.records",
    # slice links and requests
    "SLICE_ID": "processing.slices.spec",
    "VIEW_NAMES": "processing.slices.spec",
    "BadSliceLink": "processing.slices.spec",
    "SliceRequestError": "processing.slices.spec",
    "SliceSpec": "processing.slices.spec",
    "minute_of": "processing.slices.spec",
    "options_text": "processing.slices.spec",
    "parse_link": "processing.slices.spec",
    "value_text": "processing.slices.spec",
    "window_link": "processing.slices.spec",
    "projection_option": "processing.slices.draw_options",
    # trends
    "GENERIC_NAMES": "processing.analysis.trending",
    "TrendStore": "processing.analysis.trending",
    "run_history": "processing.analysis.trending",
    "trend_dir": "processing.analysis.trending",
    "trend_json": "processing.analysis.trending",
    # alarms
    "acknowledge": "processing.analysis.alarms",
    "alarm_to_dict": "processing.analysis.alarms",
    "list_alarms": "processing.analysis.alarms",
    # reference comparison
    "ConfiguredTest": "processing.compare",
    "SpecError": "processing.compare",
    "available_tests": "processing.compare",
    "configure": "processing.compare",
    "get_test": "processing.compare",
    "SORT_ORDERS": "processing.compare.online",
    "Overlay": "processing.compare.online",
    "OverlayError": "processing.compare.online",
    "overlay_of": "processing.compare.online",
    "ReferenceComparer": "processing.compare.online",
    "ReferenceNotFound": "processing.compare.online",
    "comparison_records": "processing.compare.online",
}
_RENAMED = {"comparison_records": "records"}

__all__ = [
    "BadSliceLink",
    "CacheError",
    "ConfiguredTest",
    "GENERIC_NAMES",
    "Overlay",
    "OverlayError",
    "ReferenceComparer",
    "ReferenceNotFound",
    "Resolved",
    "SLICE_ID",
    "SORT_ORDERS",
    "SliceRangeError",
    "SliceReader",
    "SliceRequestError",
    "SliceService",
    "SliceSpec",
    "SliceView",
    "SpecError",
    "TrendStore",
    "UnknownHistogram",
    "UnknownRun",
    "UnknownSlice",
    "UnknownSubsystem",
    "VIEW_NAMES",
    "acknowledge",
    "alarm_to_dict",
    "available_tests",
    "comparison_records",
    "configure",
    "get_test",
    "is_present",
    "list_alarms",
    "minute_of",
    "options_text",
    "overlay_of",
    "parse_link",
    "projection_option",
    "run_history",
    "run_start",
    "seen_until",
    "trend_dir",
    "trend_json",
    "value_text",
    "window_link",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _RENAMED)

if TYPE_CHECKING:  # what type checkers and readers see
    from processing.analysis.alarms import acknowledge, alarm_to_dict, list_alarms
    from processing.analysis.trending import (
        GENERIC_NAMES,
        TrendStore,
        run_history,
        trend_dir,
        trend_json,
    )
    from processing.compare import ConfiguredTest, SpecError, available_tests, configure, get_test
    from processing.compare.online import (
        SORT_ORDERS,
        Overlay,
        OverlayError,
        ReferenceComparer,
        ReferenceNotFound,
        overlay_of,
    )
    from processing.compare.online import records as comparison_records
    from processing.ingest.cache import CacheError
    from processing.ingest.records import is_present, seen_until
    from processing.slices.draw_options import projection_option
    from processing.slices.reader import (
        SliceRangeError,
        SliceReader,
        UnknownHistogram,
        UnknownRun,
        UnknownSubsystem,
    )
    from processing.slices.result import SliceView
    from processing.slices.service import Resolved, SliceService, UnknownSlice, run_start
    from processing.slices.spec import (
        SLICE_ID,
        VIEW_NAMES,
        BadSliceLink,
        SliceRequestError,
        SliceSpec,
        minute_of,
        options_text,
        parse_link,
        value_text,
        window_link,
    )

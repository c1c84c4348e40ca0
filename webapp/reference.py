"""Reference comparison in the web: which reference run, the comparison API, overlays.

``GET /api/runs/<run>/<sys>/compare?ref=<run>|none&test=<spec>&threshold=<p>&sort=path|worst``
    every histogram of the subsystem compared with the reference run's:
    ``{"run", "subsystem", "reference", "reference_source", "test", "threshold",
    "sort", "counts", "results": [{path, test, statistic, pvalue, ndf, status,
    reason, detail}]}``; with no reference, ``reference`` is null and
    ``results`` empty.
``GET /api/runs/<run>/<sys>/overlay/<path>?ref=<run>&slice=cumulative|latest``
    ``{"data", "reference", "ratio", "reference_run", "scale", "slice", "mode",
    "palette"[, "projections"]}``: three ROOT TBufferJSON histograms (the reference
    scaled to the data's integral, the ratio data/reference with errors) for JSROOT,
    and how they are drawn (``mode``, chosen per class: :data:`OVERLAY_MODES`); a 3D
    histogram adds its x, y and z projections, each with its own three.

Which reference: ``ref=<run>`` in the URL wins over the configured
``compare.reference_runs[<SYS>]``; ``ref=none`` turns the comparison off; no
``ref`` (or an empty one) takes the configured run. The test is ``test=`` or
``compare.test``; the threshold is ``threshold=``, else ``compare.threshold``
for the configured test, else the chosen test's own default (so a URL asking
for ``bin2bin`` does not inherit a chi2 p-value).

Errors (JSON ``{"error": ...}``): a malformed ``ref``, ``test``, ``threshold``,
``sort`` or ``slice`` is 400 naming the field; an unknown run, reference run,
a reference without that subsystem or a histogram missing on either side is
404 naming it; histograms that cannot be overlaid (binning) are 409.

Both answers are computed from the array cache (never a ROOT file) and cached
per process by the versions of both runs, so an unchanged comparison answers
from memory and a new snapshot of either run is seen at once.

The run page uses :func:`reference_view` and :func:`reference_overlay_url`
(template globals) through ``_reference.html`` and ``_reference_figure.html``;
``static/reference.js`` draws the badges, the summary and the overlays.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, Flask, Response, current_app, g, request, url_for
from flask.blueprints import BlueprintSetupState

from overwatch import names
from overwatch.config import ConfigError
from overwatch.jsroot import K_NO_STATS, to_json_bytes, to_jsroot
from processing import (
    SORT_ORDERS,
    VIEW_NAMES,
    CacheError,
    ConfiguredTest,
    Overlay,
    OverlayError,
    ReferenceComparer,
    ReferenceNotFound,
    SpecError,
    available_tests,
    configure,
    get_test,
    overlay_of,
)
from processing import comparison_records as records
from webapp import queries, views
from webapp.context import overwatch, resources
from webapp.http import byte_cache, encode, encoded_response, json_error, json_response, make_etag
from webapp.paths import quote_path

log = logging.getLogger(__name__)

bp = Blueprint("reference", __name__)

EXTENSION = "overwatch.reference"
MAX_PARAMETER_LENGTH = 100
#: ROOT colours: the reference in red over the data (blue), the ratio in black.
REFERENCE_COLOR = 632
RATIO_COLOR = 1
#: Axis label and title size of the ratio pad (fraction of its height; ROOT's default 0.035).
RATIO_TEXT_SIZE = 0.1
#: Runs offered in the page's reference selector (newest first).
CANDIDATE_RUNS = 50


class ParameterError(ValueError):
    """A query parameter that cannot be used; the text names it (answered with 400)."""


@dataclass(frozen=True)
class Choice:
    """What one request compares with, and how."""

    reference: int | None
    #: "url", "config", or None when there is no reference.
    source: str | None
    spec: str
    test: ConfiguredTest
    sort: str


class _State:
    """Per-process comparison cache and encoded overlays (rebuilt if the reader changes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.comparer: ReferenceComparer | None = None
        self.overlays = byte_cache(32 * 1024 * 1024)


def _state() -> _State:
    return current_app.extensions[EXTENSION]


def comparer() -> ReferenceComparer:
    """This process's comparer, bound to the current SliceReader (a new one after a fork)."""
    state, res = _state(), resources()
    reader = res.reader
    with state.lock:
        if state.comparer is None or state.comparer.reader is not reader:
            state.comparer = ReferenceComparer(reader, version=res.views.version)
        return state.comparer


@bp.record_once
def _check_settings(setup: BlueprintSetupState) -> None:
    """A wrong compare.test or threshold stops the web app at start-up, not at first use."""
    app: Flask = setup.app
    app.extensions[EXTENSION] = _State()
    settings = app.extensions["overwatch"].settings.compare
    try:
        configure(settings.test, settings.threshold)
    except SpecError as error:
        raise ConfigError(f"compare.test: {error}") from None


# --------------------------------------------------------------------------- parameters


def parse_reference(text: str | None, configured: int | None) -> tuple[int | None, str | None]:
    """(reference run, where it came from) from the URL's ``ref`` and the configured run."""
    if text is None or not text.strip():
        return (configured, "config") if configured is not None else (None, None)
    text = text.strip()
    if text.lower() == "none":
        return None, None
    if len(text) > 10 or not text.isascii() or not text.isdigit():
        raise ParameterError(f"ref: expected a run number or 'none', got {text[:40]!r}")
    number = int(text)
    if number == 0 or not names.is_run(number):  # run 0 holds no data: never a reference
        raise ParameterError(f"ref: run numbers are between 1 and {names.MAX_RUN}, got {number}")
    return number, "url"


def _threshold(text: str | None, spec: str, configured_spec: str, configured: float):
    if text is not None and text.strip():
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"threshold: expected a number, got {text[:40]!r}") from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ParameterError(f"threshold: expected a number from 0 to 1, got {text[:40]!r}")
        return value
    if get_test(spec.partition(":")[0]).name == get_test(configured_spec.partition(":")[0]).name:
        return configured
    return None  # the chosen test's default


def choose(args: Any, subsystem: str) -> Choice:
    """The reference, test and order a request asks for; ParameterError naming a bad field."""
    settings = resources().settings.compare
    reference, source = parse_reference(args.get("ref"), settings.reference_runs.get(subsystem))
    spec = (args.get("test") or "").strip() or settings.test
    if len(spec) > MAX_PARAMETER_LENGTH:
        raise ParameterError(f"test: longer than {MAX_PARAMETER_LENGTH} characters")
    try:
        threshold = _threshold(args.get("threshold"), spec, settings.test, settings.threshold)
        test = configure(spec, threshold)
    except SpecError as error:
        raise ParameterError(f"test: {error}") from None
    sort = args.get("sort") or "path"
    if sort not in SORT_ORDERS:
        raise ParameterError(f"sort: expected one of {', '.join(SORT_ORDERS)}, got {sort[:40]!r}")
    return Choice(reference, source, spec, test, sort)


# --------------------------------------------------------------------------- the API


@bp.route("/api/runs/<int:run>/<subsystem>/compare")
def compare(run: int, subsystem: str) -> Response:
    views.require_subsystem(run, subsystem)
    view = request.args.get("slice") or "cumulative"
    if view not in VIEW_NAMES:
        return json_error(f"slice: expected one of {', '.join(VIEW_NAMES)}, got {view[:40]!r}", 400)
    try:
        choice = choose(request.args, subsystem)
    except ParameterError as error:
        return json_error(str(error), 400)
    answer: dict[str, Any] = {
        "run": run,
        "subsystem": subsystem,
        "reference": choice.reference,
        "reference_source": choice.source,
        "test": choice.test.name,
        "spec": choice.spec,
        "threshold": choice.test.threshold,
        "sort": choice.sort,
        "slice": view,
    }
    try:
        if choice.reference is None:
            resources().views.version(run, subsystem)  # the run itself must exist
            return json_response({**answer, "counts": {}, "results": []})
        found = comparer().compare(run, subsystem, choice.reference, choice.test, view)
    except LookupError as error:  # the run, the reference, or a subsystem of either
        return json_error(str(error), 404)
    except CacheError as error:
        log.error("cannot compare run %d %s: %s", run, subsystem, error)
        return json_error(str(error), 500)
    results = records(found.ordered(choice.sort))
    base = url_for("reference.overlay", run=run, subsystem=subsystem, path="_")[:-1]
    for item in results:
        item["overlay"] = f"{base}{quote_path(item['path'])}?ref={choice.reference}"
    return json_response({**answer, "counts": found.counts(), "results": results})


def _ratio_range(ratio: np.ndarray, filled: np.ndarray) -> tuple[float, float]:
    """A y (z for 2D) range centred on 1 that shows the largest deviation, up to 0..2."""
    values = ratio[filled]
    deviation = float(np.max(np.abs(values - 1.0))) if values.size else 1.0
    half = min(max(deviation * 1.1, 0.05), 1.0)
    return 1.0 - half, 1.0 + half


#: How an overlay is drawn, chosen per class (static/reference.js draws each mode):
#: - ``lines``: 1D (histograms, profiles): the data, the reference as a red line over it,
#:   and the ratio in a pad below sharing the x axis, its range and its log state;
#: - ``ratio-map``: TH2 counts: the data map and, beside it, data/reference as a map on a
#:   diverging palette centred on 1 (blue below, red above): a red box per cell over a
#:   colour map cannot be read;
#: - ``side-by-side``: TProfile2D: the data's and the reference's maps of means beside each
#:   other on one z range (a ratio of means near zero says nothing);
#: - ``projections``: 3D: the x, y and z projections of both, each drawn as ``lines``.
OVERLAY_MODES = ("lines", "ratio-map", "side-by-side", "projections")
#: ROOT's kLightTemperature (blue - white - red): the ratio map's diverging palette.
DIVERGING_PALETTE = 87


def overlay_mode(class_name: str, ndim: int) -> str:
    """How an overlay of this class is drawn (see :data:`OVERLAY_MODES`)."""
    if ndim == 1:
        return "lines"
    if ndim == 3:
        return "projections"
    return "side-by-side" if class_name.startswith("TProfile") else "ratio-map"


def _parts(overlay: Overlay, reference: int) -> dict[str, Any]:
    """Data, reference and ratio of one overlay as TBufferJSON with our colours and sizes."""
    data = to_jsroot(overlay.data)
    mine = to_jsroot(overlay.reference)
    mine["fName"] = f"{mine['fName']}_reference"
    mine["fTitle"] = f"reference run {reference}"
    mine["fLineColor"] = mine["fMarkerColor"] = REFERENCE_COLOR
    mine["fLineWidth"] = 2
    ratio = to_jsroot(overlay.ratio)
    ratio["fBits"] |= K_NO_STATS  # a stat box of ratios means nothing
    ratio["fLineColor"] = ratio["fMarkerColor"] = RATIO_COLOR
    ratio["fMarkerStyle"] = 20
    ratio["fMarkerSize"] = 0.5
    inner = overlay.ratio.inner
    low, high = _ratio_range(overlay.ratio.values[inner], overlay.reference.contents()[inner] != 0)
    ratio["fMinimum"], ratio["fMaximum"] = low, high
    ratio["fTitle"] = ""
    if overlay.ratio.ndim == 1:
        # The ratio pad is about a third of the main pad's height; sizes are fractions of it,
        # and the y title sits just left of the tick labels (offset 0: JSROOT places it).
        for name in ("fXaxis", "fYaxis"):
            ratio[name].update(fLabelSize=RATIO_TEXT_SIZE, fTitleSize=RATIO_TEXT_SIZE)
        ratio["fYaxis"].update(fNdivisions=505, fTitleOffset=0, fTitle="data / ref")
        ratio["fXaxis"]["fTitle"] = ""
    else:  # beside the data map, as large as it
        ratio["fTitle"] = "data / reference"
        ratio["fZaxis"]["fTitle"] = ""
    return {"data": data, "reference": mine, "ratio": ratio}


def overlay_json(overlay: Overlay, run: int, subsystem: str, reference: int, view: str) -> bytes:
    """The overlay as JSON: TBufferJSON histograms, how to draw them and what was done."""
    mode = overlay_mode(overlay.data.class_name, overlay.data.ndim)
    answer: dict[str, Any] = {
        "run": run,
        "subsystem": subsystem,
        "path": overlay.data.name,
        "slice": view,
        "reference_run": reference,
        "scale": overlay.scale,
        "mode": mode,
        "palette": DIVERGING_PALETTE,
        **_parts(overlay, reference),
    }
    if mode == "projections":
        answer["projections"] = []
        for axis in range(3):
            name = f"{overlay.data.name}_p{'xyz'[axis]}"
            projected = overlay_of(
                overlay.data.project((axis,), name=name),
                overlay.reference.project((axis,), name=name),
            )
            parts = _parts(projected, reference)
            title = overlay.data.axes[axis].title or "xyz"[axis]
            parts["data"]["fTitle"] = f"projection on {title}"
            answer["projections"].append({"axis": "xyz"[axis], **parts})
    return to_json_bytes(answer)


@bp.route("/api/runs/<int:run>/<subsystem>/overlay/<path:path>")
def overlay(run: int, subsystem: str, path: str) -> Response:
    view = request.args.get("slice", "cumulative")
    if view not in VIEW_NAMES:
        return json_error(f"slice: expected one of {', '.join(VIEW_NAMES)}, got {view[:40]!r}", 400)
    views.require_path(path)
    views.require_subsystem(run, subsystem)
    settings = resources().settings.compare
    try:
        reference, _source = parse_reference(
            request.args.get("ref"), settings.reference_runs.get(subsystem)
        )
    except ParameterError as error:
        return json_error(str(error), 400)
    if reference is None:
        return json_error(
            f"ref: no reference run; give ref=<run> or set compare.reference_runs.{subsystem}",
            400,
        )
    versions = resources().views
    try:
        engine = comparer()
        key = (
            run, subsystem, path, view, versions.version(run, subsystem),
            reference, engine.reference_version(reference, subsystem),
        )  # fmt: skip
        state = _state()
        encoded = state.overlays.get(key)
        if encoded is None:
            found = engine.overlay(run, subsystem, reference, path, view)
            body = overlay_json(found, run, subsystem, reference, view)
            encoded = encode(body, make_etag("overlay", *key))
            state.overlays.put(key, encoded)
    except LookupError as error:
        return json_error(str(error) or f"histogram {path!r} not found", 404)
    except OverlayError as error:
        return json_error(str(error), 409)
    except CacheError as error:
        log.error("cannot overlay %s of run %d %s: %s", path, run, subsystem, error)
        return json_error(str(error), 500)
    return encoded_response(encoded)


# --------------------------------------------------------------------------- the run page


@bp.app_template_global()
def reference_view(run: int, subsystem: str) -> dict[str, Any]:
    """What the run page shows of the comparison (computed once per request).

    A bad ``ref``/``test`` never breaks the page: it shows the error and the
    plain drawings.
    """
    cache = g.setdefault("reference_views", {})
    if (run, subsystem) in cache:
        return cache[(run, subsystem)]
    settings = resources().settings.compare
    configured = settings.reference_runs.get(subsystem)
    mine = ("ref", "test", "threshold", "sort")
    view: dict[str, Any] = {
        "reference": None,
        "source": None,
        "configured": configured,
        "text": (request.args.get("ref") or "").strip()[:20],
        "spec": (request.args.get("test") or "").strip()[:MAX_PARAMETER_LENGTH] or settings.test,
        "threshold": (request.args.get("threshold") or "").strip()[:20],
        "sort": request.args.get("sort") if request.args.get("sort") in SORT_ORDERS else "path",
        "error": None,
        "tests": sorted(available_tests()),
        "keep": [(k, v) for k, v in request.args.items(multi=True) if k not in mine],
        "candidates": _candidates(run, subsystem),
        "compare_url": "",
        #: Histograms drawn as overlays: the snapshot's own (a plugin's derived histograms
        #: and stacks exist in no reference run, so they keep their plain drawing).
        "compared": frozenset(),
    }
    try:
        choice = choose(request.args, subsystem)
        if choice.reference is not None:
            comparer().reference_version(choice.reference, subsystem)
            paths = resources().reader.histogram_paths(run, subsystem)
            view.update(reference=choice.reference, source=choice.source)
            view["compared"] = frozenset(path for path, _class in paths)
            view["compare_url"] = url_for(
                "reference.compare",
                run=run,
                subsystem=subsystem,
                ref=choice.reference,
                test=choice.spec,
                threshold=view["threshold"] or None,
                sort=choice.sort,
                # The page's slice: badges judge what the page shows (on demand: the whole run).
                slice=request.args.get("slice")
                if request.args.get("slice") in VIEW_NAMES
                else "cumulative",
            )
            view["test_name"], view["test_threshold"] = choice.test.name, choice.test.threshold
    except (ParameterError, ReferenceNotFound) as error:
        view["error"] = str(error)
    except LookupError as error:  # the run's own subsystem has no snapshot yet
        view["error"] = f"nothing to compare yet: {error}"
    cache[(run, subsystem)] = view
    return view


@bp.app_template_global()
def reference_overlay_url(run: int, subsystem: str, path: str) -> str:
    """The overlay JSON of one histogram for the run page's current reference and slice."""
    view = reference_view(run, subsystem)
    base = url_for("reference.overlay", run=run, subsystem=subsystem, path="_")[:-1]
    slice_ = request.args.get("slice", "cumulative")
    slice_ = slice_ if slice_ in VIEW_NAMES else "cumulative"
    return f"{base}{quote_path(path)}?ref={view['reference']}&slice={slice_}"


def _candidates(run: int, subsystem: str) -> list[int]:
    """Recent runs holding this subsystem, for the selector's suggestions."""
    listing = queries.list_runs(
        overwatch(), 1, CANDIDATE_RUNS, time.time(), resources().ongoing_seconds
    )
    return [r["run"] for r in listing["runs"] if r["run"] != run and subsystem in r["subsystems"]]

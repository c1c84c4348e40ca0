"""Trends: values of each histogram per time slice, drawn against UTC time by JSROOT.

``GET /api/runs/<run>/<sys>/trends``
    every trended ``(path, name)`` of a run's subsystem, with its graph URL;
``GET /api/runs/<run>/<sys>/trends/<path>?name=mean``
    one trend as a JSROOT ``TGraph`` whose x axis is UTC time;
``GET /api/trends/history?subsystem=&path=&name=&runs=&format=``
    one value run after run (``runs``: ``"7,9,12-15"``, default every run
    with trends), a ``TGraph`` (``format=graph``, the default) or plain arrays
    with the run of each point (``format=points``);
``GET /runs/<run>/<sys>/trends?trend=<path>:<name>&...&history=1``
    the trending page; the selected trends (and whether to show their
    history over runs) are in the URL.

Thinning: a graph has at most :data:`MAX_POINTS` points. A longer series
(a day of one-second snapshots) is cut into ``MAX_POINTS / 2`` consecutive
buckets and only the lowest and the highest point of each bucket are kept,
plus the first and last point: the shape, and every spike a shifter must
see, survive, while the browser draws a few thousand points instead of
tens of thousands. The ``X-Overwatch-Points`` header says
``"<shown>/<stored>"``. NaN values (a value that could not be computed) are
gaps and are never drawn.

Trend points are read from the trend store files (read-only, never the ROOT
snapshots). Unknown run, subsystem, histogram or trend name: 404 naming it.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import numpy as np
from flask import Blueprint, Response, render_template, request, url_for

from overwatch.names import is_run
from processing import GENERIC_NAMES, TrendStore, run_history, trend_dir, trend_json
from webapp import queries, views
from webapp.context import overwatch, resources
from webapp.http import json_error, json_response
from webapp.paths import UnsafePath, check_path, check_subsystem, quote_path

bp = Blueprint("trends", __name__)

MAX_POINTS = 5000
#: Graphs drawn at once on the trending page.
MAX_SELECTED = 24
#: Runs one history request may read.
MAX_HISTORY_RUNS = 1000
GRAPH_OPTION = "ALP"
POINTS_HEADER = "X-Overwatch-Points"


# --------------------------------------------------------------------------- helpers


def thin(
    times: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS, *extra: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Finite points only, at most ``max_points`` of them (min/max per bucket, see module doc).

    ``extra`` arrays (e.g. the run of each point) are thinned alike. Returns
    ``(times, values, *extra)`` in time order.
    """
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    keep = np.isfinite(times) & np.isfinite(values)
    times, values = times[keep], values[keep]
    extra = tuple(e[keep] for e in extra)
    n = times.size
    if n <= max_points:
        return (times, values, *extra)
    buckets = (max_points - 2) // 2
    per = math.ceil(n / buckets)
    rows = math.ceil(n / per)  # no bucket is padding only
    padded = np.full(rows * per, np.nan)
    padded[:n] = values
    grid = padded.reshape(rows, per)
    base = np.arange(rows) * per
    low = base + np.nanargmin(grid, axis=1)
    high = base + np.nanargmax(grid, axis=1)
    chosen = np.unique(np.concatenate(([0, n - 1], low, high)))
    return (times[chosen], values[chosen], *(e[chosen] for e in extra))


def trend_store(run: int, subsystem: str) -> TrendStore:
    """The read-only trend store of a run's subsystem; NotFound (404) if the database lacks it."""
    views.require_subsystem(run, subsystem)
    queries.get_subsystem(overwatch(), run, subsystem)
    return TrendStore(trend_dir(resources().data_dir, run, subsystem), readonly=True)


def trend_url(run: int, subsystem: str, path: str, name: str) -> str:
    base = url_for("trends.api_list", run=run, subsystem=subsystem)
    return f"{base}/{quote_path(path)}?{_query(name=name)}"


def history_url(subsystem: str, path: str, name: str) -> str:
    return url_for("trends.api_history") + "?" + _query(subsystem=subsystem, path=path, name=name)


def _query(**values: str) -> str:
    return urlencode(values)


def missing_trend(store: TrendStore, run: int, subsystem: str, path: str, name: str) -> str:
    """Why ``(path, name)`` is not there, naming what is."""
    names = sorted({n for p, n in store.names() if p == path})
    if not names:
        return f"histogram {path!r} has no trends in run {run} {subsystem}"
    return f"histogram {path!r} has no trend {name!r} in run {run} {subsystem} (it has: {', '.join(names)})"


def parse_runs(text: str) -> list[int] | None:
    """``"7,9,12-15"`` -> [7, 9, 12, 13, 14, 15]; empty -> None (every run); BadRequest if malformed."""
    text = text.strip()
    if not text:
        return None
    runs: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError as error:
            raise queries.BadRequest(
                f"runs must be run numbers and ranges like 7,9,12-15, got {part.strip()!r}"
            ) from error
        # Run numbers are overwatch.names' rule (a trend directory exists only for those).
        if not (is_run(first) and is_run(last)) or last < first:
            raise queries.BadRequest(f"runs: {part.strip()!r} is not a valid run or range")
        if last - first + 1 + len(runs) > MAX_HISTORY_RUNS:
            raise queries.BadRequest(f"runs: at most {MAX_HISTORY_RUNS} runs per request")
        runs.update(range(first, last + 1))
    return sorted(runs)


def _graph_response(graph: dict, shown: int, stored: int) -> Response:
    response = json_response(graph)
    response.headers[POINTS_HEADER] = f"{shown}/{stored}"
    return response


# --------------------------------------------------------------------------- API


@bp.route("/api/runs/<int:run>/<subsystem>/trends")
def api_list(run: int, subsystem: str) -> Response:
    store = trend_store(run, subsystem)
    trends = [
        {"path": path, "name": name, "url": trend_url(run, subsystem, path, name)}
        for path, name in store.names()
    ]
    return json_response(
        {"run": run, "subsystem": subsystem, "points": len(store), "trends": trends}
    )


@bp.route("/api/runs/<int:run>/<subsystem>/trends/<path:path>")
def api_graph(run: int, subsystem: str, path: str) -> Response:
    views.require_path(path)
    name = request.args.get("name", "").strip()
    if not name:
        return json_error(f"name is required, e.g. name=mean ({', '.join(GENERIC_NAMES)})", 400)
    store = trend_store(run, subsystem)
    times, values = store.series(path, name)
    if not times.size:
        return json_error(missing_trend(store, run, subsystem, path, name), 404)
    shown_t, shown_v = thin(times, values)
    graph = trend_json(
        shown_t,
        shown_v,
        name=f"{path}:{name}",
        title=f"{name} of {path} (run {run} {subsystem})",
        y_title=name,
    )
    return _graph_response(graph, int(shown_t.size), int(times.size))


@bp.route("/api/trends/history")
def api_history() -> Response:
    args = request.args
    subsystem = args.get("subsystem", "").strip()
    path = args.get("path", "")
    name = args.get("name", "").strip()
    if not subsystem or not check_subsystem(subsystem):
        return json_error(f"subsystem must be a subsystem name, got {subsystem!r}", 400)
    try:
        check_path(path)
    except UnsafePath as error:
        return json_error(f"path: refused histogram path: {error}", 400)
    if not name:
        return json_error("name is required, e.g. name=mean", 400)
    output = args.get("format", "graph")
    if output not in ("graph", "points"):
        return json_error(f"format must be graph or points, got {output!r}", 400)
    try:
        runs = parse_runs(args.get("runs", ""))
    except queries.BadRequest as error:
        return json_error(str(error), 400)
    times, values, numbers = run_history(resources().data_dir, subsystem, path, name, runs)
    if not times.size:
        where = "the runs asked for" if runs is not None else "any run"
        return json_error(f"no trend {name!r} of {path!r} in {subsystem} in {where}", 404)
    shown_t, shown_v, shown_runs = thin(times, values, MAX_POINTS, numbers)
    distinct = sorted({int(r) for r in np.unique(numbers)})
    if output == "points":
        return json_response(
            {
                "subsystem": subsystem,
                "path": path,
                "name": name,
                "runs": distinct,
                "stored_points": int(times.size),
                "thinned": bool(shown_t.size < times.size),
                "times": shown_t.tolist(),
                "values": shown_v.tolist(),
                "run": shown_runs.astype(int).tolist(),
            }
        )
    span = f"run {distinct[0]}" if len(distinct) == 1 else f"runs {distinct[0]}-{distinct[-1]}"
    graph = trend_json(
        shown_t,
        shown_v,
        name=f"{subsystem}:{path}:{name}",
        title=f"{name} of {path}, {subsystem} {span} ({len(distinct)} runs)",
        y_title=name,
    )
    return _graph_response(graph, int(shown_t.size), int(times.size))


# --------------------------------------------------------------------------- page


def catalog(store: TrendStore) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """Trends grouped by histogram (in order of appearance), and "path:name" -> (path, name)."""
    by_path: dict[str, list[str]] = {}
    keys: dict[str, tuple[str, str]] = {}
    for path, name in store.names():
        by_path.setdefault(path, []).append(name)
        keys[f"{path}:{name}"] = (path, name)
    listing = [
        {
            "path": path,
            "names": [
                {"name": n, "key": f"{path}:{n}", "generic": n in GENERIC_NAMES} for n in names
            ],
        }
        for path, names in by_path.items()
    ]
    return listing, keys


@bp.route("/runs/<int:run>/<subsystem>/trends")
def page(run: int, subsystem: str) -> Response:
    store = trend_store(run, subsystem)
    listing, keys = catalog(store)
    wanted = list(dict.fromkeys(request.args.getlist("trend")))
    history = request.args.get("history", "") in ("1", "true", "on")
    notes: list[str] = []
    if len(wanted) > MAX_SELECTED:
        notes.append(f"only the first {MAX_SELECTED} of {len(wanted)} selected trends are drawn")
        wanted = wanted[:MAX_SELECTED]
    shown = []
    for key in wanted:
        pair = keys.get(key)
        if pair is None:
            notes.append(f"no trend {key!r} in run {run} {subsystem}")
            continue
        path, name = pair
        shown.append(
            {
                "key": key,
                "path": path,
                "name": name,
                "json": trend_url(run, subsystem, path, name),
                "history": history_url(subsystem, path, name) if history else None,
            }
        )
    return Response(
        render_template(
            "trends.html",
            run=run,
            subsystem=subsystem,
            listing=listing,
            selected={item["key"] for item in shown},
            shown=shown,
            history=history,
            notes=notes,
            points=len(store),
            option=GRAPH_OPTION,
        )
    )

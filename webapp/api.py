"""The JSON API, used by scripts (with a bearer token) and by the pages themselves.

``GET /api/runs?page=&per_page=``                         runs, newest first
``GET /api/runs/<run>``                                    one run and its subsystems
``GET /api/runs/<run>/<sys>/histograms``                   paths, classes, groups
``GET /api/runs/<run>/<sys>/histograms/<path>?slice=...``  one histogram, ROOT TBufferJSON
    (``slice``: cumulative, latest, or an on-demand slice's id or link: ``webapp.slices``)
``GET /api/runs/<run>/<sys>/snapshots``                    snapshot files (download links)
``GET /healthz``                                           no login; is the database there?

Errors are ``{"error": message}``. Histogram paths in URLs are percent-encoded
segment by segment (``EMCal/cell%20hits``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, request, url_for

from overwatch.store.db import read
from processing.ingest.cache import CacheError
from webapp import plugin_view, queries
from webapp.context import overwatch, resources
from webapp.histjson import SLICES
from webapp.http import encoded_response, json_error, json_response
from webapp.paths import UnsafePath, check_path, check_subsystem, quote_path

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


def ongoing_seconds() -> float:
    return resources().settings.processing.ongoing_minutes * 60.0


def histogram_listing(run: int, subsystem: str) -> dict[str, Any]:
    """Histograms of a subsystem's latest snapshot (in file order): classes, groups, JSON URLs.

    Raises LookupError (404) for an unknown run or subsystem.
    """
    # Raw histograms, then the detector plugin's derived ones and stacks, in the plugin's groups.
    pairs = plugin_view.listed_pairs(run, subsystem)
    infos = queries.histogram_infos(overwatch(), run, subsystem)
    groups = plugin_view.group_pairs(subsystem, pairs)
    group_of = {path: name for name, paths in groups.items() for path in paths}
    base = url_for("api.histograms", run=run, subsystem=subsystem)
    return {
        "run": run,
        "subsystem": subsystem,
        "histograms": [
            {
                "path": path,
                "class_name": class_name,
                "group": group_of[path],
                "first_seen": infos.get(path, {}).get("first_seen"),
                "last_seen": infos.get(path, {}).get("last_seen"),
                "url": f"{base}/{quote_path(path)}",
            }
            for path, class_name in pairs
        ],
        "groups": [{"name": name, "histograms": paths} for name, paths in groups.items()],
    }


@bp.route("/healthz")
def healthz() -> Response:
    """Public liveness check for load balancers and the demo: 200 if the database answers."""
    try:
        runs = read(resources().db, lambda root: len(root.runs))
    except Exception as error:  # any failure means "not healthy", reported, not raised
        log.warning("health check: database unreachable: %s", error)
        response = json_error(f"database unreachable: {type(error).__name__}", 503)
        return response
    response = json_response({"status": "ok", "database": "reachable", "runs": runs})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/runs")
def runs() -> Response:
    page, per_page = queries.parse_page(request.args.get("page"), request.args.get("per_page"))
    return json_response(
        queries.list_runs(overwatch(), page, per_page, time.time(), ongoing_seconds())
    )


@bp.route("/api/runs/<int:run>")
def run_detail(run: int) -> Response:
    return json_response(queries.run_detail(overwatch(), run, time.time(), ongoing_seconds()))


@bp.route("/api/runs/<int:run>/<subsystem>/histograms")
def histograms(run: int, subsystem: str) -> Response:
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    try:
        return json_response(histogram_listing(run, subsystem))
    except LookupError as error:
        return json_error(str(error), 404)


@bp.route("/api/runs/<int:run>/<subsystem>/snapshots")
def snapshots(run: int, subsystem: str) -> Response:
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    files = queries.snapshot_files(overwatch(), run, subsystem)
    for item in files:
        item["url"] = url_for("download.snapshot", relpath=item["filename"])
    return json_response({"run": run, "subsystem": subsystem, "snapshots": files})


@bp.route("/api/runs/<int:run>/<subsystem>/histograms/<path:path>")
def histogram(run: int, subsystem: str, path: str) -> Response:
    view = request.args.get("slice", "cumulative")
    try:
        check_path(path)
    except UnsafePath as error:
        return json_error(f"refused histogram path: {error}", 400)
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    if view not in SLICES:  # an on-demand slice: its id or link (webapp.slices says if bad)
        from webapp.slices import histogram_response

        return histogram_response(run, subsystem, path, view)
    try:
        encoded = resources().histograms.get(run, subsystem, path, view)
    except LookupError as error:
        return json_error(str(error) or f"histogram {path!r} not found", 404)
    except CacheError as error:
        log.error("cannot serve %s of run %d %s: %s", path, run, subsystem, error)
        return json_error(str(error), 500)
    return encoded_response(encoded)

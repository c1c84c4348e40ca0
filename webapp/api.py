"""The JSON API, used by scripts (with a bearer token) and by the pages themselves.

``GET /api/runs?page=&per_page=``                         runs, newest first
``GET /api/runs/<run>``                                    one run and its subsystems
``GET /api/runs/<run>/<sys>/view?slice=...``               the view of a slice: histograms,
    derived, stacks, groups, display options, annotations, check results, qualities
    (subsystem, groups, histograms) and the slice (start, end, duration, snapshots, events)
``GET /api/runs/<run>/<sys>/histograms?slice=...``         paths, classes, groups
``GET /api/runs/<run>/<sys>/histograms/<path>?slice=...``  one histogram, ROOT TBufferJSON
``GET /api/runs/<run>/<sys>/snapshots``                    snapshot files (download links)
``GET /healthz``                                           no login; is the database there?

``slice`` is ``cumulative`` (the default: the whole run), ``latest``, or an
on-demand slice's link or id (``webapp.slices``); plugin options given as query
parameters (``scale_by_events=true``) apply to the two named slices. Every
answer about a slice comes from the one view (``webapp.views.get_view``).

Errors are ``{"error": message}``. Histogram paths in URLs are percent-encoded
segment by segment (``EMCal/cell%20hits``).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request, url_for

from overwatch.store.db import DatabaseUnavailable, read, redact
from webapp import queries, views
from webapp.context import overwatch, resources
from webapp.http import json_error, json_response

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)


@bp.route("/healthz")
def healthz() -> Response:
    """Public liveness check for load balancers and the demo: 200 if the database answers.

    The storage is asked for real (a ZEO round trip, which its client cache
    cannot answer), within ``web.database_timeout``: 503 otherwise.
    """
    res = resources()
    try:
        res.check_database()
        runs = read(res.db, lambda root: len(root.runs))
    except Exception as error:  # any failure means "not healthy", reported, not raised
        log.warning(
            "health check: database %s unreachable: %s", redact(res.settings.database.uri), error
        )
        # A public endpoint: our own message holds no address, anything else only its kind.
        reason = (
            getattr(error, "public", error)
            if isinstance(error, DatabaseUnavailable)
            else type(error).__name__
        )
        response = json_error(f"database unreachable: {reason}", 503)
        response.headers["Cache-Control"] = "no-store"
        return response
    response = json_response({"status": "ok", "database": "reachable", "runs": runs})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/runs")
def runs() -> Response:
    page, per_page = queries.parse_page(request.args.get("page"), request.args.get("per_page"))
    ongoing = resources().ongoing_seconds
    return json_response(queries.list_runs(overwatch(), page, per_page, time.time(), ongoing))


@bp.route("/api/runs/<int:run>")
def run_detail(run: int) -> Response:
    ongoing = resources().ongoing_seconds
    return json_response(queries.run_detail(overwatch(), run, time.time(), ongoing))


@bp.route("/api/runs/<int:run>/<subsystem>/view")
def view(run: int, subsystem: str) -> Response:
    resolved = views.get_view(run, subsystem)
    data = resolved.view.to_dict()
    data["slice"]["name"] = resolved.link
    for item in data["histograms"]:
        item["url"] = views.drawing_url(resolved, item["path"])
    return json_response(data)


@bp.route("/api/runs/<int:run>/<subsystem>/histograms")
def histograms(run: int, subsystem: str) -> Response:
    return json_response(views.listing(views.get_view(run, subsystem)))


@bp.route("/api/runs/<int:run>/<subsystem>/snapshots")
def snapshots(run: int, subsystem: str) -> Response:
    views.require_subsystem(run, subsystem)
    files = queries.snapshot_files(overwatch(), run, subsystem)
    for item in files:
        item["url"] = url_for("download.snapshot", relpath=item["filename"])
    return json_response({"run": run, "subsystem": subsystem, "snapshots": files})


@bp.route("/api/runs/<int:run>/<subsystem>/histograms/<path:path>")
def histogram(run: int, subsystem: str, path: str) -> Response:
    views.require_path(path)
    return views.object_response(views.get_view(run, subsystem), path)

"""The Flask application factory.

``create_app(settings)`` builds the app from Overwatch settings; tests pass
overrides (``db=``, ``data_dir=``, ``secret_key=``). Blueprints, one per area:
``auth`` (login/logout), ``pages`` (run list, run and histogram pages),
``api`` (JSON), ``status`` (data-path health) and ``download`` (snapshot files).
``alarms`` (list, acknowledge), ``trends`` (time graphs), ``plugin_view``
(what a plugin made of a slice, plugin health), ``reference`` (comparison with a
reference run), ``slices`` (on-demand slices), ``layouts`` (dashboards from
YAML files), ``overview`` (subsystems x runs) and ``events`` (the live-event
stream). Blueprints share helpers (``views``, ``queries``, ``context``,
``http``, ``paths``, ``push``), never each other.
Nothing here opens the database: the first request of each process does
(see :mod:`webapp.context`), which keeps the app safe to build before a fork.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ZODB
from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

import processing
from overwatch.config import Settings, load_settings
from overwatch.store.db import DatabaseUnavailable, disconnected_errors, redact
from webapp import (
    alarms,
    api,
    auth,
    download,
    events,
    jsroot_tree,
    layouts,
    metrics,
    openapi,
    overview,
    pages,
    plugin_view,
    push,
    queries,
    reference,
    slice_page,
    slices,
    status,
    trends,
    upload,
)
from webapp.context import EXTENSION, Resources, close_connection, resources
from webapp.http import BodyError, OverwatchFlask, compress, json_error, wants_json
from webapp.paths import UnsafePath
from webapp.security import load_secret_key

log = logging.getLogger(__name__)

PARTIAL_HEADER = "X-Overwatch-Partial"
#: Scripts only from this site. 'unsafe-eval' because JSROOT compiles the formula of a
#: producer's function (TF1, TF2 without saved points) into JavaScript to draw it; no
#: inline script is allowed, so nothing a page shows can run as code by itself.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-eval'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}


def create_app(
    settings: Settings | None = None,
    *,
    db: ZODB.DB | None = None,
    data_dir: str | Path | None = None,
    secret_key: str | None = None,
    testing: bool = False,
) -> Flask:
    """Build the web app; ``db``/``data_dir``/``secret_key`` override the settings (tests)."""
    settings = settings if settings is not None else load_settings()
    app = OverwatchFlask(__name__, static_folder="static", template_folder="templates")
    app.url_map.merge_slashes = False  # "a//b" is refused as a path, not silently redirected
    app.config.update(
        SECRET_KEY=secret_key or load_secret_key(settings.web.secret_key_file),
        SESSION_COOKIE_NAME="overwatch_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.web.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),  # one shift
        MAX_CONTENT_LENGTH=64 * 1024,  # forms only; nothing large is ever posted
        TESTING=testing,
    )
    app.extensions[EXTENSION] = Resources(settings, db=db, data_dir=data_dir)
    app.teardown_appcontext(close_connection)

    metrics.init_app(app)  # GET /metrics; first, so request timing includes the login check
    auth.init_app(app)
    for blueprint in (pages.bp, api.bp, status.bp, download.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(reference.bp)  # reference-run comparison and overlays
    for blueprint in (alarms.bp, trends.bp, plugin_view.bp):  # plugins, qualities, alarms, trends
        app.register_blueprint(blueprint)
    app.register_blueprint(slices.bp)  # on-demand time slices
    app.register_blueprint(layouts.bp)  # dashboards from YAML layout files
    app.register_blueprint(overview.bp)  # subsystems x runs, pies of qualities
    app.register_blueprint(events.bp)  # live events (server-sent) for every page
    app.register_blueprint(openapi.bp)  # /api/openapi.json, the description of the API
    app.register_blueprint(upload.bp)  # POST /api/upload: snapshots over HTTP (DQM agents)
    app.register_blueprint(jsroot_tree.bp)  # /jsroot/: THttpServer's URLs for the JSROOT GUI
    push.init_app(app)
    app.after_request(_finish)
    _register_errors(app)
    _register_template_helpers(app)
    return app


def _finish(response: Response) -> Response:
    headers = response.headers
    if response.mimetype == "text/html":
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        response.vary.add(PARTIAL_HEADER)
        headers.setdefault("Cache-Control", "no-store")
    else:  # JSON, files: nothing renders them, but no browser may guess another type
        headers["X-Content-Type-Options"] = "nosniff"
    return compress(response)


def _error(message: str, status: int) -> Response:
    if wants_json():
        return json_error(message, status)
    html = render_template("error.html", message=message, status=status)
    return Response(html, status=status)


def _register_errors(app: Flask) -> None:
    """Each domain error is answered here once, for every blueprint (JSON or a page)."""
    for missing in (
        queries.NotFound,
        processing.UnknownRun,
        processing.UnknownSubsystem,
        processing.UnknownHistogram,
    ):

        @app.errorhandler(missing)
        def not_found(error: LookupError) -> Response:
            return _error(str(error), 404)

    @app.errorhandler(queries.BadRequest)
    def bad_request(error: queries.BadRequest) -> Response:
        return _error(str(error), 400)

    @app.errorhandler(UnsafePath)
    def unsafe_path(error: UnsafePath) -> Response:
        return _error(f"refused histogram path: {error}", 400)

    @app.errorhandler(processing.BadSliceLink)
    def bad_link(error: processing.BadSliceLink) -> Response:
        if wants_json():
            return json_error(f"bad slice: {error}", 400)
        return _error(
            f"This time-slice link is not valid: {error}. Ask for the slice again with the "
            "form on the run page, or check the link you followed.",
            400,
        )

    @app.errorhandler(processing.UnknownSlice)
    def unknown_slice(error: processing.UnknownSlice) -> Response:
        if wants_json():
            return json_error(str(error), 404)
        return slice_page.gone_page(str(error))

    @app.errorhandler(processing.SliceRangeError)
    def expired_slice(error: processing.SliceRangeError) -> Response:
        # Only a described slice whose snapshots are no longer processed gets here:
        # requests and links are snapped to the snapshots there are before computing.
        message = f"its snapshots are no longer processed ({error})"
        if wants_json():
            return json_error(f"slice gone: {message}; request it anew", 404)
        return slice_page.gone_page(message)

    @app.errorhandler(BodyError)
    def bad_body(error: BodyError) -> Response:
        return _error(str(error), error.status)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exception: RequestEntityTooLarge) -> Response:
        limit = request.max_content_length
        return _error(f"the request body is larger than {limit} bytes; send less", 413)

    @app.errorhandler(processing.SliceRequestError)
    def bad_slice_request(error: processing.SliceRequestError) -> Response:
        return _error(f"This time slice cannot be shown: {error}", 400)

    @app.errorhandler(processing.CacheError)
    def cache_error(error: processing.CacheError) -> Response:
        log.error("cannot serve %s: %s", request.path, error)
        return _error(str(error), 500)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        message = error.description or error.name
        if error.code == 404 and "requested URL was not found" in message:
            message = f"nothing at {request.path}"
        elif error.code == 405:
            message = f"{request.method} is not allowed on {request.path}"
        response = _error(message, error.code or 500)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if isinstance(error, disconnected_errors()):  # lost while a request read through it
            return database_unavailable(
                DatabaseUnavailable("the database is unreachable; try again in a moment")
            )
        log.exception("error while serving %s", request.path)
        return _error("internal error; the server log has the details", 500)

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(error: DatabaseUnavailable) -> Response:
        uri = redact(resources().settings.database.uri)
        log.warning("database %s unreachable while serving %s: %s", uri, request.path, error)
        response = _error(str(error), 503)
        response.headers["Retry-After"] = "5"
        return response


def _register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def layout() -> dict:
        partial = request.headers.get(PARTIAL_HEADER) == "1"
        return {"layout": "partial.html" if partial else "base.html"}

    @app.template_filter("utc")
    def utc(timestamp: float | None) -> str:
        if not timestamp:
            return "–"
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @app.template_filter("age")
    def age(seconds: float | None) -> str:
        return format_age(seconds)

    @app.template_filter("since")
    def since(timestamp: float | None) -> str:
        return format_age(time.time() - timestamp if timestamp else None)

    @app.template_filter("filesize")
    def filesize(size: float | None) -> str:
        if size is None:
            return "–"
        for unit in ("B", "kB", "MB", "GB", "TB"):
            if abs(size) < 1000 or unit == "TB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1000
        return ""


def format_age(seconds: float | None) -> str:
    """A short human duration: "12 s", "5 min", "3.2 h", "2 d"."""
    if seconds is None:
        return "never"
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"

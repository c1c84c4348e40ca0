"""On-demand time slices in the browser: the request API, their histograms, the run page view.

Routes (signed-in user or API token, like every route):

``POST /api/runs/<run>/<sys>/slices``
    body ``{"start": .., "end": .., "options": {..}, "preset": "last:15"|"run",
    "follow": false}`` as JSON (scripts; browsers add the ``X-CSRF-Token``
    header) or form fields (``options.<name>``). Times: run-relative minutes,
    a UTC time, or empty (run start / latest snapshot); see
    :mod:`processing.slices.spec`. Answers 201 with the slice's id, the
    interval actually available (snapped to snapshots), the full options, its
    quality, check results and annotations, its histograms' JSON URLs and a
    ``permalink`` (the run page showing it; with ``follow`` and a ``last:N``
    preset, a moving window that follows new snapshots). Bad input: 400
    ``{"error": .., "fields": {"start": .., "options.<name>": ..}}`` naming
    every offending field.
``GET /api/runs/<run>/<sys>/slices``
    the form's facts: the plugin's options (types, ranges, defaults, help),
    presets, the snapshots' range; with ``?slice=<link or id>`` the slice that
    link names now (a moving window's current slice: the page polls this).
``GET /api/runs/<run>/<sys>/slices/<id>``
    one slice's description (recomputed if this process does not hold it).
``GET /api/runs/<run>/<sys>/histograms/<path>?slice=<id or link>``
    one histogram of a slice as TBufferJSON (``webapp.api`` delegates here):
    raw, derived or a stack, as the plugin shows it with the slice's options.

The run page shows a slice when its ``slice`` parameter is a link
(``<start>..<end>;opt=..``, ``last:N;opt=..``) or an id: :func:`page_slice`
(called by ``webapp.pages``) computes it, the drawings load it by id, and
template globals of ``webapp.slice_page`` give the form, the slice's
annotations and qualities. A malformed link is a 400 page saying what is
wrong with it. Each web process keeps its
own LRU of slices (``web.slice_cache_entries``); their descriptions are in
ZODB, so any gunicorn worker serves any slice id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request, url_for

from overwatch.jsroot import stack, to_json_bytes, to_jsroot
from overwatch.plugins import load_plugin, run_hook
from processing.ingest.cache import CacheError
from processing.slices.reader import UnknownHistogram, UnknownRun, UnknownSubsystem
from processing.slices.service import SliceResult, SliceService, UnknownSlice
from processing.slices.spec import (
    SLICE_ID,
    BadSliceLink,
    SliceRequestError,
    minute_of,
    options_text,
    parse_link,
)
from webapp.auth import wants_json
from webapp.context import resources
from webapp.histjson import SLICES, encode, make_etag
from webapp.http import encoded_response, json_error, json_response
from webapp.paths import check_subsystem, quote_path

log = logging.getLogger(__name__)

bp = Blueprint("slices", __name__)

EXTENSION = "overwatch.slices"
PRESETS = (("last:5", "Last 5 min"), ("last:15", "Last 15 min"), ("last:60", "Last 60 min"),
           ("run", "Whole run"))  # fmt: skip
#: Seconds between two looks at a moving window's newest snapshot (slices.js).
WINDOW_POLL_SECONDS = 5
FIELDS = frozenset({"start", "end", "options", "preset", "follow"})
_lock = threading.Lock()


@dataclass
class SliceView:
    """What the run page shows for an on-demand ``slice`` parameter."""

    result: SliceResult
    link: str  # the canonical link: fixed, or the moving window
    window: float | None  # minutes of a moving window

    @property
    def slice_id(self) -> str:
        return self.result.slice_id


@bp.record_once
def _setup(state: Any) -> None:
    from webapp import slice_page  # it imports this module

    for function in (slice_page.slice_form, slice_page.slice_note, slice_page.slice_plugin_page):
        state.app.add_template_global(function)
    state.app.add_template_filter(slice_page.portable_slice)


def service() -> SliceService:
    """This process's slice service (re-made when the process re-opens its database)."""
    res = resources()
    db = res.db
    found = current_app.extensions.get(EXTENSION)
    if found is None or found.db is not db:
        with _lock:
            found = current_app.extensions.get(EXTENSION)
            if found is None or found.db is not db:
                found = SliceService(
                    res.data_dir, db, reader=res.reader, settings=res.settings.processing,
                    max_entries=res.settings.web.slice_cache_entries,
                )  # fmt: skip
                current_app.extensions[EXTENSION] = found
    return found


def is_ondemand(view: str) -> bool:
    """Whether a ``slice`` parameter names an on-demand slice (anything but the two views)."""
    return bool(view) and view not in SLICES


def _window_link(minutes: float, options: Any) -> str:
    return f"last:{minutes:g}" + options_text(options)


def resolve(run: int, subsystem: str, view: str) -> tuple[SliceResult, str, float | None]:
    """(result, canonical link, moving-window minutes) of a link or id; raises BadSliceLink."""
    svc = service()
    parsed = parse_link(view)
    if parsed.kind == "id":
        result = svc.by_id(parsed.slice_id)
        spec = result.spec
        if (spec.run, spec.subsystem) != (run, subsystem):
            raise BadSliceLink(
                f"slice {parsed.slice_id} is of run {spec.run} {spec.subsystem}, "
                f"not of run {run} {subsystem}"
            )
        return result, spec.link(), None
    spec = svc.from_link(run, subsystem, view)
    result = svc.get(spec)
    if parsed.kind == "window":
        return result, _window_link(parsed.minutes, spec.options), parsed.minutes
    return result, spec.link(), None


# --------------------------------------------------------------------------- the run page


def page_slice(run: int, subsystem: str, view: str) -> SliceView | None:
    """The on-demand slice a run page shows (None for cumulative/latest)."""
    if not is_ondemand(view):
        return None
    try:
        result, link, window = resolve(run, subsystem, view)
    except UnknownSlice as error:
        raise BadSliceLink(str(error)) from error
    shown = SliceView(result, link, window)
    g.ondemand_slice = shown
    return shown


def permalink(run: int, subsystem: str, link: str) -> str:
    return url_for("pages.subsystem_page", run=run, subsystem=subsystem, slice=link)


# --------------------------------------------------------------------------- API


def _request_error(fields: dict[str, str], status: int = 400) -> Response:
    summary = "; ".join(f"{name}: {why}" for name, why in fields.items())
    return json_response({"error": f"bad slice request: {summary}", "fields": fields}, status)


def _describe(result: SliceResult, link: str | None = None) -> dict[str, Any]:
    spec = result.spec
    base = url_for("api.histograms", run=spec.run, subsystem=spec.subsystem)
    data = result.summary()
    data["link"] = link or spec.link()
    data["permalink"] = permalink(spec.run, spec.subsystem, data["link"])
    data["url"] = url_for(
        "slices.detail", run=spec.run, subsystem=spec.subsystem, slice_id=result.slice_id
    )
    for item in data["histograms"]:
        item["url"] = f"{base}/{quote_path(item['path'])}?slice={result.slice_id}"
    return data


def _body() -> tuple[dict[str, Any], dict[str, str]]:
    """The request's fields from JSON or a form, and errors of its shape."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return {}, {"body": "expected a JSON object with start, end, options"}
        unknown = sorted(set(body) - FIELDS)
        return body, {k: f"unknown field; expected {', '.join(sorted(FIELDS))}" for k in unknown}
    form = request.form
    options = {k[len("options.") :]: v for k, v in form.items() if k.startswith("options.")}
    body = {k: form.get(k) for k in ("start", "end", "preset", "follow") if k in form}
    return {**body, "options": options}, {}


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    return {"true": True, "on": True, "1": True, "yes": True, "false": False, "off": False,
            "0": False, "no": False, "": False}.get(text)  # fmt: skip


@bp.route("/api/runs/<int:run>/<subsystem>/slices", methods=["POST"])
def create(run: int, subsystem: str) -> Response:
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    body, fields = _body()
    follow = _flag(body.get("follow"))
    preset = body.get("preset")
    if follow is None:
        fields["follow"] = f"expected true or false, got {body.get('follow')!r}"
    elif follow and not (isinstance(preset, str) and preset.startswith("last:")):
        fields["follow"] = "only a last:MINUTES preset can follow new snapshots"
    try:
        spec = service().validate(
            run, subsystem, start=body.get("start"), end=body.get("end"),
            options=body.get("options"), preset=preset,
        )  # fmt: skip
    except SliceRequestError as error:
        return _request_error({**fields, **error.fields})
    except UnknownRun as error:
        return _request_error({**fields, "run": str(error)})
    except UnknownSubsystem as error:
        return _request_error({**fields, "subsystem": str(error)})
    if fields:
        return _request_error(fields)
    link = None
    if follow:
        link = _window_link(float(preset.split(":", 1)[1]), spec.options)
    result = service().get(spec)
    response = json_response(_describe(result, link), 201)
    response.headers["Location"] = url_for(
        "slices.detail", run=run, subsystem=subsystem, slice_id=result.slice_id
    )
    return response


@bp.route("/api/runs/<int:run>/<subsystem>/slices")
def collection(run: int, subsystem: str) -> Response:
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    view = request.args.get("slice")
    if view:
        try:
            result, link, _window = resolve(run, subsystem, view)
        except BadSliceLink as error:
            return json_error(f"bad slice link: {error}", 400)
        return json_response(_describe(result, link))
    times, begin = service().times(run, subsystem)  # LookupError: 404 by the app
    plugin = load_plugin(subsystem)
    return json_response(
        {
            "run": run,
            "subsystem": subsystem,
            "options": [spec.to_dict() for spec in plugin.options],
            "presets": [name for name, _label in PRESETS],
            "run_start": begin,
            "snapshots": {
                "count": len(times),
                "first": times[0],
                "last": times[-1],
                "first_minute": minute_of(times[0], begin),
                "last_minute": minute_of(times[-1], begin),
            },
        }
    )


@bp.route("/api/runs/<int:run>/<subsystem>/slices/<slice_id>")
def detail(run: int, subsystem: str, slice_id: str) -> Response:
    if not check_subsystem(subsystem) or not SLICE_ID.match(slice_id):
        return json_error(f"no slice {slice_id!r} in run {run} {subsystem}", 404)
    try:
        result, link, _window = resolve(run, subsystem, slice_id)
    except BadSliceLink as error:
        return json_error(str(error), 404)
    return json_response(_describe(result, link))


def histogram_response(run: int, subsystem: str, path: str, view: str) -> Response:
    """One histogram of an on-demand slice as TBufferJSON (``webapp.api`` calls this)."""
    try:
        result, _link, _window = resolve(run, subsystem, view)
    except BadSliceLink as error:
        return json_error(f"bad slice: {error}", 400)
    except LookupError as error:
        return json_error(str(error), 404)
    except CacheError as error:
        log.error("cannot serve slice %s of run %d %s: %s", view, run, subsystem, error)
        return json_error(str(error), 500)
    encoded = result.encoded.get(path)
    if encoded is None:
        try:
            obj = _object(result, path)
        except UnknownHistogram as error:
            return json_error(str(error), 404)
        encoded = encode(to_json_bytes(obj), make_etag("slice", result.slice_id, path))
        result.encoded[path] = encoded
    return encoded_response(encoded)


def _object(result: SliceResult, path: str) -> dict:
    """A histogram of the slice as shown (raw or derived), or one of the plugin's stacks."""
    if path in result.histograms:
        return to_jsroot(result.shown(path))
    specs, _error = run_hook(result.plugin, "stacks", [p for p, _ in result.paths])
    for spec in specs or []:
        members = [m for m in spec.members if m in result.histograms]
        if spec.name == path and members:
            obj = stack(spec.name, spec.title, [result.shown(m) for m in members])
            obj["fOption"] = spec.draw_option
            return obj
    raise UnknownHistogram(
        f"no histogram {path!r} in slice {result.slice_id} of run {result.spec.run} "
        f"{result.spec.subsystem}"
    )


# --------------------------------------------------------------------------- errors of pages


def _page_error(message: str, status: int) -> Response:
    if wants_json():
        return json_error(message, status)
    html = render_template("error.html", message=message, status=status)
    return Response(html, status=status)


@bp.app_errorhandler(BadSliceLink)
def bad_link(error: BadSliceLink) -> Response:
    return _page_error(
        f"This time-slice link is not valid: {error}. Ask for the slice again with the "
        "form on the run page, or check the link you followed.",
        400,
    )


@bp.app_errorhandler(SliceRequestError)
def bad_request(error: SliceRequestError) -> Response:
    return _page_error(f"This time slice cannot be shown: {error}", 400)

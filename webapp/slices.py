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

A slice's histograms are served by the ordinary histogram URL
(``/api/runs/<run>/<sys>/histograms/<path>?slice=<id or link>``, ``webapp.api``)
and its whole view by ``/api/runs/<run>/<sys>/view?slice=<id or link>``: an
on-demand slice is a view like the whole run. The run page shows one when its
``slice`` parameter is a link (``<start>..<end>;opt=..``, ``last:N;opt=..``)
or an id; the template global ``slice_form`` (``webapp.slice_page``) gives the
form. A malformed link is a 400 saying what is wrong with it, an unknown id a
404. Each web process keeps its own LRU of views (``web.slice_cache_entries``);
their descriptions are in ZODB, so any gunicorn worker serves any slice id.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request, url_for

import processing
from overwatch.plugins import load_plugin
from webapp import slice_page, views
from webapp.context import resources
from webapp.http import BodyError, json_body, json_response

log = logging.getLogger(__name__)

bp = Blueprint("slices", __name__)

#: ``group``: the run page's group the slice was asked from, kept in its permalink.
FIELDS = frozenset({"start", "end", "options", "preset", "follow", "group"})


@bp.record_once
def _setup(state: Any) -> None:
    state.app.add_template_global(slice_page.slice_form)
    state.app.add_template_filter(slice_page.portable_slice)


# --------------------------------------------------------------------------- API


def _request_error(fields: dict[str, str], status: int = 400) -> Response:
    summary = "; ".join(f"{name}: {why}" for name, why in fields.items())
    return json_response({"error": f"bad slice request: {summary}", "fields": fields}, status)


def _describe(resolved: processing.Resolved, group: str | None = None) -> dict[str, Any]:
    view = resolved.view
    spec = view.spec
    data = view.summary()
    data["link"] = resolved.link
    data["permalink"] = slice_page.permalink(spec.run, spec.subsystem, resolved.link, group)
    data["url"] = url_for(
        "slices.detail", run=spec.run, subsystem=spec.subsystem, slice_id=view.slice_id
    )
    data["view_url"] = url_for(
        "api.view", run=spec.run, subsystem=spec.subsystem, slice=view.slice_id
    )
    for item in data["histograms"]:
        item["url"] = views.json_url(spec.run, spec.subsystem, item["path"], view.slice_id)
    return data


def _body() -> tuple[dict[str, Any], dict[str, str]]:
    """The request's fields from JSON or a form, and errors of its shape (BodyError: 400/413)."""
    if request.is_json:
        body = json_body()
        if not isinstance(body, dict):
            return {}, {"body": "expected a JSON object with start, end, options"}
        unknown = sorted(set(body) - FIELDS)
        return body, {k: f"unknown field; expected {', '.join(sorted(FIELDS))}" for k in unknown}
    form = request.form
    options = {k[len("options.") :]: v for k, v in form.items() if k.startswith("options.")}
    body = {k: form.get(k) for k in ("start", "end", "preset", "follow", "group") if k in form}
    return {**body, "options": options}, {}


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    return {"true": True, "on": True, "1": True, "yes": True, "false": False, "off": False,
            "0": False, "no": False, "": False}.get(text)  # fmt: skip


@bp.route("/api/runs/<int:run>/<subsystem>/slices", methods=["POST"])
def create(run: int, subsystem: str) -> Response:
    views.require_subsystem(run, subsystem)
    try:
        body, fields = _body()
    except BodyError as error:
        return _request_error({"body": str(error)}, error.status)
    follow = _flag(body.get("follow"))
    preset = body.get("preset")
    if follow is None:
        fields["follow"] = f"expected true or false, got {body.get('follow')!r}"
    elif follow and not (isinstance(preset, str) and preset.startswith("last:")):
        fields["follow"] = "only a last:MINUTES preset can follow new snapshots"
    service = resources().views
    try:
        spec = service.validate(
            run, subsystem, start=body.get("start"), end=body.get("end"),
            options=body.get("options"), preset=preset,
        )  # fmt: skip
    except processing.SliceRequestError as error:
        return _request_error({**fields, **error.fields})
    except processing.UnknownRun as error:
        return _request_error({**fields, "run": str(error)})
    except processing.UnknownSubsystem as error:
        return _request_error({**fields, "subsystem": str(error)})
    if fields:
        return _request_error(fields)
    link = spec.link()
    if follow:
        link = processing.window_link(float(preset.split(":", 1)[1]), spec.options)
    resolved = processing.Resolved(service.get(spec), link, None)
    group = body.get("group") if isinstance(body.get("group"), str) else None
    response = json_response(_describe(resolved, group or None), 201)
    response.headers["Location"] = url_for(
        "slices.detail", run=run, subsystem=subsystem, slice_id=spec.slice_id
    )
    return response


@bp.route("/api/runs/<int:run>/<subsystem>/slices")
def collection(run: int, subsystem: str) -> Response:
    views.require_subsystem(run, subsystem)
    if request.args.get("slice"):
        return json_response(_describe(views.get_view(run, subsystem)))
    times, begin = resources().views.times(run, subsystem)  # LookupError: 404 by the app
    plugin = load_plugin(subsystem)
    return json_response(
        {
            "run": run,
            "subsystem": subsystem,
            "options": [spec.to_dict() for spec in plugin.options],
            "presets": [name for name, _label in slice_page.PRESETS],
            "run_start": begin,
            "snapshots": {
                "count": len(times),
                "first": times[0],
                "last": times[-1],
                "first_minute": processing.minute_of(times[0], begin),
                "last_minute": processing.minute_of(times[-1], begin),
            },
        }
    )


@bp.route("/api/runs/<int:run>/<subsystem>/slices/<slice_id>")
def detail(run: int, subsystem: str, slice_id: str) -> Response:
    if not processing.SLICE_ID.match(slice_id):
        raise processing.UnknownSlice(f"no slice {slice_id!r} in run {run} {subsystem}")
    try:
        resolved = views.get_view(run, subsystem, slice_id)
    except processing.BadSliceLink as error:  # the id of another run's slice
        raise processing.UnknownSlice(str(error)) from None
    return json_response(_describe(resolved))

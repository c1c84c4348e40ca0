"""Detector plugins in the browser: groups, display, stacks, derived histograms, annotations,
qualities and plugin errors.

Routes (all need a signed-in user or an API token, like every route):

``GET /api/runs/<run>/<sys>/plugin``
    the plugin's view of a run's subsystem: plugin name and options, latest
    quality and group qualities, check results, annotations, stacks, derived
    histograms, plugin errors;
``GET /api/runs/<run>/<sys>/stacks/<name>?slice=``
    a stack as a JSROOT ``THStack`` (``overwatch.jsroot.stack``);
``GET /api/runs/<run>/<sys>/display/<path>?slice=&<option>=<value>``
    a histogram as the plugin shows it: its ``transform`` with the given plugin
    options (e.g. ``scale_by_events=true``), never stored, never trended;
``GET /api/plugins``
    installed plugins, load errors and the plugin errors of recent runs.

Derived histograms and stacks are also served by the ordinary histogram URL
(``/api/runs/<run>/<sys>/histograms/<path>``) and listed with the raw ones,
so pages, links and scripts treat them like any other histogram
(:func:`plugin_object`, :func:`listed_pairs`, :func:`group_pairs`).

Pages get, through template globals: :func:`plugin_entry` (per drawing: JSON
URL, JSROOT draw option from ``plugin.display``, title, annotation),
:func:`plugin_page` (subsystem quality, group qualities, display options
form) and :func:`plugin_health` (the status page's plugin errors).
Annotations and qualities come from ``Subsystem`` (written by processing
for the latest slice); the web app never recomputes checks.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, request, url_for

from overwatch.jsroot import stack as stack_json
from overwatch.jsroot import to_json_bytes, to_jsroot
from overwatch.plugins import available_plugins, load_errors, load_plugin, validate_options
from overwatch.store.models import OverwatchRoot
from processing.slices.reader import UnknownHistogram
from webapp import queries
from webapp.context import overwatch, resources
from webapp.histjson import encode, make_etag
from webapp.http import encoded_response, json_error, json_response
from webapp.paths import UnsafePath, check_path, check_subsystem, quote_path
from webapp.plugin_results import (
    STACK_CLASS,
    VIEWS,
    PluginViews,
    default_display,
    draw_option,
    has_plugin,
    overrides,
)
from webapp.plugin_results import group_pairs as _group_pairs

log = logging.getLogger(__name__)

bp = Blueprint("plugin_view", __name__)

EXTENSION = "overwatch.plugin_view"
#: Runs whose subsystems' plugin errors the status page lists (newest first).
RECENT_RUNS = 5
QUALITY_NAMES = ("Good", "Medium", "Bad", "Null")


@bp.record_once
def _setup(state: Any) -> None:
    app: Flask = state.app
    app.extensions[EXTENSION] = PluginViews(app.extensions["overwatch"])
    for function in (plugin_entry, plugin_page, plugin_health, plugin_note):
        app.add_template_global(function)


def views() -> PluginViews:
    return current_app.extensions[EXTENSION]


# --------------------------------------------------------------------------- listing hooks


def listed_pairs(run: int, subsystem: str) -> list[tuple[str, str]]:
    """(path, class) of the raw histograms, then the plugin's derived histograms and stacks."""
    pairs = resources().reader.histogram_paths(run, subsystem)
    return [*pairs, *views().extra_paths(run, subsystem)]


def group_pairs(subsystem: str, pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The run page's groups: ``plugin.grouped``; directories for a subsystem without a plugin."""
    return _group_pairs(load_plugin(subsystem), pairs)


def plugin_object(run: int, subsystem: str, path: str, view: str) -> dict:
    """TBufferJSON of a derived histogram or a stack; UnknownHistogram if neither."""
    found = views().results(run, subsystem, view)
    if path in found.derived:
        return to_jsroot(found.derived[path])
    if path in found.stacks:
        return _stack_object(run, subsystem, path, view)
    raise UnknownHistogram(
        f"no histogram {path!r} in run {run} {subsystem}, neither in the snapshot "
        "nor derived by the detector plugin"
    )


def _stack_object(run: int, subsystem: str, name: str, view: str) -> dict:
    spec, members = views().stack(run, subsystem, name, view)
    option = draw_option(views().display(run, subsystem, name, STACK_CLASS))
    obj = stack_json(name, spec.title, members)
    obj["fOption"] = option
    if "nostack" in option.lower():  # drawn over each other: filled members would hide the rest
        for member in obj["fHists"]["arr"]:
            member["fFillStyle"] = 0
    return obj


# --------------------------------------------------------------------------- options


def plugin_options(subsystem: str, args: Any) -> tuple[dict[str, Any], dict[str, str], dict]:
    """(all option values, errors by name, the options given) from query parameters.

    Only parameters named like one of the plugin's options are taken; on pages
    the other parameters (group, slice, opt) are the page's own.
    """
    plugin = load_plugin(subsystem)
    names = {spec.name for spec in plugin.options}
    given = {k: v for k, v in args.items() if k in names and v != ""}
    values, errors = validate_options(plugin.options, given)
    return values, errors, given


# --------------------------------------------------------------------------- template helpers


def _quality(value: Any) -> str:
    return value if value in QUALITY_NAMES else "Null"


def plugin_note(run: int, subsystem: str, path: str) -> dict | None:
    """The latest slice's annotation of one histogram (Annotation.to_dict()), or None."""
    try:
        sub = queries.get_subsystem(overwatch(), run, subsystem)
    except LookupError:
        return None
    note = sub.annotations.get(path)
    return {**note, "time": sub.evaluated_at} if note else None


def plugin_option(run: int, subsystem: str, path: str, class_name: str) -> str:
    """The JSROOT draw option the plugin chooses for a histogram (e.g. "colz;logz")."""
    try:
        return draw_option(views().display(run, subsystem, path, class_name))
    except LookupError:
        return draw_option(default_display(class_name))


def plugin_entry(run: int, subsystem: str, entry: dict, args: dict) -> dict:
    """One drawing of the run page as the plugin wants it (the entry itself is not changed).

    - a stack is fetched from the stacks URL;
    - with plugin options in the page URL, a histogram from the display URL (transform);
    - the draw option is the user's, else the plugin's (draw option and log axes);
    - ``note``: the latest slice's annotation; ``title``: the plugin's title.
    """
    path, class_name = entry["path"], entry["class_name"]
    view = args.get("slice", "cumulative")
    shown = dict(entry)
    plugin = load_plugin(subsystem)
    display = None
    try:
        display = views().display(run, subsystem, path, class_name)
    except LookupError as error:
        log.info("no display for %s in run %d %s: %s", path, run, subsystem, error)
    if not args.get("opt") and display is not None:
        shown["option"] = draw_option(display)
    shown["title"] = display.title if display is not None else None
    if view in VIEWS:
        if class_name == STACK_CLASS:
            shown["json"] = stack_url(run, subsystem, path, view)
        elif overrides(plugin, "transform"):
            values, errors, given = plugin_options(subsystem, request.args)
            defaults = {spec.name: spec.default for spec in plugin.options}
            changed = {k: v for k, v in given.items() if values[k] != defaults[k]}
            if changed and not errors:
                shown["json"] = display_url(run, subsystem, path, view, changed)
    shown["note"] = plugin_note(run, subsystem, path)
    return shown


def plugin_page(run: int, subsystem: str) -> dict[str, Any]:
    """Subsystem-wide plugin facts for the run page: qualities and the display options form."""
    sub = queries.get_subsystem(overwatch(), run, subsystem)
    plugin = load_plugin(subsystem)
    form = []
    option_errors: dict[str, str] = {}
    if overrides(plugin, "transform"):
        values, option_errors, _given = plugin_options(subsystem, request.args)
        form = [
            {
                "name": spec.name,
                "help": spec.help,
                "checked": bool(values[spec.name]),
                "default": bool(spec.default),
            }
            for spec in plugin.options
            if spec.kind == "bool"
        ]
    return {
        "plugin": plugin.name if has_plugin(plugin) else None,
        "quality": _quality(sub.quality),
        "group_qualities": {g: _quality(q) for g, q in dict(sub.group_qualities).items()},
        "evaluated_at": sub.evaluated_at,
        "plugin_errors": list(sub.plugin_errors),
        "load_error": load_errors.get(subsystem),
        "options": form,
        "option_errors": option_errors,
        "trends_url": url_for("trends.page", run=run, subsystem=subsystem),
    }


def recent_plugin_errors(root: OverwatchRoot, runs: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Subsystems of the newest runs whose plugin failed on their latest slice."""
    numbers = list(root.runs.keys()[-runs:]) if len(root.runs) else []
    found = []
    for number in reversed(numbers):
        for name, sub in root.runs[number].subsystems.items():
            if sub.plugin_errors:
                found.append(
                    {
                        "run": number,
                        "subsystem": name,
                        "errors": list(sub.plugin_errors),
                        "evaluated_at": sub.evaluated_at,
                    }
                )
    return found


def plugin_health() -> dict[str, Any]:
    """Installed plugins, the ones that failed to load, and recent plugin errors."""
    installed = available_plugins()
    for subsystem in installed:
        load_plugin(subsystem)  # fills load_errors in this process (same code as processing)
    try:
        recent = recent_plugin_errors(overwatch())
        error = ""
    except Exception as failure:  # the status page must render without the database
        log.warning("plugin errors unavailable: %s", failure)
        recent, error = [], f"{type(failure).__name__}: {failure}"
    return {
        "installed": installed,
        "load_errors": dict(load_errors),
        "recent": recent,
        "database_error": error,
    }


# --------------------------------------------------------------------------- URLs


def stack_url(run: int, subsystem: str, name: str, view: str) -> str:
    base = url_for("plugin_view.stack", run=run, subsystem=subsystem, name="_")[:-1]
    return f"{base}{quote_path(name)}?slice={view}"


def display_url(run: int, subsystem: str, path: str, view: str, options: dict) -> str:
    base = url_for("plugin_view.display", run=run, subsystem=subsystem, path="_")[:-1]
    return f"{base}{quote_path(path)}?" + urlencode({"slice": view, **options})


def _histogram_url(run: int, subsystem: str, path: str) -> str:
    return f"{url_for('api.histograms', run=run, subsystem=subsystem)}/{quote_path(path)}"


# --------------------------------------------------------------------------- API


def _view_or_error() -> tuple[str, Response | None]:
    view = request.args.get("slice", "cumulative")
    if view not in VIEWS:
        return view, json_error(f"slice must be one of {', '.join(VIEWS)}, got {view!r}", 400)
    return view, None


def _checked(run: int, subsystem: str, path: str) -> Response | None:
    try:
        check_path(path)
    except UnsafePath as error:
        return json_error(f"refused path: {error}", 400)
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    return None


@bp.route("/api/runs/<int:run>/<subsystem>/plugin")
def plugin_summary(run: int, subsystem: str) -> Response:
    if not check_subsystem(subsystem):
        return json_error(f"subsystem {subsystem!r} not found in run {run}", 404)
    sub = queries.get_subsystem(overwatch(), run, subsystem)
    plugin = load_plugin(subsystem)
    try:
        found = views().results(run, subsystem, "cumulative")
    except LookupError:  # known, but no snapshot processed yet
        found = None
    stacks, derived, errors = [], [], []
    if found is not None:
        errors = list(found.errors)
        derived = [
            {"path": p, "class_name": h.class_name, "url": _histogram_url(run, subsystem, p)}
            for p, h in found.derived.items()
        ]
        stacks = [
            {
                "name": s.name,
                "title": s.title,
                "members": list(s.members),
                "draw_option": draw_option(views().display(run, subsystem, s.name, STACK_CLASS)),
                "url": stack_url(run, subsystem, s.name, "cumulative"),
            }
            for s in found.stacks.values()
        ]
    return json_response(
        {
            "run": run,
            "subsystem": subsystem,
            "plugin": plugin.name if has_plugin(plugin) else None,
            "load_error": load_errors.get(subsystem),
            "options": [spec.to_dict() for spec in plugin.options],
            "quality": _quality(sub.quality),
            "group_qualities": {g: _quality(q) for g, q in dict(sub.group_qualities).items()},
            "evaluated_at": sub.evaluated_at or None,
            "check_results": [dict(r) for r in sub.check_results],
            "annotations": {p: dict(a) for p, a in dict(sub.annotations).items()},
            "plugin_errors": list(sub.plugin_errors),
            "view_errors": errors,
            "derived": derived,
            "stacks": stacks,
        }
    )


@bp.route("/api/runs/<int:run>/<subsystem>/stacks/<path:name>")
def stack(run: int, subsystem: str, name: str) -> Response:
    view, error = _view_or_error()
    if error is None:
        error = _checked(run, subsystem, name)
    if error is not None:
        return error
    res = resources()
    key = ("stack", run, subsystem, name, view, res.histograms.version(run, subsystem))
    encoded = res.histograms.cache.get(key)
    if encoded is None:
        try:
            obj = _stack_object(run, subsystem, name, view)
        except LookupError as missing:
            return json_error(str(missing), 404)
        encoded = encode(to_json_bytes(obj), make_etag(*key))
        res.histograms.cache.put(key, encoded)
    return encoded_response(encoded)


@bp.route("/api/runs/<int:run>/<subsystem>/display/<path:path>")
def display(run: int, subsystem: str, path: str) -> Response:
    view, error = _view_or_error()
    if error is None:
        error = _checked(run, subsystem, path)
    if error is not None:
        return error
    plugin = load_plugin(subsystem)
    given = {k: v for k, v in request.args.items() if k != "slice"}
    values, errors = validate_options(plugin.options, given)
    if errors:
        text = "; ".join(f"{name}: {message}" for name, message in sorted(errors.items()))
        return json_error(f"bad plugin option for {subsystem}: {text}", 400)
    res = resources()
    options_key = tuple(sorted(values.items()))
    key = (
        "display",
        run,
        subsystem,
        path,
        view,
        res.histograms.version(run, subsystem),
        options_key,
    )
    encoded = res.histograms.cache.get(key)
    if encoded is None:
        try:
            histogram, hook_error = views().shown_histogram(run, subsystem, path, view, values)
        except LookupError as missing:
            return json_error(str(missing), 404)
        if hook_error:
            log.warning("run %d %s: %s", run, subsystem, hook_error)
        encoded = encode(to_json_bytes(to_jsroot(histogram)), make_etag(*key))
        res.histograms.cache.put(key, encoded)
    return encoded_response(encoded)


@bp.route("/api/plugins")
def plugins() -> Response:
    return json_response(plugin_health())

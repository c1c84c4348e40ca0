"""Detector plugins in the browser: what a plugin made of a slice, and plugin health.

Routes (all need a signed-in user or an API token, like every route):

``GET /api/runs/<run>/<sys>/plugin?slice=``
    the plugin's part of a view (default: the whole run): plugin name and
    options, the slice's quality, group qualities, check results, annotations,
    stacks, derived histograms and plugin errors, all of that one slice;
``GET /api/runs/<run>/<sys>/stacks/<name>?slice=``
    a stack as a JSROOT ``THStack`` (the same JSON as the histogram URL of its name);
``GET /api/runs/<run>/<sys>/display/<path>?slice=&<option>=<value>``
    a histogram as the plugin shows it with the given plugin options (e.g.
    ``scale_by_events=true``): its ``transform``, never stored, never trended;
``GET /api/plugins``
    installed plugins, load errors and the plugin errors of recent runs.

Everything about a slice comes from its view (``webapp.views.get_view``): the
web app never calls a plugin hook. The status page gets :func:`plugin_health`
as a template global.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, request

import processing
from overwatch.plugins import DefaultPlugin, available_plugins, load_errors, load_plugin
from overwatch.store.models import OverwatchRoot
from webapp import views
from webapp.context import overwatch
from webapp.http import json_response

log = logging.getLogger(__name__)

bp = Blueprint("plugin_view", __name__)

#: Runs whose subsystems' plugin errors the status page lists (newest first).
RECENT_RUNS = 5


@bp.record_once
def _setup(state: Any) -> None:
    app: Flask = state.app
    app.add_template_global(plugin_health)


def plugin_name(subsystem: str) -> str | None:
    plugin = load_plugin(subsystem)
    return None if isinstance(plugin, DefaultPlugin) else plugin.name


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


# --------------------------------------------------------------------------- API


@bp.route("/api/runs/<int:run>/<subsystem>/plugin")
def plugin_summary(run: int, subsystem: str) -> Response:
    views.require_subsystem(run, subsystem)
    plugin = load_plugin(subsystem)
    resolved = views.get_view(run, subsystem)
    view = resolved.view
    analysis = view.analysis
    derived = [
        {
            "path": path,
            "class_name": view.class_of(path),
            "url": views.json_url(run, subsystem, path, views.slice_param(resolved)),
        }
        for path in analysis.derived
    ]
    stacks = [
        {
            "name": spec.name,
            "title": spec.title,
            "members": list(spec.members),
            "draw_option": view.draw_option(spec.name),
            "url": views.drawing_url(resolved, spec.name),
        }
        for spec in analysis.stacks.values()
    ]
    return json_response(
        {
            "run": run,
            "subsystem": subsystem,
            "slice": resolved.link,
            "plugin": plugin_name(subsystem),
            "load_error": load_errors.get(subsystem),
            "options": [spec.to_dict() for spec in plugin.options],
            "quality": analysis.quality,
            "group_qualities": analysis.group_qualities(),
            "evaluated_at": view.computed_at,
            "check_results": analysis.check_results(),
            "annotations": analysis.annotations,
            "plugin_errors": list(view.errors),
            "derived": derived,
            "stacks": stacks,
        }
    )


@bp.route("/api/runs/<int:run>/<subsystem>/stacks/<path:path>")
def stack(run: int, subsystem: str, path: str) -> Response:
    views.require_path(path)
    resolved = views.get_view(run, subsystem)
    stacks = resolved.view.analysis.stacks
    if path not in stacks:
        known = ", ".join(stacks) or "none"
        raise processing.UnknownHistogram(
            f"no stack {path!r} in run {run} {subsystem} (stacks: {known})"
        )
    return views.object_response(resolved, path)


@bp.route("/api/runs/<int:run>/<subsystem>/display/<path:path>")
def display(run: int, subsystem: str, path: str) -> Response:
    views.require_path(path)
    views.require_subsystem(run, subsystem)
    # Every parameter but the slice is a plugin option here: an unknown one is a 400.
    given = {k: v for k, v in request.args.items() if k != "slice"}
    return views.object_response(views.get_view(run, subsystem, options=given), path)


@bp.route("/api/plugins")
def plugins() -> Response:
    return json_response(plugin_health())

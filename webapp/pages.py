"""The pages a shifter or expert browses: run list, run page, histogram page.

Every view state lives in the URL (run, subsystem, group, histogram, slice,
draw option), so a link reproduces what its sender saw. Pages render the same
data as the JSON API (``webapp.queries``); JSROOT in the browser fetches each
histogram's JSON from the API and draws it.

A request carrying ``X-Overwatch-Partial: 1`` (sent by ``overwatch.js`` when
it follows a link without reloading the page) gets only the page content,
without the surrounding layout.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

import processing
from overwatch.plugins import DefaultPlugin, load_errors, load_plugin, validate_options
from overwatch.quality import Quality
from webapp import queries, views
from webapp.context import overwatch, resources

bp = Blueprint("pages", __name__)

MAX_OPTION_LENGTH = 100


def view_args() -> dict[str, str]:
    """The slice and draw option from the query string (an empty slice is the whole run).

    A slice other than cumulative/latest is an on-demand slice's link or id; a
    malformed one is a 400 page saying what is wrong with it.
    """
    view = request.args.get("slice") or "cumulative"
    option = request.args.get("opt", "").strip()[:MAX_OPTION_LENGTH]
    return {"slice": view, "opt": option}


def page_view(run: int, subsystem: str, slice_param: str) -> tuple[Any, dict[str, str]]:
    """(the page's view, or None before any snapshot is processed; bad plugin options).

    Bad plugin options in the query are named on the page and the view uses the
    defaults for them; an id nobody described is a slice that is gone (the app's
    404 page offers to compute it again).
    """
    given = views.query_options(subsystem, request.args)
    _values, option_errors = validate_options(load_plugin(subsystem).options, given)
    good = {k: v for k, v in given.items() if k not in option_errors}
    try:
        resolved = views.get_view(run, subsystem, slice_param, good)
    except processing.UnknownSubsystem:
        if slice_param in processing.VIEW_NAMES:
            return None, option_errors  # known, but no snapshot processed yet
        raise
    g.page_view = resolved
    return resolved, option_errors


def plugin_bar(run: int, subsystem: str, resolved: Any, option_errors: dict) -> dict[str, Any]:
    """The plugin's line on the run page: the view's quality and errors, the options form."""
    plugin = load_plugin(subsystem)
    view = resolved.view if resolved is not None else None
    form = []
    if view is not None and view.transforms:
        values = view.spec.option_values
        form = [
            {"name": spec.name, "help": spec.help, "checked": bool(values[spec.name]),
             "default": bool(spec.default)}
            for spec in plugin.options
            if spec.kind == "bool"
        ]  # fmt: skip
    return {
        "plugin": None if isinstance(plugin, DefaultPlugin) else plugin.name,
        "quality": view.analysis.quality if view else "Null",
        "group_qualities": view.analysis.group_qualities() if view else {},
        "histogram_qualities": view.analysis.histogram_qualities() if view else {},
        "slice": view.describe() if view else "",
        "evaluated_at": view.computed_at if view and view.analysis.evaluation else None,
        "plugin_errors": list(view.errors) if view else [],
        "load_error": load_errors.get(subsystem),
        "options": form,
        "option_errors": option_errors,
        "trends_url": url_for("trends.page", run=run, subsystem=subsystem),
    }


def drawing(resolved: Any, path: str, group: str, args: dict[str, str]) -> dict[str, Any]:
    """One figure of a page: JSON URL, draw option, note.

    The draw option is the plugin's with the user's merged in: ``opt.<path>=`` for this
    histogram, else the page-wide ``opt=`` for a 1D one (processing/slices/draw_options.py
    says why; on a histogram's own page ``opt=`` is that histogram's); an option JSROOT would not understand is named (``option_error``) and the
    plugin's is drawn.
    """
    view = resolved.view
    spec = view.spec
    key = f"opt.{path}"
    own = request.args.get(key, "").strip()[:MAX_OPTION_LENGTH]
    if not own and request.endpoint == "pages.histogram_page":
        own = args["opt"]  # the page shows this one histogram: opt= is its own
    chosen = view.user_draw_option(path, own, args["opt"])
    return {
        "path": path,
        "class_name": view.class_of(path),
        "json": views.drawing_url(resolved, path),
        "option": chosen.option,
        "option_error": chosen.error,
        "option_key": key,
        "own_option": own,
        "plugin_option": view.draw_option(path),
        "projection_options": projection_options(view, path, chosen.option),
        "title": view.display(path).title,
        "page": views.histogram_page_url(
            spec.run,
            spec.subsystem,
            path,
            group=group,
            **args,
            **{key: own},
            **views.changed_options(resolved),
        ),  # fmt: skip
        "note": view.annotations.get(path),
        # Annotations are the view's own: computed from the slice the page shows, said so.
        "about": view.describe(),
        # A graph or function cannot be subtracted: a slice shows it as at its end.
        "not_sliced": spec.start is not None and path in view.not_sliced(),
        "quality": view.analysis.histogram_qualities().get(path),
        "checks": view.analysis.checks_by_histogram.get(path, []),
    }


def projection_options(view: Any, path: str, option: str) -> dict[str, str]:
    """A 3D histogram's overlay is its x, y, z projections (webapp/reference.py): the option
    of each, keeping the plugin's log axes (processing.projection_option); {} for the rest.
    A projection the plugin derives itself (``<path>_px``, ROOT's name) lends its log axes."""
    if view.dimension(path) != 3:
        return {}
    derived = view.histograms
    return {
        axis: processing.projection_option(
            option,
            axis,
            view.draw_option(f"{path}_p{axis}") if f"{path}_p{axis}" in derived else "",
        )
        for axis in "xyz"
    }


def quality_filter() -> str | None:
    """``?quality=Bad``: only the histograms of that quality (any case; a typo is a 400)."""
    text = request.args.get("quality", "").strip()
    if not text:
        return None
    try:
        return Quality.parse(text).value
    except ValueError as error:
        raise queries.BadRequest(str(error)) from None


def filtered(
    resolved: Any, groups: dict[str, list[str]], group: str, quality: str | None
) -> tuple[list[str], str]:
    """(paths shown, group): the group's paths, or with a quality filter those of that quality.

    The filter answers "which histograms are Bad?": without an explicit ``group`` it looks
    through every group (each path once), the way the overview counted them. A histogram
    no check looked at is Null, as there.
    """
    if quality is None:
        return list(groups.get(group, ())), group
    qualities = resolved.view.analysis.histogram_qualities() if resolved is not None else {}
    explicit = request.args.get("group", "") in groups
    pools = [groups[group]] if explicit else list(groups.values())
    paths = dict.fromkeys(p for pool in pools for p in pool if qualities.get(p, "Null") == quality)
    return list(paths), group if explicit else ""


@bp.route("/")
def index() -> Response:
    return redirect(url_for("pages.runs"))


@bp.route("/runs")
def runs() -> str:
    try:
        page, per_page = queries.parse_page(request.args.get("page"), request.args.get("per_page"))
    except queries.BadRequest:
        page, per_page = 1, queries.DEFAULT_PER_PAGE
    ongoing = resources().ongoing_seconds
    listing = queries.list_runs(overwatch(), page, per_page, time.time(), ongoing)
    subsystems = sorted({name for run in listing["runs"] for name in run["subsystems"]})
    return render_template("runs.html", listing=listing, subsystems=subsystems)


@bp.route("/runs/<int:run>")
def run_page(run: int) -> Response:
    detail = queries.run_detail(overwatch(), run, time.time(), resources().ongoing_seconds)
    if not detail["subsystems"]:
        return Response(render_template("run.html", detail=detail, subsystem=None))
    first = sorted(detail["subsystems"])[0]
    return redirect(url_for("pages.subsystem_page", run=run, subsystem=first, **request.args))


@bp.route("/runs/<int:run>/<subsystem>")
def subsystem_page(run: int, subsystem: str) -> str:
    views.require_subsystem(run, subsystem)
    root = overwatch()
    queries.get_subsystem(root, run, subsystem)  # 404 naming what is missing
    detail = queries.run_detail(root, run, time.time(), resources().ongoing_seconds)
    args = view_args()
    resolved, option_errors = page_view(run, subsystem, args["slice"])
    groups = resolved.view.analysis.groups if resolved is not None else {}
    group = request.args.get("group", "")
    if group and resolved is not None and group not in groups:  # never another group silently
        raise queries.NotFound(
            f"no group {group[:60]!r} in run {run} {subsystem}; its groups: "
            + (", ".join(groups) or "none")
        )
    if group not in groups:
        group = next(iter(groups), "")
    quality = quality_filter()
    paths, group = filtered(resolved, groups, group, quality)
    shown = [drawing(resolved, path, group, args) for path in paths]
    return render_template(
        "run.html",
        detail=detail,
        subsystem=subsystem,
        groups=[{"name": name, "histograms": paths} for name, paths in groups.items()],
        group=group,
        shown=shown,
        args=args,
        quality_filter=quality,
        search=request.args.get("q", "")[:MAX_OPTION_LENGTH],
        pv=plugin_bar(run, subsystem, resolved, option_errors),
        counts=resolved.view.counts() if resolved is not None else None,
        snapshots=queries.snapshot_files(root, run, subsystem),
        errors=queries.recent_errors(root, run, subsystem),
    )


@bp.route("/runs/<int:run>/<subsystem>/hist/<path:path>")
def histogram_page(run: int, subsystem: str, path: str) -> str:
    views.require_path(path)
    views.require_subsystem(run, subsystem)
    args = view_args()
    resolved, _option_errors = page_view(run, subsystem, args["slice"])
    try:
        if resolved is None:
            raise processing.UnknownHistogram(path)
        figure = drawing(resolved, path, request.args.get("group", ""), args)
    except processing.UnknownHistogram:
        raise queries.NotFound(
            f"histogram {path!r} not found in run {run}, subsystem {subsystem!r}"
        ) from None
    root = overwatch()
    info = queries.histogram_infos(root, run, subsystem).get(path) or {}
    info = {
        **info,
        "class_name": figure["class_name"],
        "latest": queries.get_subsystem(root, run, subsystem).end,
    }
    group = request.args.get("group", "")
    slice_links = {
        name: views.histogram_page_url(
            run, subsystem, path, slice=name, opt=args["opt"], group=group
        )
        for name in processing.VIEW_NAMES
    }
    return render_template(
        "histogram.html",
        slice_links=slice_links,
        run=run,
        subsystem=subsystem,
        path=path,
        info=info,
        args=args,
        figure=figure,
        group=group,
    )

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
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from overwatch.histogram import dimension_of
from webapp import plugin_view, queries, slices
from webapp.api import histogram_listing, ongoing_seconds
from webapp.context import overwatch
from webapp.histjson import SLICES
from webapp.paths import UnsafePath, check_path, check_subsystem, quote_path

bp = Blueprint("pages", __name__)

MAX_OPTION_LENGTH = 100


def default_option(class_name: str) -> str:
    """What JSROOT draws a class with unless the user asks for another option."""
    try:
        ndim = dimension_of(class_name)
    except ValueError:
        return ""
    return "colz" if ndim == 2 else ""


def view_args() -> dict[str, str]:
    """The slice and draw option from the query string, checked (bad values fall back).

    A slice other than cumulative/latest is an on-demand slice's link or id,
    checked by ``webapp.slices.page_slice`` (a malformed one is a 400 page).
    """
    view = request.args.get("slice", "cumulative")
    if view not in SLICES and not slices.is_ondemand(view):
        view = "cumulative"
    option = request.args.get("opt", "").strip()[:MAX_OPTION_LENGTH]
    return {"slice": view, "opt": option}


def histogram_url(run: int, subsystem: str, path: str, **query: str) -> str:
    """Link to a histogram page; the path is percent-encoded segment by segment."""
    base = url_for("pages.histogram_page", run=run, subsystem=subsystem, path="_")[:-1]
    query_string = urlencode({key: value for key, value in query.items() if value})
    return base + quote_path(path) + (f"?{query_string}" if query_string else "")


@bp.app_template_global()
def json_url(run: int, subsystem: str, path: str, view: str) -> str:
    base = url_for("api.histograms", run=run, subsystem=subsystem)
    return f"{base}/{quote_path(path)}?slice={view}"


@bp.route("/")
def index() -> Response:
    return redirect(url_for("pages.runs"))


@bp.route("/runs")
def runs() -> str:
    try:
        page, per_page = queries.parse_page(request.args.get("page"), request.args.get("per_page"))
    except queries.BadRequest:
        page, per_page = 1, queries.DEFAULT_PER_PAGE
    listing = queries.list_runs(overwatch(), page, per_page, time.time(), ongoing_seconds())
    subsystems = sorted({name for run in listing["runs"] for name in run["subsystems"]})
    return render_template("runs.html", listing=listing, subsystems=subsystems)


@bp.route("/runs/<int:run>")
def run_page(run: int) -> Response:
    detail = queries.run_detail(overwatch(), run, time.time(), ongoing_seconds())
    if not detail["subsystems"]:
        return Response(render_template("run.html", detail=detail, subsystem=None))
    first = sorted(detail["subsystems"])[0]
    return redirect(url_for("pages.subsystem_page", run=run, subsystem=first, **request.args))


@bp.route("/runs/<int:run>/<subsystem>")
def subsystem_page(run: int, subsystem: str) -> str:
    if not check_subsystem(subsystem):
        raise queries.NotFound(f"subsystem {subsystem!r} not found in run {run}")
    root = overwatch()
    detail = queries.run_detail(root, run, time.time(), ongoing_seconds())
    if subsystem not in detail["subsystems"]:
        raise queries.NotFound(f"subsystem {subsystem!r} not found in run {run}")
    try:
        listing = histogram_listing(run, subsystem)
    except LookupError:  # known to the database, but no snapshot processed yet
        listing = {"histograms": [], "groups": []}
    groups = listing["groups"]
    names = [g["name"] for g in groups]
    group = request.args.get("group", "")
    if group not in names:
        group = names[0] if names else ""
    classes = {h["path"]: h["class_name"] for h in listing["histograms"]}
    args = view_args()
    ondemand = slices.page_slice(run, subsystem, args["slice"])  # None for cumulative/latest
    shown: list[dict[str, Any]] = []
    for g in groups:
        if g["name"] != group:
            continue
        for path in g["histograms"]:
            shown.append(
                {
                    "path": path,
                    "class_name": classes[path],
                    "json": json_url(
                        run, subsystem, path, ondemand.slice_id if ondemand else args["slice"]
                    ),
                    "option": args["opt"] or default_option(classes[path]),
                    "page": histogram_url(run, subsystem, path, group=group, **args),
                }
            )
    return render_template(
        "run.html",
        detail=detail,
        subsystem=subsystem,
        groups=groups,
        group=group,
        shown=shown,
        args=args,
        snapshots=queries.snapshot_files(root, run, subsystem),
        errors=queries.recent_errors(root, run, subsystem),
    )


@bp.route("/runs/<int:run>/<subsystem>/hist/<path:path>")
def histogram_page(run: int, subsystem: str, path: str) -> str:
    try:
        check_path(path)
    except UnsafePath as error:
        abort(400, f"refused histogram path: {error}")
    if not check_subsystem(subsystem):
        raise queries.NotFound(f"subsystem {subsystem!r} not found in run {run}")
    classes = dict(plugin_view.listed_pairs(run, subsystem))  # derived and stacks too
    if path not in classes:
        raise queries.NotFound(
            f"histogram {path!r} not found in run {run}, subsystem {subsystem!r}"
        )
    root = overwatch()
    info = queries.histogram_infos(root, run, subsystem).get(path) or {}
    # Listed from the latest snapshot, so the histogram is in it.
    info = {
        **info,
        "class_name": classes[path],
        "latest": queries.get_subsystem(root, run, subsystem).end,
    }
    args = view_args()
    slices.page_slice(run, subsystem, args["slice"])  # a malformed slice link: a 400 page
    group = request.args.get("group", "")
    slice_links = {
        view: histogram_url(run, subsystem, path, slice=view, opt=args["opt"], group=group)
        for view in SLICES
    }
    return render_template(
        "histogram.html",
        slice_links=slice_links,
        run=run,
        subsystem=subsystem,
        path=path,
        info=info,
        args=args,
        option=args["opt"] or plugin_view.plugin_option(run, subsystem, path, info["class_name"]),
        json=json_url(run, subsystem, path, args["slice"]),
        group=group,
    )

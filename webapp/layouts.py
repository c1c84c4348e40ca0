"""Dashboards: the YAML layouts of ``web.layouts_dir`` as pages and JSON.

``GET /layouts``
    every layout with its description; a broken file shows its error
    (``file:line: key: message``) and the others are listed as usual;
``GET /layouts/<name>?tab=<tab>&run=<run>&slice=cumulative|latest&cycle=0``
    one layout: the tab (default the first) as a grid of ``columns`` plots.
    Without ``run`` each item shows the newest run that has its subsystem;
    ``cycle=0`` stops the tab cycling of ``cycle_seconds`` (static/layouts.js);
``GET /api/layouts``, ``GET /api/layouts/<name>?tab=&run=&slice=``
    the same as JSON; an item is expanded to the histograms it matches in its
    run, each with the JSON URL that draws it (every tab without ``tab``).

An unknown layout or tab is a 404, a malformed ``run``/``slice`` a 400 (the
app's handlers); a broken file is its error on a 200 page, and a 422 from the
API. Files are parsed by :mod:`webapp.layout_files`, which re-reads a file
when it changes: editing a layout needs no restart.

Each drawing is an ``.ow-drawing`` like the run page's (overwatch.js draws it)
and carries ``data-run``, ``data-subsystem`` and ``data-path``; the page
carries ``data-live-run`` (the run of the URL, else the newest run shown) and
``data-live-subsystems`` for live updates. An item's ``draw_option`` is merged with
the plugin's option for each histogram it shows (processing/slices/draw_options.py, as
``opt.<path>=`` on the run page): ``logy`` on a map keeps its palette; an option JSROOT
would not understand is named next to the plot (``option_error``), drawn with the
plugin's. An item with ``reference: true``
is drawn alone with a link to its run page, where the comparison with the
reference run is overlaid (one page compares one subsystem).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

import processing
from overwatch import names
from overwatch.resources import resource
from overwatch.store.models import OverwatchRoot
from webapp import queries, views
from webapp.context import overwatch
from webapp.http import json_response
from webapp.layout_files import Item, Layout, LayoutError, LayoutFolder, Tab

bp = Blueprint("layouts", __name__)

EXTENSION = "overwatch.layouts"
#: Runs looked at (newest first) for the newest run of each subsystem.
MAX_RUNS_SEARCHED = 1000


@bp.record_once
def _open_folder(setup: BlueprintSetupState) -> None:
    app: Flask = setup.app
    configured = app.extensions["overwatch"].settings.web.layouts_dir
    app.extensions[EXTENSION] = LayoutFolder(configured or resource("layouts"))


def folder() -> LayoutFolder:
    return current_app.extensions[EXTENSION]


# --------------------------------------------------------------------------- lookups


def get_layout(name: str) -> Layout | LayoutError:
    """The layout (or its error, if the file is broken); NotFound (404) if there is none."""
    found = folder().get(name)
    if found is None:
        known = ", ".join(folder().names()) or "none"
        raise queries.NotFound(f"layout {name!r} not found (layouts: {known})")
    return found


def get_tab(board: Layout, name: str | None) -> Tab:
    tab = board.tab(name)
    if tab is None:
        tabs = ", ".join(t.name for t in board.tabs)
        raise queries.NotFound(f"layout {board.name!r} has no tab {name!r} (tabs: {tabs})")
    return tab


def url_args() -> tuple[int | None, str]:
    """The run (None: each item's newest) and the slice of the URL; BadRequest if malformed."""
    text = request.args.get("run", "").strip()
    run = None
    if text:
        try:
            run = names.parse_run(text)
        except names.InvalidName as error:
            raise queries.BadRequest(f"run: {error}") from None
    view = request.args.get("slice") or "cumulative"
    if view not in processing.VIEW_NAMES:
        raise queries.BadRequest(
            f"slice: expected one of {', '.join(processing.VIEW_NAMES)}, got {view[:40]!r}"
        )
    return run, view


def newest_runs(root: OverwatchRoot, subsystems: list[str]) -> dict[str, int]:
    """Subsystem -> the newest run that has it (among the last runs)."""
    wanted, found = set(subsystems), {}
    keys = root.runs.keys()
    for index in range(len(keys) - 1, max(-1, len(keys) - 1 - MAX_RUNS_SEARCHED), -1):
        number = keys[index]
        for name in wanted & set(root.runs[number].subsystems):
            found[name] = number
        wanted -= set(found)
        if not wanted:
            break
    return found


def error_dict(error: LayoutError) -> dict[str, Any]:
    return {
        "text": str(error),
        "file": error.file,
        "line": error.line,
        "key": error.key,
        "message": error.message,
    }


# --------------------------------------------------------------------------- expansion


class _Views:
    """The views of one request, by (run, subsystem): items of one subsystem share one."""

    def __init__(self, view: str) -> None:
        self.view = view
        self._found: dict[tuple[int, str], processing.Resolved | str] = {}

    def get(self, run: int, subsystem: str) -> processing.Resolved | str:
        """The view, or why there is none (a sentence for the page)."""
        key = (run, subsystem)
        if key not in self._found:
            try:
                self._found[key] = views.get_view(run, subsystem, self.view, {})
            except (queries.NotFound, processing.UnknownRun, processing.UnknownSubsystem):
                self._found[key] = f"run {run} has no processed {subsystem} snapshot"
        return self._found[key]


def _figure(resolved: processing.Resolved, item: Item, path: str, view_name: str) -> dict:
    view = resolved.view
    # The item's option is this histogram's own, merged with the plugin's like opt.<path>= on
    # the run page: plugin defaults stay unless the item overrides them.
    chosen = view.user_draw_option(path, item.draw_option)
    run, subsystem = view.spec.run, view.spec.subsystem
    caption = item.title or view.display(path).title or path
    if item.is_glob:
        caption = f"{item.title}: {path}" if item.title else path
    return {
        "path": path,
        "class_name": view.class_of(path),
        "caption": caption,
        "url": views.drawing_url(resolved, path),
        "option": chosen.option,
        "option_error": chosen.error,
        "plugin_option": view.draw_option(path),
        "page": views.histogram_page_url(run, subsystem, path, slice=view_name),
        "quality": view.analysis.histogram_qualities().get(path),
    }


def expand(item: Item, run: int | None, newest: dict[str, int], found: _Views) -> dict[str, Any]:
    """One item with the histograms it shows in its run (or a note saying why none)."""
    number = run if run is not None else newest.get(item.subsystem)
    entry: dict[str, Any] = {
        "subsystem": item.subsystem,
        "histogram": item.histogram,
        "glob": item.is_glob,
        "title": item.title,
        "draw_option": item.draw_option,
        "reference": item.reference,
        "tab": item.tab,
        "line": item.line,
        "run": number,
        "run_page": None,
        "note": "",
        "histograms": [],
    }
    if number is None:
        entry["note"] = f"no run has {item.subsystem} yet"
        return entry
    resolved = found.get(number, item.subsystem)
    if isinstance(resolved, str):
        entry["note"] = resolved
        return entry
    entry["run_page"] = url_for(
        "pages.subsystem_page", run=number, subsystem=item.subsystem, slice=found.view
    )
    paths = [path for path, _class in resolved.view.paths]
    entry["histograms"] = [_figure(resolved, item, p, found.view) for p in item.select(paths)]
    if not entry["histograms"]:
        what = "nothing matches" if item.is_glob else "no histogram"
        entry["note"] = f"{what} {item.histogram!r} in run {number} {item.subsystem}"
    return entry


def expand_items(board: Layout, items: list[Item], run: int | None, view: str) -> list[dict]:
    newest = {} if run is not None else newest_runs(overwatch(), board.subsystems())
    found = _Views(view)
    return [expand(item, run, newest, found) for item in items]


def tab_url(board: Layout, tab: Tab, **keep: Any) -> str:
    return url_for("layouts.page", name=board.name, tab=tab.name, **keep)


def summary(name: str, found: Layout | LayoutError) -> dict[str, Any]:
    """What the list of layouts shows of one."""
    entry: dict[str, Any] = {
        "name": name,
        "url": url_for("layouts.page", name=name),
        "api": url_for("layouts.api_layout", name=name),
        "error": None,
    }
    if isinstance(found, LayoutError):
        return {**entry, "title": name, "description": "", "tabs": [], "subsystems": [],
                "items": 0, "error": error_dict(found)}  # fmt: skip
    return {
        **entry,
        "title": found.title,
        "description": found.description,
        "tabs": [tab.name for tab in found.tabs],
        "subsystems": found.subsystems(),
        "items": len(found.items),
    }


def _tabs(board: Layout, keep: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "columns": t.columns, "cycle_seconds": t.cycle_seconds,
         "url": tab_url(board, t, **keep)}
        for t in board.tabs
    ]  # fmt: skip


# --------------------------------------------------------------------------- API


@bp.route("/api/layouts")
def api_list() -> Response:
    return json_response(
        {"layouts": [summary(name, found) for name, found in folder().all().items()]}
    )


@bp.route("/api/layouts/<name>")
def api_layout(name: str) -> Response:
    found = get_layout(name)
    if isinstance(found, LayoutError):
        return json_response({"name": name, "error": error_dict(found)}, status=422)
    run, view = url_args()
    wanted = request.args.get("tab")
    items = list(found.items) if not wanted else found.items_on(get_tab(found, wanted))
    keep = {"run": run, "slice": view if view != "cumulative" else None}
    return json_response(
        {
            "name": found.name,
            "title": found.title,
            "description": found.description,
            "tab": wanted or None,
            "run": run,
            "slice": view,
            "tabs": _tabs(found, keep),
            "items": expand_items(found, items, run, view),
        }
    )


# --------------------------------------------------------------------------- pages


@bp.route("/layouts")
def index() -> str:
    listing = [summary(name, found) for name, found in folder().all().items()]
    return render_template("layouts.html", listing=listing, folder=str(folder().folder))


@bp.route("/layouts/<name>")
def page(name: str) -> Response:
    found = get_layout(name)
    if isinstance(found, LayoutError):
        html = render_template("layout.html", name=name, board=None, error=error_dict(found))
        return Response(html)
    tab = get_tab(found, request.args.get("tab"))
    run, view = url_args()
    cycle = request.args.get("cycle", "")
    keep = {
        "run": run,
        "slice": view if view != "cumulative" else None,
        "cycle": cycle or None,
    }
    tabs = _tabs(found, keep)
    index_of = [t["name"] for t in tabs].index(tab.name)
    items = expand_items(found, found.items_on(tab), run, view)
    shown_runs = [item["run"] for item in items if item["histograms"]]
    live_run = run if run is not None else max(shown_runs, default="")
    return Response(
        render_template(
            "layout.html",
            name=name,
            board=found,
            error=None,
            tab=tab,
            tabs=tabs,
            next_tab=tabs[(index_of + 1) % len(tabs)] if len(tabs) > 1 else None,
            cycling=bool(tab.cycle_seconds) and cycle != "0" and len(tabs) > 1,
            items=items,
            run=run,
            view=view,
            live_run=live_run,
            live_subsystems=" ".join(sorted({item["subsystem"] for item in items})),
            runs=sorted(set(shown_runs), reverse=True),
        )
    )

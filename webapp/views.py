"""The one lookup of what a page or an API answer shows: a subsystem's view of a slice.

Every blueprint that shows histograms asks :func:`get_view`, the way Flask's
tutorial asks ``get_post``: it checks the names, resolves the ``slice``
parameter (``cumulative``, ``latest``, an on-demand link or id) through the
processing package's view service and returns what it names now, or raises
the error the app answers once for everybody (``webapp.app``): an unknown run,
subsystem, histogram or slice id is a 404 naming it, a malformed link or
option a 400 saying what is wrong. Views are computed by processing; this
module only chooses URLs and encodes JSON (kept with the view, so a path is
encoded once per slice and process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Response, request, url_for

import processing
from overwatch.jsroot import to_json_bytes
from overwatch.plugins import load_plugin
from webapp import queries
from webapp.context import overwatch, resources
from webapp.http import encode, encoded_response, make_etag
from webapp.paths import check_path, check_subsystem, quote_path


def require_subsystem(run: int, subsystem: str) -> None:
    """404 for a subsystem name no subsystem can have (before any look-up)."""
    if not check_subsystem(subsystem):
        raise queries.NotFound(f"subsystem {subsystem!r} not found in run {run}")


def require_path(path: str) -> str:
    """The histogram path of a URL, checked (``webapp.paths.UnsafePath``: a 400)."""
    return check_path(path)


def query_options(subsystem: str, args: Mapping[str, str]) -> dict[str, str]:
    """The plugin options given in a query string (other parameters are the page's own)."""
    names = {spec.name for spec in load_plugin(subsystem).options}
    return {k: v for k, v in args.items() if k in names and v != ""}


def get_view(
    run: int,
    subsystem: str,
    slice_param: str | None = None,
    options: Mapping[str, str] | None = None,
) -> processing.Resolved:
    """What ``slice_param`` (default: the request's ``slice``, else the whole run) names now.

    ``options`` apply to ``cumulative``/``latest`` (default: the plugin options of
    the query string); an on-demand link carries its own.
    """
    require_subsystem(run, subsystem)
    if slice_param is None:
        slice_param = request.args.get("slice") or "cumulative"
    if options is None:
        options = query_options(subsystem, request.args)
    return resources().views.resolve(run, subsystem, slice_param, options)


SNAPSHOT_HEADER = "X-Overwatch-Snapshot"


def object_response(resolved: processing.Resolved, path: str) -> Response:
    """TBufferJSON of one path of a view as shown (histogram, derived or stack); 304 if known."""
    view = resolved.view
    encoded = view.encoded.get(path)
    if encoded is None:
        view.class_of(path)  # UnknownHistogram (404) for a path the view does not hold
        encoded = encode(to_json_bytes(view.jsroot(path)), make_etag(view.slice_id, path))
        view.encoded[path] = encoded
    response = encoded_response(encoded)
    # Which snapshot the drawing shows (unix s): pages put it on the drawing (data-snapshot).
    response.headers[SNAPSHOT_HEADER] = f"{view.spec.end:.0f}"
    return response


# --------------------------------------------------------------------------- URLs


def slice_param(resolved: processing.Resolved) -> str:
    """What the drawings of a page ask for: the name (it follows new snapshots) or the id."""
    return resolved.link if resolved.named else resolved.view.slice_id


def changed_options(resolved: processing.Resolved) -> dict[str, Any]:
    """The options of a named view that differ from the plugin's defaults (kept in URLs)."""
    if not resolved.named:
        return {}
    defaults = {spec.name: spec.default for spec in resolved.view.plugin.options}
    values = resolved.view.spec.option_values
    return {k: processing.value_text(v) for k, v in values.items() if defaults.get(k) != v}


def api_url(endpoint: str, run: int, subsystem: str, path: str, **query: Any) -> str:
    base = url_for(endpoint, run=run, subsystem=subsystem, path="_")[:-1]
    text = urlencode({k: v for k, v in query.items() if v is not None and v != ""})
    return base + quote_path(path) + (f"?{text}" if text else "")


def json_url(run: int, subsystem: str, path: str, view: str, **options: Any) -> str:
    """The histogram JSON URL of one path in a slice (``cumulative``, ``latest``, a link or id)."""
    return api_url("api.histogram", run, subsystem, path, slice=view, **options)


def drawing_url(resolved: processing.Resolved, path: str) -> str:
    """The JSON a page's drawing of ``path`` loads.

    A stack of a named view comes from the stacks URL, a histogram shown with
    other options than the plugin's defaults from the display URL; everything
    else, on-demand slices included, from the histogram URL.
    """
    spec = resolved.view.spec
    run, subsystem = spec.run, spec.subsystem
    if not resolved.named:
        return json_url(run, subsystem, path, resolved.view.slice_id)
    resolved.view.class_of(path)  # UnknownHistogram (404) for a path the view does not hold
    if path in resolved.view.analysis.stacks:
        return api_url("plugin_view.stack", run, subsystem, path, slice=resolved.link)
    changed = changed_options(resolved)
    if changed:
        return api_url("plugin_view.display", run, subsystem, path, slice=resolved.link, **changed)
    return json_url(run, subsystem, path, resolved.link)


def histogram_page_url(run: int, subsystem: str, path: str, **query: str) -> str:
    """Link to a histogram page; the path is percent-encoded segment by segment."""
    base = url_for("pages.histogram_page", run=run, subsystem=subsystem, path="_")[:-1]
    query_string = urlencode({key: value for key, value in query.items() if value})
    return base + quote_path(path) + (f"?{query_string}" if query_string else "")


# --------------------------------------------------------------------------- what pages list


def listing(resolved: processing.Resolved) -> dict[str, Any]:
    """A view's histograms (raw in file order, derived, stacks) with classes, groups, URLs."""
    view = resolved.view
    run, subsystem = view.spec.run, view.spec.subsystem
    infos = queries.histogram_infos(overwatch(), run, subsystem)
    groups = view.analysis.groups
    group_of = {path: name for name, paths in groups.items() for path in paths}
    derived = set(view.analysis.derived) | set(view.analysis.stacks)
    return {
        "run": run,
        "subsystem": subsystem,
        "slice": resolved.link,
        "counts": view.counts(),
        "histograms": [
            {
                "path": path,
                "class_name": class_name,
                "derived": path in derived,
                "group": group_of.get(path),
                "first_seen": infos.get(path, {}).get("first_seen"),
                "last_seen": infos.get(path, {}).get("last_seen"),
                "url": api_url("api.histogram", run, subsystem, path),
            }
            for path, class_name in view.paths
        ],
        "groups": [{"name": name, "histograms": list(paths)} for name, paths in groups.items()],
    }

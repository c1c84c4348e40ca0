"""The run page's side of on-demand slices: the form, presets, permalinks.

Template global (registered by ``webapp.slices``): :func:`slice_form` (what
``_slice_form.html`` shows) and the filter :func:`portable_slice` (the
``slice`` parameter kept by another subsystem's tab: the interval without this
plugin's options). The page's view is the one ``webapp.pages`` resolved
(``flask.g.page_view``); its annotations and qualities are the view's own.

:func:`gone_page` is what a permalink to a slice that cannot be shown any more
answers (``slice_gone.html``, 404): an id nobody described (forgotten, or never
asked for here) or a described slice whose snapshots are no longer processed.
It offers the slice's link again when the database still describes it (the
run page snaps that interval to the snapshots there are now), and the run
page's slice form in any case.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, g, render_template, request, url_for

import processing
from overwatch.plugins import load_plugin
from webapp.context import resources

PRESETS = (("last:5", "Last 5 min"), ("last:15", "Last 15 min"), ("last:60", "Last 60 min"),
           ("run", "Whole run"))  # fmt: skip
#: Seconds between two looks at a moving window's newest snapshot (slices.js).
WINDOW_POLL_SECONDS = 5


def is_ondemand(view: str) -> bool:
    """Whether a ``slice`` parameter names an on-demand slice (anything but the two names)."""
    return bool(view) and view not in processing.VIEW_NAMES


def permalink(run: int, subsystem: str, link: str, group: str | None = None) -> str:
    """The run page showing a slice, in the group it was asked from (if any)."""
    return url_for("pages.subsystem_page", run=run, subsystem=subsystem, slice=link, group=group)


def portable_slice(view: str) -> str | None:
    """A ``slice`` parameter for another subsystem's tab: the interval, without the options."""
    if not is_ondemand(view):
        return view
    try:
        parsed = processing.parse_link(view)
    except processing.BadSliceLink:
        return None
    if parsed.kind == "window":
        return processing.window_link(parsed.minutes)
    if parsed.kind == "fixed":
        return view.split(";", 1)[0]
    return None


def gone_page(reason: str) -> Response:
    """The 404 page of a permalink whose slice is gone, offering to compute it again."""
    args = request.view_args or {}
    run, subsystem = args.get("run"), args.get("subsystem")
    given = str(args.get("slice_id") or request.args.get("slice") or "")
    context: dict[str, Any] = {"reason": reason, "given": given[:100], "run": run,
                               "subsystem": subsystem, "recompute": None, "form_url": None}  # fmt: skip
    if isinstance(run, int) and isinstance(subsystem, str):
        context["form_url"] = url_for("pages.subsystem_page", run=run, subsystem=subsystem)
        link = _described_link(given, run, subsystem)
        if link is not None:
            context["recompute"] = permalink(run, subsystem, link)
    return Response(render_template("slice_gone.html", **context), status=404)


def _described_link(given: str, run: int, subsystem: str) -> str | None:
    """The fixed link of a slice id the database still describes for this run, else None."""
    if not processing.SLICE_ID.match(given):
        return None
    try:
        spec = resources().views.spec_for_id(given)
    except processing.UnknownSlice:
        return None
    if (spec.run, spec.subsystem) != (run, subsystem):
        return None
    return spec.link()


def slice_form(run: int, subsystem: str) -> dict[str, Any]:
    """Everything ``_slice_form.html`` shows: options, presets, current slice, snapshot range."""
    resolved: processing.Resolved | None = g.get("page_view")
    shown = resolved if resolved is not None and not resolved.named else None
    plugin = load_plugin(subsystem)
    current = shown.view.spec.option_values if shown else {}
    form: dict[str, Any] = {
        "post_url": url_for("slices.create", run=run, subsystem=subsystem),
        "presets": PRESETS,
        "options": [_option_field(spec, current.get(spec.name)) for spec in plugin.options],
        "shown": None,
        "range": None,
        "group": request.args.get("group", ""),
    }
    try:
        times, begin = resources().views.times(run, subsystem)
        form["range"] = (
            processing.minute_of(times[0], begin),
            processing.minute_of(times[-1], begin),
            len(times),
        )
    except LookupError:
        pass
    if shown is not None:
        view = shown.view
        summary = view.summary()
        interval = summary["interval"]
        form["shown"] = {
            **summary,
            "window": shown.window,
            "link": shown.link,
            "permalink": permalink(run, subsystem, shown.link, request.args.get("group") or None),
            "resolve_url": url_for("slices.collection", run=run, subsystem=subsystem)
            + "?"
            + urlencode({"slice": shown.link}),
            "poll_seconds": WINDOW_POLL_SECONDS,
            "options_shown": [f"{k}={processing.value_text(v)}" for k, v in view.spec.options],
            "start_value": "" if interval["from_run_start"] else f"{interval['start_minute']:g}",
            "end_value": f"{interval['end_minute']:g}",
        }
    return form


def _option_field(spec: Any, value: Any) -> dict[str, Any]:
    data = spec.to_dict()
    data["value"] = processing.value_text(spec.default if value is None else value)
    data["default_text"] = processing.value_text(spec.default)
    if spec.kind in ("float", "int"):
        data["step"] = "1" if spec.kind == "int" else "any"
    return data

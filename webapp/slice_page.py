"""The run page's side of on-demand slices: the form, and the slice's notes and qualities.

Template globals (registered by ``webapp.slices``): :func:`slice_form` (what
``_slice_form.html`` shows), :func:`slice_note` (a figure's annotation: the
on-demand slice's when the page shows one), :func:`slice_plugin_page` (the
plugin bar's quality, group qualities and errors, likewise) and the filter
:func:`portable_slice` (the ``slice`` parameter kept by another subsystem's
tab: the interval without this plugin's options). The page's slice is the
one :func:`webapp.slices.page_slice` put in ``flask.g``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import g, url_for

from overwatch.plugins import load_plugin
from processing.slices.spec import BadSliceLink, minute_of, parse_link, value_text
from webapp.slices import (
    PRESETS,
    WINDOW_POLL_SECONDS,
    SliceView,
    is_ondemand,
    permalink,
    service,
)


def slice_note(path: str, note: dict | None) -> dict | None:
    """The annotation shown beside a plot: the on-demand slice's when the page shows one."""
    shown: SliceView | None = g.get("ondemand_slice")
    return note if shown is None else shown.result.annotations.get(path)


def slice_plugin_page(pv: dict) -> dict:
    """The plugin bar's facts, with the on-demand slice's quality and errors when shown."""
    shown: SliceView | None = g.get("ondemand_slice")
    if shown is None:
        return pv
    summary = shown.result.summary()
    return {
        **pv,
        "quality": summary["quality"],
        "group_qualities": summary["groups"],
        "evaluated_at": shown.result.computed_at,
        "plugin_errors": summary["errors"],
    }


def portable_slice(view: str) -> str | None:
    """A ``slice`` parameter for another subsystem's tab: the interval, without the options."""
    if not is_ondemand(view):
        return view
    try:
        parsed = parse_link(view)
    except BadSliceLink:
        return None
    if parsed.kind == "window":
        return f"last:{parsed.minutes:g}"
    if parsed.kind == "fixed":
        return view.split(";", 1)[0]
    return None


def slice_form(run: int, subsystem: str) -> dict[str, Any]:
    """Everything ``_slice_form.html`` shows: options, presets, current slice, snapshot range."""
    shown: SliceView | None = g.get("ondemand_slice")
    plugin = load_plugin(subsystem)
    current = shown.result.spec.option_values if shown else {}
    form: dict[str, Any] = {
        "post_url": url_for("slices.create", run=run, subsystem=subsystem),
        "presets": PRESETS,
        "options": [_option_field(spec, current.get(spec.name)) for spec in plugin.options],
        "shown": None,
        "range": None,
    }
    try:
        times, begin = service().times(run, subsystem)
        form["range"] = (minute_of(times[0], begin), minute_of(times[-1], begin), len(times))
    except LookupError:
        pass
    if shown is not None:
        summary = shown.result.summary()
        interval = summary["interval"]
        form["shown"] = {
            **summary,
            "window": shown.window,
            "link": shown.link,
            "permalink": permalink(run, subsystem, shown.link),
            "resolve_url": url_for("slices.collection", run=run, subsystem=subsystem)
            + "?"
            + urlencode({"slice": shown.link}),
            "poll_seconds": WINDOW_POLL_SECONDS,
            "options_shown": [f"{k}={value_text(v)}" for k, v in shown.result.spec.options],
            "start_value": "" if interval["from_run_start"] else f"{interval['start_minute']:g}",
            "end_value": f"{interval['end_minute']:g}",
        }
    return form


def _option_field(spec: Any, value: Any) -> dict[str, Any]:
    data = spec.to_dict()
    data["value"] = value_text(spec.default if value is None else value)
    data["default_text"] = value_text(spec.default)
    if spec.kind in ("float", "int"):
        data["step"] = "1" if spec.kind == "int" else "any"
    return data

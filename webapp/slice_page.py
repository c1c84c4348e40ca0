"""The run page's side of on-demand slices: the form, presets, permalinks.

Template global (registered by ``webapp.slices``): :func:`slice_form` (what
``_slice_form.html`` shows) and the filter :func:`portable_slice` (the
``slice`` parameter kept by another subsystem's tab: the interval without this
plugin's options). The page's view is the one ``webapp.pages`` resolved
(``flask.g.page_view``); its annotations and qualities are the view's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import g, url_for

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


def permalink(run: int, subsystem: str, link: str) -> str:
    return url_for("pages.subsystem_page", run=run, subsystem=subsystem, slice=link)


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
            "permalink": permalink(run, subsystem, shown.link),
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

"""What an on-demand time slice is, how a request for one is checked, and its link.

A slice is fully described by a :class:`SliceSpec`: run, subsystem, the
interval actually available (two processed snapshots: ``start`` None means
"from the run start") and **every** option of the subsystem's plugin,
validated, defaults included. Its id is a hash of the canonical JSON of all of
that, so a request with other options never shares a slice computed with
different ones, and a changed default cannot silently change what a stored
link shows.

Requests (web form, JSON API, ``overwatch slice``) go through
:func:`validate_request`, which checks every field and reports each bad one by
name (``start``, ``end``, ``preset``, ``options.<name>``) in one
:class:`SliceRequestError`. Times are run-relative minutes (numbers, or
strings holding a number: form fields), absolute UTC times
(``2026-01-01T10:05:00Z``; no offset means UTC), the words ``start``/``end``,
or empty (the run start / the latest snapshot). Minutes count from the run
start: the earliest processed snapshot of the run over all its subsystems
(``processing.slices.service.run_start``). Presets: ``last:N`` (the last N minutes up
to the latest snapshot) and ``run`` (the whole run).

The interval snaps to snapshots as :func:`processing.slices.reader.snap_interval`
does. Partly outside the run is clipped; wholly outside is an error.

Link syntax (the ``slice`` parameter of a run page URL; it travels in every
link of the page, so it carries everything)::

    <start>..<end>[;name=value]...     fixed: snapshot times (unix s), or "start"
    last:<minutes>[;name=value]...     moving window ending at the latest snapshot
    <24 hex digits>                    a slice id (looked up in the database)

Options omitted from a link take their defaults; the links Overwatch makes
spell out every option.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
from pendulum.parsing.exceptions import ParserError

from overwatch import timestamps
from overwatch.plugins import DetectorPlugin, validate_options
from processing.slices.reader import SliceRangeError, snap_interval

ID_LENGTH = 24
SLICE_ID = re.compile(rf"^[0-9a-f]{{{ID_LENGTH}}}$")
_NUMBER = r"\d+(?:\.\d+)?"
_FIXED = re.compile(rf"^(start|{_NUMBER})\.\.({_NUMBER})$")
_WINDOW = re.compile(rf"^last:({_NUMBER})$")
_PRESET = re.compile(rf"^last:({_NUMBER})$")
#: The longest moving window or preset (a week): anything longer is a typo.
MAX_WINDOW_MINUTES = 7 * 24 * 60.0
MAX_LINK_LENGTH = 2000
#: Field labels in messages: the web names fields, the command line names flags.
#: The two slices every subsystem has, named rather than linked: they follow new snapshots.
VIEW_NAMES = ("cumulative", "latest")
WEB_LABELS = {"start": "start", "end": "end", "options": "option"}
CLI_LABELS = {"start": "--start", "end": "--end", "options": "--option"}


class SliceRequestError(ValueError):
    """A slice request with bad fields: ``fields`` maps each field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        self.fields = dict(fields)
        summary = "; ".join(f"{name}: {why}" for name, why in self.fields.items())
        super().__init__(message or f"bad slice request: {summary}")


class BadSliceLink(ValueError):
    """A ``slice`` parameter that is not a valid slice link; the message says why."""


@dataclass(frozen=True)
class SliceSpec:
    """One on-demand slice: run, subsystem, snapped interval and every option's value."""

    run: int
    subsystem: str
    start: float | None  # base snapshot (unix s); None: from the run start
    end: float  # end snapshot (unix s)
    options: tuple[tuple[str, Any], ...]  # (name, value), sorted by name

    @classmethod
    def create(
        cls, run: int, subsystem: str, start: float | None, end: float, options: Mapping
    ) -> SliceSpec:
        return cls(
            int(run),
            subsystem,
            None if start is None else float(start),
            float(end),
            tuple(sorted(options.items())),
        )

    @property
    def option_values(self) -> dict[str, Any]:
        return dict(self.options)

    def canonical(self) -> str:
        """The canonical JSON the id hashes: same slice, same text, in any process."""
        data = {
            "run": self.run,
            "subsystem": self.subsystem,
            "start": self.start,
            "end": self.end,
            "options": self.option_values,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @functools.cached_property
    def slice_id(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:ID_LENGTH]

    def link(self) -> str:
        """The ``slice`` parameter of a permalink to exactly this slice."""
        start = "start" if self.start is None else _time_text(self.start)
        return f"{start}..{_time_text(self.end)}" + options_text(self.options)


def options_text(options: Sequence[tuple[str, Any]] | Mapping[str, Any]) -> str:
    """``;name=value`` for every option, in name order (the tail of a link)."""
    items = sorted(options.items() if isinstance(options, Mapping) else options)
    return "".join(f";{name}={value_text(value)}" for name, value in items)


def window_link(minutes: float, options: Sequence[tuple[str, Any]] | Mapping[str, Any] = ()) -> str:
    """The link of a moving window: the last ``minutes`` up to the latest snapshot."""
    return f"last:{float(minutes):g}" + options_text(options)


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _time_text(ts: float) -> str:
    return str(int(ts)) if float(ts).is_integer() else repr(float(ts))


# --------------------------------------------------------------------------- links


@dataclass(frozen=True)
class ParsedLink:
    """A link taken apart, not yet checked against the run: see :func:`parse_link`."""

    kind: str  # "fixed", "window" or "id"
    start: float | None = None
    end: float = 0.0
    minutes: float = 0.0
    slice_id: str = ""
    options: tuple[tuple[str, str], ...] = ()


def parse_link(text: str) -> ParsedLink:
    """Split a ``slice`` link into its parts; BadSliceLink says what is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise BadSliceLink("the slice link is empty")
    if len(text) > MAX_LINK_LENGTH:
        raise BadSliceLink(f"the slice link is longer than {MAX_LINK_LENGTH} characters")
    text = text.strip()
    if SLICE_ID.match(text):
        return ParsedLink("id", slice_id=text)
    head, *tail = text.split(";")
    options: dict[str, str] = {}
    for item in tail:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadSliceLink(f"option {item!r} in the slice link is not name=value")
        if name.strip() in options:
            raise BadSliceLink(f"option {name.strip()!r} appears twice in the slice link")
        options[name.strip()] = value.strip()
    fixed, window = _FIXED.match(head), _WINDOW.match(head)
    if fixed:
        start = None if fixed.group(1) == "start" else float(fixed.group(1))
        end = float(fixed.group(2))
        if start is not None and start >= end:
            raise BadSliceLink(f"the interval {head!r} ends before it starts")
        return ParsedLink("fixed", start=start, end=end, options=tuple(options.items()))
    if window:
        minutes = float(window.group(1))
        if not 0 < minutes <= MAX_WINDOW_MINUTES:
            raise BadSliceLink(
                f"a moving window must be more than 0 and at most {MAX_WINDOW_MINUTES:g} minutes"
            )
        return ParsedLink("window", minutes=minutes, options=tuple(options.items()))
    raise BadSliceLink(
        f"{head[:80]!r} is not a time slice: expected cumulative, latest, a slice id, "
        "START..END (unix seconds of two snapshots, START may be 'start') or last:MINUTES, "
        "each optionally followed by ;option=value"
    )


def link_options(plugin: DetectorPlugin, given: Mapping[str, str]) -> dict[str, Any]:
    """A link's options validated (defaults filled in); BadSliceLink names each bad one."""
    values, errors = validate_options(plugin.options, given)
    if errors:
        problems = "; ".join(f"{name}: {why}" for name, why in errors.items())
        raise BadSliceLink(f"bad option(s) in the slice link: {problems}")
    return values


# --------------------------------------------------------------------------- requests


def minute_of(ts: float, run_start: float) -> float:
    return (ts - run_start) / 60.0


def _parse_time(
    value: Any, field: str, run_start: float, labels: Mapping[str, str]
) -> tuple[float | None, str, str | None]:
    """(unix time or None for the keyword/empty, text for messages, error) of one time field."""
    label = labels[field]
    keyword = "start" if field == "start" else "end"
    if value is None or (isinstance(value, str) and value.strip() in ("", keyword)):
        return None, keyword, None
    wrong = (
        f"give minutes or '{keyword}' (minutes count from the run start), "
        "or a UTC time like 2026-01-01T10:05:00Z"
    )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, "", f"{label} {value!r}: {wrong}"
    if isinstance(value, str):
        text = value.strip()
        try:
            minutes = float(text)
        except ValueError:
            try:
                instant = pendulum.parse(text, tz="UTC")
            except (ValueError, TypeError, OverflowError, ParserError):
                instant = None
            if not isinstance(instant, pendulum.DateTime):
                return None, "", f"{label} {text[:40]!r}: {wrong}"
            shown = f"{label} {instant.in_tz('UTC').format('YYYY-MM-DD HH:mm:ss')} UTC"
            return timestamps.to_unix(instant), shown, None
    else:
        minutes = float(value)
    if not math.isfinite(minutes):
        return None, "", f"{label} {minutes!r}: {wrong}"
    if minutes < 0:
        return None, "", f"{label} {minutes:g}: minutes count from the run start, so use 0 or more"
    return run_start + 60.0 * minutes, f"{label} {minutes:g}", None


def _preset_window(preset: Any) -> tuple[str, float | None, str | None]:
    """(kind "last"/"run"/"", minutes, error) of a preset field."""
    if preset is None or (isinstance(preset, str) and not preset.strip()):
        return "", None, None
    text = str(preset).strip()
    if text == "run":
        return "run", None, None
    match = _PRESET.match(text)
    if match:
        minutes = float(match.group(1))
        if 0 < minutes <= MAX_WINDOW_MINUTES:
            return "last", minutes, None
    return (
        "",
        None,
        (
            f"{text[:40]!r} is not a preset: use last:MINUTES (at most {MAX_WINDOW_MINUTES:g}) or run"
        ),
    )


def validate_request(
    plugin: DetectorPlugin,
    run: int,
    subsystem: str,
    times: Sequence[float],
    run_start: float,
    *,
    start: Any = None,
    end: Any = None,
    options: Any = None,
    preset: Any = None,
    labels: Mapping[str, str] = WEB_LABELS,
) -> SliceSpec:
    """The slice a request asks for, snapped to ``times``; SliceRequestError names every bad field.

    ``times`` are the subsystem's processed snapshots (ascending, at least one).
    """
    fields: dict[str, str] = {}
    values: dict[str, Any] = {}
    if options is not None and not isinstance(options, Mapping):
        fields["options"] = "expected an object of option name: value"
    else:
        values, errors = validate_options(plugin.options, options)
        for name, why in errors.items():
            if why.startswith("unknown option"):
                known = ", ".join(spec.name for spec in plugin.options) or "none"
                why = f"unknown slice option {name!r} for {subsystem} (known: {known})"
            fields[f"options.{name}"] = why
    kind, minutes, preset_error = _preset_window(preset)
    if preset_error:
        fields["preset"] = preset_error
    first, last = times[0], times[-1]
    span = f"run {run} {subsystem} has snapshots from minute {minute_of(first, run_start):.2f} " \
        f"to {minute_of(last, run_start):.2f}"  # fmt: skip
    if kind == "last":
        start_ts, end_ts = last - 60.0 * minutes, last
    elif kind == "run":
        start_ts, end_ts = None, last
    else:
        start_ts, start_text, start_error = _parse_time(start, "start", run_start, labels)
        end_ts, end_text, end_error = _parse_time(end, "end", run_start, labels)
        if start_error:
            fields["start"] = start_error
        if end_error:
            fields["end"] = end_error
        if not start_error and not end_error:
            if start_ts is not None and end_ts is not None and start_ts >= end_ts:
                fields["start"] = f"{start_text} must be less than {end_text}"
            elif end_ts is not None and end_ts < first:
                fields["end"] = (
                    f"{end_text} is before the first snapshot (minute "
                    f"{minute_of(first, run_start):.2f}) of run {run} {subsystem}"
                )
            elif start_ts is not None and start_ts > last:
                fields["start"] = (
                    f"{start_text} is after the last snapshot (minute "
                    f"{minute_of(last, run_start):.2f}) of run {run} {subsystem}"
                )
        end_ts = last if end_ts is None else end_ts
    if fields:
        raise SliceRequestError(fields)
    try:
        base, snapped_end = snap_interval(
            list(times), None if start_ts is None or start_ts <= first else start_ts, end_ts
        )
    except SliceRangeError as error:
        raise SliceRequestError({"end": f"{error}; {span}"}) from error
    return SliceSpec.create(run, subsystem, base, snapped_end, values)


def spec_from_link(
    plugin: DetectorPlugin, run: int, subsystem: str, parsed: ParsedLink, times: Sequence[float]
) -> SliceSpec:
    """The slice a fixed or moving-window link names, snapped to the snapshots there are."""
    options = link_options(plugin, dict(parsed.options))
    last = times[-1]
    if parsed.kind == "window":
        start: float | None = last - 60.0 * parsed.minutes
        end = last
    else:
        start, end = parsed.start, parsed.end
    try:
        base, snapped = snap_interval(
            list(times), None if start is None or start <= times[0] else start, end
        )
    except SliceRangeError as error:
        raise BadSliceLink(
            f"the link's interval is not in run {run} {subsystem}: {error}"
        ) from error
    return SliceSpec.create(run, subsystem, base, snapped, options)


__all__ = [
    "CLI_LABELS",
    "VIEW_NAMES",
    "WEB_LABELS",
    "BadSliceLink",
    "ParsedLink",
    "SliceRequestError",
    "SliceSpec",
    "link_options",
    "options_text",
    "parse_link",
    "spec_from_link",
    "validate_request",
    "window_link",
]

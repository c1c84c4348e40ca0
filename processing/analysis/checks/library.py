"""The check functions and the table describing their parameters.

A check looks at one target and returns an :class:`Outcome` (quality and a
message a shifter can read). Targets are either

- a histogram of the time slice (:class:`overwatch.histogram.Histogram`), or
- a trend series: ``(times, values)`` arrays, oldest first.

Trend checks ignore non-finite points (a value the plugin could not compute
is missing, not a failure). A check without enough data to decide returns
``Null`` with the reason. Range checks grade a value in ``[min, max]`` as
Good, in the optional wider ``[medium_min, medium_max]`` as Medium, and
anything else as the check's ``on_fail`` quality (Bad unless configured).

The functions take plain keyword arguments; :mod:`processing.analysis.checks.kinds`
maps the YAML names and validates them before any function is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from overwatch.histogram import Histogram
from overwatch.quality import Quality, best, worst

Series = tuple[np.ndarray, np.ndarray]


class Outcome(NamedTuple):
    quality: Quality
    message: str


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _grade(
    value: float,
    what: str,
    low: float,
    high: float,
    medium_low: float | None,
    medium_high: float | None,
    on_fail: Quality,
) -> Outcome:
    """Grade ``value`` against the Good range and the optional wider Medium range."""
    if math.isnan(value):
        return Outcome(Quality.NULL, f"{what} is not a number")
    if low <= value <= high:
        return Outcome(Quality.GOOD, f"{what} = {_fmt(value)} in [{_fmt(low)}, {_fmt(high)}]")
    if medium_low is not None or medium_high is not None:
        m_low = low if medium_low is None else medium_low
        m_high = high if medium_high is None else medium_high
        if m_low <= value <= m_high:
            return Outcome(
                Quality.MEDIUM,
                f"{what} = {_fmt(value)} outside [{_fmt(low)}, {_fmt(high)}] "
                f"but in [{_fmt(m_low)}, {_fmt(m_high)}]",
            )
    return Outcome(on_fail, f"{what} = {_fmt(value)} outside [{_fmt(low)}, {_fmt(high)}]")


def _grade_at_most(
    value: float, what: str, limit: float, medium_limit: float | None, on_fail: Quality
) -> Outcome:
    """Grade a value that must stay small (a count, a change)."""
    if math.isnan(value):
        return Outcome(Quality.NULL, f"{what} is not a number")
    if value <= limit:
        return Outcome(Quality.GOOD, f"{what} = {_fmt(value)} <= {_fmt(limit)}")
    if medium_limit is not None and value <= medium_limit:
        return Outcome(
            Quality.MEDIUM, f"{what} = {_fmt(value)} > {_fmt(limit)} but <= {_fmt(medium_limit)}"
        )
    return Outcome(on_fail, f"{what} = {_fmt(value)} > {_fmt(limit)}")


# --------------------------------------------------------------------------- histogram checks


def _entries(histogram: Histogram) -> float:
    # A weighted slice may carry no entry count; its content still says it has data.
    return histogram.entries if histogram.entries > 0 else histogram.integral()


def _too_few_entries(histogram: Histogram, min_entries: int) -> Outcome | None:
    entries = _entries(histogram)
    if entries < min_entries:
        return Outcome(
            Quality.NULL,
            f"{_fmt(entries)} entries in this slice, fewer than min_entries={min_entries}",
        )
    return None


def _axis_problem(histogram: Histogram, axis: int) -> Outcome | None:
    if axis >= histogram.ndim:
        return Outcome(
            Quality.NULL,
            f"{histogram.class_name} has {histogram.ndim} axis/axes; axis {'xyz'[axis]} asked",
        )
    return None


def histogram_statistic(histogram: Histogram, value: str, axis: int = 0) -> float:
    """One named statistic of a histogram (the ``value`` parameter of between_values)."""
    if value == "integral":
        return histogram.integral()
    if value == "entries":
        return float(histogram.entries)
    if value == "mean":
        return histogram.mean(axis)
    if value == "std":
        return histogram.std(axis)
    if value == "maximum":
        return histogram.maximum()
    raise ValueError(f"unknown histogram statistic {value!r}")


def histogram_between_values(
    histogram: Histogram,
    *,
    value: str,
    low: float,
    high: float,
    axis: int = 0,
    medium_low: float | None = None,
    medium_high: float | None = None,
    min_entries: int | None = None,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """A statistic of the histogram in [min, max].

    Counting statistics (integral, entries) are checked even on an empty
    slice (catching a silent detector is their point); the others need
    ``min_entries`` (default 1) to mean anything.
    """
    if min_entries is None:
        min_entries = 0 if value in ("integral", "entries") else 1
    problem = _too_few_entries(histogram, min_entries) or (
        _axis_problem(histogram, axis) if value in ("mean", "std") else None
    )
    if problem:
        return problem
    what = (
        value if value not in ("mean", "std") or histogram.ndim == 1 else f"{value} {'xyz'[axis]}"
    )
    return _grade(
        histogram_statistic(histogram, value, axis),
        what,
        low,
        high,
        medium_low,
        medium_high,
        on_fail,
    )


def histogram_mean(histogram: Histogram, **params: Any) -> Outcome:
    """Mean of the histogram along an axis in a window."""
    return histogram_between_values(histogram, value="mean", **params)


def histogram_rms(histogram: Histogram, **params: Any) -> Outcome:
    """RMS (ROOT's name for the standard deviation) along an axis in a window."""
    return histogram_between_values(histogram, value="std", **params)


def bins_above_threshold(
    histogram: Histogram,
    *,
    threshold: float,
    max_bins: int,
    max_bins_medium: int | None = None,
    min_entries: int = 1,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """Number of in-range bins whose content (profile: mean) exceeds ``threshold``.

    As the HAN ``Bins_GreaterThan_Threshold`` algorithm: Good up to
    ``max_bins`` such bins, Medium up to ``max_bins_medium``, else ``on_fail``.
    """
    problem = _too_few_entries(histogram, min_entries)
    if problem:
        return problem
    count = int(np.count_nonzero(histogram.contents()[histogram.inner] > threshold))
    return _grade_at_most(
        count, f"bins above {_fmt(threshold)}", max_bins, max_bins_medium, on_fail
    )


# --------------------------------------------------------------------------- trend checks


def _finite(series: Series) -> np.ndarray:
    values = np.asarray(series[1], dtype=np.float64)
    return values[np.isfinite(values)]


def _last_n(series: Series, n: int) -> np.ndarray | Outcome:
    values = _finite(series)
    if len(values) < n:
        return Outcome(Quality.NULL, f"{len(values)} trend point(s), {n} needed")
    return values[-n:]


def trend_between_values(
    series: Series,
    *,
    low: float,
    high: float,
    medium_low: float | None = None,
    medium_high: float | None = None,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """The newest trend value in [min, max]."""
    last = _last_n(series, 1)
    if isinstance(last, Outcome):
        return last
    return _grade(float(last[-1]), "last value", low, high, medium_low, medium_high, on_fail)


def mean_in_range(
    series: Series,
    *,
    n: int,
    low: float,
    high: float,
    medium_low: float | None = None,
    medium_high: float | None = None,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """The mean of the newest ``n`` trend values in [min, max]."""
    last = _last_n(series, n)
    if isinstance(last, Outcome):
        return last
    return _grade(
        float(last.mean()), f"mean of last {n}", low, high, medium_low, medium_high, on_fail
    )


def check_last_n(
    series: Series,
    *,
    n: int,
    low: float,
    high: float,
    ratio: float,
    ratio_medium: float | None = None,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """At least a fraction ``ratio`` of the newest ``n`` values lie in [min, max]."""
    last = _last_n(series, n)
    if isinstance(last, Outcome):
        return last
    inside = int(np.count_nonzero((last >= low) & (last <= high)))
    fraction = inside / n
    text = f"{inside} of last {n} in [{_fmt(low)}, {_fmt(high)}] ({fraction:.0%})"
    if fraction >= ratio:
        return Outcome(Quality.GOOD, f"{text} >= {ratio:.0%}")
    if ratio_medium is not None and fraction >= ratio_medium:
        return Outcome(Quality.MEDIUM, f"{text} < {ratio:.0%} but >= {ratio_medium:.0%}")
    return Outcome(on_fail, f"{text} < {ratio:.0%}")


def absolute_previous_value(
    series: Series,
    *,
    max_delta: float,
    max_delta_medium: float | None = None,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """|last - previous| <= max_delta: the trend does not jump."""
    last = _last_n(series, 2)
    if isinstance(last, Outcome):
        return last
    previous, current = float(last[0]), float(last[1])
    outcome = _grade_at_most(
        abs(current - previous), "|last - previous|", max_delta, max_delta_medium, on_fail
    )
    return Outcome(outcome.quality, f"{outcome.message} ({_fmt(previous)} -> {_fmt(current)})")


def relative_previous_value(
    series: Series,
    *,
    max_ratio: float,
    max_ratio_medium: float | None = None,
    direction: str = "both",
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """|last / previous - 1| <= max_ratio: the trend does not change by a large fraction.

    ``direction`` "drop" only fails on a decrease, "rise" only on an increase.
    A previous value of 0 gives no scale: Good if the last is 0 too, else Null.
    """
    last = _last_n(series, 2)
    if isinstance(last, Outcome):
        return last
    previous, current = float(last[0]), float(last[1])
    change = f"({_fmt(previous)} -> {_fmt(current)})"
    if previous == 0:
        if current == 0:
            return Outcome(Quality.GOOD, f"unchanged at 0 {change}")
        return Outcome(Quality.NULL, f"previous value is 0: relative change undefined {change}")
    relative = current / previous - 1.0
    if (direction == "drop" and relative >= 0) or (direction == "rise" and relative <= 0):
        return Outcome(
            Quality.GOOD, f"relative change {relative:+.3g} is not a {direction} {change}"
        )
    outcome = _grade_at_most(
        abs(relative), "|last / previous - 1|", max_ratio, max_ratio_medium, on_fail
    )
    return Outcome(outcome.quality, f"{outcome.message} {change}")


def rate_drop(
    series: Series,
    *,
    seconds: float = 60.0,
    history_seconds: float = 600.0,
    max_ratio: float = 0.5,
    min_events: float = 100.0,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """The rate of the last ``seconds`` is at least ``max_ratio`` of the ``history_seconds`` before.

    Why windows: a slice of a few seconds holds a few Poisson-fluctuating events
    and its length is known to a second (snapshot names), so a rate per slice
    swings by tens of per cent. The series is a rate per slice (e.g. the plugins'
    ``event_rate``), one point per slice end; each slice's count is its rate
    times the time since the previous point, so a window's rate is its events
    over its real duration. Null (no decision) until the last window spans
    ``seconds`` with ``min_events`` events and at least ``seconds`` of history
    precede it. A drop longer than ``history_seconds`` becomes the new level.
    """
    times, values = np.asarray(series[0], dtype=float), np.asarray(series[1], dtype=float)
    keep = np.isfinite(values) & np.isfinite(times)
    times, values = times[keep], values[keep]
    if times.size < 3:
        return Outcome(Quality.NULL, f"not enough points yet for a {seconds:g} s rate")
    events = values[1:] * np.diff(times)  # each point's slice: since the previous point
    ends = times[1:]
    cut = times[-1] - seconds
    recent = ends > cut
    base = times[:-1][recent]
    if not base.size or base[0] > cut + 0.5 * seconds:
        return Outcome(Quality.NULL, f"the last {seconds:g} s are not covered yet")
    recent_time = times[-1] - base[0]
    recent_events = float(events[recent].sum())
    if recent_events < min_events:
        return Outcome(
            Quality.NULL,
            f"not enough events for a decision: {_fmt(recent_events)} in {recent_time:.0f} s "
            f"< {_fmt(min_events)}",
        )
    older = (~recent) & (ends > cut - history_seconds)
    if not older.any():
        return Outcome(Quality.NULL, "no history before the last window yet")
    history_time = float(ends[older][-1] - times[:-1][older][0])
    if history_time < seconds:
        return Outcome(Quality.NULL, f"only {history_time:.0f} s of history before the last window")
    current = recent_events / recent_time
    reference = float(events[older].sum()) / history_time
    change = (
        f"rate {_fmt(current)} over the last {recent_time:.0f} s, "
        f"{_fmt(reference)} over the {history_time:.0f} s before"
    )
    if reference <= 0:
        return Outcome(Quality.GOOD if current >= 0 else Quality.NULL, change)
    if current >= max_ratio * reference:
        return Outcome(Quality.GOOD, f"{change} (at least {max_ratio:g} of it)")
    return Outcome(on_fail, f"{change}: below {max_ratio:g} of it")


def max_in_window(
    series: Series,
    *,
    seconds: float = 120.0,
    high: float = 0.0,
    on_fail: Quality = Quality.BAD,
) -> Outcome:
    """No point of the last ``seconds`` above ``max``: a moving-window judgement.

    For events that show in one slice only, such as a counter reset (the
    ``counter_resets`` trend): the finding stays for ``seconds`` instead of
    lasting one slice of a few seconds, so an alarm can open on it and then
    close once the window has passed. Null while the window holds no point.
    """
    times, values = np.asarray(series[0], dtype=float), np.asarray(series[1], dtype=float)
    keep = np.isfinite(values) & np.isfinite(times)
    times, values = times[keep], values[keep]
    if not times.size:
        return Outcome(Quality.NULL, "no trend point yet")
    recent = times > times[-1] - seconds
    window, at = values[recent], times[recent]
    worst_at = int(np.argmax(window))
    if window[worst_at] <= high:
        return Outcome(
            Quality.GOOD, f"at most {_fmt(high)} over the last {seconds:g} s ({window.size} points)"
        )
    ago = times[-1] - at[worst_at]
    return Outcome(
        on_fail,
        f"{_fmt(float(window[worst_at]))} (above {_fmt(high)}) {ago:.0f} s before the newest "
        f"point, within the {seconds:g} s window",
    )


# --------------------------------------------------------------------------- compositions


def _joined(labelled: Sequence[tuple[str, Outcome]], keep: Callable[[Outcome], bool]) -> str:
    return "; ".join(f"{label}: {o.quality.value}: {o.message}" for label, o in labelled if keep(o))


def all_of(labelled: Sequence[tuple[str, Outcome]]) -> Outcome:
    """Every sub-check must pass: the worst non-Null quality (Null if all are Null)."""
    quality = worst(o.quality for _, o in labelled)
    if quality is Quality.GOOD:
        return Outcome(quality, f"all {len(labelled)} sub-checks Good")
    if quality is Quality.NULL:
        return Outcome(quality, _joined(labelled, lambda o: True))
    return Outcome(quality, _joined(labelled, lambda o: o.quality is quality))


def any_of(labelled: Sequence[tuple[str, Outcome]]) -> Outcome:
    """One passing sub-check is enough: the best non-Null quality (Null if all are Null)."""
    quality = best(o.quality for _, o in labelled)
    if quality is Quality.NULL:
        return Outcome(quality, _joined(labelled, lambda o: True))
    return Outcome(quality, _joined(labelled, lambda o: o.quality is quality))

"""The overview: subsystems × recent runs, each cell a pie of its histograms' qualities.

``GET /overview?runs=N`` (page) and ``GET /api/overview?runs=N`` (JSON) answer the
same data: the newest ``N`` runs (default 8), newest first, and every subsystem any
of them has. A cell counts the histograms of one (run, subsystem) by quality on the
latest slice: a histogram's quality is the worst any check gave it, as the run page
shows it (the checks processing stores with the subsystem, rolled up per histogram
by :func:`overwatch.quality.roll_up`, the one roll-up rule); a histogram no check
looked at counts as Null. The histograms counted are the subsystem's (the count the
run page shows) plus any derived one a check looked at. A (run, subsystem) without
data is an empty cell.

Each pie's area grows with the square root of its histogram count (relative to the
largest cell shown), so a subsystem of 400 histograms does not dwarf one of 10; a
slice links to the run page filtered to that quality (``?quality=Bad``, on the latest
slice, where the counts come from).
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for

from overwatch.quality import Quality, roll_up
from overwatch.store.models import OverwatchRoot, Subsystem
from webapp import queries
from webapp.context import overwatch, resources
from webapp.http import json_response

bp = Blueprint("overview", __name__)

DEFAULT_RUNS = 8
MAX_RUNS = 50
#: Qualities in the order pies draw them (clockwise from 12 o'clock) and legends list them.
ORDER = ("Bad", "Medium", "Good", "Null")
#: Pie radius (px) of the largest cell and the smallest any cell gets.
MAX_RADIUS = 30.0
MIN_RADIUS = 9.0


def parse_runs(text: str | None) -> int:
    """How many runs the matrix shows (``?runs=N``, 1 to ``MAX_RUNS``)."""
    if text in (None, ""):
        return DEFAULT_RUNS
    try:
        count = int(text)
    except ValueError:
        raise queries.BadRequest("runs must be a whole number") from None
    if not 1 <= count <= MAX_RUNS:
        raise queries.BadRequest(f"runs must be between 1 and {MAX_RUNS}")
    return count


def quality_counts(sub: Subsystem) -> dict[str, int]:
    """Histograms per quality on the subsystem's latest slice (unchecked ones are Null)."""
    per_histogram = roll_up(
        (result["histogram"], Quality.parse(result["quality"])) for result in sub.check_results
    )
    counts = dict.fromkeys(ORDER, 0)
    for quality in per_histogram.values():
        counts[quality.value] += 1
    unchecked = sum(1 for path in sub.histograms.keys() if path not in per_histogram)
    counts[Quality.NULL.value] += unchecked
    return counts


def run_link(run: int, subsystem: str, quality: str | None = None) -> str:
    """The run page of a cell, filtered to one quality of the latest slice when given."""
    if quality is None:
        return url_for("pages.subsystem_page", run=run, subsystem=subsystem)
    return url_for(
        "pages.subsystem_page", run=run, subsystem=subsystem, slice="latest", quality=quality
    )


def _cell(run: int, name: str, sub: Subsystem) -> dict[str, Any] | None:
    if not len(sub.snapshots):
        return None  # known, but nothing processed yet: an empty cell
    counts = quality_counts(sub)
    return {
        "run": run,
        "subsystem": name,
        "quality": sub.quality,
        "histograms": sum(counts.values()),
        "counts": counts,
        "evaluated_at": sub.evaluated_at or None,
        "url": run_link(run, name),
        "links": {quality: run_link(run, name, quality) for quality, n in counts.items() if n},
    }


def overview(root: OverwatchRoot, count: int, now: float, ongoing_seconds: float) -> dict:
    """The newest ``count`` runs, their subsystems and one cell per (run, subsystem) with data."""
    numbers = list(root.runs.keys()[-count:])[::-1] if len(root.runs) else []
    runs, cells, names = [], [], set()
    for number in numbers:
        run = root.runs[number]
        runs.append(
            {
                "run": number,
                "start": run.start,
                "end": run.end,
                "ongoing": run.is_ongoing(now, ongoing_seconds),
            }
        )
        for name, sub in run.subsystems.items():
            names.add(name)
            cell = _cell(number, name, sub)
            if cell is not None:
                cells.append(cell)
    return {"runs": runs, "subsystems": sorted(names), "cells": cells}


# --------------------------------------------------------------------------- pies


def radius(histograms: int, largest: int) -> float:
    """Area grows with sqrt(count): the radius with its fourth root, relative to the largest."""
    if histograms <= 0 or largest <= 0:
        return MIN_RADIUS
    return max(MIN_RADIUS, MAX_RADIUS * (histograms / largest) ** 0.25)


def pie(counts: dict[str, int], r: float) -> list[dict[str, Any]]:
    """SVG geometry of a pie centred at (0, 0): one slice per quality with histograms.

    A slice is ``{"quality", "count", "d"}`` (a path), or ``"circle": True`` when one
    quality holds everything (an arc of 360° is no path).
    """
    total = sum(counts.values())
    present = [(q, counts[q]) for q in ORDER if counts.get(q)]
    if len(present) == 1:
        quality, n = present[0]
        return [{"quality": quality, "count": n, "circle": True}]
    slices, angle = [], 0.0
    for quality, n in present:
        sweep = 2 * math.pi * n / total
        x0, y0 = r * math.sin(angle), -r * math.cos(angle)
        x1, y1 = r * math.sin(angle + sweep), -r * math.cos(angle + sweep)
        large = 1 if sweep > math.pi else 0
        d = f"M0,0L{x0:.2f},{y0:.2f}A{r:.2f},{r:.2f} 0 {large} 1 {x1:.2f},{y1:.2f}Z"
        slices.append({"quality": quality, "count": n, "d": d})
        angle += sweep
    return slices


def tooltip(cell: dict[str, Any]) -> str:
    counts = ", ".join(f"{q} {cell['counts'][q]}" for q in ORDER)
    return f"Run {cell['run']} {cell['subsystem']}: {cell['histograms']} histograms ({counts})"


# --------------------------------------------------------------------------- routes


def _data() -> dict:
    count = parse_runs(request.args.get("runs"))
    return overview(overwatch(), count, time.time(), resources().ongoing_seconds)


@bp.route("/api/overview")
def api() -> Response:
    return json_response(_data())


@bp.route("/overview")
def page() -> str:
    data = _data()
    largest = max((cell["histograms"] for cell in data["cells"]), default=0)
    grid: dict[tuple[int, str], dict[str, Any]] = {}
    for cell in data["cells"]:
        r = radius(cell["histograms"], largest)
        grid[cell["run"], cell["subsystem"]] = {
            **cell,
            "radius": r,
            "slices": pie(cell["counts"], r),
            "tooltip": tooltip(cell),
        }
    return render_template(
        "overview.html",
        data=data,
        grid=grid,
        order=ORDER,
        box=2 * MAX_RADIUS + 4,
        runs_shown=parse_runs(request.args.get("runs")),
    )

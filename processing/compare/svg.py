"""Inline SVG for the HTML report: status pies and the rank (p-value) histogram.

Plain SVG text, no script: the summary pages stay readable without JavaScript
and offline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from html import escape

from processing.compare.results import STATUS_ORDER, Status

COLORS = {
    Status.SUCCESS: "#3a9d23",
    Status.NULL: "#9e9e9e",
    Status.SKIPPED: "#e0a800",
    Status.FAIL: "#d32f2f",
}

#: Rank histogram bins: log10(p) from -LOWEST_DECADE (and below) up to 0.
LOWEST_DECADE = 12


def pie(counts: Mapping[Status, int], size: int = 120, label: str = "") -> str:
    """A pie of the results per status (a full disc when there is one status)."""
    total = sum(counts.get(s, 0) for s in STATUS_ORDER)
    radius = size / 2
    parts = [
        f'<svg class="pie" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
        f'role="img" aria-label="{escape(label or "results per status")}">'
    ]
    if total == 0:
        parts.append(f'<circle cx="{radius}" cy="{radius}" r="{radius}" fill="#eeeeee"/>')
        return "".join(parts) + "</svg>"
    angle = -math.pi / 2
    for status in STATUS_ORDER:
        count = counts.get(status, 0)
        if not count:
            continue
        title = f"<title>{status.value}: {count}</title>"
        if count == total:
            parts.append(
                f'<circle class="slice {status.value}" cx="{radius}" cy="{radius}" '
                f'r="{radius}" fill="{COLORS[status]}">{title}</circle>'
            )
            break
        sweep = 2 * math.pi * count / total
        x1, y1 = radius + radius * math.cos(angle), radius + radius * math.sin(angle)
        angle += sweep
        x2, y2 = radius + radius * math.cos(angle), radius + radius * math.sin(angle)
        large = 1 if sweep > math.pi else 0
        parts.append(
            f'<path class="slice {status.value}" fill="{COLORS[status]}" '
            f'd="M{radius:.2f},{radius:.2f} L{x1:.2f},{y1:.2f} '
            f'A{radius:.2f},{radius:.2f} 0 {large} 1 {x2:.2f},{y2:.2f} Z">{title}</path>'
        )
    return "".join(parts) + "</svg>"


def rank_bins(pvalues: Iterable[float]) -> list[int]:
    """Counts per decade of p-value: [p < 1e-12, 1e-12..1e-11, ..., 0.1..1]."""
    counts = [0] * (LOWEST_DECADE + 1)
    for p in pvalues:
        if p is None or not math.isfinite(p):
            continue
        decade = math.floor(math.log10(p)) if p > 0 else -LOWEST_DECADE - 1
        decade = min(max(decade, -LOWEST_DECADE - 1), -1)
        counts[decade + LOWEST_DECADE + 1] += 1
    return counts


def rank_histogram(pvalues: Iterable[float], threshold: float, title: str = "") -> str:
    """Bars of the p-value (rank) distribution in decades; bars below the threshold in red."""
    counts = rank_bins(pvalues)
    width, height, margin = 460, 180, 30
    bar = (width - 2 * margin) / len(counts)
    top = max(counts) or 1
    parts = [
        f'<svg class="rank" width="{width}" height="{height + 40}" role="img" '
        f'aria-label="{escape(title or "rank histogram")}">',
        f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{escape(title)}</text>',
    ]
    cut = math.log10(threshold) if threshold > 0 else -math.inf
    for i, count in enumerate(counts):
        low = i - LOWEST_DECADE - 1  # decade lower edge, log10
        color = COLORS[Status.FAIL] if low + 1 <= cut else COLORS[Status.SUCCESS]
        h = (height - 30) * count / top
        x = margin + i * bar
        label = f"p &lt; 1e{low + 1}" if i == 0 else f"1e{low} ≤ p &lt; 1e{low + 1}"
        parts.append(
            f'<rect class="bin" x="{x:.1f}" y="{height - h:.1f}" width="{bar - 2:.1f}" '
            f'height="{h:.1f}" fill="{color}" data-count="{count}">'
            f"<title>{label}: {count}</title></rect>"
        )
        if i % 2 == 0 or i == len(counts) - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height + 14}" text-anchor="middle" '
                f'font-size="10">{low + 1}</text>'
            )
    parts.append(
        f'<text x="{width / 2}" y="{height + 32}" text-anchor="middle" font-size="11">'
        "log10(p-value), upper edge of each decade</text></svg>"
    )
    return "".join(parts)

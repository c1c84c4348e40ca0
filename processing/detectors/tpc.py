"""The TPC plugin: projections of its 3D track histograms, track and cluster groups.

Every TH3 of a slice (``TPC/trackPtEtaPhi``: pT x eta x phi) is projected onto
each pair of axes and each single axis, named as ROOT names projections
(``<path>_pxy``, ``<path>_px``, ...). Like ROOT, a projection sums over all
bins of the dropped axes, under- and overflow included.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np

from overwatch.histogram import Histogram
from overwatch.plugins import DetectorPlugin, Display, SliceContext
from processing.detectors import event_rate

CLUSTERS_PER_SECTOR = "TPC/clustersPerSector"


def projections(path: str, histogram: Histogram) -> dict[str, Histogram]:
    """All 2D and 1D projections of a 3D histogram, by ROOT-style name."""
    main = histogram.title.split(";", 1)[0] or path.rsplit("/", 1)[-1]
    out = {}
    for size in (2, 1):
        for keep in combinations(range(3), size):
            name = path + "_p" + "".join("xyz"[k] for k in keep)
            projected = histogram.project(keep, name=name)
            titles = [histogram.axes[k].title or "xyz"[k] for k in keep]
            label = " vs ".join(reversed(titles))  # ROOT says "y vs x"
            projected.title = f"{main} ({label})"
            out[name] = projected
    return out


class TPCPlugin(DetectorPlugin):
    name = "TPC"
    events_histogram = "events"
    groups = (
        ("Projections", r"^TPC/\w+_p[xyz]+$"),
        ("Tracks", r"^TPC/track"),
        ("Clusters", r"^TPC/cluster"),
        ("DCA", r"^TPC/dca"),
        ("Events", r"^events$"),
    )

    def derived(
        self, histograms: Mapping[str, Histogram], options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, Histogram]:
        out: dict[str, Histogram] = {}
        for path, histogram in histograms.items():
            if histogram.ndim == 3 and not histogram.is_profile:
                out.update(projections(path, histogram))
        return out

    def display(self, path: str, histogram: Histogram) -> Display:
        if path == "TPC/trackPt" or path.endswith("trackPtEtaPhi_px"):
            return Display(logx=True, logy=True)  # a steeply falling spectrum over decades
        if path.startswith("TPC/dca"):
            return Display(logy=True)  # the narrow peak and the tails both matter
        return super().display(path, histogram)

    def trend_values(
        self, path: str, histogram: Histogram, options: Mapping[str, Any], context: SliceContext
    ) -> dict[str, float]:
        if path == self.events_histogram:
            return event_rate(histogram, context)
        if path == CLUSTERS_PER_SECTOR:
            # A sector that stops sending clusters shows as a ratio well below 1.
            counts = histogram.values[histogram.inner]
            median = float(np.median(counts)) if counts.size else 0.0
            if median > 0:
                return {"weakest_sector_ratio": float(counts.min() / median)}
        return {}

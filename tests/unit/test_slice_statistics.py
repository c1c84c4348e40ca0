"""Slice statistics as ROOT computes them: ``fTsumw = 0`` means "from the bins" on either side.

ROOT stores ``fTsumw = 0`` with entries after ``SetBinContent`` (or ``Divide``,
label fills): ``GetStats`` then sums the in-range bins. A slice is ROOT's
``Add(base, -1)``, whose statistics are ``GetStats(end) - GetStats(base)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.config import ProcessingSettings
from overwatch.histogram import STAT_NAMES, Axis, Histogram
from overwatch.store.db import open_db
from processing.pipeline import Pipeline
from processing.slices.reader import SliceReader
from tests.processing_helpers import T0, write_snapshot

SETTINGS = ProcessingSettings(events_histogram={})


def filled(counts: np.ndarray) -> Histogram:
    """A histogram filled point by point: exact statistics kept."""
    h = Histogram.empty("filled", [Axis.regular(10, -5, 5)], "TH1D")
    h.fill(np.repeat(np.linspace(-4.5, 4.5, 10), counts.astype(int)))
    return h


def set_by_bin(counts: np.ndarray) -> Histogram:
    """A histogram set with SetBinContent: ROOT stores fTsumw = 0 (and counts entries)."""
    h = Histogram.empty("set", [Axis.regular(10, -5, 5)], "TH1D")
    h.values = np.asfortranarray(np.concatenate([[0.0], counts, [0.0]]))
    h.entries = float(len(counts))
    h.stats = dict.fromkeys(STAT_NAMES[1], 0.0)
    return h


def bin_mean_std(values: np.ndarray) -> tuple[float, float]:
    centers = np.linspace(-4.5, 4.5, 10)
    mean = float((values * centers).sum() / values.sum())
    return mean, float(np.sqrt((values * centers**2).sum() / values.sum() - mean**2))


@pytest.fixture
def processed(tmp_path):
    db = open_db("memory://")
    first = np.array([0, 1, 4, 9, 20, 25, 12, 5, 2, 1], dtype=float)
    second = first + np.array([5, 9, 3, 0, 1, 0, 2, 8, 11, 7], dtype=float)
    mixed_first = set_by_bin(first)
    mixed_first.name = "mixed"
    mixed_second = filled(second)
    mixed_second.name = "mixed"
    write_snapshot(tmp_path, 3, "EMC", T0, [set_by_bin(first), filled(first), mixed_first])
    write_snapshot(tmp_path, 3, "EMC", T0 + 60, [set_by_bin(second), filled(second), mixed_second])
    Pipeline(tmp_path, db, SETTINGS).run_until_idle()
    yield SliceReader(tmp_path, db), first, second
    db.close()


def test_both_sides_from_the_bins(processed) -> None:
    reader, first, second = processed
    for piece in (reader.slice_between(3, "EMC", T0, T0 + 60)["set"],
                  reader.slice_between(3, "EMC", T0, T0 + 60, ["set"])["set"],
                  reader.latest_slice(3, "EMC", "set")):  # fmt: skip
        mean, std = bin_mean_std(second - first)
        assert piece.stats["fTsumw"] == pytest.approx((second - first).sum())
        assert piece.mean() == pytest.approx(mean)
        stored_mean = piece.stats["fTsumwx"] / piece.stats["fTsumw"]
        assert stored_mean == pytest.approx(mean)  # the statistics say it, not only the bins
        stored_var = piece.stats["fTsumwx2"] / piece.stats["fTsumw"] - stored_mean**2
        assert np.sqrt(stored_var) == pytest.approx(std)


def test_the_base_from_the_bins_the_end_filled(processed) -> None:
    """The case that went wrong: the earlier state's 0 was taken literally."""
    reader, first, second = processed
    piece = reader.slice_between(3, "EMC", T0, T0 + 60)["mixed"]
    exact_second = filled(second).stats
    first_bins = set_by_bin(first).compute_stats()
    assert piece.stats["fTsumw"] == pytest.approx(exact_second["fTsumw"] - first_bins["fTsumw"])
    assert piece.stats["fTsumwx"] == pytest.approx(exact_second["fTsumwx"] - first_bins["fTsumwx"])
    assert piece.stats["fTsumw"] == pytest.approx((second - first).sum())


def test_filled_histograms_keep_their_exact_statistics(processed) -> None:
    reader, first, second = processed
    piece = reader.slice_between(3, "EMC", T0, T0 + 60)["filled"]
    exact = {k: filled(second).stats[k] - filled(first).stats[k] for k in piece.stats}
    assert piece.stats == pytest.approx(exact)


def test_whole_run_keeps_what_the_producer_stored(processed) -> None:
    reader, _, _ = processed
    assert reader.cumulative(3, "EMC", "set").stats["fTsumw"] == 0.0

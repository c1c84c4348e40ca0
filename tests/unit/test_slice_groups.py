"""The page's groups of a slice: one rule (processing.analysis.slice_analysis.plugin_groups)."""

from __future__ import annotations

from overwatch.plugins import DefaultPlugin, DetectorPlugin
from processing.analysis.slice_analysis import plugin_groups

PATHS = ["EMCal/SM00/hits", "events", "EMCal/energy", "TPC/clusters"]


def test_without_a_plugin_histograms_go_by_first_directory_other_last() -> None:
    groups, error = plugin_groups(DefaultPlugin(), PATHS)
    assert error is None
    assert groups == {
        "EMCal": ["EMCal/SM00/hits", "EMCal/energy"],
        "TPC": ["TPC/clusters"],
        "Other": ["events"],
    }
    assert list(groups) == ["EMCal", "TPC", "Other"]


class ByDimension(DetectorPlugin):
    name = "DIM"

    def grouped(self, paths):
        return {
            "maps": [p for p in paths if "hits" in p],
            "rest": [p for p in paths if p != "events" and "hits" not in p],
        }


class Broken(DetectorPlugin):
    name = "BRK"

    def grouped(self, paths):
        raise RuntimeError("no groups today")


def test_a_plugins_grouping_replaces_it_and_loses_no_histogram() -> None:
    groups, error = plugin_groups(ByDimension(), PATHS)
    assert error is None
    # "events" is in none of the plugin's groups: it is shown under Other all the same.
    assert groups == {
        "maps": ["EMCal/SM00/hits"],
        "rest": ["EMCal/energy", "TPC/clusters"],
        "Other": ["events"],
    }


def test_a_failing_grouping_falls_back_to_directories_and_says_why() -> None:
    groups, error = plugin_groups(Broken(), PATHS)
    assert error is not None and "no groups today" in error
    assert groups == plugin_groups(DefaultPlugin(), PATHS)[0]

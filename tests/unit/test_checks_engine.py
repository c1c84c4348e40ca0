"""The check engine: selection, targets, groups, roll-up, robustness."""

from __future__ import annotations

import logging
import textwrap

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from overwatch.quality import Quality
from processing.analysis.checks import CheckEngine

G, M, B, N = Quality.GOOD, Quality.MEDIUM, Quality.BAD, Quality.NULL

CHECKS = """\
checks:
  - name: hot
    subsystem: EMC
    histogram: "EMCal/SM*/cellHits"
    trend: hot_cells
    check: between_values
    parameters: {min: 0, max: 0}
  - name: busy-bins
    subsystem: EMC
    histogram: "EMCal/SM*/cellHits"
    check: bins_above_threshold
    parameters: {threshold: 100, max_bins: 0}
    on_fail: Medium
  - name: rate
    subsystem: "*"
    histogram_regex: "events|EMCTrigger/events"
    trend: event_rate
    check: relative_previous_value
    parameters: {max_ratio: 0.5, direction: drop}
    group: Rates
"""


def cells(hot: float = 0.0) -> Histogram:
    h = Histogram.empty("cells", [Axis.regular(4, 0, 4), Axis.regular(2, 0, 2)], "TH2F")
    h.values[1:-1, 1:-1] = 10.0
    h.values[2, 1] += hot
    h.entries = float(h.values.sum())
    return h


def events(n: float) -> Histogram:
    h = Histogram.empty("events", [Axis.regular(1, 0, 1)])
    h.values[1] = n
    h.entries = n
    return h


def series(*values: float) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(values), dtype=float), np.array(values, dtype=float)


def group_of(path: str) -> str:
    return path.split("/")[0] if "/" in path else "Other"


@pytest.fixture
def engine() -> CheckEngine:
    return CheckEngine.from_text(CHECKS, "test")


def by_target(evaluation) -> dict[tuple[str, str], tuple[Quality, str, str | None, str]]:
    return {(r.check, r.path): (r.quality, r.group, r.trend, r.message) for r in evaluation.results}


def test_each_check_runs_on_its_targets_and_rolls_up(engine: CheckEngine) -> None:
    histograms = {
        "EMCal/SM00/cellHits": cells(),
        "EMCal/SM01/cellHits": cells(hot=500),
        "EMCal/clusterEnergy": events(5),  # selected by nothing
        "EMCTrigger/events": events(60000),
    }
    trends = {
        ("EMCal/SM00/cellHits", "hot_cells"): series(0, 0),
        ("EMCal/SM01/cellHits", "hot_cells"): series(0, 1),
        ("EMCTrigger/events", "event_rate"): series(1000, 990),
    }
    evaluation = engine.evaluate(7, "EMC", histograms, trends, group_of)
    results = by_target(evaluation)
    assert set(results) == {
        ("hot", "EMCal/SM00/cellHits"),
        ("busy-bins", "EMCal/SM00/cellHits"),
        ("hot", "EMCal/SM01/cellHits"),
        ("busy-bins", "EMCal/SM01/cellHits"),
        ("rate", "EMCTrigger/events"),
    }
    assert results[("hot", "EMCal/SM00/cellHits")][:3] == (G, "EMCal", "hot_cells")
    assert results[("hot", "EMCal/SM01/cellHits")][0] is B
    assert results[("busy-bins", "EMCal/SM01/cellHits")][:3] == (M, "EMCal", None)
    assert results[("rate", "EMCTrigger/events")][:2] == (G, "Rates")
    assert evaluation.per_group == {"EMCal": B, "Rates": G}
    assert evaluation.subsystem_quality is B
    assert (evaluation.run, evaluation.subsystem) == (7, "EMC")
    as_dict = evaluation.to_dict()
    assert as_dict["quality"] == "Bad" and as_dict["groups"] == {"EMCal": "Bad", "Rates": "Good"}
    assert {"check", "histogram", "trend", "group", "quality", "message"} <= set(
        as_dict["results"][0]
    )


def test_subsystem_selector(engine: CheckEngine) -> None:
    histograms = {"events": events(10), "EMCal/SM00/cellHits": cells(hot=500)}
    trends = {("events", "event_rate"): series(1000, 100)}
    evaluation = engine.evaluate(7, "TPC", histograms, trends, group_of)
    assert [(r.check, r.path, r.quality) for r in evaluation.results] == [("rate", "events", B)]
    assert evaluation.subsystem_quality is B
    nothing = engine.evaluate(7, "TPC", {"TPC/x": events(1)}, {}, group_of)
    assert nothing.results == [] and nothing.subsystem_quality is N and nothing.per_group == {}


def test_missing_trend_is_null_with_reason_and_trend_without_histogram_is_checked(
    engine: CheckEngine,
) -> None:
    histograms = {"EMCal/SM00/cellHits": cells()}  # the plugin produced no hot_cells trend
    trends = {("EMCTrigger/events", "event_rate"): series(1000, 200)}  # histogram not in slice
    results = by_target(engine.evaluate(7, "EMC", histograms, trends, group_of))
    quality, _, _, message = results[("hot", "EMCal/SM00/cellHits")]
    assert quality is N and "no trend 'hot_cells'" in message
    assert results[("rate", "EMCTrigger/events")][0] is B


def test_null_results_do_not_hide_others_in_the_roll_up(engine: CheckEngine) -> None:
    histograms = {"EMCal/SM00/cellHits": cells()}
    trends = {("EMCal/SM00/cellHits", "hot_cells"): series()}  # no points yet: Null
    evaluation = engine.evaluate(7, "EMC", histograms, trends, group_of)
    results = by_target(evaluation)
    assert results[("hot", "EMCal/SM00/cellHits")][0] is N
    assert results[("busy-bins", "EMCal/SM00/cellHits")][0] is G
    assert evaluation.per_group == {"EMCal": G} and evaluation.subsystem_quality is G
    only_null = engine.evaluate(7, "EMC", {}, trends, group_of)
    assert only_null.per_group == {"EMCal": N} and only_null.subsystem_quality is N


def test_compositions_with_sub_trends() -> None:
    text = textwrap.dedent(
        """\
        checks:
          - name: sm-broken
            histogram: "EMCal/SM*/cellHits"
            check: any
            checks:
              - {name: hot, check: between_values, trend: hot_cells, parameters: {min: 0, max: 0}}
              - {name: dead, check: between_values, trend: dead_cells, parameters: {min: 0, max: 0}}
          - name: sm-all
            histogram: "EMCal/SM*/cellHits"
            check: all
            on_fail: Medium
            checks:
              - {check: bins_above_threshold, parameters: {threshold: 100, max_bins: 0}}
              - check: any
                checks:
                  - {check: between_values, trend: hot_cells, parameters: {min: 0, max: 0}}
                  - {check: mean, parameters: {min: 0, max: 100}}
        """
    )
    engine = CheckEngine.from_text(text)
    assert engine.definitions[0].trend_names == {"hot_cells", "dead_cells"}
    path = "EMCal/SM00/cellHits"
    trends = {(path, "hot_cells"): series(3), (path, "dead_cells"): series(0)}
    results = by_target(engine.evaluate(1, "EMC", {path: cells(hot=500)}, trends, group_of))
    quality, _, trend, message = results[("sm-broken", path)]
    assert quality is G and trend is None and message.startswith("dead: Good")
    quality, _, _, message = results[("sm-all", path)]
    assert quality is M and "bins above 100" in message  # Bad capped by on_fail: Medium

    trends[(path, "dead_cells")] = series(2)
    results = by_target(engine.evaluate(1, "EMC", {path: cells()}, trends, group_of))
    assert results[("sm-broken", path)][0] is B
    assert results[("sm-all", path)][0] is G


def test_group_of_is_called_once_per_path_and_its_failure_is_contained(
    engine: CheckEngine, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def counting(path: str) -> str:
        calls.append(path)
        return "G"

    histograms = {"EMCal/SM00/cellHits": cells(), "EMCal/SM01/cellHits": cells()}
    engine.evaluate(1, "EMC", histograms, {}, counting)
    assert calls == ["EMCal/SM00/cellHits", "EMCal/SM01/cellHits"]

    def broken(path: str) -> str:
        raise KeyError(path)

    with caplog.at_level(logging.ERROR):
        evaluation = engine.evaluate(1, "EMC", histograms, {}, broken)
    assert {r.group for r in evaluation.results} == {"EMC"}
    assert "group_of" in caplog.text


def test_a_failing_check_is_null_and_logged_once(
    engine: CheckEngine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = {("EMCal/SM00/cellHits", "hot_cells"): ("not", "arrays of numbers")}
    histograms = {"EMCal/SM00/cellHits": cells()}
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            evaluation = engine.evaluate(1, "EMC", histograms, broken, group_of)
    results = by_target(evaluation)
    quality, _, _, message = results[("hot", "EMCal/SM00/cellHits")]
    assert quality is N and message.startswith("check failed: ValueError")
    assert results[("busy-bins", "EMCal/SM00/cellHits")][0] is G  # the others still run
    assert caplog.text.count("check hot failed") == 1


def test_selection_is_cached_per_subsystem_and_path(engine: CheckEngine) -> None:
    first = engine.selected("EMC", "EMCal/SM03/cellHits")
    assert [d.name for d in first] == ["hot", "busy-bins"]
    assert engine.selected("EMC", "EMCal/SM03/cellHits") is first
    assert engine.selected("TPC", "EMCal/SM03/cellHits") == ()
    assert [d.name for d in engine.checks_for("HLT")] == ["rate"]


def test_many_histograms_few_checks() -> None:
    """A subsystem with a thousand histograms: only the selected ones give results."""
    engine = CheckEngine.from_text(CHECKS)
    histograms = {f"EMCExtra/h{i:04d}": events(i) for i in range(1000)}
    histograms.update({f"EMCal/SM{i:02d}/cellHits": cells() for i in range(20)})
    trends = {(f"EMCal/SM{i:02d}/cellHits", "hot_cells"): series(0, 0) for i in range(20)}
    for _ in range(3):
        evaluation = engine.evaluate(1, "EMC", histograms, trends, group_of)
    assert len(evaluation.results) == 40
    assert evaluation.subsystem_quality is G

"""bin2bin: exact and tolerant bin-by-bin equality, RelMon's rank."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from processing.compare.registry import SpecError, configure
from processing.compare.results import Reason, Status


def histogram(values, sumw2=None) -> Histogram:
    values = np.asarray(values, dtype=float)
    return Histogram(
        name="h",
        class_name="TH1F",
        axes=[Axis.regular(len(values) - 2, 0, 1)],
        values=values,
        sumw2=None if sumw2 is None else np.asarray(sumw2, dtype=float),
    )


def test_identical_histograms_rank_one():
    h = histogram([1, 5, 6, 7, 0, 2])
    result = configure("bin2bin").run("h", h, [h.copy()])
    assert (result.status, result.pvalue, result.statistic) == (Status.SUCCESS, 1.0, 0.0)


def test_rank_is_the_fraction_of_agreeing_bins_flow_included():
    a = histogram([1, 5, 6, 7, 0, 2])
    b = histogram([1, 5, 6, 7, 0, 3])  # only the overflow differs
    result = configure("bin2bin").run("h", a, [b])
    assert result.status is Status.FAIL
    assert result.pvalue == pytest.approx(5 / 6)
    assert result.info["differing_bins"] == 1
    assert configure("bin2bin", 0.8).run("h", a, [b]).status is Status.SUCCESS


def test_relative_tolerance():
    a = histogram([0, 100, 200, 300, 0])
    b = histogram([0, 100.05, 199.9, 300, 0])
    assert configure("bin2bin").run("h", a, [b]).status is Status.FAIL
    assert configure("bin2bin:rtol=1e-3").run("h", a, [b]).status is Status.SUCCESS
    tight = configure("bin2bin:rtol=1e-4").run("h", a, [b])
    assert tight.info["differing_bins"] == 2
    assert tight.info["largest_relative_difference"] == pytest.approx(0.1 / 200)


def test_errors_compared_only_when_asked():
    a = histogram([0, 1, 2, 0], sumw2=[0, 1, 2, 0])
    b = histogram([0, 1, 2, 0], sumw2=[0, 3, 2, 0])
    assert configure("bin2bin").run("h", a, [b]).status is Status.SUCCESS
    assert configure("bin2bin:errors").run("h", a, [b]).status is Status.FAIL


def test_scaled_copy_is_not_equal():
    a = histogram([0, 10, 20, 0])
    assert configure("bin2bin").run("h", a, [a.scaled(2.0)]).status is Status.FAIL


def test_profiles_compare_sums_and_entries():
    p = Histogram.empty("p", [Axis.regular(3, 0, 3)], "TProfile")
    p.fill([0.5, 1.5, 1.5], y=[1.0, 2.0, 4.0])
    q = p.copy()
    q.bin_entries[2] += 1  # same sum of y, one more entry: a different mean
    test = configure("bin2bin")
    assert test.run("p", p, [p.copy()]).status is Status.SUCCESS
    assert test.run("p", p, [q]).status is Status.FAIL


def test_empty_and_bad_options():
    empty = histogram([0, 0, 0])
    assert configure("bin2bin").run("h", empty, [empty]).reason is Reason.EMPTY
    with pytest.raises(SpecError, match="at least 0"):
        configure("bin2bin:rtol=-1")
    with pytest.raises(SpecError, match="needs a float"):
        configure("bin2bin:rtol=abc")

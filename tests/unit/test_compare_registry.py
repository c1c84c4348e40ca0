"""The test registry: names, aliases, options, thresholds, and new tests plugging in."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.histogram import Axis, Histogram
from processing.compare import registry
from processing.compare.registry import Option, SpecError, configure, get_test, register
from processing.compare.results import ComparisonResult, Reason, Status, judged


def histogram(nbins=4, low=0.0, high=1.0, class_name="TH1D") -> Histogram:
    h = Histogram.empty("h", [Axis.regular(nbins, low, high)], class_name)
    h.fill(np.linspace(low, high, 20, endpoint=False))
    return h


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("Chi2", "chi2"),
        ("chi2test", "chi2"),
        ("KS", "ks"),
        ("Kolmogorov", "ks"),
        ("Bin2Bin", "bin2bin"),
        ("pull_values", "pull"),
        ("pullvals", "pull"),
        ("betab", "beta_binomial"),
    ],
)
def test_aliases(alias, name):
    assert get_test(alias).name == name


def test_builtin_tests_and_defaults():
    tests = registry.available_tests()
    assert set(tests) >= {"chi2", "ks", "bin2bin", "pull", "beta_binomial"}
    assert configure("chi2").threshold == 1e-5
    assert configure("bin2bin").threshold == 1.0
    assert configure("chi2", 0.05).threshold == 0.05
    assert configure("chi2:norm,of").options == {
        "mode": "auto",
        "norm": True,
        "uf": False,
        "of": True,
    }
    assert configure("chi2:mode=ww").options["mode"] == "WW"


@pytest.mark.parametrize(
    ("spec", "threshold", "message"),
    [
        ("nosuch", None, "unknown test 'nosuch'"),
        ("chi2:bogus", None, "unknown option 'bogus'"),
        ("chi2:mode=XX", None, "must be one of"),
        ("chi2:norm=maybe", None, "true or false"),
        ("ks:max_distance", None, "needs a value"),
        ("ks:max_distance=nan", None, "finite"),
        ("chi2", 1.5, "between 0 and 1"),
        ("chi2", -0.1, "between 0 and 1"),
        ("chi2", float("nan"), "between 0 and 1"),
    ],
)
def test_bad_specs(spec, threshold, message):
    with pytest.raises(SpecError, match=message):
        configure(spec, threshold)


def test_shared_checks_skip_uncomparable_pairs():
    test = configure("chi2")
    binning = test.run("h", histogram(4), [histogram(5)])
    assert (binning.status, binning.reason) == (Status.SKIPPED, Reason.DIFFERENT_BINNING)
    edges = test.run("h", histogram(4, high=2.0), [histogram(4)])
    assert edges.reason is Reason.DIFFERENT_BINNING
    p = Histogram.empty("p", [Axis.regular(4, 0, 1)], "TProfile")
    assert test.run("h", histogram(4), [p]).reason is Reason.DIFFERENT_CLASS
    h2 = Histogram.empty("h2", [Axis.regular(4, 0, 1), Axis.regular(2, 0, 1)])
    assert test.run("h", histogram(4), [h2]).reason is Reason.DIFFERENT_CLASS
    # Storage type alone does not matter: a TH1F compares with a TH1D.
    assert test.run("h", histogram(4, class_name="TH1F"), [histogram(4)]).status is Status.SUCCESS


def test_labels_must_match():
    a, b = histogram(2), histogram(2)
    a.axes[0].labels = {1: "ok", 2: "bad"}
    b.axes[0].labels = {1: "bad", 2: "ok"}
    result = configure("bin2bin").run("h", a, [b])
    assert (result.reason, result.detail) == (Reason.DIFFERENT_BINNING, "x: bin labels differ")


def test_a_new_test_plugs_in():
    seen = []

    @register(
        "max_ratio",
        "Ratio of the maxima (example)",
        default_threshold=0.5,
        aliases=("maxratio",),
        options={"power": Option(int, 1, "exponent")},
    )
    def max_ratio(path, test, reference, threshold, power=1) -> ComparisonResult:
        seen.append(power)
        ratio = (test.maximum() / reference.maximum()) ** power
        return judged(path, "max_ratio", min(ratio, 1 / ratio), threshold, statistic=ratio)

    try:
        configured = configure("MaxRatio:power=2")
        h = histogram()
        result = configured.run("h", h, [h.scaled(2.0)])
        assert seen == [2]
        assert (result.status, result.statistic) == (Status.FAIL, pytest.approx(0.25))
        assert configured.run("h", h, [h]).status is Status.SUCCESS
        with pytest.raises(ValueError, match="already taken"):
            register("chi2_copy", "x", 0.1, aliases=("chi2",))(max_ratio)
        assert "chi2_copy" not in registry.available_tests()
        with pytest.raises(SpecError):
            get_test("chi2_copy")
    finally:
        registry._TESTS.pop("max_ratio", None)
        registry._ALIASES.pop("max_ratio", None)
        registry._ALIASES.pop("maxratio", None)

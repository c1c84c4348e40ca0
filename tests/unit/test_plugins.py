"""The detector plugin protocol: options, defaults, groups, hook isolation, the registry."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from overwatch import plugins
from overwatch.histogram import Axis, Histogram
from overwatch.plugins import (
    Annotation,
    Decoration,
    DefaultPlugin,
    DetectorPlugin,
    Display,
    OptionSpec,
    SliceContext,
    StackSpec,
    load_plugin,
    run_hook,
    validate_options,
)

CONTEXT = SliceContext(run=1, subsystem="XYZ", start=100.0, end=160.0, n_events=600.0)


def h1(name="a/h1") -> Histogram:
    h = Histogram.empty(name, [Axis.regular(10, 0, 10)], "TH1F")
    h.fill(np.arange(10) + 0.5)
    return h


def h2(name="a/h2") -> Histogram:
    return Histogram.empty(name, [Axis.regular(4, 0, 4), Axis.regular(3, 0, 3)], "TH2F")


# --------------------------------------------------------------------------- options

SPECS = (
    OptionSpec("scale", "bool", False),
    OptionSpec("threshold", "float", 10.0, minimum=1.0, maximum=1000.0),
    OptionSpec("factor", "float", 0.07, minimum=0.0, exclusive_minimum=True),
    OptionSpec("count", "int", 3, minimum=0, maximum=10),
    OptionSpec("mode", "choice", "fast", choices=("fast", "slow")),
)


def test_validate_options_fills_defaults():
    values, errors = validate_options(SPECS, {})
    assert errors == {}
    assert values == {"scale": False, "threshold": 10.0, "factor": 0.07, "count": 3, "mode": "fast"}
    assert validate_options(SPECS, None) == (values, {})


def test_validate_options_accepts_typed_values_and_strings_from_urls():
    given = {"scale": True, "threshold": 20, "factor": "0.1", "count": "7", "mode": "slow"}
    values, errors = validate_options(SPECS, given)
    assert errors == {}
    assert values == {"scale": True, "threshold": 20.0, "factor": 0.1, "count": 7, "mode": "slow"}
    assert isinstance(values["threshold"], float) and isinstance(values["count"], int)
    for text, expected in (
        ("true", True),
        ("ON", True),
        ("1", True),
        (" no ", False),
        ("0", False),
    ):
        assert validate_options(SPECS, {"scale": text}) == (_defaults_but(scale=expected), {})


def _defaults_but(**changes):
    values, _ = validate_options(SPECS, {})
    return {**values, **changes}


def test_validate_options_empty_and_none_take_the_default():
    values, errors = validate_options(SPECS, {"threshold": "", "count": None, "mode": "  "})
    assert errors == {} and values == _defaults_but()


def test_validate_options_integral_float_is_an_int():
    values, errors = validate_options(SPECS, {"count": 4.0})
    assert errors == {} and values["count"] == 4 and isinstance(values["count"], int)


@pytest.mark.parametrize(
    "given, field, fragment",
    [
        ({"nope": 1}, "nope", "unknown option 'nope'"),
        ({"scale": "maybe"}, "scale", "expected true or false"),
        ({"scale": 1}, "scale", "expected true or false"),
        ({"threshold": "abc"}, "threshold", "expected a number, got 'abc'"),
        ({"threshold": True}, "threshold", "expected a number, got bool"),
        ({"threshold": [1]}, "threshold", "expected a number, got list"),
        ({"threshold": float("nan")}, "threshold", "finite"),
        ({"threshold": "inf"}, "threshold", "finite"),
        ({"threshold": 0.5}, "threshold", "out of range: 0.5 must be >= 1.0"),
        ({"threshold": 1000.5}, "threshold", "out of range: 1000.5 must be <= 1000.0"),
        ({"factor": 0}, "factor", "out of range: 0.0 must be > 0.0"),
        ({"factor": -1}, "factor", "out of range"),
        ({"count": 2.5}, "count", "expected an integer, got 2.5"),
        ({"count": "2.5"}, "count", "expected an integer, got '2.5'"),
        ({"count": 11}, "count", "out of range: 11 must be <= 10"),
        ({"count": -1}, "count", "out of range: -1 must be >= 0"),
        ({"mode": "medium"}, "mode", "expected one of fast, slow, got 'medium'"),
    ],
)
def test_validate_options_errors_name_the_field_and_the_reason(given, field, fragment):
    values, errors = validate_options(SPECS, given)
    assert list(errors) == [field]
    assert fragment in errors[field]
    # Processing goes on with the defaults while the error is shown.
    assert values == _defaults_but()


def test_validate_options_reports_every_bad_field_and_keeps_good_ones():
    values, errors = validate_options(
        SPECS, {"threshold": 0, "count": "x", "mode": "slow", "zz": 1}
    )
    assert set(errors) == {"threshold", "count", "zz"}
    assert "known options: scale, threshold, factor, count, mode" in errors["zz"]
    assert values["mode"] == "slow" and values["threshold"] == 10.0


def test_bounds_are_inclusive_unless_exclusive():
    assert validate_options(SPECS, {"threshold": 1, "count": 10}) == (
        _defaults_but(threshold=1.0, count=10),
        {},
    )


def test_choice_matches_non_string_choices_from_strings():
    spec = OptionSpec("bins", "choice", 10, choices=[10, 20])
    assert spec.choices == (10, 20)
    assert validate_options([spec], {"bins": "20"}) == ({"bins": 20}, {})
    assert "bins" in validate_options([spec], {"bins": "30"})[1]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="bad name", kind="bool", default=False), "identifier"),
        (dict(name="x", kind="text", default=""), "kind must be one of"),
        (dict(name="x", kind="choice", default="a"), "needs choices"),
        (dict(name="x", kind="bool", default=False, minimum=0), "only numbers have a range"),
        (dict(name="x", kind="float", default=1.0, minimum=2, maximum=1), "minimum is above"),
        (dict(name="x", kind="float", default=0.0, minimum=1), "default 0.0: out of range"),
        (dict(name="x", kind="int", default="three"), "expected an integer"),
        (dict(name="x", kind="choice", default="c", choices=("a", "b")), "expected one of"),
    ],
)
def test_option_spec_rejects_bad_declarations(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        OptionSpec(**kwargs)


def test_option_spec_to_dict_is_json():
    data = json.loads(json.dumps(SPECS[1].to_dict()))
    assert data == {
        "name": "threshold", "kind": "float", "default": 10.0, "minimum": 1.0, "maximum": 1000.0,
        "choices": [], "help": "", "exclusive_minimum": False,
    }  # fmt: skip


# --------------------------------------------------------------------------- defaults


def test_default_plugin_behaviour():
    plugin = DefaultPlugin()
    assert plugin.group_of("EMCal/SM00/cellHits") == "EMCal"
    assert plugin.group_of("events") == "Other"
    assert plugin.display("a/h2", h2()) == Display(draw_option="colz")
    assert plugin.display("a/h1", h1()) == Display()
    assert plugin.derived({"a/h1": h1()}, {}, CONTEXT) == {}
    assert plugin.stacks(["a/h1"]) == []
    assert plugin.annotate("a/h1", h1(), {}, CONTEXT) is None
    assert plugin.trend_values("a/h1", h1(), {}, CONTEXT) == {}
    histogram = h1()
    assert plugin.transform("a/h1", histogram, {}, CONTEXT) is histogram
    assert plugin.options == ()


def test_slice_context_duration_and_hash():
    context = SliceContext(1, "EMC", 10.0, 70.0, 5.0, histograms={"a/h1": h1()})
    assert context.duration == 60.0
    assert hash(context) == hash(SliceContext(1, "EMC", 10.0, 70.0, 5.0))


class Grouped(DetectorPlugin):
    name = "grouped"
    options = (OptionSpec("level", "int", 2),)
    groups = (
        ("Summary", r"^det/(summary|overview)$"),
        (r"Module \g<m>", r"^det/M(?P<m>\d+)/"),
        ("Modules", r"^det/M"),  # never reached for M<digits>/: the line above wins
        ("Trigger", r"trigger"),
    )


def test_groups_first_match_wins_and_expand_the_match():
    plugin = Grouped()
    assert plugin.group_of("det/summary") == "Summary"
    assert plugin.group_of("det/M07/hits") == "Module 07"
    assert plugin.group_of("det/Mx") == "Modules"
    assert plugin.group_of("det/M07/trigger") == "Module 07"
    assert plugin.group_of("det/trigger") == "Trigger"
    assert plugin.group_of("other/thing") == "other"  # unmatched: first directory
    assert plugin.group_of("events") == "Other"


def test_grouped_orders_groups_by_pattern_then_name_other_last():
    paths = ["events", "zeta/a", "det/M02/x", "det/trigger", "alpha/b", "det/M01/y", "det/summary"]
    grouped = Grouped().grouped(paths)
    assert list(grouped) == [
        "Summary",
        "Module 01",
        "Module 02",
        "Trigger",
        "alpha",
        "zeta",
        "Other",
    ]
    assert grouped["Other"] == ["events"]
    # Groups follow the pattern order, not the order of the paths.
    assert list(Grouped().grouped(["det/Mx", "det/M5/a"])) == ["Module 5", "Modules"]


def test_option_reads_given_value_or_declared_default():
    plugin = Grouped()
    assert plugin.option({}, "level") == 2
    assert plugin.option({"level": 5}, "level") == 5
    with pytest.raises(KeyError, match="declares no option"):
        plugin.option({}, "nope")


def test_decoration_and_annotation_round_trip_as_plain_data():
    annotation = Annotation(
        info=["2 hot cells"],
        decorations=[Decoration("marker", 1.5, 2.5, label="hot"), Decoration("box", 0, 0, 2, 3)],
        values={"hot_cells": np.float64(2.0)},
    )
    data = json.loads(json.dumps(annotation.to_dict()))
    assert Annotation.from_dict(data) == annotation
    assert data["decorations"][1] == {
        "kind": "box", "x": 0, "y": 0, "x2": 2, "y2": 3, "label": "", "color": "red",
    }  # fmt: skip
    with pytest.raises(ValueError, match="kind must be one of"):
        Decoration("circle", 0, 0)
    with pytest.raises(ValueError, match="needs x2 and y2"):
        Decoration("line", 0, 0, x2=1)


# --------------------------------------------------------------------------- isolation


class Broken(DetectorPlugin):
    name = "broken"

    def display(self, path, histogram):
        raise RuntimeError("no display today")

    def derived(self, histograms, options, context):
        return {"a/h1": h1()}  # would overwrite a slice histogram

    def stacks(self, paths):
        return [StackSpec("s", "s", ("a",)), "not a stack"]

    def trend_values(self, path, histogram, options, context):
        return {"ok": 1, "bad": math.inf} if path == "inf" else {"n": np.int64(3), "x": 0.5}

    def annotate(self, path, histogram, options, context):
        return {"info": []}

    def group_of(self, path):
        return 42

    def transform(self, path, histogram, options, context):
        return 1 / 0


def test_run_hook_returns_results_untouched_when_the_plugin_works():
    result, error = run_hook(Grouped(), "group_of", "det/M03/a")
    assert (result, error) == ("Module 03", None)
    values, error = run_hook(Broken(), "trend_values", "x", h1(), {}, CONTEXT)
    assert error is None and values == {"n": 3.0, "x": 0.5}
    assert all(type(v) is float for v in values.values())


@pytest.mark.parametrize(
    "hook, args, expected, fragment",
    [
        ("display", ("a/h2", h2()), Display(draw_option="colz"), "RuntimeError: no display today"),
        ("derived", ({"a/h1": h1()}, {}, CONTEXT), {}, "would replace slice histograms: ['a/h1']"),
        ("stacks", (["a"],), [], "expected a list of StackSpec"),
        ("trend_values", ("inf", h1(), {}, CONTEXT), {}, "'bad': inf is not a finite number"),
        ("annotate", ("a/h1", h1(), {}, CONTEXT), None, "expected an Annotation or None"),
        ("group_of", ("x/y",), "x", "expected a group name"),
        ("grouped", (["z", "x/y"],), {"x": ["x/y"], "Other": ["z"]}, "AttributeError"),
        ("transform", ("a/h1", h1(), {}, CONTEXT), None, "ZeroDivisionError"),
    ],
)
def test_run_hook_turns_failures_into_errors_and_default_results(hook, args, expected, fragment):
    result, error = run_hook(Broken(), hook, *args)
    assert error is not None and error.startswith(f"broken.{hook}: ") and fragment in error
    if hook == "transform":
        assert result is args[1]  # the default transform: the histogram itself
    else:
        assert result == expected


def test_run_hook_refuses_unknown_hooks():
    with pytest.raises(ValueError, match="unknown hook"):
        run_hook(DefaultPlugin(), "explode")


# --------------------------------------------------------------------------- registry


def test_builtin_plugins_are_found_by_name_through_entry_points():
    from importlib import metadata

    names = {ep.name: ep.value for ep in metadata.entry_points(group="overwatch.detectors")}
    assert names["EMC"] == "processing.detectors.emc:EMCPlugin"
    for name in ("EMC", "TPC", "HLT"):
        plugin = load_plugin(name)
        assert plugin.name == name and type(plugin).__name__ == f"{name}Plugin"
        assert load_plugin(name) is plugin  # cached
    assert set(plugins.available_plugins()) >= {"EMC", "TPC", "HLT"}


def test_unknown_subsystem_gets_the_default_plugin_without_error():
    plugin = load_plugin("NOSUCHDETECTOR")
    assert isinstance(plugin, DefaultPlugin) and plugin.name == "default"
    assert "NOSUCHDETECTOR" not in plugins.load_errors


PLUGIN_MODULE = """
from overwatch.plugins import DetectorPlugin, OptionSpec

class Good(DetectorPlugin):
    name = "GOOD"

class Raising(DetectorPlugin):
    def __init__(self):
        raise RuntimeError("cannot start")

class NotAPlugin:
    pass

class BadGroups(DetectorPlugin):
    groups = (("G", "(unclosed"),)

class RepeatedOptions(DetectorPlugin):
    options = (OptionSpec("a", "bool", False), OptionSpec("a", "int", 1))

instance = Good()
"""

ENTRY_POINTS = """
[overwatch.detectors]
GOOD = ow_test_plugs:Good
INSTANCE = ow_test_plugs:instance
MISSING = ow_test_missing_module:Plugin
RAISES = ow_test_plugs:Raising
NOTPLUGIN = ow_test_plugs:NotAPlugin
BADGROUPS = ow_test_plugs:BadGroups
REPEATED = ow_test_plugs:RepeatedOptions
"""


@pytest.fixture
def site_plugins(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) declaring test plugins."""
    (tmp_path / "ow_test_plugs.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "ow_test_plugs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ow-test-plugs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()
    sys.modules.pop("ow_test_plugs", None)


def test_site_plugins_load_by_class_or_instance(site_plugins):
    assert type(load_plugin("GOOD")).__name__ == "Good"
    assert type(load_plugin("INSTANCE")).__name__ == "Good"
    assert plugins.load_errors == {}


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("MISSING", "ModuleNotFoundError"),
        ("RAISES", "RuntimeError: cannot start"),
        ("NOTPLUGIN", "is not a DetectorPlugin"),
        ("BADGROUPS", "bad pattern '(unclosed'"),
        ("REPEATED", "option names repeat"),
    ],
)
def test_broken_plugins_fall_back_to_the_default_and_record_why(
    site_plugins, name, fragment, caplog
):
    plugin = load_plugin(name)
    assert isinstance(plugin, DefaultPlugin)
    assert fragment in plugins.load_errors[name]
    assert (
        plugins.load_errors[name].startswith("plugin 'ow_test_")
        and f"for {name}:" in (plugins.load_errors[name])
    )
    assert any("cannot load detector" in r.message for r in caplog.records)
    plugins.reset_plugins()
    assert plugins.load_errors == {}


def test_overwatch_plugins_imports_no_other_package():
    code = (
        "import sys, overwatch.plugins as p; p.load_plugin('NOSUCH'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'processing','receivers','webapp'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

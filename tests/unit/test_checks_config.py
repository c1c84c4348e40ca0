"""checks.yaml validation: every error names the file, the line and the key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from overwatch.quality import Quality
from processing.analysis.checks import (
    DEFAULT_CHECKS_FILE,
    CheckConfigError,
    CheckEngine,
    load_checks,
)

VALID = """\
checks:
  - name: hot
    subsystem: EMC
    histogram: "EMCal/SM*/cellHits"
    trend: hot_cells
    check: between_values
    parameters: {min: 0, max: 0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checks.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> CheckConfigError:
    path = write(tmp_path, text)
    with pytest.raises(CheckConfigError) as info:
        CheckEngine.from_file(path)
    error = info.value
    assert error.file == str(path)
    assert str(error).startswith(f"{path}:{error.line}: ")
    return error


def line_of(text: str, needle: str) -> int:
    """1-based number of the line of ``text`` containing ``needle`` (once)."""
    lines = [i + 1 for i, line in enumerate(textwrap.dedent(text).splitlines()) if needle in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_valid_file_loads() -> None:
    engine = CheckEngine.from_text(VALID, "mem")
    (definition,) = engine.definitions
    assert definition.name == "hot"
    assert definition.trend == "hot_cells"
    assert definition.spec.params == {
        "low": 0.0,
        "high": 0.0,
        "medium_low": None,
        "medium_high": None,
    }
    assert definition.selects("EMCal/SM07/cellHits")
    assert not definition.selects("EMCal/SM07/cellAmplitude")
    assert definition.applies_to_subsystem("EMC") and not definition.applies_to_subsystem("TPC")


def test_unknown_check_names_line_key_and_suggests(tmp_path: Path) -> None:
    text = VALID.replace("check: between_values", "check: between_value")
    error = error_of(tmp_path, text)
    assert error.line == line_of(text, "check: between_value")
    assert error.key == "checks[0].check"
    assert "unknown check 'between_value'" in error.message
    assert "did you mean 'between_values'" in error.message


def test_missing_parameter_names_the_parameters_line(tmp_path: Path) -> None:
    text = VALID.replace("{min: 0, max: 0}", "{min: 0}")
    error = error_of(tmp_path, text)
    assert error.line == line_of(text, "parameters:")
    assert error.key == "checks[0].parameters.max"
    assert "missing required parameter 'max' of between_values" in error.message


def test_missing_parameters_mapping_names_the_entry(tmp_path: Path) -> None:
    text = """\
    checks:
      - name: ok
        histogram: a
        check: bins_above_threshold
        parameters: {threshold: 1, max_bins: 0}
      - name: nothing
        histogram: b
        check: bins_above_threshold
    """
    error = error_of(tmp_path, text)
    assert error.line == line_of(text, "name: nothing")
    assert error.key == "checks[1].parameters.threshold"


def test_bad_regex(tmp_path: Path) -> None:
    text = VALID.replace('histogram: "EMCal/SM*/cellHits"', 'histogram_regex: "EMCal/SM(0-9/x"')
    error = error_of(tmp_path, text)
    assert error.line == line_of(text, "histogram_regex")
    assert error.key == "checks[0].histogram_regex"
    assert "bad regular expression" in error.message


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("max: 0}", "max: zero}", "checks[0].parameters.max", "expected a number, got 'zero'"),
        ("max: 0}", "max: true}", "checks[0].parameters.max", "expected a number, got True"),
        ("max: 0}", "max: [1]}", "checks[0].parameters.max", "expected a single value"),
        ("name: hot", "name: [hot]", "checks[0].name", "expected a single value"),
        ("subsystem: EMC", "subsystem: 3", "checks[0].subsystem", "expected a non-empty string"),
    ],
)
def test_wrong_type(tmp_path: Path, old: str, new: str, key: str, expected: str) -> None:
    text = VALID.replace(old, new)
    error = error_of(tmp_path, text)
    assert error.key == key
    assert error.line == line_of(text, new)
    assert expected in error.message


def test_wrong_type_of_int_and_choice_parameters(tmp_path: Path) -> None:
    text = """\
    checks:
      - name: c
        histogram: h
        trend: rate
        check: check_last_n
        parameters:
          n: 2.5
          min: 0
          max: 1
          ratio: 0.5
    """
    error = error_of(tmp_path, text)
    assert (error.line, error.key) == (line_of(text, "n: 2.5"), "checks[0].parameters.n")
    assert "expected an integer, got 2.5" in error.message
    text = text.replace("n: 2.5", "n: 3").replace("ratio: 0.5", "ratio: 1.5")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].parameters.ratio" and "[0, 1]" in error.message
    text = VALID.replace("    trend: hot_cells\n", "").replace(
        "{min: 0, max: 0}", "{value: median, min: 0, max: 1}"
    )
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].parameters.value"
    assert "expected one of integral, entries, mean, std, maximum" in error.message


def test_unknown_keys_at_every_level(tmp_path: Path) -> None:
    text = VALID.replace("check: between_values", "check: between_values\n    severity: high")
    error = error_of(tmp_path, text)
    assert (error.line, error.key) == (line_of(text, "severity"), "checks[0].severity")
    assert "unknown key" in error.message

    text = VALID.replace("{min: 0, max: 0}", "{min: 0, max: 0, mx: 1}")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].parameters.mx"
    assert "unknown parameter of between_values" in error.message

    text = "check:\n" + VALID[len("checks:\n") :]
    error = error_of(tmp_path, text)
    assert (error.line, error.key) == (1, "check")
    assert "did you mean 'checks'" in error.message


def test_histogram_only_parameter_on_a_trend_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("{min: 0, max: 0}", "{value: mean, min: 0, max: 0}")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].parameters.value"
    assert "when checking a trend" in error.message


def test_target_kind_mismatch(tmp_path: Path) -> None:
    text = VALID.replace("check: between_values", "check: bins_above_threshold")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].check" and "checks histograms, not trends" in error.message
    text = VALID.replace("    trend: hot_cells\n", "").replace("between_values", "mean_in_range")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].check" and "set 'trend'" in error.message


def test_duplicates_are_refused(tmp_path: Path) -> None:
    text = VALID + VALID[len("checks:\n") :]
    error = error_of(tmp_path, text)
    assert error.key == "checks[1].name"
    assert error.line == 8 and "duplicate check name 'hot' (first used on line 2)" in error.message

    text = VALID.replace("subsystem: EMC", "subsystem: EMC\n    subsystem: TPC")
    error = error_of(tmp_path, text)
    assert (error.line, error.key) == (4, "checks[0].subsystem")
    assert "duplicate key (first given on line 3)" in error.message


def test_ranges_must_be_ordered(tmp_path: Path) -> None:
    text = VALID.replace("{min: 0, max: 0}", "{min: 2, max: 1}")
    error = error_of(tmp_path, text)
    assert (
        error.key == "checks[0].parameters.max"
        and "min (2) must not exceed max (1)" in error.message
    )
    text = VALID.replace("{min: 0, max: 0}", "{min: 2, max: 3, medium_min: 2.5}")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].parameters.medium_min"


def test_selector_and_on_fail_errors(tmp_path: Path) -> None:
    text = VALID.replace('histogram: "EMCal/SM*/cellHits"', "group: EMCal")
    error = error_of(tmp_path, text)
    assert error.key == "checks[0].histogram" and "exactly one of" in error.message
    text = VALID + "    on_fail: Terrible\n"
    error = error_of(tmp_path, text)
    assert (error.line, error.key) == (8, "checks[0].on_fail")
    assert "expected Bad or Medium" in error.message


def test_composition_errors(tmp_path: Path) -> None:
    base = """\
    checks:
      - name: both
        histogram: h
        trend: rate
        check: all
        checks:
          - check: between_values
            parameters: {min: 0, max: 1}
          - check: mean_in_range
            parameters: {n: 3, min: 0}
    """
    error = error_of(tmp_path, base)
    assert error.key == "checks[0].checks[1].parameters.max"
    assert error.line == line_of(base, "{n: 3, min: 0}")
    error = error_of(tmp_path, base.replace("check: mean_in_range", "check: mean_in_rang"))
    assert error.key == "checks[0].checks[1].check"
    empty = base.split("        checks:")[0] + "        checks: []\n"
    error = error_of(tmp_path, empty)
    assert error.key == "checks[0].checks" and "non-empty list" in error.message
    error = error_of(tmp_path, VALID + "    checks: []\n")
    assert "only 'all' and 'any' take sub-checks" in error.message


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    text = VALID.replace("parameters: {min: 0, max: 0}", "parameters: {min: 0, max: 0")
    error = error_of(tmp_path, text)
    assert error.line >= 7 and "not valid YAML" in error.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckConfigError, match="cannot read the checks file"):
        load_checks(tmp_path / "nope.yaml")


def test_nothing_is_returned_half_validated(tmp_path: Path) -> None:
    """An error in the last entry refuses the whole file, not just that entry."""
    text = VALID + VALID[len("checks:\n") :].replace("name: hot", "name: second").replace(
        "max: 0}", "max: x}"
    )
    with pytest.raises(CheckConfigError):
        CheckEngine.from_file(write(tmp_path, text))


def test_empty_file_disabled_entries_and_yaml11_exponent(tmp_path: Path) -> None:
    assert len(CheckEngine.from_file(write(tmp_path, ""))) == 0
    assert len(CheckEngine.from_file(write(tmp_path, "checks:\n"))) == 0
    disabled = VALID + "    enabled: false\n"
    assert len(CheckEngine.from_text(disabled)) == 0
    with pytest.raises(CheckConfigError):  # disabled entries are still validated
        CheckEngine.from_text(disabled.replace("max: 0}", "max: x}"))
    small = VALID.replace("max: 0}", "max: 1e-6}")
    (definition,) = CheckEngine.from_text(small).definitions
    assert definition.spec.params["high"] == 1e-6


def test_options_are_compiled_into_the_definition() -> None:
    text = """\
    checks:
      - name: rate
        histogram_regex: "events|EMCTrigger/events"
        trend: event_rate
        check: relative_previous_value
        parameters: {max_ratio: 0.5, direction: drop}
        on_fail: medium
        group: Rates
      - name: fastor
        subsystem: "E*"
        histogram: "EMCTrigger/FastOR*"
        check: mean
        parameters: {min: 0, max: 10, axis: y}
    """
    rate, fastor = CheckEngine.from_text(textwrap.dedent(text)).definitions
    assert rate.spec.on_fail is Quality.MEDIUM and rate.group == "Rates"
    assert rate.spec.params["direction"] == "drop"
    assert rate.selects("events") and rate.selects("EMCTrigger/events")
    assert not rate.selects("TPC/events")  # a regex must match the whole path
    assert fastor.spec.params["axis"] == 1 and fastor.spec.params["min_entries"] == 1
    assert fastor.applies_to_subsystem("EMC") and not fastor.applies_to_subsystem("TPC")


# --------------------------------------------------------------------------- the shipped file


def test_default_checks_file_is_valid_and_covers_the_simulated_detectors() -> None:
    engine = CheckEngine.from_file(DEFAULT_CHECKS_FILE)
    by_name = {d.name: d for d in engine.definitions}
    assert by_name["emc-hot-cells"].trend == "hot_cells"
    assert by_name["emc-dead-cells"].trend == "dead_cells"
    for definition in (by_name["emc-hot-cells"], by_name["emc-dead-cells"]):
        assert definition.selects("EMCal/SM19/cellHits")
        assert definition.spec.params["low"] == definition.spec.params["high"] == 0
        assert definition.spec.on_fail is Quality.BAD
    rates = {d.subsystem: d for d in engine.definitions if d.trend == "event_rate"}
    assert set(rates) == {"EMC", "TPC", "HLT"}
    assert rates["EMC"].selects("EMCTrigger/events") and rates["TPC"].selects("events")
    for definition in rates.values():
        assert definition.spec.kind.name == "rate_drop"  # over time windows, not slices
        assert definition.spec.params["max_ratio"] == 0.5
        assert definition.spec.params["seconds"] == 60 and definition.spec.params["min_events"] > 0


def test_commented_examples_of_the_default_file_are_valid() -> None:
    """Uncommenting the documented examples gives a valid file (the docs do not rot)."""
    lines = []
    for line in DEFAULT_CHECKS_FILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^  # (  .*|- .*)$", line)
        lines.append("  " + match.group(1) if match else line)
    engine = CheckEngine.from_text("\n".join(lines), "examples")
    assert len(engine) > len(CheckEngine.from_file(DEFAULT_CHECKS_FILE)) + 4

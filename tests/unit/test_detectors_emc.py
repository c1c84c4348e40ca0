"""The EMC plugin: options, groups, stacks, energy axis, per-event view, display, trends."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch.plugins import (
    Display,
    SliceContext,
    StackSpec,
    load_plugin,
    run_hook,
    validate_options,
)
from receivers.simulator import DetectorSimulator

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def emc_slice():
    """One 60 s slice of a simulated EMC run (snapshot at 2 min minus snapshot at 1 min)."""
    sim = DetectorSimulator(["EMC"], seed=3, start_time=START, tick=5.0)
    sim.advance(60)
    first = sim.snapshot()
    sim.advance(60)
    second = sim.snapshot()
    piece = {path: second[path] - first[path] for path in second}
    events = piece["EMCTrigger/events"].integral()
    return piece, SliceContext(7, "EMC", START + 60, START + 120, events, histograms=piece)


@pytest.fixture(scope="module")
def plugin():
    return load_plugin("EMC")


def defaults(plugin, **given):
    values, errors = validate_options(plugin.options, given)
    assert errors == {}
    return values


def test_declared_options(plugin):
    specs = {spec.name: spec for spec in plugin.options}
    assert set(specs) == {
        "scale_by_events", "hot_channel_threshold", "min_median_for_hot", "min_median_for_dead",
        "adc_to_gev",
    }  # fmt: skip
    assert (specs["scale_by_events"].kind, specs["scale_by_events"].default) == ("bool", False)
    threshold = specs["hot_channel_threshold"]
    assert (threshold.kind, threshold.default, threshold.minimum, threshold.maximum) == (
        "float", 10.0, 1.0, 1000.0,
    )  # fmt: skip
    assert specs["adc_to_gev"].default == 0.07 and specs["min_median_for_hot"].default == 5.0
    assert all(spec.help for spec in plugin.options)
    _, errors = validate_options(plugin.options, {"hot_channel_threshold": "0.5", "adc_to_gev": 0})
    assert "out of range" in errors["hot_channel_threshold"] and "> 0.0" in errors["adc_to_gev"]


def test_groups_per_supermodule_first_match_wins(plugin, emc_slice):
    piece, _ = emc_slice
    assert plugin.group_of("EMCal/SM03/cellHits") == "SM03"
    assert plugin.group_of("EMCal/SM17/cellAmplitude") == "SM17"
    assert plugin.group_of("EMCal/EMCalCellAmplitude") == "Overview"
    assert plugin.group_of("EMCal/hitsPerSupermodule") == "Overview"
    assert plugin.group_of("EMCal/clusterEnergy") == "Clusters"
    assert plugin.group_of("EMCTrigger/L1GammaPatchAmp") == "Trigger patches"
    assert plugin.group_of("EMCTrigger/L1JetPatchEnergy") == "Trigger patches"
    assert plugin.group_of("EMCTrigger/FastORL0Amp") == "FastOR"
    assert plugin.group_of("EMCTrigger/events") == "Trigger"
    assert plugin.group_of("Calib/pedestals") == "Calib" and plugin.group_of("x") == "Other"
    grouped = plugin.grouped(piece)
    assert list(grouped)[:3] == ["SM00", "SM01", "SM02"]
    assert list(grouped)[-4:] == ["Clusters", "Trigger patches", "FastOR", "Trigger"]
    assert grouped["SM05"] == ["EMCal/SM05/cellHits", "EMCal/SM05/cellAmplitude"]


def test_stacks_split_emcal_and_dcal(plugin, emc_slice):
    piece, _ = emc_slice
    stacks, error = run_hook(plugin, "stacks", list(piece))
    assert error is None
    emcal, dcal = stacks
    assert emcal.name == "EMCal/EMCalCellAmplitude" and dcal.name == "EMCal/DCalCellAmplitude"
    assert emcal.members == tuple(f"EMCal/SM{sm:02d}/cellAmplitude" for sm in range(12))
    assert dcal.members == tuple(f"EMCal/SM{sm:02d}/cellAmplitude" for sm in range(12, 20))
    assert emcal.draw_option == "nostack" and emcal.logy
    assert "SM00-SM11" in emcal.title and "SM12-SM19" in dcal.title
    assert all(member in piece for member in emcal.members + dcal.members)
    # Only present histograms become members; a stack without any is left out.
    partial = plugin.stacks(["EMCal/SM14/cellAmplitude", "EMCal/SM12/cellAmplitude", "x"])
    assert partial == [
        StackSpec(
            "EMCal/DCalCellAmplitude",
            "DCal cell amplitude (SM12-SM14)",
            ("EMCal/SM12/cellAmplitude", "EMCal/SM14/cellAmplitude"),
            "nostack",
            logy=True,
        )
    ]
    assert plugin.stacks([]) == []


@pytest.mark.parametrize("factor", [0.07, 0.25])
def test_trigger_patch_energy_axis(plugin, emc_slice, factor):
    piece, context = emc_slice
    derived, error = run_hook(
        plugin, "derived", piece, defaults(plugin, adc_to_gev=factor), context
    )
    assert error is None
    for source, target in (
        ("EMCTrigger/L1GammaPatchAmp", "EMCTrigger/L1GammaPatchEnergy"),
        ("EMCTrigger/L1JetPatchAmp", "EMCTrigger/L1JetPatchEnergy"),
    ):
        adc, energy = piece[source], derived[target]
        assert energy.name == target and energy.class_name == adc.class_name
        np.testing.assert_array_equal(energy.values, adc.values)
        assert energy.entries == adc.entries and energy.integral() == adc.integral()
        np.testing.assert_allclose(energy.axes[0].edges, adc.axes[0].edges * factor)
        assert energy.axes[0].title == "energy (GeV)" and adc.axes[0].title == "ADC"
        assert energy.mean(0) == pytest.approx(adc.mean(0) * factor)
        assert energy.stats["fTsumwx"] == pytest.approx(adc.stats["fTsumwx"] * factor)
        assert "energy" in energy.title


def test_hits_per_supermodule(plugin, emc_slice):
    piece, context = emc_slice
    derived = plugin.derived(piece, defaults(plugin), context)
    summary = derived["EMCal/hitsPerSupermodule"]
    hits = np.array([piece[f"EMCal/SM{sm:02d}/cellHits"].values.sum() for sm in range(20)])
    np.testing.assert_allclose(summary.values[1:-1], hits / context.n_events)
    np.testing.assert_allclose(summary.errors()[1:-1], np.sqrt(hits) / context.n_events)
    assert summary.axes[0].labels[1] == "SM00" and summary.axes[0].labels[20] == "SM19"
    assert not set(derived) & set(piece)
    empty = SliceContext(7, "EMC", START, START + 60, 0.0)
    assert "EMCal/hitsPerSupermodule" not in plugin.derived(piece, defaults(plugin), empty)


def test_display(plugin, emc_slice):
    piece, _ = emc_slice
    assert plugin.display("EMCal/SM00/cellHits", piece["EMCal/SM00/cellHits"]) == Display(
        draw_option="colz", logz=True
    )
    assert plugin.display("EMCal/SM00/cellAmplitude", piece["EMCal/SM00/cellAmplitude"]).logy
    assert plugin.display("EMCTrigger/FastORL1Hits", piece["EMCTrigger/FastORL1Hits"]) == Display(
        draw_option="colz"
    )
    assert plugin.display("EMCal/clusterMultiplicity", piece["EMCal/clusterMultiplicity"]) == (
        Display()
    )


def test_scale_by_events_changes_only_what_is_shown(plugin, emc_slice):
    piece, context = emc_slice
    path = "EMCal/SM02/cellHits"
    shown, error = run_hook(
        plugin, "transform", path, piece[path], defaults(plugin, scale_by_events=True), context
    )
    assert error is None
    np.testing.assert_allclose(shown.values, piece[path].values / context.n_events)
    np.testing.assert_allclose(shown.errors(), np.sqrt(piece[path].values) / context.n_events)
    events = piece["EMCTrigger/events"]
    options = defaults(plugin, scale_by_events=True)
    assert plugin.transform("EMCTrigger/events", events, options, context) is events
    assert plugin.transform(path, piece[path], defaults(plugin), context) is piece[path]
    # Trends stay in counts whatever is shown.
    counted = plugin.trend_values(path, piece[path], options, context)
    assert counted["median_cell_counts"] > 600


def test_event_rate(plugin, emc_slice):
    piece, context = emc_slice
    values, error = run_hook(
        plugin, "trend_values", "EMCTrigger/events", piece["EMCTrigger/events"], {}, context
    )
    assert error is None
    assert values == {"event_rate": pytest.approx(context.n_events / 60.0)}
    assert 900 < values["event_rate"] < 1100
    zero = SliceContext(7, "EMC", START, START, 0.0)
    assert plugin.trend_values("EMCTrigger/events", piece["EMCTrigger/events"], {}, zero) == {}
    assert (
        plugin.trend_values("EMCal/clusterEnergy", piece["EMCal/clusterEnergy"], {}, context) == {}
    )


def test_clean_map_annotation(plugin, emc_slice):
    piece, context = emc_slice
    annotation = plugin.annotate("EMCal/SM08/cellHits", piece["EMCal/SM08/cellHits"], {}, context)
    assert annotation.decorations == []
    assert annotation.info[0].startswith("median ") and annotation.info[1] == "no hot cell"
    assert annotation.values["hot_cells"] == 0 and annotation.values["dead_cells"] == 0
    assert plugin.annotate("EMCal/clusterEnergy", piece["EMCal/clusterEnergy"], {}, context) is None

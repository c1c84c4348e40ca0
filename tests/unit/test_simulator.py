"""The detector simulator as a library: sets, determinism, growth, faults, runs, payloads."""

from __future__ import annotations

import numpy as np
import pytest

from overwatch import rootio
from receivers.simulator import DetectorSimulator, Fault, FaultError, load_faults
from receivers.simulator_sets import EVENTS_HISTOGRAM

START = 1_700_000_000.0


def sim(subsystems=("EMC", "TPC", "HLT"), **kwargs) -> DetectorSimulator:
    return DetectorSimulator(subsystems, start_time=START, **kwargs)


def test_emc_set_has_the_detector_layout():
    snapshot = sim(["EMC"]).snapshot()
    hit_maps = [p for p in snapshot if p.endswith("/cellHits")]
    assert len(hit_maps) == 20
    for path in hit_maps:
        h = snapshot[path]
        assert h.class_name == "TH2F" and [a.nbins for a in h.axes] == [48, 24]
    assert len([p for p in snapshot if p.endswith("/cellAmplitude")]) == 20
    for path in ("EMCal/clusterEnergy", "EMCTrigger/L1GammaPatchAmp", "EMCTrigger/L1JetPatchAmp"):
        assert snapshot[path].class_name == "TH1F"
    assert [a.nbins for a in snapshot["EMCTrigger/FastORL1Hits"].axes] == [48, 104]
    assert snapshot["EMCTrigger/events"].axes[0].nbins == 1


def test_tpc_and_hlt_sets():
    simulator = sim(["TPC", "HLT"])
    tpc, hlt = simulator.snapshot("TPC"), simulator.snapshot("HLT")
    assert tpc["TPC/trackPtEtaPhi"].class_name == "TH3F"
    assert tpc["TPC/trackPt"].axes[0].variable
    for path in ("TPC/clusterCharge", "TPC/trackEtaPhi", "TPC/dcaXY", "TPC/trackPt"):
        assert path in tpc
    assert hlt["HLT/processingTimeVsEventSize"].class_name == "TProfile"
    assert hlt["HLT/triggerClasses"].axes[0].labels[1] == "CINT7-B"
    assert "HLT/eventSize" in hlt and "HLT/processingTime" in hlt


def test_events_histogram_counts_events():
    simulator = sim(event_rate=500.0)
    simulator.advance(30)
    for subsystem in simulator.subsystems:
        counter = simulator.snapshot(subsystem)[EVENTS_HISTOGRAM[subsystem]]
        assert counter.values[1] == simulator.events(subsystem) == counter.entries
        assert abs(simulator.events(subsystem) - 15_000) < 5 * np.sqrt(15_000)


def _run_calls(seed: int, steps) -> dict:
    simulator = sim(seed=seed)
    for step in steps:
        simulator.advance(step)
        simulator.snapshot("EMC")  # content is cut (filled) at each step
    return {s: simulator.snapshot(s) for s in simulator.subsystems}


def test_contents_are_deterministic_for_a_seed_and_a_sequence_of_calls():
    steps = [1.5, 2.5, 0.7, 30, 2.0]
    one, again, other = _run_calls(4, steps), _run_calls(4, steps), _run_calls(5, steps)
    for subsystem, a in one.items():
        b, c = again[subsystem], other[subsystem]
        assert a.keys() == b.keys()
        for path in a:
            np.testing.assert_array_equal(a[path].values, b[path].values)
        assert any(not np.array_equal(a[p].values, c[p].values) for p in a)


def test_other_call_sequences_agree_within_poisson_errors():
    """Bins no longer match call for call (fills follow the requests), statistics do."""
    whole = sim(["EMC"], seed=4)
    whole.advance(90)
    cut = sim(["EMC"], seed=4)
    for _ in range(60):
        cut.advance(1.5)
        cut.snapshot()
    a, b = whole.snapshot()["EMCal/SM03/cellHits"], cut.snapshot()["EMCal/SM03/cellHits"]
    assert not np.array_equal(a.values, b.values)
    difference = a.integral() - b.integral()
    assert abs(difference) < 5 * np.sqrt(a.integral() + b.integral())
    assert abs(whole.events() - cut.events()) < 5 * np.sqrt(2 * 90_000)


def test_contents_grow_cumulatively():
    simulator = sim(["EMC"], seed=1)
    simulator.advance(20)
    early = simulator.snapshot()
    simulator.advance(20)
    late = simulator.snapshot()
    for path, h in late.items():
        assert np.all(h.values >= early[path].values), path
    assert late["EMCal/SM00/cellHits"].integral() > early["EMCal/SM00/cellHits"].integral() > 0
    assert simulator.now == START + 40


def test_profile_bins_follow_the_model():
    simulator = sim(["HLT"], seed=2)
    simulator.advance(120)
    profile = simulator.snapshot()["HLT/processingTimeVsEventSize"]
    centers = profile.axes[0].centers
    busy = profile.bin_entries[1:-1] > 500
    assert busy.sum() >= 5
    means = profile.bin_means()[1:-1][busy]
    np.testing.assert_allclose(means, 20 + 30 * centers[busy], atol=3.0)
    spread = profile.sumw2[1:-1][busy] / profile.bin_entries[1:-1][busy] - means**2
    np.testing.assert_allclose(np.sqrt(spread), 15.0, rtol=0.15)


def test_histograms_option_scales_each_subsystem():
    simulator = sim(["EMC", "HLT"], histograms=1000)
    assert len(simulator.snapshot("EMC")) >= 1000 and len(simulator.snapshot("HLT")) >= 1000
    simulator.advance(2)
    read = rootio.read_histograms(simulator.payload("HLT"))
    assert len(read.histograms) == len(simulator.snapshot("HLT")) and read.skipped == []


def test_payload_round_trips_and_is_cached_until_content_changes():
    simulator = sim(seed=3)
    simulator.advance(10)
    payload = simulator.payload("TPC")
    assert simulator.payload("TPC") is payload
    read = rootio.read_histograms(payload).histograms
    snapshot = simulator.snapshot("TPC")
    assert read.keys() == snapshot.keys()
    for path, h in snapshot.items():
        np.testing.assert_array_equal(read[path].values, h.values)
        assert read[path].entries == h.entries
    assert simulator.payload("TPC") is payload  # no simulated time passed: same content
    simulator.advance(0.5)  # any time passed: its events are filled
    assert simulator.payload("TPC") != payload
    with pytest.raises(ValueError, match="name a subsystem"):
        simulator.payload()


def _cell(h, sm_eta_phi):
    return h.values[sm_eta_phi[1] + 1, sm_eta_phi[2] + 1]


def test_hot_channel_dead_region_and_their_end():
    faults = [
        {"at_minute": 1, "kind": "hot_channel", "subsystem": "EMC", "cell": [3, 10, 5], "factor": 50},
        {"at_minute": 1, "until_minute": 2, "kind": "dead_region", "subsystem": "EMC",
         "supermodule": 4, "eta": [0, 24]},
    ]  # fmt: skip
    simulator = sim(["EMC"], seed=7, faults=faults)
    simulator.advance(60)
    before = simulator.snapshot()
    simulator.advance(60)
    during = simulator.snapshot()
    simulator.advance(60)
    after = simulator.snapshot()
    path3, path4 = "EMCal/SM03/cellHits", "EMCal/SM04/cellHits"
    hot = _cell(during[path3], (3, 10, 5)) - _cell(before[path3], (3, 10, 5))
    neighbours = during[path3].values[12:16, 6:10] - before[path3].values[12:16, 6:10]
    assert hot > 20 * neighbours.mean()
    dead = during[path4].values[1:25, 1:-1] - before[path4].values[1:25, 1:-1]
    live = during[path4].values[25:49, 1:-1] - before[path4].values[25:49, 1:-1]
    assert dead.sum() == 0 and live.sum() > 0
    assert (after[path4].values[1:25, 1:-1] - during[path4].values[1:25, 1:-1]).sum() > 0


def test_rate_drop_and_counter_reset():
    faults = [
        Fault.from_dict({"at_minute": 1, "kind": "rate_drop", "subsystem": "TPC", "factor": 0.1}),
        Fault.from_dict({"at_minute": 1.5, "kind": "counter_reset", "subsystem": "HLT"}),
    ]
    simulator = sim(["TPC", "HLT"], seed=1, faults=faults)
    simulator.advance(60)
    tpc_first, hlt_first = simulator.events("TPC"), simulator.events("HLT")
    simulator.advance(60)
    tpc_second = simulator.events("TPC") - tpc_first
    assert 0.05 * tpc_first < tpc_second < 0.15 * tpc_first
    # HLT restarted from zero at 1.5 min: only the last 30 s are counted.
    assert simulator.events("HLT") < 0.6 * hlt_first
    assert simulator.snapshot("HLT")["events"].values[1] == simulator.events("HLT")


def test_generic_hot_bin_on_any_histogram():
    faults = [{"kind": "hot_channel", "subsystem": "TPC", "histogram": "TPC/clustersPerSector",
               "bin": [7], "factor": 10}]  # fmt: skip
    simulator = sim(["TPC"], seed=1, faults=faults)
    simulator.advance(30)
    sectors = simulator.snapshot()["TPC/clustersPerSector"].values
    assert sectors[7] > 5 * np.median(sectors[1:-1])


def test_runs_stop_repeat_and_restart():
    simulator = sim(["EMC"], seed=1, run=10, run_seconds=60, gap_seconds=30)
    simulator.advance(61)
    assert not simulator.running and simulator.run == 10
    final = simulator.payload()
    events = simulator.events()
    simulator.advance(20)  # in the gap: same content, same bytes
    assert simulator.payload() is final and simulator.events() == events
    simulator.advance(20)
    assert simulator.running and simulator.run == 11
    assert 0 < simulator.events() < events / 2
    simulator.stop_run()
    simulator.start_run(12)
    assert simulator.events() == 0 and simulator.run == 12


def test_faults_from_yaml(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(
        "faults:\n"
        "  - {at_minute: 5, kind: hot_channel, subsystem: EMC, cell: [0, 1, 2], factor: 50}\n"
        "  - {at_minute: 7, kind: rate_drop, subsystem: TPC, factor: 0.2, until_minute: 9}\n"
    )
    faults = load_faults(path)
    assert [f.kind for f in faults] == ["hot_channel", "rate_drop"]
    assert faults[1].until_minute == 9.0 and faults[0].params["cell"] == [0, 1, 2]
    path.write_text("- {kind: counter_reset, subsystem: HLT, at_minute: 3}\n")
    assert load_faults(path)[0].at_minute == 3.0
    path.write_text("faults: 3\n")
    with pytest.raises(FaultError, match="expected a list"):
        load_faults(path)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "meltdown", "subsystem": "EMC"}, "kind must be one of"),
        ({"kind": "rate_drop", "factor": 0.5}, "'subsystem' is required"),
        ({"kind": "rate_drop", "subsystem": "EMC", "factor": "half"}, "non-negative 'factor'"),
        ({"kind": "hot_channel", "subsystem": "EMC", "factor": 5}, "needs 'cell"),
        ({"kind": "dead_region", "subsystem": "EMC"}, "needs 'supermodule'"),
        (
            {"kind": "rate_drop", "subsystem": "EMC", "factor": 1, "at_minute": "soon"},
            "number of minutes",
        ),
        (
            {
                "kind": "rate_drop",
                "subsystem": "EMC",
                "factor": 1,
                "at_minute": 5,
                "until_minute": 2,
            },
            "must be after",
        ),
    ],  # fmt: skip
)
def test_bad_faults_are_explained(fault, message):
    with pytest.raises(FaultError, match=message):
        Fault.from_dict(fault)


def test_fault_targets_are_checked_at_start():
    with pytest.raises(FaultError, match="outside"):
        sim(
            ["EMC"],
            faults=[{"kind": "hot_channel", "subsystem": "EMC", "cell": [3, 60, 5], "factor": 2}],
        )
    with pytest.raises(FaultError, match="no histogram"):
        sim(["TPC"], faults=[{"kind": "hot_channel", "subsystem": "TPC", "histogram": "nope",
                              "bin": [1], "factor": 2}])  # fmt: skip


def test_other_subsystems_get_a_generic_set():
    simulator = sim(["V0"], seed=1)
    simulator.advance(5)
    snapshot = simulator.snapshot()
    assert {"events", "V0/occupancy", "V0/amplitude"} <= set(snapshot)
    assert snapshot["events"].values[1] == simulator.events() > 0


def test_titles_are_split_into_axis_titles_as_root_does() -> None:
    """ROOT stores "title;x;y" as a title plus axis titles; the simulator's files must too."""
    simulator = DetectorSimulator(("EMC", "TPC", "HLT"), seed=2)
    simulator.advance(2)
    for subsystem in ("EMC", "TPC", "HLT"):
        for path, histogram in simulator.snapshot(subsystem).items():
            assert ";" not in histogram.title, path
    cell_hits = simulator.snapshot("EMC")["EMCal/SM03/cellHits"]
    assert cell_hits.title == "EMCal SM03 cell hits"
    assert [axis.title for axis in cell_hits.axes] == ["column (#eta)", "row (#phi)"]

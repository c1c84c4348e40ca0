"""One view of a slice for every page: the whole run and the latest slice are slices like any other.

A run of every built-in subsystem is simulated with uneven snapshot spacing (as receivers
polling on their own cadence give) and the EMC faults of ``web_plugin_data``, processed with
the shipped checks and alarms. Through the JSON API only:

- ``view?slice=cumulative`` equals the view of the on-demand slice from the run start to
  the last snapshot with default options, and ``view?slice=latest`` the on-demand slice
  between the last two snapshots (histograms, derived, stacks, groups, display, annotations,
  check results, qualities), and so do the histograms' JSON;
- the latest view is what the live pipeline stored for its latest slice (qualities, group
  qualities, annotations, check results): one analysis for live data and pages;
- the latest slice and the whole run differ on this run, so the equalities say something.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from overwatch.store.db import read
from receivers.simulator import DetectorSimulator
from tests.unit.test_web_support import add_user, make_app, write_snapshot
from tests.unit.web_plugin_data import FAULTS, process_with_checks
from webapp import users

RUN = 7
SUBSYSTEMS = ("EMC", "TPC", "HLT")
#: Seconds between snapshots: uneven, as a real clock and a polling receiver give.
STEPS = (60.0, 23.0, 97.0, 41.0, 130.0)
COMPARED = (
    "histograms",
    "derived",
    "stacks",
    "groups",
    "display",
    "annotations",
    "check_results",
    "qualities",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("views")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    start = float(int(pendulum.now("UTC").timestamp()) - 600)
    simulator = DetectorSimulator(
        subsystems=list(SUBSYSTEMS), start_time=start, seed=11, run=RUN, faults=list(FAULTS)
    )
    for step in STEPS:
        simulator.advance(step)
        for name in SUBSYSTEMS:
            write_snapshot(data_dir, RUN, name, simulator.now, simulator.payload(name))
    process_with_checks(data_dir, db)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    return client, db


def utc(ts: float) -> str:
    return pendulum.from_timestamp(ts, tz="UTC").to_iso8601_string()


def view(client, subsystem: str, slice_param: str) -> dict:
    response = client.get(f"/api/runs/{RUN}/{subsystem}/view", query_string={"slice": slice_param})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def on_demand(client, subsystem: str, body: dict) -> dict:
    response = client.post(f"/api/runs/{RUN}/{subsystem}/slices", json=body)
    assert response.status_code == 201, response.get_json()
    return view(client, subsystem, response.get_json()["id"])


def times(client, subsystem: str) -> list[float]:
    snapshots = client.get(f"/api/runs/{RUN}/{subsystem}/snapshots").get_json()["snapshots"]
    return sorted(s["timestamp"] for s in snapshots)


def assert_same_view(named: dict, requested: dict) -> None:
    # Only the URLs differ: a named view's drawings keep following new snapshots.
    for item in (*named["histograms"], *requested["histograms"]):
        url = item.pop("url", None)  # a view compared twice has lost its URLs already
        assert url is None or url.startswith(f"/api/runs/{RUN}/")
    for key in COMPARED:
        assert named[key] == requested[key], key
    for key in ("start", "end", "snapshots", "duration", "n_events", "id"):
        assert named["slice"][key] == requested["slice"][key], key


@pytest.mark.parametrize("subsystem", SUBSYSTEMS)
def test_whole_run_is_the_on_demand_slice_from_the_start_to_the_last_snapshot(
    site, subsystem: str
) -> None:
    client, _db = site
    stamps = times(client, subsystem)
    whole = view(client, subsystem, "cumulative")
    assert whole["slice"]["snapshots"] == len(stamps) == len(STEPS)
    assert whole["slice"]["start"] is None and whole["slice"]["end"] == stamps[-1]
    for body in ({"preset": "run"}, {"start": "", "end": utc(stamps[-1])}):
        assert_same_view(whole, on_demand(client, subsystem, body))


@pytest.mark.parametrize("subsystem", SUBSYSTEMS)
def test_latest_is_the_on_demand_slice_between_the_last_two_snapshots(site, subsystem: str) -> None:
    client, _db = site
    stamps = times(client, subsystem)
    latest = view(client, subsystem, "latest")
    assert (latest["slice"]["start"], latest["slice"]["end"]) == (stamps[-2], stamps[-1])
    assert latest["slice"]["snapshots"] == 1
    assert latest["slice"]["duration"] == stamps[-1] - stamps[-2] == STEPS[-1]
    requested = on_demand(client, subsystem, {"start": utc(stamps[-2]), "end": utc(stamps[-1])})
    assert_same_view(latest, requested)
    # The drawings of both load the same JSON.
    for item in latest["histograms"][:: max(1, len(latest["histograms"]) // 8)]:
        path = item["path"]
        url = f"/api/runs/{RUN}/{subsystem}/histograms/{path}"
        named = client.get(url, query_string={"slice": "latest"})
        by_id = client.get(url, query_string={"slice": requested["id"]})
        assert named.status_code == by_id.status_code == 200, path
        assert named.get_json() == by_id.get_json(), path


@pytest.mark.parametrize("subsystem", SUBSYSTEMS)
def test_latest_view_is_what_the_live_pipeline_stored(site, subsystem: str) -> None:
    client, db = site
    latest = view(client, subsystem, "latest")

    def stored(ow) -> dict:
        sub = ow.runs[RUN].subsystems[subsystem]
        return {
            "quality": sub.quality,
            "groups": dict(sub.group_qualities),
            "annotations": {p: dict(a) for p, a in sub.annotations.items()},
            "checks": [dict(r) for r in sub.check_results],
        }

    live = read(db, stored)
    assert latest["qualities"]["subsystem"] == live["quality"]
    assert latest["qualities"]["groups"] == live["groups"]
    assert latest["annotations"] == live["annotations"]
    assert latest["check_results"] == live["checks"]


def test_the_latest_slice_and_the_whole_run_differ(site) -> None:
    client, _db = site
    whole, latest = view(client, "EMC", "cumulative"), view(client, "EMC", "latest")
    assert whole["slice"]["n_events"] > latest["slice"]["n_events"] > 0
    hot = "EMCal/SM03/cellHits"
    assert whole["annotations"][hot]["info"] != latest["annotations"][hot]["info"]
    url = f"/api/runs/{RUN}/EMC/histograms/{hot}"
    assert (
        client.get(url).get_json()["fEntries"]
        > client.get(url, query_string={"slice": "latest"}).get_json()["fEntries"]
    )
    # Whole-run rates are unknown (the time before the first snapshot is), the latest one's not.
    assert whole["slice"]["duration"] == 0.0 and latest["slice"]["duration"] > 0

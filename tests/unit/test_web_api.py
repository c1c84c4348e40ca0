"""The JSON API on really processed snapshots: listings, histogram JSON, errors, caching."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import uproot

from overwatch import rootio
from tests.unit.test_web_support import (
    add_user,
    build_sample_run,
    build_simulated_run,
    make_app,
    process,
    wait_until,
    write_snapshot,
)
from webapp import users


def flat(values: np.ndarray) -> np.ndarray:
    """uproot's values with flow bins -> ROOT's fArray order (x fastest)."""
    return np.asarray(values, dtype=np.float64).ravel(order="F")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("api")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    simulated = build_simulated_run(data_dir, db, run=1)
    samples = build_sample_run(data_dir, db)
    token = users.issue_token(db, "alice")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return app, db, client, data_dir, simulated, samples


def test_runs_are_listed_newest_first_and_paginated(api) -> None:
    app, db, client, data_dir, _sim, _samples = api
    listing = client.get("/api/runs").get_json()
    assert [r["run"] for r in listing["runs"]] == [500, 1]
    assert listing["total"] == 2 and listing["page"] == 1 and listing["pages"] == 1
    run1 = listing["runs"][1]
    assert run1["ongoing"] is True  # its last snapshot is seconds old
    assert listing["runs"][0]["ongoing"] is False  # run 500 ended in 2025
    assert run1["subsystems"]["EMC"]["snapshots"] == 3
    assert time.time() - run1["subsystems"]["EMC"]["last_snapshot"] < 600

    page = client.get("/api/runs?page=2&per_page=1").get_json()
    assert [r["run"] for r in page["runs"]] == [1] and page["pages"] == 2
    assert client.get("/api/runs?page=3&per_page=1").get_json()["runs"] == []
    for bad in ("page=0", "per_page=0", "per_page=1000", "page=x"):
        response = client.get(f"/api/runs?{bad}")
        assert response.status_code == 400, bad
        assert "error" in response.get_json()


def test_run_detail_and_unknown_run(api) -> None:
    _app, _db, client, _data_dir, _sim, _samples = api
    detail = client.get("/api/runs/1").get_json()
    assert sorted(detail["subsystems"]) == ["EMC", "HLT", "TPC"]
    emc = detail["subsystems"]["EMC"]
    assert emc["snapshots"] == 3 and emc["slices"] == 3 and emc["histograms"] == 47
    missing = client.get("/api/runs/999")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "run 999 not found"}
    assert client.get("/api/runs/abc").status_code == 404
    assert "error" in client.get("/api/runs/abc").get_json()


def test_histogram_listing_has_paths_classes_and_groups(api) -> None:
    _app, _db, client, _data_dir, _sim, _samples = api
    listing = client.get("/api/runs/1/TPC/histograms").get_json()
    classes = {h["path"]: h["class_name"] for h in listing["histograms"]}
    assert classes["TPC/trackPtEtaPhi"] == "TH3F" and classes["events"] == "TH1D"
    groups = {g["name"]: g["histograms"] for g in listing["groups"]}
    # The TPC plugin's groups, in its order; its derived projections are listed too.
    assert [g["name"] for g in listing["groups"]] == [
        "Projections", "Tracks", "Clusters", "DCA", "Events"
    ]  # fmt: skip
    assert groups["Events"] == ["events"]
    assert "TPC/trackEta" in groups["Tracks"]
    assert "TPC/trackPtEtaPhi_px" in groups["Projections"]
    for item in listing["histograms"]:
        assert client.get(item["url"]).status_code == 200, item["url"]
    unknown = client.get("/api/runs/1/XYZ/histograms")
    assert unknown.status_code == 404
    assert "XYZ" in unknown.get_json()["error"]


def test_cumulative_and_latest_slice_match_the_snapshot_files(api) -> None:
    _app, _db, client, data_dir, simulated, _samples = api
    path = "EMCal/SM03/cellHits"
    with (
        uproot.open(data_dir / simulated["EMC"][-1]) as last,
        uproot.open(data_dir / simulated["EMC"][-2]) as previous,
    ):
        newest = flat(last[path].values(flow=True))
        before = flat(previous[path].values(flow=True))
    cumulative = client.get(f"/api/runs/1/EMC/histograms/{path}").get_json()
    assert cumulative["_typename"] == "TH2F"
    np.testing.assert_allclose(cumulative["fArray"], newest)
    latest = client.get(f"/api/runs/1/EMC/histograms/{path}?slice=latest").get_json()
    np.testing.assert_allclose(latest["fArray"], newest - before)
    assert 0 < sum(latest["fArray"]) < sum(cumulative["fArray"])


def test_paths_with_spaces_are_url_encoded_per_segment(api) -> None:
    _app, _db, client, _data_dir, _sim, _samples = api
    listing = client.get("/api/runs/500/GEN/histograms").get_json()
    item = next(h for h in listing["histograms"] if h["path"] == "volume/variable xy")
    assert item["url"] == "/api/runs/500/GEN/histograms/volume/variable%20xy"
    obj = client.get(item["url"]).get_json()
    assert obj["_typename"] == "TH2D" and obj["fName"] == "variable xy"
    assert obj["fXaxis"]["fXbins"] == [0, 1, 2, 4, 8, 16]


def test_bad_histogram_requests(api) -> None:
    _app, _db, client, _data_dir, _sim, _samples = api
    unknown = client.get("/api/runs/1/EMC/histograms/EMCal/nothing%20here")
    assert unknown.status_code == 404
    assert "'EMCal/nothing here'" in unknown.get_json()["error"]
    assert client.get("/api/runs/7/EMC/histograms/events").status_code == 404
    assert "run 7" in client.get("/api/runs/7/EMC/histograms/events").get_json()["error"]
    wrong_slice = client.get("/api/runs/1/TPC/histograms/events?slice=yesterday")
    assert wrong_slice.status_code == 400
    assert "cumulative, latest" in wrong_slice.get_json()["error"]
    assert client.post("/api/runs").status_code == 405
    assert client.get("/api/nothing").get_json() == {"error": "nothing at /api/nothing"}


def test_etag_answers_304_until_a_new_snapshot_is_processed(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_simulated_run(data_dir, db, subsystems=("HLT",), snapshots=1)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    url = "/api/runs/1/HLT/histograms/HLT/eventSize"
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    listing = client.get("/api/runs/1")
    assert (
        client.get("/api/runs/1", headers={"If-None-Match": listing.headers["ETag"]}).status_code
        == 304
    )

    # A new snapshot (twice the content) makes the same URL change.
    (snapshot,) = (data_dir / "Run1" / "HLT").glob("*.root")
    doubled = [h + h for h in rootio.read_histograms(snapshot).histograms.values()]
    end = client.get("/api/runs/1").get_json()["end"]
    write_snapshot(data_dir, 1, "HLT", end + 60, rootio.to_bytes(doubled))
    process(data_dir, db)
    # Each process re-reads a subsystem's version at most once a second.
    changed = wait_until(
        lambda: (r := client.get(url, headers={"If-None-Match": etag})).status_code == 200 and r,
        10,
        "the new snapshot to show",
    )
    assert changed.headers["ETag"] != etag
    assert sum(changed.get_json()["fArray"]) == 2 * sum(first.get_json()["fArray"])


def test_gzip_when_accepted_and_worth_it(api) -> None:
    _app, _db, client, _data_dir, _sim, _samples = api
    url = "/api/runs/1/EMC/histograms/EMCal/SM00/cellHits"
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert len(packed.data) < len(plain.data) / 2
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] == plain.headers["ETag"]
    listing = client.get("/api/runs/1/EMC/histograms", headers={"Accept-Encoding": "gzip"})
    # 47 in the snapshot, then the EMC plugin's 3 derived histograms and 2 stacks.
    assert len(json.loads(gzip.decompress(listing.data))["histograms"]) == 47 + 5
    small = client.get("/api/runs/999", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers  # a tiny error body is sent as is
    css = client.get("/static/overwatch.css", headers={"Accept-Encoding": "gzip"})
    assert css.headers["Content-Encoding"] == "gzip"
    assert b"Overwatch" in gzip.decompress(css.data)


def test_histogram_json_is_cached_per_version(api) -> None:
    app, _db, client, _data_dir, _sim, _samples = api
    service = app.extensions["overwatch"].views
    url = f"/api/runs/1/TPC/histograms/{quote('TPC/trackPt')}?slice=latest"
    body = client.get(url).data
    view = service.view(1, "TPC", "latest")  # the view the request used, from this process
    encoded = view.encoded["TPC/trackPt"]
    assert encoded.body == body
    assert client.get(url).data == body
    assert service.view(1, "TPC", "latest").encoded["TPC/trackPt"] is encoded  # encoded once


def test_healthz_needs_no_login(api) -> None:
    app, _db, _client, _data_dir, _sim, _samples = api
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "reachable"

"""On-demand slices in the web app (webapp/slices.py): API, histograms, run page, permalinks.

The data is the processed simulated run of ``test_ondemand`` (EMC with two hot
cells, TPC, HLT); histogram JSON is checked against the independent uproot
computation from the snapshot files.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from processing.slices.spec import SLICE_ID
from tests.processing_helpers import independent_slice
from tests.unit.test_ondemand import RUN, STEP, minute, process, simulate
from tests.unit.test_web_support import add_user, csrf_from, login, make_app

JSON = "application/json"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webslices")
    app, db = make_app(tmp, slice_cache_entries=3)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    sim, files = simulate(data_dir)
    process(data_dir, db)
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    token = csrf_from(client.get(f"/runs/{RUN}/EMC").data)
    return app, db, client, token, files, sim, tmp


def post(web, body, subsystem: str = "EMC", run: int = RUN):
    _app, _db, client, token, *_ = web
    return client.post(
        f"/api/runs/{run}/{subsystem}/slices", json=body, headers={"X-CSRF-Token": token}
    )


def values_of(response) -> np.ndarray:
    return np.asarray(response.get_json()["fArray"], dtype=np.float64)


def test_post_returns_id_snapped_interval_permalink_and_results(web) -> None:
    _app, _db, client, _token, files, *_ = web
    response = post(web, {"start": 1.4, "end": "3", "options": {"hot_channel_threshold": 5}})
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert SLICE_ID.match(data["id"]) and response.headers["Location"] == data["url"]
    assert data["interval"]["start"] == minute(1) and data["interval"]["end"] == minute(3)
    assert (data["interval"]["start_minute"], data["interval"]["end_minute"]) == (1.0, 3.0)
    assert data["options"]["hot_channel_threshold"] == 5.0 and data["options"]["adc_to_gev"] == 0.07
    assert data["groups"]["SM03"] == "Bad" and data["quality"] == "Bad"
    assert any("hot: column 10, row 5" in line
               for line in data["annotations"]["EMCal/SM03/cellHits"]["info"])  # fmt: skip
    assert "EMCal/hitsPerSupermodule" in data["derived"]
    link = parse_qs(urlsplit(data["permalink"]).query)["slice"][0]
    assert link == data["link"] and link.startswith(f"{int(minute(1))}..{int(minute(3))};")
    # Every histogram, by id, as the independent subtraction of the two snapshot files.
    urls = {h["path"]: h["url"] for h in data["histograms"]}
    for path in ("EMCal/SM03/cellHits", "EMCTrigger/events", "EMCal/SM00/cellAmplitude"):
        assert urls[path].endswith(f"?slice={data['id']}")
        served = client.get(urls[path])
        assert served.status_code == 200 and served.headers["ETag"]
        expected = independent_slice(files["EMC"][1], files["EMC"][3], path)["values"]
        np.testing.assert_array_equal(values_of(served), expected.ravel(order="F"))
    derived = client.get(urls["EMCal/hitsPerSupermodule"])
    assert derived.status_code == 200 and derived.get_json()["_typename"] == "TH1D"
    again = client.get(urls["EMCTrigger/events"], headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code in (200, 304)
    assert client.get(data["url"]).get_json()["id"] == data["id"]


def test_scale_by_events_changes_what_is_shown_and_the_id(web) -> None:
    _app, _db, client, _token, files, *_ = web
    plain = post(web, {"start": 1, "end": 3}).get_json()
    scaled = post(web, {"start": 1, "end": 3, "options": {"scale_by_events": True}}).get_json()
    assert plain["id"] != scaled["id"]
    events = independent_slice(files["EMC"][1], files["EMC"][3], "EMCTrigger/events")["entries"]
    assert scaled["n_events"] == events
    path = "EMCal/SM05/cellAmplitude"
    url = {h["path"]: h["url"] for h in scaled["histograms"]}[path]
    raw = independent_slice(files["EMC"][1], files["EMC"][3], path)["values"].ravel(order="F")
    np.testing.assert_allclose(values_of(client.get(url)), raw / events, rtol=1e-12)
    plain_url = {h["path"]: h["url"] for h in plain["histograms"]}[path]
    np.testing.assert_array_equal(values_of(client.get(plain_url)), raw)


def test_form_posts_and_csrf(web) -> None:
    _app, _db, client, token, *_ = web
    form = {"csrf_token": token, "start": "", "end": "2", "options.scale_by_events": "false",
            "options.hot_channel_threshold": "50"}  # fmt: skip
    response = client.post(f"/api/runs/{RUN}/EMC/slices", data=form)
    assert response.status_code == 201 and response.get_json()["interval"]["from_run_start"]
    refused = client.post(f"/api/runs/{RUN}/EMC/slices", json={"start": 1})
    assert refused.status_code == 400 and "expired" in refused.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"start": 3, "end": 1}, {"start": "must be less than end 1"}),
        ({"start": 20, "end": 30}, {"start": "after the last snapshot"}),
        ({"end": "1990-01-01T00:00:00Z"}, {"end": "before the first snapshot"}),
        ({"start": "later"}, {"start": "give minutes"}),
        ({"options": {"rebin": 2}}, {"options.rebin": "unknown slice option 'rebin'"}),
        (
            {"options": {"hot_channel_threshold": "hot"}},
            {"options.hot_channel_threshold": "number"},
        ),
        ({"options": {"hot_channel_threshold": 0.5}}, {"options.hot_channel_threshold": "range"}),
        ({"options": {"scale_by_events": 2}}, {"options.scale_by_events": "true or false"}),
        (
            {"start": 3, "end": 1, "options": {"adc_to_gev": 0, "nope": "x"}},
            {"start": "less than", "options.adc_to_gev": "> 0.0", "options.nope": "unknown"},
        ),
        ({"options": "fast"}, {"options": "expected an object"}),
        ({"follow": True}, {"follow": "only a last:MINUTES preset"}),
        ({"preset": "last:15", "follow": "sometimes"}, {"follow": "true or false"}),
        ({"preset": "tomorrow"}, {"preset": "not a preset"}),
        ({"when": 3}, {"when": "unknown field"}),
    ],
)
def test_bad_input_names_each_field(web, body, fields) -> None:
    response = post(web, body)
    assert response.status_code == 400
    data = response.get_json()
    assert set(data["fields"]) == set(fields), data
    for name, part in fields.items():
        assert part in data["fields"][name] and name in data["error"], data


def test_runs_without_snapshots_and_bodies_that_are_not_objects(web) -> None:
    unknown = post(web, {}, run=99)
    assert unknown.status_code == 400 and "run 99 is unknown" in unknown.get_json()["fields"]["run"]
    missing = post(web, {}, subsystem="PHS")
    assert missing.status_code == 400 and "PHS" in missing.get_json()["fields"]["subsystem"]
    listed = post(web, [1, 2])
    assert listed.status_code == 400 and "body" in listed.get_json()["fields"]


def test_run_page_shows_the_slice_with_its_annotations_and_quality(web) -> None:
    _app, _db, client, *_ = web
    data = post(web, {"start": 1, "end": 3, "options": {"hot_channel_threshold": 5}}).get_json()
    page = client.get(data["permalink"] + "&group=SM03")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    sources = re.findall(r'data-src="([^"]+)"', text)
    assert sources and all(s.endswith(f"?slice={data['id']}") for s in map(html.unescape, sources))
    assert "This page shows an on-demand slice" in text and "hot: column 10, row 5" in text
    assert 'data-quality="Bad" title="this slice"' in text
    assert 'name="options.hot_channel_threshold" value="5.0"' in text
    # Another subsystem's tab keeps the interval, not the EMC options.
    tab = re.search(r'href="([^"]+)"\s+class="">TPC', text)
    assert tab and "slice=" in tab.group(1) and "hot_channel" not in html.unescape(tab.group(1))
    tpc = client.get(html.unescape(tab.group(1)))
    assert tpc.status_code == 200 and "This page shows an on-demand slice" in tpc.get_data(True)
    # A different threshold: SM03 has no hot cell any more.
    other = client.get(
        data["permalink"].replace("hot_channel_threshold%3D5.0", "hot_channel_threshold%3D50")
    )
    assert other.status_code == 200 and "hot: column 10, row 5" not in other.get_data(True)


@pytest.mark.parametrize(
    ("link", "message", "api_status"),
    [
        ("123..abc", "is not a time slice", 400),
        ("last:15;hot_channel_threshold=1e9", "out of range", 400),
        ("last:15;rebin=2", "unknown option", 400),
        ("1..2", "not in run 5 EMC", 400),
    ],
)
def test_malformed_permalinks_give_a_clear_400_page(web, link, message, api_status) -> None:
    _app, _db, client, *_ = web
    page = client.get(f"/runs/{RUN}/EMC", query_string={"slice": link})
    assert page.status_code == 400 and page.mimetype == "text/html"
    text = html.unescape(page.get_data(as_text=True))
    assert "This time-slice link is not valid" in text and message in text
    histogram = client.get(f"/runs/{RUN}/EMC/hist/EMCTrigger/events", query_string={"slice": link})
    assert histogram.status_code == 400
    api = client.get(
        f"/api/runs/{RUN}/EMC/histograms/EMCTrigger/events", query_string={"slice": link}
    )
    assert api.status_code == api_status and message in api.get_json()["error"]


def test_another_worker_recomputes_from_the_database(web) -> None:
    app, db, _client, _token, files, _sim, tmp = web
    data = post(web, {"start": 0, "end": 2, "options": {"min_median_for_dead": 40}}).get_json()
    other, _ = make_app(tmp, db=db)  # a second process: its own (empty) slice cache
    client = other.test_client()
    assert login(client, "alice").status_code == 302
    url = {h["path"]: h["url"] for h in data["histograms"]}["EMCal/SM01/cellHits"]
    served = client.get(url)
    assert served.status_code == 200
    expected = independent_slice(None, files["EMC"][2], "EMCal/SM01/cellHits")["values"]
    np.testing.assert_array_equal(values_of(served), expected.ravel(order="F"))
    assert client.get(data["url"]).get_json()["options"]["min_median_for_dead"] == 40.0
    assert client.get(f"/api/runs/{RUN}/TPC/slices/{data['id']}").status_code == 404


def test_moving_window_follows_new_snapshots(web) -> None:
    app, db, client, _token, _files, sim, _tmp = web
    link = "last:2;scale_by_events=true"
    page = client.get(f"/runs/{RUN}/EMC", query_string={"slice": link})
    text = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and 'data-slice-window="2.0"' in text
    resolve = re.search(r'data-slice-resolve="([^"]+)"', text).group(1)
    first = client.get(resolve).get_json()
    assert (first["interval"]["start"], first["interval"]["end"]) == (minute(1), minute(3))
    assert first["link"].startswith("last:2;") and "scale_by_events=true" in first["link"]
    data_dir = Path(app.extensions["overwatch"].data_dir)
    simulate(data_dir, simulator=sim, snapshots=1)  # minute 4 arrives and is processed
    process(data_dir, db)
    moved = client.get(resolve).get_json()
    assert moved["id"] != first["id"]
    assert (moved["interval"]["start"], moved["interval"]["end"]) == (minute(2), minute(4))
    assert moved["interval"]["end"] - moved["interval"]["start"] == 2 * STEP


def test_form_facts_and_stack_json(web) -> None:
    _app, _db, client, *_ = web
    facts = client.get(f"/api/runs/{RUN}/EMC/slices").get_json()
    names = [o["name"] for o in facts["options"]]
    assert "hot_channel_threshold" in names and facts["presets"][-1] == "run"
    spec = next(o for o in facts["options"] if o["name"] == "hot_channel_threshold")
    assert (spec["kind"], spec["default"], spec["minimum"], spec["maximum"]) == (
        "float",
        10.0,
        1.0,
        1000.0,
    )
    data = post(web, {"preset": "run"}).get_json()
    stack = client.get(
        f"/api/runs/{RUN}/EMC/histograms/EMCal/EMCalCellAmplitude?slice={data['id']}"
    )
    assert stack.status_code == 200 and stack.get_json()["_typename"] == "THStack"
    assert len(stack.get_json()["fHists"]["arr"]) == 12  # EMCal supermodules SM00-SM11
    missing = client.get(f"/api/runs/{RUN}/EMC/histograms/none?slice={data['id']}")
    assert missing.status_code == 404 and data["id"] in missing.get_json()["error"]

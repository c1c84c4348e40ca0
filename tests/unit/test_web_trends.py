"""Trends in the web app: listing, one trend as a JSROOT time graph, history over runs,
thinning, the trending page, and errors.

Run 1 is processed by the real chain (``tests/unit/web_plugin_data.py``); its trend
points come from the trend store that processing filled. Other runs' points are
appended to real trend stores directly (history over runs, and a long series to thin).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from processing.analysis.trending import GENERIC_NAMES, TrendStore, trend_dir
from tests.jsroot_node import run_jsroot
from tests.unit.test_web_support import add_user, login, make_app
from tests.unit.web_plugin_data import HOT_MAP, build_evaluated_run
from webapp import users
from webapp.trends import MAX_POINTS, POINTS_HEADER, thin

EVENTS = "EMCTrigger/events"
LONG = 20_000
SPIKE_AT = 12_345


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("trends")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_evaluated_run(data_dir, db)
    run1 = TrendStore(trend_dir(data_dir, 1, "EMC"), readonly=True)
    # Run 2 (after run 1): three points of the hot-cell count.
    later = run1.times()[-1] + 3600
    run2 = TrendStore(trend_dir(data_dir, 2, "EMC"))
    for i, value in enumerate((0.0, 2.0, 5.0)):
        run2.append(later + 60 * i, {(HOT_MAP, "hot_cells"): value})
    # A long series of another subsystem: a day of 4-second slices with one spike.
    long = TrendStore(trend_dir(data_dir, 7, "LONG"))
    rng = np.random.default_rng(1)
    values = 100 + rng.normal(0, 1, LONG)
    values[SPIKE_AT] = 1000.0
    values[777] = float("nan")  # a value that could not be computed: a gap
    for i, value in enumerate(values):
        long.append(1.7e9 + 4.0 * i, {("rate", "event_rate"): float(value)})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    return app, client, run1, values


def graph_points(graph: dict) -> tuple[list, list]:
    return graph["fX"], graph["fY"]


def test_listing_names_every_trend_of_the_store(site) -> None:
    _app, client, run1, _values = site
    body = client.get("/api/runs/1/EMC/trends").get_json()
    pairs = [(t["path"], t["name"]) for t in body["trends"]]
    assert pairs == run1.names()
    assert body["points"] == len(run1) == 4
    assert (HOT_MAP, "hot_cells") in pairs and (EVENTS, "event_rate") in pairs
    assert {name for path, name in pairs if path == HOT_MAP} >= set(GENERIC_NAMES)
    hot = next(t for t in body["trends"] if (t["path"], t["name"]) == (HOT_MAP, "hot_cells"))
    assert hot["url"] == f"/api/runs/1/EMC/trends/{HOT_MAP}?name=hot_cells"


def test_one_trend_is_a_time_graph_of_the_stored_points(site) -> None:
    _app, client, run1, _values = site
    response = client.get(f"/api/runs/1/EMC/trends/{EVENTS}?name=event_rate")
    assert response.status_code == 200
    graph = response.get_json()
    times, values = run1.series(EVENTS, "event_rate")
    keep = np.isfinite(values)
    assert graph["_typename"] == "TGraph"
    assert graph_points(graph) == (times[keep].tolist(), values[keep].tolist())
    assert response.headers[POINTS_HEADER] == f"{keep.sum()}/{times.size}"
    axis = graph["fHistogram"]["fXaxis"]
    assert axis["fTimeDisplay"] is True and "GMT" in axis["fTimeFormat"]
    # JSROOT draws it with a UTC time axis and a y range holding the points.
    (drawn,) = run_jsroot([("rate", response.data, "ALP")])
    assert drawn["error"] is None and drawn["has_svg"]
    labels = [float(t) for t in drawn["svg_texts"] if re.fullmatch(r"-?\d+(\.\d+)?", t)]
    assert labels and max(labels) >= values[keep].min() and min(labels) <= values[keep].max()
    etag = response.headers["ETag"]
    assert (
        client.get(response.request.full_path, headers={"If-None-Match": etag}).status_code == 304
    )


def test_history_over_runs_in_time_order(site) -> None:
    _app, client, run1, _values = site
    t1, v1 = run1.series(HOT_MAP, "hot_cells")
    url = f"/api/trends/history?subsystem=EMC&path={HOT_MAP}&name=hot_cells"
    points = client.get(url + "&format=points").get_json()
    assert points["runs"] == [1, 2]
    assert points["values"] == [*v1.tolist(), 0.0, 2.0, 5.0]
    assert points["run"] == [1] * t1.size + [2] * 3
    assert points["times"] == sorted(points["times"]) and points["thinned"] is False
    graph = client.get(url).get_json()
    assert graph["_typename"] == "TGraph" and graph["fY"] == points["values"]
    assert "runs 1-2" in graph["fTitle"]
    only = client.get(url + "&runs=2&format=points").get_json()
    assert only["runs"] == [2] and only["values"] == [0.0, 2.0, 5.0]
    ranged = client.get(url + "&runs=1,4-5&format=points").get_json()
    assert ranged["runs"] == [1]


def test_long_series_are_thinned_keeping_extremes(site) -> None:
    _app, client, _run1, values = site
    response = client.get("/api/trends/history?subsystem=LONG&path=rate&name=event_rate")
    graph = response.get_json()
    finite = values[np.isfinite(values)]
    assert graph["fNpoints"] <= MAX_POINTS < finite.size
    assert response.headers[POINTS_HEADER] == f"{graph['fNpoints']}/{LONG}"
    assert max(graph["fY"]) == 1000.0 and min(graph["fY"]) == finite.min()
    assert graph["fX"][0] == 1.7e9 and graph["fX"][-1] == 1.7e9 + 4.0 * (LONG - 1)
    assert graph["fX"] == sorted(graph["fX"])
    per_run = client.get("/api/runs/7/LONG/trends/rate?name=event_rate")
    assert per_run.status_code == 404  # run 7 is not in the database, only on disk


def test_thin_keeps_the_lowest_and_highest_of_each_bucket() -> None:
    times = np.arange(10_000, dtype=float)
    values = np.sin(times / 50.0)
    values[4321] = -7.0
    values[10] = np.nan
    runs = np.repeat([3, 4], 5000)
    t, v, r = thin(times, values, 1000, runs)
    assert t.size <= 1000 and t.size == v.size == r.size
    assert -7.0 in v and 10.0 not in t and np.isfinite(v).all()
    assert np.all(np.diff(t) > 0) and t[0] == 0 and t[-1] == 9999
    assert np.array_equal(r, np.where(t < 5000, 3, 4))
    assert np.array_equal(v, values[t.astype(int)])
    small = thin(times[:50], values[:50], 1000)
    assert small[0].size == 49  # nothing to thin; the NaN point is still dropped


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/api/runs/99/EMC/trends", 404, "run 99"),
        ("/api/runs/1/XYZ/trends", 404, "'XYZ'"),
        ("/api/runs/1/EMC/trends/no/such?name=mean", 404, "'no/such'"),
        (f"/api/runs/1/EMC/trends/{HOT_MAP}?name=nope", 404, "no trend 'nope'"),
        (f"/api/runs/1/EMC/trends/{HOT_MAP}", 400, "name is required"),
        ("/api/runs/1/EMC/trends/a/../b?name=mean", 400, "refused"),
        ("/api/trends/history?path=x&name=mean", 400, "subsystem"),
        ("/api/trends/history?subsystem=EMC&name=mean", 400, "path"),
        (f"/api/trends/history?subsystem=EMC&path={HOT_MAP}", 400, "name"),
        (f"/api/trends/history?subsystem=EMC&path={HOT_MAP}&name=mean&runs=1-x", 400, "runs"),
        (f"/api/trends/history?subsystem=EMC&path={HOT_MAP}&name=mean&runs=5-2", 400, "runs"),
        (f"/api/trends/history?subsystem=EMC&path={HOT_MAP}&name=mean&format=xml", 400, "format"),
        ("/api/trends/history?subsystem=EMC&path=nothing&name=mean", 404, "'nothing'"),
    ],
)
def test_errors_name_what_is_wrong(site, url: str, status: int, words: str) -> None:
    _app, client, _run1, _values = site
    response = client.get(url)
    assert response.status_code == status, url
    assert words in response.get_json()["error"], response.get_json()


@pytest.mark.parametrize("runs", ["0", "0-3", "2147483647-2147483648", "-1"])
def test_history_runs_outside_the_run_rule_are_a_400_never_a_500(site, runs: str) -> None:
    # Found by the API fuzz test: runs=0 reached the trend-directory rule (a 500) once
    # run 0 stopped being a run; parse_runs now checks the one rule of overwatch.names.
    _app, client, _run1, _values = site
    response = client.get(f"/api/trends/history?subsystem=EMC&path={HOT_MAP}&name=mean&runs={runs}")
    assert response.status_code == 400, response.get_json()
    assert "runs" in response.get_json()["error"]


def test_unknown_trend_name_lists_the_histograms_trends(site) -> None:
    _app, client, _run1, _values = site
    error = client.get(f"/api/runs/1/EMC/trends/{HOT_MAP}?name=nope").get_json()["error"]
    assert "hot_cells" in error and "mean" in error


def test_trending_page_draws_the_trends_named_in_the_url(site) -> None:
    app, _client, _run1, _values = site
    browser = app.test_client()
    login(browser, "alice")
    url = (
        f"/runs/1/EMC/trends?trend={HOT_MAP}:hot_cells&trend=bogus:x&trend={EVENTS}:mean&history=1"
    )
    text = html.unescape(browser.get(url).data.decode())
    sources = re.findall(r'class="ow-drawing[^"]*" data-src="([^"]+)" data-opt="([^"]*)"', text)
    assert sources == [
        (f"/api/runs/1/EMC/trends/{HOT_MAP}?name=hot_cells", "ALP"),
        (
            f"/api/trends/history?subsystem=EMC&path={HOT_MAP.replace('/', '%2F')}&name=hot_cells",
            "ALP",
        ),
        (f"/api/runs/1/EMC/trends/{EVENTS}?name=mean", "ALP"),
        (f"/api/trends/history?subsystem=EMC&path={EVENTS.replace('/', '%2F')}&name=mean", "ALP"),
    ]
    assert "no trend 'bogus:x' in run 1 EMC" in text
    assert f'value="{HOT_MAP}:hot_cells" checked' in text
    assert f'value="{HOT_MAP}:dead_cells" >' in text
    plain = browser.get("/runs/1/EMC/trends").data.decode()
    assert "Draw selected" in plain and 'data-src="' not in plain
    assert browser.get("/runs/99/EMC/trends").status_code == 404
    assert browser.get("/runs/1/XYZ/trends").status_code == 404

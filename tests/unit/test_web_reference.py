"""Reference comparison in the web app: the compare and overlay APIs, the run page, settings.

The runs are really simulated and processed (see test_compare_online.build_reference_runs):
the data run has a hot EMC cell in SM03 and two histograms the reference lacks. The API is
checked against processing.compare run directly on the histograms of the last snapshot
files, and the overlay JSON is parsed and drawn by the real JSROOT in node.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from overwatch import rootio
from overwatch.config import ConfigError
from tests.jsroot_node import run_jsroot
from tests.unit.test_compare_online import (
    DATA,
    EXTRA_PATHS,
    HOT_PATH,
    OTHER,
    REFERENCE,
    assert_same_record,
    build_reference_runs,
    expected_records,
)
from tests.unit.test_web_support import add_user, login, make_app, make_settings
from webapp import users
from webapp.app import create_app
from webapp.paths import quote_path
from webapp.reference import OVERLAY_MODES, overlay_mode


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("reference")
    app, db = make_app(tmp_path)
    add_user(db)
    files = build_reference_runs(Path(app.extensions["overwatch"].data_dir), db)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    yield app, db, client, files, tmp_path


def configured_app(site, **compare):
    """A second app on the same database and data, with compare settings changed."""
    _app, db, _client, _files, tmp_path = site
    settings = make_settings(tmp_path)
    settings = dataclasses.replace(
        settings, compare=dataclasses.replace(settings.compare, **compare)
    )
    data_dir = tmp_path / "data"
    app = create_app(settings, db=db, data_dir=data_dir, testing=True)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    return client


def test_compare_api_matches_processing_compare_on_the_same_histograms(site) -> None:
    _app, _db, client, files, _tmp = site
    response = client.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["reference"] == REFERENCE and answer["reference_source"] == "url"
    assert answer["test"] == "chi2" and answer["threshold"] == 1e-5
    results = answer["results"]
    assert [r["path"] for r in results] == sorted(r["path"] for r in results)  # sort=path
    want = expected_records(files, DATA, REFERENCE, "EMC")
    by_path = {r["path"]: r for r in results}
    assert set(by_path) == set(want) | set(EXTRA_PATHS)
    for path, record in want.items():
        assert_same_record(by_path[path], record)
    assert [r["path"] for r in results if r["status"] == "fail"] == [HOT_PATH]
    for path in EXTRA_PATHS:
        assert by_path[path]["status"] == "skipped"
        assert by_path[path]["reason"] == "missing_in_reference"
    assert answer["counts"] == {"success": 45, "null": 1, "fail": 1, "skipped": 2}
    assert by_path[HOT_PATH]["overlay"] == (
        f"/api/runs/{DATA}/EMC/overlay/EMCal/SM03/cellHits?ref={REFERENCE}"
    )


def test_worst_first_and_other_tests(site) -> None:
    _app, _db, client, files, _tmp = site
    worst = client.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&sort=worst").get_json()
    order = [r["status"] for r in worst["results"]]
    assert worst["results"][0]["path"] == HOT_PATH
    assert order[:3] == ["fail", "skipped", "skipped"] and order[-1] == "success"
    ks = client.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&test=ks").get_json()
    assert ks["test"] == "ks" and ks["threshold"] == 1e-5
    want = expected_records(files, DATA, REFERENCE, "EMC", "ks")
    for record in ks["results"]:
        if record["path"] in want:
            assert_same_record(record, want[record["path"]])
    # A test chosen in the URL keeps its own default threshold unless one is given.
    rank = client.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&test=bin2bin").get_json()
    assert rank["test"] == "bin2bin" and rank["threshold"] == 1.0
    loose = client.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&threshold=0").get_json()
    assert loose["threshold"] == 0.0 and loose["counts"]["fail"] == 0


def test_a_run_compared_with_itself_is_all_success_or_null(site) -> None:
    _app, _db, client, _files, _tmp = site
    for subsystem in ("EMC", "HLT"):
        answer = client.get(f"/api/runs/{DATA}/{subsystem}/compare?ref={DATA}").get_json()
        assert {r["status"] for r in answer["results"]} <= {"success", "null"}
        assert answer["counts"]["success"] >= len(answer["results"]) - 1


def test_configured_reference_url_override_and_none(site) -> None:
    client = configured_app(site, reference_runs={"EMC": REFERENCE}, test="ks", threshold=0.01)
    answer = client.get(f"/api/runs/{DATA}/EMC/compare").get_json()
    assert answer["reference"] == REFERENCE and answer["reference_source"] == "config"
    assert answer["test"] == "ks" and answer["threshold"] == 0.01
    own = client.get(f"/api/runs/{DATA}/EMC/compare?ref={DATA}").get_json()
    assert own["reference"] == DATA and own["reference_source"] == "url"
    assert own["counts"]["fail"] == 0
    off = client.get(f"/api/runs/{DATA}/EMC/compare?ref=none").get_json()
    assert off["reference"] is None and off["results"] == []
    # HLT has no configured reference: nothing to compare unless the URL names one.
    assert client.get(f"/api/runs/{DATA}/HLT/compare").get_json()["reference"] is None
    overlay = client.get(f"/api/runs/{DATA}/EMC/overlay/EMCal/clusterEnergy")
    assert overlay.status_code == 200 and overlay.get_json()["reference_run"] == REFERENCE


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("ref=abc", 400, "ref: expected a run number or 'none'"),
        ("ref=-3", 400, "ref: expected a run number"),
        ("ref=1.5", 400, "ref: expected a run number"),
        ("ref=0", 400, "ref: run numbers are between 1 and"),
        ("ref=99999999999", 400, "ref: expected a run number"),
        ("ref=999", 404, "reference run 999 is unknown"),
        (f"ref={OTHER}", 404, f"reference run {OTHER} has no processed EMC snapshot"),
        (f"ref={REFERENCE}&test=nonsense", 400, "test: unknown test 'nonsense'"),
        (f"ref={REFERENCE}&test=chi2:bogus", 400, "test: chi2: unknown option 'bogus'"),
        (f"ref={REFERENCE}&threshold=2", 400, "threshold: expected a number from 0 to 1"),
        (f"ref={REFERENCE}&threshold=nan", 400, "threshold: expected a number from 0 to 1"),
        (f"ref={REFERENCE}&threshold=x", 400, "threshold: expected a number"),
        (f"ref={REFERENCE}&sort=best", 400, "sort: expected one of path, worst"),
    ],
)
def test_bad_compare_requests_name_the_field(site, query: str, status: int, message: str):
    _app, _db, client, _files, _tmp = site
    response = client.get(f"/api/runs/{DATA}/EMC/compare?{query}")
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_unknown_run_or_subsystem_is_404(site) -> None:
    _app, _db, client, _files, _tmp = site
    for url in (
        f"/api/runs/999/EMC/compare?ref={REFERENCE}",
        f"/api/runs/{OTHER}/EMC/compare?ref={REFERENCE}",
        "/api/runs/999/EMC/compare?ref=none",
        f"/api/runs/{DATA}/E-M-C/compare?ref={REFERENCE}",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "error" in response.get_json()


def test_overlay_json_drawn_by_jsroot_is_normalised_and_divided(site) -> None:
    _app, _db, client, files, _tmp = site
    paths = {
        "1d": ("EMC", "EMCal/SM00/cellAmplitude"),
        "2d": ("EMC", HOT_PATH),
        "profile": ("HLT", "HLT/processingTimeVsEventSize"),
    }
    answers = {}
    for name, (subsystem, path) in paths.items():
        response = client.get(f"/api/runs/{DATA}/{subsystem}/overlay/{path}?ref={REFERENCE}")
        assert response.status_code == 200, response.data
        answers[name] = json.loads(response.data)
    items = []
    for name, answer in answers.items():
        items += [
            (f"{name}:data", json.dumps(answer["data"]), ""),
            (f"{name}:reference", json.dumps(answer["reference"]), "hist"),
            (f"{name}:ratio", json.dumps(answer["ratio"]), "E"),
        ]
    drawn = {r["name"]: r for r in run_jsroot(items)}
    assert all(r["error"] is None and r["has_svg"] for r in drawn.values()), drawn
    for name in ("1d", "2d"):
        data, ref, ratio = (drawn[f"{name}:{part}"] for part in ("data", "reference", "ratio"))
        inner = _inner(data)
        assert ref["contents"][inner].sum() == pytest.approx(data["contents"][inner].sum())
        path = paths[name][1]
        original = rootio.read_histograms(files[(REFERENCE, "EMC")], [path]).histograms[path]
        assert answers[name]["scale"] == pytest.approx(
            data["contents"][inner].sum() / original.integral()
        )
        filled = ref["contents"] != 0
        np.testing.assert_allclose(
            ratio["contents"][filled], data["contents"][filled] / ref["contents"][filled]
        )
        assert not ratio["contents"][~filled].any()
        c1, c2 = data["contents"][filled], ref["contents"][filled]
        e1, e2 = data["errors"][filled], ref["errors"][filled]
        np.testing.assert_allclose(
            ratio["errors"][filled], np.sqrt((e1**2 * c2**2 + e2**2 * c1**2) / c2**4)
        )
        assert ratio["typename"] == f"TH{2 if name == '2d' else 1}D"
    # The hot cell stands out in the ratio: about the hot factor (20) over the scale.
    ratio2d = drawn["2d:ratio"]["contents"]
    assert ratio2d.max() > 10 and np.median(ratio2d[ratio2d > 0]) == pytest.approx(1, abs=0.1)
    # Profiles: means compared as they are, not rescaled.
    assert answers["profile"]["scale"] is None
    data, ref, ratio = (drawn[f"profile:{part}"] for part in ("data", "reference", "ratio"))
    filled = ref["contents"] != 0
    np.testing.assert_allclose(
        ratio["contents"][filled], data["contents"][filled] / ref["contents"][filled]
    )
    # Colours and ranges for the page: reference red, ratio centred on 1 without a stat box.
    one = answers["1d"]
    assert one["reference"]["fLineColor"] == 632 and one["data"]["fLineColor"] != 632
    low, high = one["ratio"]["fMinimum"], one["ratio"]["fMaximum"]
    assert low < 1 < high and high - 1 == pytest.approx(1 - low)
    assert one["ratio"]["fBits"] & (1 << 9)


def _inner(result: dict) -> np.ndarray:
    """Mask of the in-range bins of a JSROOT result (contents with flow, x fastest)."""
    shape = [axis["nbins"] + 2 for axis in result["axes"]]
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(1, -1) for _ in shape)] = True
    return mask.ravel(order="F")


def test_overlay_of_the_latest_slice_and_caching(site) -> None:
    _app, _db, client, _files, _tmp = site
    url = f"/api/runs/{DATA}/EMC/overlay/EMCal/clusterEnergy?ref={REFERENCE}&slice=latest"
    first = client.get(url)
    assert first.status_code == 200
    answer = first.get_json()
    assert answer["slice"] == "latest"
    whole = client.get(url.replace("latest", "cumulative")).get_json()
    data_latest = np.asarray(answer["data"]["fArray"])
    data_whole = np.asarray(whole["data"]["fArray"])
    assert 0 < data_latest.sum() < data_whole.sum()
    ratio = answer["scale"] / whole["scale"]
    assert ratio == pytest.approx(data_latest[1:-1].sum() / data_whole[1:-1].sum())
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref=none", 400, "ref: no reference run"),
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}", 400, "compare.reference_runs.EMC"),
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref=x1", 400, "ref: expected a run number"),
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref=11&slice=week", 400, "slice: expected"),
        (f"/api/runs/{DATA}/EMC/overlay/EMCal/%2e%2e/x?ref=11", 400, "refused histogram path"),
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref=999", 404, "reference run 999 is unknown"),
        (f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref={OTHER}", 404, f"run {OTHER} has no"),
        (f"/api/runs/{DATA}/EMC/overlay/EMCExtra/h0000?ref=11", 404, "not in reference run 11"),
        (f"/api/runs/{DATA}/EMC/overlay/EMCal/nothing?ref=11", 404, "no histogram 'EMCal/nothing'"),
        (f"/api/runs/999/EMC/overlay/{HOT_PATH}?ref=11", 404, "run 999"),
    ],
)
def test_bad_overlay_requests(site, url: str, status: int, message: str) -> None:
    _app, _db, client, _files, _tmp = site
    response = client.get(url)
    assert response.status_code == status, response.data
    assert message in response.get_json()["error"]


def page_groups(client) -> tuple[dict[str, list[str]], set[str]]:
    """The run page's groups (the detector plugin decides them) and the snapshot's own paths."""
    listing = client.get(f"/api/runs/{DATA}/EMC/histograms").get_json()
    groups = {g["name"]: g["histograms"] for g in listing["groups"]}
    answer = client.get(f"/api/runs/{DATA}/EMC/compare?ref={DATA}").get_json()
    return groups, {r["path"] for r in answer["results"]}


def group_of(groups: dict[str, list[str]], path: str) -> str:
    return next(name for name, paths in groups.items() if path in paths)


def test_run_page_with_a_reference_draws_overlays_instead_of_plain_histograms(site) -> None:
    _app, _db, client, _files, _tmp = site
    groups, raw = page_groups(client)
    group = group_of(groups, HOT_PATH)
    members = groups[group]
    page = client.get(f"/runs/{DATA}/EMC?group={quote(group)}&ref={REFERENCE}&sort=worst&opt=logy")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('class="ow-overlay"') == len([p for p in members if p in raw]) >= 1
    assert html.count('class="ow-drawing"') == len([p for p in members if p not in raw])
    compare_url = (
        f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&amp;test=chi2&amp;sort=worst"
        "&amp;slice=cumulative"
    )
    assert f'data-compare="{compare_url}"' in html
    assert (
        f'data-overlay="/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref={REFERENCE}'
        '&amp;slice=cumulative"' in html
    )
    # The selector keeps the rest of the view (group, option) and offers the other runs.
    assert f'<input type="hidden" name="group" value="{group}">' in html
    assert '<input type="hidden" name="opt" value="logy">' in html
    assert f'<option value="{REFERENCE}">' in html and f'<option value="{DATA}">' not in html
    assert 'name="sort" value="worst" checked' in html
    # A plugin's derived histograms exist in no reference: they keep their plain drawing.
    derived = [(name, p) for name, paths in groups.items() for p in paths if p not in raw]
    for name, path in derived[:1]:
        other = client.get(f"/runs/{DATA}/EMC?group={quote(name)}&ref={REFERENCE}")
        text = other.get_data(as_text=True)
        assert f'data-path="{path}"' not in text and quote_path(path) in text


def test_run_page_without_or_with_a_bad_reference_shows_plain_drawings(site) -> None:
    _app, _db, client, _files, _tmp = site
    groups, _raw = page_groups(client)
    group = quote(group_of(groups, HOT_PATH))
    n = len(groups[group_of(groups, HOT_PATH)])
    plain = client.get(f"/runs/{DATA}/EMC?group={group}").get_data(as_text=True)
    assert plain.count('class="ow-drawing"') == n and 'class="ow-overlay"' not in plain
    assert 'id="ow-reference"' not in plain
    for query, message in (
        ("ref=abc", "ref: expected a run number or &#39;none&#39;"),
        ("ref=999", "reference run 999 is unknown"),
        (f"ref={OTHER}", f"reference run {OTHER} has no processed EMC snapshot"),
        (f"ref={REFERENCE}&test=nope", "test: unknown test &#39;nope&#39;"),
    ):
        response = client.get(f"/runs/{DATA}/EMC?group={group}&{query}")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert message in html and "ow-reference-error" in html
        assert html.count('class="ow-drawing"') == n and 'class="ow-overlay"' not in html


def test_run_page_uses_the_configured_reference_unless_turned_off(site) -> None:
    client = configured_app(site, reference_runs={"EMC": REFERENCE})
    groups, raw = page_groups(client)
    group = group_of(groups, HOT_PATH)
    compared = len([p for p in groups[group] if p in raw])
    html = client.get(f"/runs/{DATA}/EMC?group={quote(group)}").get_data(as_text=True)
    assert html.count('class="ow-overlay"') == compared
    assert f"configured reference: run {REFERENCE}" in html
    off = client.get(f"/runs/{DATA}/EMC?group={quote(group)}&ref=none").get_data(as_text=True)
    assert 'class="ow-overlay"' not in off
    assert off.count('class="ow-drawing"') == len(groups[group])


def test_a_misconfigured_test_stops_the_app_at_start(site, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    bad = dataclasses.replace(settings, compare=dataclasses.replace(settings.compare, test="x2"))
    with pytest.raises(ConfigError, match="compare.test: unknown test 'x2'"):
        create_app(bad, db=site[1], data_dir=tmp_path / "data", testing=True)


def test_comparison_needs_a_signed_in_user(site) -> None:
    app, db, _client, _files, _tmp = site
    anonymous = app.test_client()
    response = anonymous.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}")
    assert response.status_code == 401
    assert anonymous.get(f"/api/runs/{DATA}/EMC/overlay/{HOT_PATH}?ref=11").status_code == 401
    browser = app.test_client()
    assert login(browser, "alice").status_code == 302
    assert browser.get(f"/api/runs/{DATA}/EMC/compare?ref={REFERENCE}").status_code == 200


@pytest.mark.parametrize(
    ("class_name", "ndim", "mode"),
    [
        ("TH1F", 1, "lines"),
        ("TProfile", 1, "lines"),
        ("TH2F", 2, "ratio-map"),
        ("TH2D", 2, "ratio-map"),
        ("TProfile2D", 2, "side-by-side"),  # a ratio of means near zero says nothing
        ("TH3F", 3, "projections"),
    ],
)
def test_the_overlay_is_drawn_per_class(class_name: str, ndim: int, mode: str) -> None:
    assert overlay_mode(class_name, ndim) == mode and mode in OVERLAY_MODES

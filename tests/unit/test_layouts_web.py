"""Layouts in the web app: pages and JSON of layout files the test writes itself.

Run 1 has EMC, TPC and HLT, run 2 (newer) only HLT, both processed by the real
chain from the simulator. The layouts folder (``web.layouts_dir``) is a
temporary folder; the shipped layouts are checked against the same runs.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tests.unit.test_web_support import add_user, build_simulated_run, login, make_app

BOARD = """\
name: Test board
description: written by the test
tabs:
  - name: Main
    columns: 3
  - name: Wall
    columns: 1
    cycle_seconds: 5
items:
  - subsystem: EMC
    histogram: "EMCal/SM0*/cellHits"
    draw_option: colz
  - subsystem: EMC
    histogram: EMCal/EMCalCellAmplitude
    title: EMCal stack
  - subsystem: TPC
    histogram: TPC/trackPt
    title: Track pT
    draw_option: logy
  - subsystem: HLT
    histogram: HLT/eventSize
    title: Event size
    draw_option: hist foo
    reference: true
  - subsystem: TPC
    histogram: "TPC/trackPtEtaPhi_p?"
    draw_option: liny gridx
    tab: Wall
  - subsystem: HLT
    histogram: HLT/noSuchHistogram
    tab: Wall
"""
BROKEN = """\
name: Broken
tabs:
  - name: Main
    colums: 2
items:
  - subsystem: EMC
    histogram: EMCal/clusterEnergy
"""
DRAWING = re.compile(r'<div class="ow-drawing" ([^>]*)></div>')
ATTRIBUTE = re.compile(r'(data-[a-z-]+)="([^"]*)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("layouts")
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    (layouts / "board.yaml").write_text(BOARD, encoding="utf-8")
    (layouts / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    app, db = make_app(tmp_path, layouts_dir=str(layouts))
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_simulated_run(data_dir, db, run=1, snapshots=2)
    build_simulated_run(data_dir, db, run=2, subsystems=("HLT",), snapshots=2)
    add_user(db)
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    shipped, _db = make_app(tmp_path, db=db)  # the same runs, the shipped layouts
    shipped_client = shipped.test_client()
    assert login(shipped_client, "alice").status_code == 302
    return client, layouts, shipped_client


def drawings(page: bytes) -> list[dict[str, str]]:
    text = page.decode()
    return [
        {key: html.unescape(value) for key, value in ATTRIBUTE.findall(attrs)}
        for attrs in DRAWING.findall(text)
    ]


def page_attrs(page: bytes) -> dict[str, str]:
    tag = re.search(r'<div id="ow-page"[^>]*>', page.decode())
    assert tag, "no #ow-page"
    return {key: html.unescape(value) for key, value in ATTRIBUTE.findall(tag.group(0))}


def assert_draws(client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_data(as_text=True)[:200])
    data = response.get_json()
    assert isinstance(data, dict) and data["_typename"].startswith("T"), url


def test_a_layout_written_by_the_test_renders_every_item(site) -> None:
    client, _layouts, _shipped = site
    response = client.get("/layouts/board")
    assert response.status_code == 200
    shown = drawings(response.data)
    # Main tab: 10 supermodules SM00-SM09, the stack, track pT, HLT event size.
    paths = [(d["data-subsystem"], d["data-path"]) for d in shown]
    assert paths == [
        *[("EMC", f"EMCal/SM{sm:02d}/cellHits") for sm in range(10)],
        ("EMC", "EMCal/EMCalCellAmplitude"),
        ("TPC", "TPC/trackPt"),
        ("HLT", "HLT/eventSize"),
    ]
    # Each item's subsystem from its newest run: HLT from run 2, the others from run 1.
    assert [d["data-run"] for d in shown] == ["1"] * 12 + ["2"]
    # An item's option is merged with the plugin's: the map keeps its log z and no stat box,
    # track pT its log x; an option JSROOT does not know is named, the plugin's drawn.
    options = {d["data-path"]: d["data-opt"] for d in shown}
    assert options["EMCal/SM03/cellHits"] == "colz;logz;nostat"
    assert options["TPC/trackPt"] == "logx;logy"
    assert options["HLT/eventSize"] == ""
    for drawing in shown:
        assert_draws(client, drawing["data-src"])
    text = response.get_data(as_text=True)
    errors = re.findall(r"<p [^>]*data-option-error>([^<]*)</p>", text)
    assert [html.unescape(e) for e in errors] == [
        "unknown draw option 'foo': JSROOT options are words such as hist, e, colz, box, "
        "text, logx, logy, logz, gridx (see the JSROOT docs) (layout line 20) · drawn with "
        "no option"
    ]
    assert "Track pT" in text and "EMCal stack" in text and "vs reference" in text
    assert "--ow-columns: 3" in text
    attrs = page_attrs(response.data)
    assert attrs["data-live-run"] == "2"
    assert attrs["data-live-subsystems"] == "EMC HLT TPC"
    assert "data-cycle-seconds" not in attrs  # the Main tab does not cycle
    assert 'src="/static/layouts.js"' in text and 'href="/static/layouts.css"' in text


def test_the_api_expands_items_and_globs(site) -> None:
    client, _layouts, _shipped = site
    data = client.get("/api/layouts/board").get_json()
    assert data["name"] == "board" and data["title"] == "Test board"
    assert [t["name"] for t in data["tabs"]] == ["Main", "Wall"]
    items = data["items"]
    assert len(items) == 6  # every tab without ?tab=
    cells = items[0]
    assert cells["glob"] and cells["run"] == 1
    assert [h["path"] for h in cells["histograms"]] == [
        f"EMCal/SM{sm:02d}/cellHits" for sm in range(10)
    ]
    projections = items[4]
    assert [h["path"] for h in projections["histograms"]] == [
        "TPC/trackPtEtaPhi_px", "TPC/trackPtEtaPhi_py", "TPC/trackPtEtaPhi_pz",
    ]  # fmt: skip
    # liny takes the plugin's log y of the pT projection away and keeps its log x.
    assert [(h["option"], h["option_error"]) for h in projections["histograms"]] == [
        ("logx;gridx", None), ("gridx", None), ("gridx", None),
    ]  # fmt: skip
    assert "unknown draw option 'foo'" in items[3]["histograms"][0]["option_error"]
    for item in items[:5]:
        assert item["histograms"] and item["note"] == ""
        for histogram in item["histograms"]:
            assert_draws(client, histogram["url"])
    missing = items[5]
    assert missing["histograms"] == []
    assert missing["note"] == "no histogram 'HLT/noSuchHistogram' in run 2 HLT"
    wall = client.get("/api/layouts/board?tab=Wall&run=1").get_json()
    assert wall["tab"] == "Wall" and wall["run"] == 1
    assert [item["tab"] for item in wall["items"]] == ["Wall", "Wall"]
    assert wall["items"][1]["note"] == "no histogram 'HLT/noSuchHistogram' in run 1 HLT"
    listing = client.get("/api/layouts").get_json()["layouts"]
    assert [entry["name"] for entry in listing] == ["board", "broken"]
    assert listing[0]["error"] is None and listing[0]["subsystems"] == ["EMC", "HLT", "TPC"]


def test_a_broken_file_shows_its_error_and_the_others_still_serve(site) -> None:
    client, layouts, _shipped = site
    expected = f"{layouts / 'broken.yaml'}:4: tabs[0].colums: unknown key"
    page = client.get("/layouts/broken")
    assert page.status_code == 200
    assert expected in html.unescape(page.get_data(as_text=True))
    assert drawings(page.data) == []
    api = client.get("/api/layouts/broken")
    assert api.status_code == 422
    error = api.get_json()["error"]
    assert (error["file"], error["line"], error["key"]) == (
        str(layouts / "broken.yaml"), 4, "tabs[0].colums",
    )  # fmt: skip
    assert error["text"].startswith(expected)
    listing = client.get("/layouts")
    assert listing.status_code == 200
    text = html.unescape(listing.get_data(as_text=True))
    assert expected in text and "Test board" in text and "written by the test" in text
    assert [
        e["error"]["key"] for e in client.get("/api/layouts").get_json()["layouts"] if e["error"]
    ] == ["tabs[0].colums"]
    # The other layout is untouched by the broken one.
    other = client.get("/layouts/board")
    assert other.status_code == 200 and len(drawings(other.data)) == 13


def test_tab_and_run_are_in_the_url(site) -> None:
    client, _layouts, _shipped = site
    wall = client.get("/layouts/board?tab=Wall&run=1")
    assert wall.status_code == 200
    shown = drawings(wall.data)
    assert [d["data-path"] for d in shown] == [
        "TPC/trackPtEtaPhi_px", "TPC/trackPtEtaPhi_py", "TPC/trackPtEtaPhi_pz",
    ]  # fmt: skip
    assert {d["data-run"] for d in shown} == {"1"}
    text = html.unescape(wall.get_data(as_text=True))
    assert "no histogram 'HLT/noSuchHistogram' in run 1 HLT" in text
    attrs = page_attrs(wall.data)
    assert attrs["data-live-run"] == "1" and attrs["data-cycle-seconds"] == "5"
    assert "--ow-columns: 1" in text
    # Tab links keep the run; the next tab (cycling) is marked.
    links = dict(re.findall(r'<a href="([^"]+)" class="[^"]*" data-tab="([^"]+)"', text))
    assert {tab: url for url, tab in links.items()} == {
        "Main": "/layouts/board?tab=Main&run=1",
        "Wall": "/layouts/board?tab=Wall&run=1",
    }
    assert re.search(r'data-tab="Main" data-next-tab', text)
    # ?cycle=0 stops cycling, and is kept by the tab links.
    stopped = client.get("/layouts/board?tab=Wall&cycle=0")
    assert "data-cycle-seconds" not in page_attrs(stopped.data)
    assert "/layouts/board?tab=Main&amp;cycle=0" in stopped.get_data(as_text=True)
    # run=1 puts HLT in run 1 too; the latest slice is asked for when the URL says so.
    main = drawings(client.get("/layouts/board?run=1&slice=latest").data)
    assert {d["data-run"] for d in main} == {"1"}
    assert all("slice=latest" in d["data-src"] for d in main)


def test_unknown_layouts_tabs_and_bad_parameters_are_refused(site) -> None:
    client, _layouts, _shipped = site
    page = client.get("/layouts/nothing")
    assert page.status_code == 404 and "layout 'nothing' not found" in html.unescape(
        page.get_data(as_text=True)
    )
    api = client.get("/api/layouts/nothing")
    assert api.status_code == 404 and "layout 'nothing' not found" in api.get_json()["error"]
    tab = client.get("/api/layouts/board?tab=Nope")
    assert tab.status_code == 404 and "no tab 'Nope'" in tab.get_json()["error"]
    assert client.get("/layouts/board?tab=Nope").status_code == 404
    assert client.get("/api/layouts/board?run=x").status_code == 400
    assert client.get("/layouts/board?run=-1").status_code == 400
    assert client.get("/api/layouts/board?slice=bogus").status_code == 400
    assert client.get("/layouts/..%2Fboard").status_code == 404


def test_an_edited_layout_is_served_without_a_restart(site) -> None:
    client, layouts, _shipped = site
    path = layouts / "edited.yaml"
    path.write_text(BOARD.replace("Test board", "First"), encoding="utf-8")
    assert "First" in client.get("/layouts/edited").get_data(as_text=True)
    path.write_text(BOARD.replace("Test board", "Second version"), encoding="utf-8")
    assert "Second version" in client.get("/layouts/edited").get_data(as_text=True)
    path.write_text(BROKEN, encoding="utf-8")
    assert "tabs[0].colums: unknown key" in client.get("/layouts/edited").get_data(as_text=True)
    path.unlink()
    assert client.get("/layouts/edited").status_code == 404


def test_the_shipped_layouts_draw_every_item_of_a_simulated_run(site) -> None:
    _client, _layouts, client = site
    listing = client.get("/api/layouts").get_json()["layouts"]
    assert {entry["name"] for entry in listing} == {"emc", "tpc", "hlt", "overview"}
    for entry in listing:
        assert entry["error"] is None, entry["error"]
        data = client.get(f"/api/layouts/{entry['name']}?run=1").get_json()
        for item in data["items"]:
            assert item["histograms"], (entry["name"], item["histogram"], item["note"])
            assert_draws(client, item["histograms"][0]["url"])
    assert client.get("/layouts/overview").status_code == 200

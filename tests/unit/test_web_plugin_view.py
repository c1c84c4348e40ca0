"""Detector plugins in the web app: groups, display options, derived histograms, stacks,
annotations, the display-only transform, quality badges and plugin errors.

The run is processed by the real chain (``tests/unit/web_plugin_data.py``). Expected
contents are computed independently from the snapshot files with uproot. Two extra
plugins are installed for this module the way a site installs one (a distribution's
entry point, here a ``.dist-info`` folder on ``sys.path``): ``FLT``, whose annotate hook
raises, so processing records plugin errors, and ``BRK``, whose module does not exist.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch.plugins import load_errors, load_plugin, reset_plugins
from overwatch.store.db import read
from tests.jsroot_node import run_jsroot
from tests.unit.test_web_support import add_user, login, make_app
from tests.unit.web_plugin_data import DEAD_MAP, HOT_MAP, build_evaluated_run
from webapp import users

SRC = re.compile(r'class="ow-drawing[^"]*" data-src="([^"]+)" data-opt="([^"]*)"')
FLAKY_PLUGIN = """
from overwatch.plugins import DetectorPlugin


class FlakyPlugin(DetectorPlugin):
    name = "FLT"

    def annotate(self, path, histogram, options, context):
        raise RuntimeError(f"cannot annotate {path}")
"""


def install_plugins(folder: Path) -> None:
    """A distribution holding the FLT plugin (module on sys.path) and a broken BRK entry point."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overwatch_flaky_plugin.py").write_text(FLAKY_PLUGIN)
    info = folder / "overwatch_test_plugins-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: overwatch-test-plugins\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[overwatch.detectors]\n"
        "FLT = overwatch_flaky_plugin:FlakyPlugin\n"
        "BRK = overwatch_missing_module:Plugin\n"
    )
    sys.path.insert(0, str(folder))
    reset_plugins()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("plugin-view")
    install_plugins(tmp_path / "site-packages")
    try:
        app, db = make_app(tmp_path)
        add_user(db)
        data_dir = Path(app.extensions["overwatch"].data_dir)
        build_evaluated_run(data_dir, db, subsystems=("EMC", "TPC", "HLT", "FLT"))
        token = users.issue_token(db, "alice")
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        browser = app.test_client()
        login(browser, "alice")
        yield app, db, data_dir, client, browser
    finally:
        sys.path.remove(str(tmp_path / "site-packages"))
        sys.modules.pop("overwatch_flaky_plugin", None)
        reset_plugins()


def subsystem(db, name: str) -> dict:
    def work(ow):
        sub = ow.runs[1].subsystems[name]
        return {
            "quality": sub.quality,
            "groups": dict(sub.group_qualities),
            "annotations": {p: dict(a) for p, a in sub.annotations.items()},
            "errors": list(sub.plugin_errors),
            "snapshots": [rec.filename for rec in sub.snapshots.values()],
        }

    return read(db, work)


def emc_files(data_dir: Path, db) -> tuple[Path, Path]:
    files = subsystem(db, "EMC")["snapshots"]
    return data_dir / files[-2], data_dir / files[-1]


def in_range(hist) -> np.ndarray:
    return np.asarray(hist.values(flow=False), dtype=float)


def drawings(text: str) -> dict[str, tuple[str, str]]:
    """path -> (data-src, data-opt) of the drawings of a run page."""
    found = {}
    for src, opt in SRC.findall(text):
        src = html.unescape(src)
        path = re.sub(r"^/api/runs/\d+/\w+/(histograms|stacks|display)/", "", src.split("?")[0])
        found[path] = (src, opt)
    return found


# --------------------------------------------------------------------------- groups and listing


def test_groups_are_the_plugins_with_derived_histograms_and_stacks(site) -> None:
    _app, _db, _data_dir, client, _browser = site
    listing = client.get("/api/runs/1/EMC/histograms").get_json()
    paths = [h["path"] for h in listing["histograms"]]
    groups = {g["name"]: g["histograms"] for g in listing["groups"]}
    assert groups == load_plugin("EMC").grouped(paths)
    classes = {h["path"]: h["class_name"] for h in listing["histograms"]}
    assert classes["EMCal/hitsPerSupermodule"] == "TH1D"  # derived by the plugin
    assert classes["EMCal/EMCalCellAmplitude"] == "THStack"
    assert groups["Overview"] == [
        "EMCal/hitsPerSupermodule", "EMCal/EMCalCellAmplitude", "EMCal/DCalCellAmplitude"
    ]  # fmt: skip
    assert groups["SM03"] == [HOT_MAP, "EMCal/SM03/cellAmplitude"]
    for item in listing["histograms"]:  # every listed URL serves JSON JSROOT reads
        response = client.get(item["url"] + "?slice=latest")
        assert response.status_code == 200, item["url"]


def test_derived_histogram_matches_the_snapshot_files(site) -> None:
    _app, db, data_dir, client, _browser = site
    previous, last = emc_files(data_dir, db)
    with uproot.open(last) as new, uproot.open(previous) as old:
        events_new = new["EMCTrigger/events"].member("fEntries")
        events_old = old["EMCTrigger/events"].member("fEntries")
        hits_new = [in_range(new[f"EMCal/SM{sm:02d}/cellHits"]).sum() for sm in range(20)]
        hits_old = [in_range(old[f"EMCal/SM{sm:02d}/cellHits"]).sum() for sm in range(20)]
    url = "/api/runs/1/EMC/histograms/EMCal/hitsPerSupermodule"
    cumulative = client.get(url).get_json()
    np.testing.assert_allclose(cumulative["fArray"][1:21], np.array(hits_new) / events_new)
    latest = client.get(url + "?slice=latest").get_json()
    np.testing.assert_allclose(
        latest["fArray"][1:21],
        (np.array(hits_new) - np.array(hits_old)) / (events_new - events_old),
    )
    # The dead corner of SM05 shows as fewer hits per event than its neighbours.
    assert cumulative["fArray"][6] < 0.97 * cumulative["fArray"][5]


def test_stack_is_a_thstack_of_the_members(site) -> None:
    _app, db, data_dir, client, _browser = site
    _previous, last = emc_files(data_dir, db)
    response = client.get("/api/runs/1/EMC/stacks/EMCal/DCalCellAmplitude")
    assert response.status_code == 200
    stack = response.get_json()
    members = stack["fHists"]["arr"]
    assert stack["_typename"] == "THStack" and len(members) == 8  # SM12..SM19
    assert stack["fOption"] == "nostack;logy"
    with uproot.open(last) as snapshot:
        for sm, member in zip(range(12, 20), members, strict=True):
            expected = np.asarray(snapshot[f"EMCal/SM{sm:02d}/cellAmplitude"].values(flow=True))
            np.testing.assert_allclose(member["fArray"], expected)
            assert member["fFillStyle"] == 0  # drawn over each other, not filled
    assert len({m["fLineColor"] for m in members}) > 1  # told apart by colour
    same = client.get("/api/runs/1/EMC/histograms/EMCal/DCalCellAmplitude").get_json()
    assert same["_typename"] == "THStack" and len(same["fHists"]["arr"]) == 8
    (drawn,) = run_jsroot([("stack", response.data, stack["fOption"])])
    assert drawn["error"] is None and drawn["has_svg"]
    assert (
        client.get("/api/runs/1/EMC/stacks/EMCal/DCalCellAmplitude?slice=latest").status_code == 200
    )


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/api/runs/1/EMC/stacks/EMCal/nothing", 404, "no stack 'EMCal/nothing'"),
        ("/api/runs/1/TPC/stacks/any", 404, "no stack 'any'"),
        ("/api/runs/1/EMC/stacks/EMCal/DCalCellAmplitude?slice=all", 400, "slice"),
        ("/api/runs/1/EMC/stacks/a/../b", 400, "refused"),
        ("/api/runs/99/EMC/stacks/x", 404, "run 99"),
        ("/api/runs/1/EMC/histograms/EMCal/none", 404, "'EMCal/none'"),
        ("/api/runs/1/EMC/display/EMCal/none", 404, "'EMCal/none'"),
        (f"/api/runs/1/EMC/display/{HOT_MAP}?scale_by_events=perhaps", 400, "scale_by_events"),
        (f"/api/runs/1/EMC/display/{HOT_MAP}?colour=red", 400, "unknown option 'colour'"),
        (f"/api/runs/1/EMC/display/{HOT_MAP}?slice=x", 400, "slice"),
        ("/api/runs/99/EMC/plugin", 404, "run 99"),
        ("/api/runs/1/XYZ/plugin", 404, "'XYZ'"),
    ],
)
def test_bad_requests_name_what_is_wrong(site, url: str, status: int, words: str) -> None:
    _app, _db, _data_dir, client, _browser = site
    response = client.get(url)
    assert response.status_code == status, url
    assert words in response.get_json()["error"], response.get_json()


# --------------------------------------------------------------------------- display


def test_run_page_uses_the_plugins_display_options(site) -> None:
    _app, _db, _data_dir, _client, browser = site
    shown = drawings(browser.get("/runs/1/EMC?group=SM03").data.decode())
    assert shown[HOT_MAP] == (
        f"/api/runs/1/EMC/histograms/{HOT_MAP}?slice=cumulative",
        "colz;logz;nostat",
    )
    assert shown["EMCal/SM03/cellAmplitude"][1] == "logy"
    overview = drawings(browser.get("/runs/1/EMC?group=Overview&slice=latest").data.decode())
    assert overview["EMCal/EMCalCellAmplitude"] == (
        "/api/runs/1/EMC/stacks/EMCal/EMCalCellAmplitude?slice=latest",
        "nostack;logy",
    )
    assert overview["EMCal/hitsPerSupermodule"][1] == "hist"
    # The page-wide option is merged into the 1D histograms' (issue 18); the map keeps its own.
    user = drawings(browser.get("/runs/1/EMC?group=SM03&opt=e").data.decode())
    assert user["EMCal/SM03/cellAmplitude"][1] == "e;logy"
    assert user[HOT_MAP][1] == "colz;logz;nostat"
    page = browser.get("/runs/1/EMC/hist/EMCal/hitsPerSupermodule?slice=latest").data.decode()
    ((src, opt),) = SRC.findall(page)
    assert html.unescape(src) == "/api/runs/1/EMC/histograms/EMCal/hitsPerSupermodule?slice=latest"
    assert opt == "hist"


def test_transform_is_for_display_only(site) -> None:
    _app, _db, data_dir, client, browser = site
    _previous, last = emc_files(data_dir, client.application.extensions["overwatch"].db)
    with uproot.open(last) as snapshot:
        events = snapshot["EMCTrigger/events"].member("fEntries")
        raw = np.asarray(snapshot[HOT_MAP].values(flow=True)).ravel(order="F")
    url = f"/api/runs/1/EMC/display/{HOT_MAP}"
    scaled = client.get(url + "?scale_by_events=true").get_json()
    np.testing.assert_allclose(scaled["fArray"], raw / events)
    plain = client.get(url).get_json()
    np.testing.assert_allclose(plain["fArray"], raw)
    stored = client.get(f"/api/runs/1/EMC/histograms/{HOT_MAP}").get_json()
    np.testing.assert_allclose(stored["fArray"], raw)  # the data itself is never scaled
    page = browser.get("/runs/1/EMC?group=SM03&scale_by_events=true").data.decode()
    assert drawings(page)[HOT_MAP][0] == (
        f"/api/runs/1/EMC/display/{HOT_MAP}?slice=cumulative&scale_by_events=true"
    )
    assert 'name="scale_by_events" value="true" checked' in page
    default = drawings(browser.get("/runs/1/EMC?group=SM03&scale_by_events=false").data.decode())
    assert default[HOT_MAP][0].startswith("/api/runs/1/EMC/histograms/")


# --------------------------------------------------------------------------- annotations, qualities


def test_annotations_beside_the_plot_and_decorations_for_the_overlay(site) -> None:
    _app, db, _data_dir, client, browser = site
    # The latest slice's page shows what processing stored for the latest slice ...
    notes = subsystem(db, "EMC")["annotations"]
    text = browser.get("/runs/1/EMC?group=SM03&slice=latest").data.decode()
    figure = text[text.index(f">{HOT_MAP}</a>") :].split("</figure>")[0]
    for line in notes[HOT_MAP]["info"]:
        assert f"<li>{html.escape(line)}</li>" in figure
    # ... and the whole-run page the whole run's own annotation, not the latest slice's.
    whole = client.get("/api/runs/1/EMC/view?slice=cumulative").get_json()["annotations"]
    assert whole[HOT_MAP]["info"] != notes[HOT_MAP]["info"]
    text = browser.get("/runs/1/EMC?group=SM03").data.decode()
    figure = text[text.index(f">{HOT_MAP}</a>") :].split("</figure>")[0]
    for line in whole[HOT_MAP]["info"]:
        assert f"<li>{html.escape(line)}</li>" in figure
    assert "1 hot cell(s)" in figure
    decorations = json.loads(html.unescape(re.search(r'data-decorations="([^"]*)"', figure)[1]))
    assert decorations == notes[HOT_MAP]["decorations"]
    assert decorations[0]["kind"] == "marker" and (decorations[0]["x"], decorations[0]["y"]) == (
        10.5,
        5.5,
    )  # column 10, row 5: the simulated hot cell
    dead = browser.get(f"/runs/1/EMC/hist/{DEAD_MAP}").data.decode()
    assert "dead: columns 0-7, rows 0-7" in dead
    boxes = json.loads(html.unescape(re.search(r'data-decorations="([^"]*)"', dead)[1]))
    assert [(b["kind"], b["x"], b["y"], b["x2"], b["y2"]) for b in boxes] == [
        ("box", 0.0, 0.0, 8.0, 8.0)
    ]
    plain = browser.get("/runs/1/EMC?group=SM00").data.decode()
    # Info lines, but nothing to draw: no hot or dead cell in SM00.
    assert 'data-decorations="[]"' in plain and "no hot cell" in plain


def test_quality_badges_on_the_run_list_and_run_page(site) -> None:
    _app, db, _data_dir, client, browser = site
    qualities = {name: subsystem(db, name)["quality"] for name in ("EMC", "TPC", "HLT", "FLT")}
    assert qualities["EMC"] == "Bad"
    runs = browser.get("/runs").data.decode()
    cells = re.findall(
        r'href="/runs/1/(\w+)">\d+ snapshots</a>\s*<span [^>]*data-quality="(\w+)"', runs
    )
    assert dict(cells) == qualities
    assert client.get("/api/runs").get_json()["runs"][0]["subsystems"]["EMC"]["quality"] == "Bad"

    # The latest slice's page shows the qualities processing stored for the latest slice.
    page = browser.get("/runs/1/EMC?slice=latest").data.decode()
    tabs = re.findall(r'class="[^"]*">(\w+) <span class="ow-badge ow-q ow-q-(\w+)"', page)
    assert dict(tabs) == {k: v.lower() for k, v in qualities.items()}

    def group_badges(page: str) -> dict[str, str]:
        return dict(
            re.findall(
                r'group=([\w+]+)&amp;[^"]*"\s*class="[^"]*">[^<]*<span class="ow-dim"><span [^>]*data-quality="(\w+)"',
                page,
            )
        )

    groups = group_badges(page)
    expected = subsystem(db, "EMC")["groups"]
    assert groups == expected and groups["SM03"] == groups["SM05"] == "Bad"
    # The whole-run page shows the whole run's own qualities (no rate, so Null rate checks).
    whole = client.get("/api/runs/1/EMC/view").get_json()["qualities"]["groups"]
    assert group_badges(browser.get("/runs/1/EMC").data.decode()) == whole
    assert 'class="ow-plugin-bar" data-plugin="EMC"' in page
    bar = page[page.index("ow-plugin-bar") :].split("</div>")[0]
    assert 'data-quality="Bad"' in bar and 'href="/runs/1/EMC/trends"' in bar

    summary = client.get("/api/runs/1/EMC/plugin?slice=latest").get_json()
    assert summary["quality"] == "Bad" and summary["group_qualities"] == expected
    assert summary["annotations"][HOT_MAP]["values"]["hot_cells"] == 1.0
    assert {s["name"] for s in summary["stacks"]} == {
        "EMCal/EMCalCellAmplitude",
        "EMCal/DCalCellAmplitude",
    }
    assert "EMCal/hitsPerSupermodule" in [d["path"] for d in summary["derived"]]
    assert any(
        r["quality"] == "Bad" and r["histogram"] == HOT_MAP for r in summary["check_results"]
    )


def test_plugin_errors_show_on_the_status_page_and_run_page(site) -> None:
    _app, db, _data_dir, client, browser = site
    errors = subsystem(db, "FLT")["errors"]
    assert errors and all("cannot annotate" in e for e in errors)
    status = html.unescape(browser.get("/status").data.decode())
    section = status[status.index('id="ow-plugin-errors"') :]
    assert "Run 1 FLT" in section
    assert errors[0] in section
    assert "BRK" in section and "overwatch_missing_module" in section
    assert "BRK" in load_errors
    api = client.get("/api/plugins").get_json()
    assert api["installed"]["FLT"] == "overwatch_flaky_plugin:FlakyPlugin"
    assert "No module named 'overwatch_missing_module'" in api["load_errors"]["BRK"]
    assert [(r["run"], r["subsystem"]) for r in api["recent"]] == [(1, "FLT")]
    page = browser.get("/runs/1/FLT").data.decode()
    assert f"{len(errors)} plugin error" in page
    # Processing still served the slice: the histograms are drawn as usual.
    assert drawings(page)


def test_each_figure_shows_its_checks_and_pages_count_open_alarms(site) -> None:
    _app, db, _data_dir, client, browser = site
    text = browser.get("/runs/1/EMC?group=SM03&slice=latest").data.decode()
    figure = text[text.index(f">{HOT_MAP}</a>") :].split("</figure>")[0]
    caption = figure.split("</figcaption>")[0]
    assert 'data-quality="Bad"' in caption  # the worst check of this histogram, this slice
    checks = re.findall(
        r"<li><span [^>]*data-quality=\"(\w+)\"[^<]*</span> <b>([\w-]+)</b>", figure
    )
    latest = client.get("/api/runs/1/EMC/view?slice=latest").get_json()
    want = [
        (r["quality"], r["check"]) for r in latest["check_results"] if r["histogram"] == HOT_MAP
    ]
    assert checks == want and ("Bad", "emc-hot-cells") in checks

    def open_count(ow) -> int:
        return sum(1 for a in ow.alarms.values() if a.active and (a.run, a.subsystem) == (1, "EMC"))

    count = read(db, open_count)
    assert count >= 1
    label = f"{count} open alarm{'s' if count != 1 else ''}"
    runs = browser.get("/runs").data.decode()
    assert label in runs and "/alarms?run=1&amp;subsystem=EMC&amp;active=1" in runs
    assert label in browser.get("/runs/1/EMC").data.decode()
    listed = client.get("/api/runs/1").get_json()
    assert (
        listed["subsystems"]["EMC"]["open_alarms"]
        == count
        == listed["open_alarms"]
        - sum(s["open_alarms"] for name, s in listed["subsystems"].items() if name != "EMC")
    )

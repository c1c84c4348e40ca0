"""Control-room comfort seen from the server: stack legends (drawn by the real JSROOT),
the run page's finder and plot-size controls, and the script every page loads first.

The browser behaviour (dark mode, kiosk, phone layout, search) is in
tests/browser/test_web_browser_comfort.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processing.slices.result import legend_labels
from tests.jsroot_node import run_jsroot
from tests.unit.test_web_support import add_user, login, make_app
from tests.unit.web_plugin_data import build_evaluated_run
from webapp import users


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("comfort")
    app, db = make_app(tmp_path)
    add_user(db)
    build_evaluated_run(Path(app.extensions["overwatch"].data_dir), db, subsystems=("EMC",))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    browser = app.test_client()
    login(browser, "alice")
    return client, browser


def test_legend_labels_keep_what_tells_members_apart() -> None:
    assert legend_labels(["EMCal/SM00/cellAmplitude", "EMCal/SM01/cellAmplitude"]) == [
        "SM00",
        "SM01",
    ]
    assert legend_labels(["a/x", "b/y/z"]) == ["a/x", "b/y/z"]
    assert legend_labels(["same", "same"]) == ["same", "same"]  # nothing differs: whole path


@pytest.mark.parametrize("slice_name", ["cumulative", "latest"])
def test_a_stack_of_twelve_lines_has_a_legend_jsroot_draws(site, slice_name: str) -> None:
    client, _browser = site
    response = client.get(f"/api/runs/1/EMC/stacks/EMCal/EMCalCellAmplitude?slice={slice_name}")
    assert response.status_code == 200
    stack = response.get_json()
    members = stack["fHists"]["arr"]
    assert len(members) == 12  # SM00..SM11
    functions = members[-1]["fFunctions"]["arr"]
    (legend,) = [f for f in functions if f["_typename"] == "TLegend"]
    entries = legend["fPrimitives"]["arr"]
    labels = [e["fLabel"] for e in entries]
    assert labels == [f"SM{sm:02d}" for sm in range(12)]
    assert [e["fLineColor"] for e in entries] == [m["fLineColor"] for m in members]
    assert legend["fNColumns"] == 2
    for option in (stack["fOption"], ""):  # as served (nostack) and stacked
        (drawn,) = run_jsroot([("stack", response.data, option)])
        assert drawn["error"] is None and drawn["has_svg"], drawn["error"]
        assert [t for t in drawn["svg_texts"] if t in labels] == labels, option


def test_a_stack_of_one_histogram_needs_no_legend() -> None:
    from processing.slices.result import stack_legend

    legend = stack_legend([{"fLineColor": 2}], ("only/one",), "l")
    assert legend["fPrimitives"]["arr"][0]["fLabel"] == "only/one"  # helper still works


def test_run_page_has_finder_and_plot_size(site) -> None:
    _client, browser = site
    text = browser.get("/runs/1/EMC?q=SM03%20cell").get_data(as_text=True)
    assert 'data-ow-search autocomplete="off"' in text
    assert 'name="q" value="SM03 cell"' in text  # the finder survives reloads
    for size in ("small", "medium", "large"):
        assert f'data-ow-plot-size="{size}"' in text
    assert '<script src="/static/comfort.js"></script>' in text
    head, _body = text.split("</head>")
    assert head.index("comfort.js") < head.index("overwatch.css")  # before the first paint
    assert "data-ow-theme-toggle" in text


def test_comfort_script_is_served(site) -> None:
    _client, browser = site
    response = browser.get("/static/comfort.js")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for needle in ("prefers-color-scheme", "ow:theme", "sessionStorage", "kiosk"):
        assert needle in body

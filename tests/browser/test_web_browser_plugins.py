"""A shifter meets plugins, qualities, alarms and trends in headless Chromium (real server, ZEO).

The run comes from the detector simulator with a hot cell in EMC SM03 and a dead
corner in SM05, processed with the checks of config/checks.yaml (see
``tests/unit/web_plugin_data.py``). The run list and run page show quality badges;
the SM03 cell map shows the plugin's hot-cell lines and a marker drawn over the
JSROOT plot; the alarms page lists both alarms and acknowledging one works without
a reload and is stored; the trending page draws the selected trend as a graph.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from overwatch.store.db import open_db
from tests.browser.test_web_browser import ALL_DRAWN
from tests.unit.test_web_support import (
    BIN,
    PASSWORD,
    Site,
    _port_open,
    add_user,
    free_port,
    http_ok,
    stop_process,
    users,
    wait_until,
)
from tests.unit.web_plugin_data import HOT_MAP, build_evaluated_run

pytestmark = pytest.mark.browser

#: The cell map's drawing has its annotation's decorations added to the JSROOT pad.
DECORATED = """() => {
  const div = [...document.querySelectorAll('.ow-drawing')].find(d => d.dataset.src.includes('SM03/cellHits'));
  return div && div.dataset.decorated === '1' && div.querySelector('svg') !== null;
}"""
#: JSROOT draws a red (ROOT colour 2) TMarker as a path stroked red; nothing else is red.
RED_PATHS = """(div) => [...div.querySelectorAll('path')].filter(p =>
  /stroke:\\s*(red|rgb\\(255,\\s*0,\\s*0\\))/.test(p.getAttribute('style') || '')).length"""


@contextlib.contextmanager
def plugin_site(tmp_path: Path) -> Iterator[Site]:
    """The evaluated run in a FileStorage, served through ZEO by ``overwatch web``."""
    data_dir, fs_path = tmp_path / "data", tmp_path / "overwatch.fs"
    db = open_db(f"file://{fs_path}")
    try:
        build_evaluated_run(data_dir, db)
        add_user(db, "shifter")
        token = users.issue_token(db, "shifter")
    finally:
        db.close()
    zeo_port, web_port = free_port(), free_port()
    zeo = subprocess.Popen(
        [str(BIN / "runzeo"), "-a", f"127.0.0.1:{zeo_port}", "-f", str(fs_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    web = None
    log = tmp_path / "web.log"
    try:
        wait_until(lambda: _port_open(zeo_port), 60, "the ZEO server")
        uri = f"zeo://127.0.0.1:{zeo_port}"
        with log.open("wb") as stream:
            web = subprocess.Popen(
                [str(BIN / "overwatch"), "web", "--db", uri, "--data-dir", str(data_dir),
                 "--host", "127.0.0.1", "--port", str(web_port), "--workers", "1"],
                cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: web.poll() is not None or http_ok(url + "/healthz"), 60, "the web app")
        assert web.poll() is None, log.read_text()
        yield Site(url, token, PASSWORD, data_dir, uri, web, log)
    finally:
        if web is not None:
            stop_process(web)
        stop_process(zeo)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with plugin_site(tmp_path_factory.mktemp("plugin-site")) as running:
        yield running


def api(site: Site, path: str) -> dict:
    request = urllib.request.Request(
        site.url + path, headers={"Authorization": f"Bearer {site.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_qualities_annotations_alarms_and_trends(site, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(60_000)

    page.goto(site.url + "/runs")
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
    # Run list: one badge per subsystem, colour-coded by quality (EMC is Bad).
    badges = page.eval_on_selector_all(
        ".ow-runs .ow-q", "els => els.map(e => [e.dataset.quality, getComputedStyle(e).color])"
    )
    assert sorted(q for q, _ in badges) == ["Bad", "Good", "Good"]
    colours = dict(badges)
    assert colours["Bad"] != colours["Good"]
    page.evaluate("window.__sameDocument = true")

    # Run page, EMC group SM03: badges, the hot-cell lines, and the marker over the map.
    page.click("a.ow-run-link")
    page.wait_for_url("**/runs/1/EMC**")
    assert page.get_attribute(".ow-plugin-bar .ow-q", "data-quality") == "Bad"
    page.click(".ow-groups a:has-text('SM03')")
    page.wait_for_url("**group=SM03**")
    page.wait_for_function(ALL_DRAWN)
    page.wait_for_function(DECORATED)
    assert page.get_attribute(".ow-groups a.ow-current .ow-q", "data-quality") == "Bad"
    figure = page.locator("figure", has=page.locator(f"a:text-is('{HOT_MAP}')"))
    info = figure.locator(".ow-annotation-info").inner_text()
    assert "1 hot cell(s)" in info and "hot: column 10, row 5" in info
    drawing = figure.locator(".ow-drawing")
    assert drawing.get_attribute("data-opt") == "colz;logz;nostat"  # the plugin's, no stat box
    assert drawing.evaluate(RED_PATHS) >= 1
    shot = tmp_path / "hot-cell.png"
    drawing.screenshot(path=str(shot))
    assert page.evaluate("window.__sameDocument") is True

    # Alarms: both listed; acknowledging one updates the row in place and is stored.
    page.click(".ow-nav a[data-section=alarms]")
    page.wait_for_url("**/alarms")
    rows = page.locator("tr.ow-alarm")
    assert rows.count() == 2
    hot = page.locator("tr.ow-alarm", has=page.locator(f"code:text-is('{HOT_MAP}')"))
    assert hot.locator(".ow-q").get_attribute("data-quality") == "Bad"
    hot.locator("button:has-text('Acknowledge')").click()
    hot.locator(".ow-acked").wait_for()
    assert "shifter" in hot.locator(".ow-acked").inner_text()
    assert page.evaluate("window.__sameDocument") is True
    stored = {a["histogram"]: a for a in api(site, "/api/alarms")["alarms"]}
    assert stored[HOT_MAP]["acknowledged_by"] == "shifter"
    assert stored["EMCal/SM05/cellHits"]["acknowledged_by"] is None
    page.goto(site.url + "/alarms?acknowledged=0")
    assert page.locator("tr.ow-alarm").count() == 1

    # Trending: pick the hot-cell count in the list, draw it; the selection is in the URL.
    page.goto(site.url + "/runs/1/EMC/trends")
    page.fill(".ow-trend-filter", "SM03 hot_cells")
    assert page.locator(".ow-trend-group:not([hidden])").count() == 1
    page.check(f"input[value='{HOT_MAP}:hot_cells']")
    page.click("button:has-text('Draw selected')")
    page.wait_for_url("**trend=**")
    page.wait_for_function(ALL_DRAWN)
    graph = page.locator(".ow-trend .ow-drawing")
    assert graph.count() == 1
    assert graph.locator("svg").count() >= 1
    assert "trends/EMCal/SM03/cellHits?name=hot_cells" in graph.get_attribute("data-drawn-src")
    assert "hot_cells" in page.locator(".ow-trend figcaption").inner_text()

    assert errors == []
    page.close()

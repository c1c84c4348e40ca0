"""A wall-screen layout written by the test, in headless Chromium against a real server.

The layouts folder is a temporary one, given to ``overwatch web`` through the
environment (``OVERWATCH_WEB__LAYOUTS_DIR``, inherited by the server process).
Sign in, open the list of layouts, follow the test's layout (without a page
reload), and wait until every plot area holds an SVG that JSROOT drew from its
JSON; the first tab cycles to the next by itself, ``?cycle=0`` stops it; a
broken file shows its error while the other layout still draws.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_web_browser import ALL_DRAWN
from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.browser

BOARD = """\
name: Wall board
description: written by the browser test
tabs:
  - name: Main
    columns: 2
    cycle_seconds: 3
  - name: Trigger
    columns: 1
items:
  - subsystem: EMC
    histogram: "EMCal/SM0[0-2]/cellHits"
    draw_option: colz
  - subsystem: EMC
    histogram: EMCal/EMCalCellAmplitude
    title: EMCal stack
  - subsystem: TPC
    histogram: TPC/trackPt
    draw_option: logy
  - subsystem: HLT
    histogram: HLT/eventSize
  - subsystem: HLT
    histogram: HLT/triggerClasses
    tab: Trigger
"""
BROKEN = "name: Broken\ntabs:\n  - name: Main\n    columns: 2\nitems:\n  - subsystem: EMC\n    histgram: x\n"
#: Every plot area holds an SVG with drawn shapes (not an empty frame or an error text).
ALL_PLOTS_DRAWN = """() => {
  const divs = [...document.querySelectorAll('#ow-page .ow-drawing')];
  return divs.length > 0 && divs.every(d => {
    const svg = d.querySelector('svg');
    return svg && d.dataset.drawnSrc === d.dataset.src && !d.classList.contains('ow-drawing-error')
      && svg.querySelectorAll('path').length > 2 && svg.getBoundingClientRect().height > 100;
  });
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("layouts-site")
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    (layouts / "wall.yaml").write_text(BOARD, encoding="utf-8")
    (layouts / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OVERWATCH_WEB__LAYOUTS_DIR", str(layouts))
        with running_site(tmp_path, workers=1) as running:
            yield running, layouts


def plots(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#ow-page .ow-drawing",
        "divs => divs.map(d => ({path: d.dataset.path, run: d.dataset.run, "
        "subsystem: d.dataset.subsystem}))",
    )


def test_a_layout_written_by_the_test_draws_every_plot(site, browser, tmp_path: Path) -> None:
    running, layouts = site
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(60_000)

    page.goto(running.url + "/layouts")
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", running.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/layouts")
    assert "written by the browser test" in page.inner_text(".ow-layouts")
    assert "broken.yaml:7: items[0].histgram: unknown key" in page.inner_text(".ow-layouts")

    # Follow the link (a full load, which loads layouts.js): the Main tab cycles to the
    # next one by itself after 3 s, without a reload.
    page.click("a[href='/layouts/wall']")
    page.wait_for_url("**/layouts/wall")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_url("**/layouts/wall?tab=Trigger**", timeout=20_000)
    page.wait_for_function(ALL_PLOTS_DRAWN)
    assert plots(page) == [{"path": "HLT/triggerClasses", "run": "1", "subsystem": "HLT"}]
    assert page.evaluate("window.__sameDocument") is True

    # The Main tab with ?cycle=0 (no cycling): every item drawn, two columns.
    page.click("a[data-tab=Main]")
    page.wait_for_url("**/layouts/wall?tab=Main")
    page.goto(running.url + "/layouts/wall?tab=Main&cycle=0")
    page.wait_for_function(ALL_DRAWN)
    page.wait_for_function(ALL_PLOTS_DRAWN)
    assert plots(page) == [
        *[{"path": f"EMCal/SM0{sm}/cellHits", "run": "1", "subsystem": "EMC"} for sm in range(3)],
        {"path": "EMCal/EMCalCellAmplitude", "run": "1", "subsystem": "EMC"},
        {"path": "TPC/trackPt", "run": "1", "subsystem": "TPC"},
        {"path": "HLT/eventSize", "run": "1", "subsystem": "HLT"},
    ]
    # Item options merge with the plugin's (JSROOT's frame state): track pT's "logy" keeps
    # the plugin's log x, the maps' "colz" keeps their log z and palette.
    state = page.evaluate(
        """async () => {
      const J = await import(document.body.dataset.jsroot);
      const out = {};
      for (const div of document.querySelectorAll('#ow-page .ow-drawing')) {
        const main = J.getElementMainPainter(div);
        const fp = main.getFramePainter();
        out[div.dataset.path] = { logx: Boolean(fp.logx), logy: Boolean(fp.logy),
          logz: Boolean(J.getElementCanvPainter(div).getRootPad().fLogz),
          palette: Boolean(J.getElementCanvPainter(div).findPainterFor(null, '', 'TPaletteAxis')) };
      }
      return out;
    }"""
    )
    assert state["TPC/trackPt"] == {"logx": True, "logy": True, "logz": False, "palette": False}
    assert state["EMCal/SM01/cellHits"]["logz"] and state["EMCal/SM01/cellHits"]["palette"]
    assert page.locator("[data-option-error]").count() == 0
    boxes = [page.locator("#ow-page .ow-layout-item").nth(i).bounding_box() for i in range(3)]
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"]
    assert boxes[2]["y"] > boxes[0]["y"] + 100
    assert page.get_attribute("#ow-page", "data-live-subsystems") == "EMC HLT TPC"
    assert page.get_attribute("#ow-page", "data-live-run") == "1"
    shot = tmp_path / "layout.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    page.wait_for_timeout(4500)  # longer than cycle_seconds: still on Main
    assert page.url.endswith("/layouts/wall?tab=Main&cycle=0")

    # A broken file shows its error; the other layout still draws.
    page.goto(running.url + "/layouts/broken")
    assert "broken.yaml:7: items[0].histgram: unknown key" in page.inner_text(".ow-layout-error")
    assert page.locator(".ow-drawing").count() == 0
    page.goto(running.url + "/layouts/wall?tab=Trigger")
    page.wait_for_function(ALL_PLOTS_DRAWN)
    assert len(plots(page)) == 1

    assert errors == []
    page.close()

"""A shifter's session in headless Chromium against a real ``overwatch web`` server.

Sign in, open a run, wait for JSROOT to draw every histogram, switch to the
latest time slice (without a page reload), follow a histogram link, go back,
and keep a screenshot. Chromium is Debian's (``make system-deps``); playwright
drives it and never downloads a browser of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.browser

#: Every drawing div holds an SVG drawn from the JSON its data-src names.
ALL_DRAWN = """() => {
  const divs = [...document.querySelectorAll('.ow-drawing')];
  return divs.length > 0 && divs.every(d => d.querySelector('svg') && d.dataset.drawnSrc === d.dataset.src);
}"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("site")) as running:
        yield running


def drawings(page) -> list[dict]:
    return page.eval_on_selector_all(
        ".ow-drawing",
        "divs => divs.map(d => ({src: d.dataset.src, drawn: d.dataset.drawnSrc, "
        "svg: d.querySelector('svg') ? d.querySelector('svg').outerHTML : ''}))",
    )


def test_shifter_session(site, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(60_000)

    # Signing in: any page leads to the form, which leads back to the run list.
    page.goto(site.url + "/runs")
    assert "/login" in page.url
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
    assert page.inner_text(".ow-runs tbody tr td:first-child") == "1"
    assert "ongoing" in page.inner_text(".ow-runs tbody").lower()

    # Mark the document: a full page load would lose the mark.
    page.evaluate("window.__sameDocument = true")

    # Run page, HLT subsystem: every histogram of the first group drawn by JSROOT.
    page.click("a.ow-run-link")
    page.wait_for_url("**/runs/1/EMC**")
    page.click(".ow-tabs a:text-is('HLT')")
    page.wait_for_url("**/runs/1/HLT**")
    page.wait_for_function(ALL_DRAWN)
    cumulative = drawings(page)
    # The HLT plugin's "Triggers": the classes and their counts per event. The whole run has
    # no known duration (the time before the first snapshot is unknown), so no rate.
    assert len(cumulative) == 2
    assert all("slice=cumulative" in d["src"] for d in cumulative)
    assert page.evaluate("window.__sameDocument") is True

    # The latest time slice: URL says so, every drawing is redrawn with other content,
    # and it has a duration, so the trigger-class rate is derived too.
    page.click("a[data-slice=latest]")
    page.wait_for_url("**slice=latest**")
    page.wait_for_function(ALL_DRAWN)
    latest = drawings(page)
    assert len(latest) == 3
    assert all("slice=latest" in d["src"] and d["drawn"] == d["src"] for d in latest)
    before = {d["src"].split("?")[0]: d["svg"] for d in cumulative}
    after = {d["src"].split("?")[0]: d["svg"] for d in latest}
    assert set(before) < set(after)
    assert all(after[path] != svg for path, svg in before.items())
    assert page.evaluate("window.__sameDocument") is True

    shot = tmp_path / "run-latest.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000

    # One histogram on its own page, then back: the URL restores the latest-slice view.
    page.click(".ow-figure figcaption a >> nth=0")
    page.wait_for_url("**/hist/**")
    assert "slice=latest" in page.url
    page.wait_for_function(ALL_DRAWN)
    assert page.locator(".ow-drawing.ow-large svg").count() >= 1
    page.go_back()
    page.wait_for_url("**/runs/1/HLT?**slice=latest**")
    page.wait_for_function(ALL_DRAWN)
    assert page.evaluate("window.__sameDocument") is True

    # A deep link reproduces the view in a fresh tab.
    other = browser.new_page(viewport={"width": 1000, "height": 800})
    other.context.add_cookies(page.context.cookies())
    other.goto(site.url + "/runs/1/TPC?group=Events&slice=latest")
    other.wait_for_function(ALL_DRAWN)
    assert [d["src"] for d in drawings(other)] == ["/api/runs/1/TPC/histograms/events?slice=latest"]
    other.close()

    # The status page through the navigation bar.
    page.click(".ow-nav a[data-section=status]")
    page.wait_for_url("**/status")
    assert "Database" in page.inner_text("#ow-page")
    assert page.evaluate("window.__sameDocument") is True

    assert errors == []
    page.close()

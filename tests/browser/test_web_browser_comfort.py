"""Control-room comfort in headless Chromium against a real ``overwatch web`` server.

Screenshots at 3840x2160 in kiosk mode, in dark mode (the system's and the header
toggle's) and on a 390x844 phone. Each asserts no horizontal overflow
(``scrollWidth <= innerWidth``) and that every drawing holds JSROOT's SVG; kiosk asserts
the drawings fill the screen, dark mode that JSROOT's frame is dark on screen (pixels of
the screenshot, not a style read back). Also: the overview's pies lead to the run page
filtered by quality, the finder, the plot size and the legend of a 12-line stack.

The site is the evaluated run of ``web_plugin_data`` (checks and faults: EMC has Bad
histograms), served through ZEO, as in test_web_browser_plugins.py.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.conftest import sign_in
from tests.browser.test_web_browser import ALL_DRAWN, PNG_SIGNATURE
from tests.browser.test_web_browser_plugins import plugin_site

pytestmark = pytest.mark.browser

NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"
#: Every drawing shown holds an SVG with drawn content (JSROOT's frame and more).
DRAWN_CONTENT = """() => [...document.querySelectorAll('.ow-drawing')]
  .filter(d => d.offsetParent !== null)
  .every(d => { const svg = d.querySelector('svg'); return svg && svg.querySelectorAll('path, text').length > 3; })"""
#: Box of the first drawing's JSROOT frame (the plot area inside the axes), in page pixels.
FRAME_BOX = """() => { const f = document.querySelector('.ow-drawing .root_frame');
  if (!f) return null; const r = f.getBoundingClientRect();
  return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; }"""

#: A point inside a pie slice (path "M0,0 L... A... Z"), in viewport pixels.
MID_SLICE = """(path) => {
  const radius = Number(path.getAttribute('d').match(/A([\\d.]+),/)[1]);
  const total = path.getTotalLength();  // radius out, the arc, radius back
  const mid = path.getPointAtLength(radius + (total - 2 * radius) / 2);
  const p = path.ownerSVGElement.createSVGPoint();
  p.x = mid.x * 0.8; p.y = mid.y * 0.8;  // the pie is centred at (0, 0)
  const screen = p.matrixTransform(path.getScreenCTM());
  return {x: screen.x, y: screen.y}; }"""

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with plugin_site(tmp_path_factory.mktemp("comfort-site")) as running:
        yield running


def signed_in(browser, site, **context_args):
    """A fresh context (own storage) signed in as the shifter; returns (context, page, errors)."""
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    sign_in(page, site)
    return context, page, errors


def shoot(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def settled(page) -> None:
    """Every drawing drawn, and JSROOT's resizes (debounced in the scripts) done."""
    page.wait_for_function(ALL_DRAWN)
    page.wait_for_timeout(600)
    page.wait_for_function(DRAWN_CONTENT)


# --------------------------------------------------------------------------- pixels


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels) of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data.startswith(PNG_SIGNATURE)
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, *_ = header
    assert depth == 8 and color in (2, 6), header
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous, offset = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        previous = line
    pixels = [tuple(row[i : i + 3]) for row in rows for i in range(0, stride, channels)]
    return width, height, pixels


def frame_luminance(page) -> float:
    """Median luminance (0-255) of the first drawing's plot area as it is on screen."""
    box = page.evaluate(FRAME_BOX)
    assert box and box["width"] > 50 and box["height"] > 50, box
    inset = {  # inside the axes, clear of their lines
        "x": box["x"] + 4,
        "y": box["y"] + 4,
        "width": box["width"] - 8,
        "height": box["height"] - 8,
    }
    _w, _h, pixels = png_pixels(page.screenshot(clip=inset, full_page=True))
    values = sorted(0.299 * r + 0.587 * g + 0.114 * b for r, g, b in pixels)
    return values[len(values) // 2]


# --------------------------------------------------------------------------- tests


def test_kiosk_fills_a_4k_screen_and_is_kept(site, browser, tmp_path: Path) -> None:
    context, page, errors = signed_in(browser, site, viewport={"width": 3840, "height": 2160})
    page.goto(site.url + "/runs/1/EMC?kiosk=1")
    settled(page)
    assert page.evaluate("document.documentElement.classList.contains('ow-kiosk')")
    assert not page.is_visible(".ow-top") and not page.is_visible(".ow-groups")
    assert page.evaluate(NO_OVERFLOW)
    shoot(page, tmp_path / "kiosk-4k.png")
    boxes = page.eval_on_selector_all(
        ".ow-drawing",
        "ds => ds.map(d => { const r = d.getBoundingClientRect(); "
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })",
    )
    assert boxes
    left, right = min(b["left"] for b in boxes), max(b["right"] for b in boxes)
    assert right - left >= 0.9 * 3840  # across the screen, no 1800 px cap
    area = sum((b["right"] - b["left"]) * (b["bottom"] - b["top"]) for b in boxes)
    assert area >= 0.5 * 3840 * 2160, area / (3840 * 2160)
    # Every JSROOT canvas follows its (large) element.
    widths = page.eval_on_selector_all(
        ".ow-drawing",
        "ds => ds.map(d => [d.clientWidth, d.querySelector('svg').getBoundingClientRect().width])",
    )
    assert all(abs(div - svg) < 4 for div, svg in widths), widths

    # Kept across navigation: a link without the parameter, and a new page load.
    page.click(".ow-figure figcaption a >> nth=0")
    page.wait_for_url("**/hist/**")
    settled(page)
    assert "kiosk" not in page.url and not page.is_visible(".ow-top")
    big = page.eval_on_selector(".ow-drawing.ow-large", "d => d.getBoundingClientRect().height")
    assert big >= 0.85 * 2160
    page.goto(site.url + "/runs/1/TPC")
    settled(page)
    assert not page.is_visible(".ow-top") and page.evaluate(NO_OVERFLOW)
    page.goto(site.url + "/runs/1/TPC?kiosk=0")  # leaves it
    assert page.is_visible(".ow-top")
    assert errors == []
    context.close()


def test_dark_mode_follows_the_system_and_the_toggle(site, browser, tmp_path: Path) -> None:
    # The system asks for dark: pages and JSROOT's canvases are dark without any choice.
    context, page, errors = signed_in(
        browser, site, viewport={"width": 1400, "height": 1000}, color_scheme="dark"
    )
    page.goto(site.url + "/runs/1/HLT")
    settled(page)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background in ("rgb(14, 19, 25)", "rgba(0, 0, 0, 0)"), background
    page_bg = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert page_bg == "rgb(14, 19, 25)"
    assert frame_luminance(page) < 60
    assert page.evaluate(NO_OVERFLOW)
    shoot(page, tmp_path / "dark-system.png")
    context.close()

    # A light system, then the toggle: redrawn dark in place, remembered across reloads.
    context, page, more = signed_in(
        browser, site, viewport={"width": 1400, "height": 1000}, color_scheme="light"
    )
    errors += more
    page.goto(site.url + "/runs/1/HLT")
    settled(page)
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert frame_luminance(page) > 200
    page.click("[data-ow-theme-toggle]")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.wait_for_timeout(300)
    assert frame_luminance(page) < 60  # the drawn canvas, without redrawing the page
    page.reload()
    settled(page)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert frame_luminance(page) < 60
    assert page.evaluate(NO_OVERFLOW)
    shoot(page, tmp_path / "dark-toggle.png")
    page.click("[data-ow-theme-toggle]")  # back to the system's: the choice is forgotten
    assert page.evaluate("localStorage.getItem('overwatch.theme')") is None
    assert errors == []
    context.close()


@pytest.mark.parametrize("path", ["/runs", "/runs/1/EMC", "/overview", "/status", "/alarms"])
def test_phone_has_no_horizontal_overflow(site, browser, tmp_path: Path, path: str) -> None:
    context, page, errors = signed_in(
        browser, site, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page.goto(site.url + path)
    if page.locator(".ow-drawing").count():
        settled(page)
    page.wait_for_timeout(300)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    sign_out = page.locator("button:text-is('Sign out')")
    box = sign_out.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    shoot(page, tmp_path / f"phone{path.replace('/', '-')}.png")
    assert errors == []
    context.close()


def test_overview_pies_lead_to_the_filtered_run_page(site, browser) -> None:
    context, page, errors = signed_in(browser, site, viewport={"width": 1400, "height": 1000})
    page.click(".ow-nav a[data-section=overview]")
    page.wait_for_url("**/overview")
    assert page.get_attribute("#ow-page", "data-live-overview") == "1"
    cells = page.locator("td.ow-overview-cell:not(.ow-overview-empty)")
    assert cells.count() == 3  # run 1: EMC, HLT, TPC
    assert page.locator("svg.ow-pie path, svg.ow-pie circle").count() >= 4
    bad = page.locator("td[data-subsystem=EMC] a.ow-pie-link[data-quality=Bad]")
    expected = int(page.get_attribute("td[data-subsystem=EMC]", "data-bad"))
    assert expected >= 2
    assert "Bad: " in bad.locator("title").text_content()  # the tooltip
    # Click inside the (thin) Bad slice: 80 % of the radius out, in the middle of its arc.
    point = bad.locator("path").evaluate(MID_SLICE)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/runs/1/EMC?**quality=Bad**")
    query = parse_qs(urlparse(page.url).query)
    assert query["quality"] == ["Bad"] and query["slice"] == ["latest"]
    settled(page)
    assert "Only histograms of quality" in page.inner_text(".ow-filter-note")
    badges = page.eval_on_selector_all(
        ".ow-figure figcaption .ow-q", "bs => bs.map(b => b.dataset.quality)"
    )
    assert badges == ["Bad"] * expected
    page.click("[data-ow-clear-quality]")
    page.wait_for_function("() => !location.search.includes('quality')")
    assert page.locator(".ow-filter-note").count() == 0
    assert errors == []
    context.close()


def test_finder_plot_size_and_stack_legend(site, browser, tmp_path: Path) -> None:
    context, page, errors = signed_in(browser, site, viewport={"width": 1600, "height": 1000})
    page.goto(site.url + "/runs/1/EMC?group=Overview")
    settled(page)
    # The 12-line stack has a legend naming each supermodule.
    texts = page.eval_on_selector_all(
        ".ow-drawing[data-src*='EMCalCellAmplitude'] svg text", "ts => ts.map(t => t.textContent)"
    )
    assert [f"SM{sm:02d}" for sm in range(12)] == [t for t in texts if t.startswith("SM")]
    shoot(page, tmp_path / "stack-legend.png")

    # Finder: instant, in the URL, kept on reload.
    total = page.locator(".ow-figure").count()
    assert total >= 3
    page.fill("[data-ow-search]", "DCal")
    assert page.locator(".ow-figure:visible").count() == 1
    assert "q=DCal" in page.url
    assert "1 of" in page.inner_text(".ow-search-note")
    page.reload()
    settled(page)
    assert page.locator(".ow-figure:visible").count() == 1
    page.fill("[data-ow-search]", "")
    assert page.locator(".ow-figure:visible").count() == total and "q=" not in page.url
    page.wait_for_timeout(500)
    page.wait_for_function(DRAWN_CONTENT)

    # Plot size: large drawings, remembered.
    medium = page.eval_on_selector(".ow-grid .ow-drawing", "d => d.clientHeight")
    page.click("[data-ow-plot-size=large]")
    large = page.eval_on_selector(".ow-grid .ow-drawing", "d => d.clientHeight")
    assert large > medium
    page.reload()
    settled(page)
    assert page.eval_on_selector(".ow-grid .ow-drawing", "d => d.clientHeight") == large
    assert page.get_attribute("[data-ow-plot-size=large]", "aria-pressed") == "true"
    assert errors == []
    context.close()

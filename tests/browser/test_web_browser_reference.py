"""An expert compares a run with a reference run in headless Chromium (real server, real ZEO).

The data run has a hot EMC cell in SM03 (see test_compare_online.build_reference_runs).
Open the run page with ``ref=`` and ``sort=worst``: the summary lists the failing
histogram first, the figures are reordered worst first with status badges, and every
figure holds a JSROOT overlay (data and scaled reference) and a ratio pad. Changing group
keeps the reference in the URL; the selector form turns the comparison off.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from overwatch.store.db import open_db
from tests.browser.test_web_browser import ALL_DRAWN
from tests.unit.test_compare_online import DATA, HOT_PATH, REFERENCE, build_reference_runs
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

pytestmark = pytest.mark.browser

#: Every overlay of the page has both pads drawn by JSROOT.
ALL_OVERLAYS_DRAWN = """() => {
  const page = document.getElementById('ow-page');
  const divs = [...document.querySelectorAll('.ow-overlay')];
  return page.dataset.referenceDrawn === 'done' && divs.length > 0 && divs.every(d =>
    d.querySelector('.ow-overlay-main svg') && d.querySelector('.ow-overlay-ratio svg'));
}"""


@contextlib.contextmanager
def reference_site(tmp_path: Path) -> Iterator[Site]:
    """The reference runs processed into a FileStorage, served through ZEO by ``overwatch web``."""
    data_dir, fs_path = tmp_path / "data", tmp_path / "overwatch.fs"
    db = open_db(f"file://{fs_path}")
    try:
        build_reference_runs(data_dir, db)
        add_user(db, "expert")
        token = users.issue_token(db, "expert")
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
    with reference_site(tmp_path_factory.mktemp("reference-site")) as running:
        yield running


def figure_paths(page) -> list[str]:
    """Paths of the figures drawn as overlays, in page order."""
    return page.eval_on_selector_all(
        ".ow-grid .ow-overlay", "divs => divs.map(d => d.dataset.path)"
    )


def click_group(page, name: str) -> None:
    """Follow the group link of ``name`` (groups come from the detector plugin)."""
    index = page.eval_on_selector_all(
        ".ow-groups a",
        "(links, name) => links.findIndex(a => new URL(a.href).searchParams.get('group') === name)",
        name,
    )
    assert index >= 0, f"no link to group {name!r}"
    page.locator(".ow-groups a").nth(index).click()


def test_expert_compares_with_a_reference_run(site, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(90_000)

    page.goto(f"{site.url}/runs")
    page.fill("input[name=username]", "expert")
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
    listing = page.request.get(f"{site.url}/api/runs/{DATA}/EMC/histograms").json()
    groups = {g["name"]: g["histograms"] for g in listing["groups"]}
    worst = page.request.get(
        f"{site.url}/api/runs/{DATA}/EMC/compare?ref={REFERENCE}&sort=worst"
    ).json()["results"]
    rank = {r["path"]: i for i, r in enumerate(worst)}
    hot_group = next(name for name, paths in groups.items() if HOT_PATH in paths)

    page.goto(f"{site.url}/runs/{DATA}/EMC?group={quote(hot_group)}&ref={REFERENCE}&sort=worst")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_function(ALL_OVERLAYS_DRAWN)

    # Worst first: the summary table and the figures both start with the hot cell's histogram.
    first_row = page.locator(".ow-reference-table tbody tr").first
    assert first_row.get_attribute("data-path") == HOT_PATH
    assert first_row.locator(".ow-cmp").inner_text().lower() == "fail"
    assert page.locator(".ow-reference-table tbody tr").count() == 49
    shown = figure_paths(page)
    assert shown[0] == HOT_PATH
    assert shown == sorted((p for p in groups[hot_group] if p in rank), key=rank.get)
    first = page.locator(".ow-grid .ow-figure").first
    assert first.locator("figcaption .ow-cmp-fail").count() == 1
    assert page.locator(".ow-grid figcaption .ow-cmp-fail").count() == 1
    counts = page.inner_text("[data-counts]").lower()
    assert "1 fail" in counts and "45 success" in counts and "2 skipped" in counts
    page.screenshot(path=str(tmp_path / "reference.png"), full_page=False)

    # Another group through its link: the reference stays in the URL, no page reload, and the
    # figures follow the comparison's order (worst first, lowest p-value first).
    one_d = "EMCal/clusterEnergy"
    other_group = next(name for name, paths in groups.items() if one_d in paths)
    click_group(page, other_group)
    page.wait_for_url(f"**group={quote(other_group)}**")
    assert f"ref={REFERENCE}" in page.url and "sort=worst" in page.url
    page.wait_for_function(ALL_OVERLAYS_DRAWN)
    assert figure_paths(page) == sorted((p for p in groups[other_group] if p in rank), key=rank.get)
    assert page.evaluate("window.__sameDocument") is True

    # A 1D overlay: data and the scaled reference (red) in the main pad, the ratio below.
    overlay = page.locator(f'.ow-overlay[data-path="{one_d}"]')
    main_svg = overlay.locator(".ow-overlay-main svg").first.evaluate("s => s.outerHTML")
    assert "rgb(255,0,0)" in main_svg.replace(" ", "")  # ROOT colour 632, the reference
    ratio_svg = overlay.locator(".ow-overlay-ratio svg").first.evaluate("s => s.outerHTML")
    assert "data / ref" in ratio_svg
    heights = overlay.evaluate(
        "d => [d.querySelector('.ow-overlay-main').offsetHeight, "
        "d.querySelector('.ow-overlay-ratio').offsetHeight]"
    )
    assert heights[0] > heights[1] > 50

    # The selector turns the comparison off: plain drawings come back.
    page.fill(".ow-reference-form input[name=ref]", "none")
    page.click(".ow-reference-form button[type=submit]")
    page.wait_for_url("**ref=none**")
    page.wait_for_function(ALL_DRAWN)
    assert not page.locator(".ow-overlay").count()
    assert page.locator(".ow-drawing").count() == len(groups[other_group])
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
    page.close()

"""An expert asks for a time slice in headless Chromium, against a real ``overwatch web``.

Open a run page, fill the slice form (interval and a plugin option), get the
errors next to the fields for a bad interval, then a good request: the page
moves to the slice's permalink without a reload and JSROOT draws every
histogram of the slice, by id. The permalink opened in a fresh tab shows the
same slice; a moving-window preset gives a page that says it follows new
snapshots.
"""

from __future__ import annotations

import re
import shutil

import pytest

from overwatch import timestamps
from overwatch.store.db import open_db
from processing.pipeline import Pipeline
from tests.browser.test_web_browser import ALL_DRAWN, drawings
from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.browser

SLICE_ID = re.compile(r"[?&]slice=[0-9a-f]{24}$")


def add_snapshot(site, subsystem: str) -> None:
    """The latest snapshot again, a minute later, processed as processing would (over ZEO)."""
    folder = site.data_dir / "Run1" / subsystem
    latest = max(folder.glob(f"{subsystem}hists.*.root"))
    instant = timestamps.parse_snapshot_filename(latest.name).instant
    target = folder / timestamps.snapshot_filename(subsystem, instant.add(minutes=1))
    shutil.copyfile(latest, target)
    db = open_db(site.db_uri)
    try:
        report = Pipeline(site.data_dir, db).run_until_idle()
        assert report.processed == 1 and not report.failed, report
    finally:
        db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("slicesite")) as running:
        yield running


def signed_in(browser, site):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(site.url + "/runs/1/EMC?group=SM00")
    page.fill("input[name=username]", "shifter")
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/1/EMC**")
    return page


def test_expert_requests_a_slice_through_the_form(site, browser) -> None:  # noqa: F811
    page = signed_in(browser, site)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.wait_for_function(ALL_DRAWN)
    page.evaluate("window.__sameDocument = true")
    page.click("#ow-slice > summary")

    # A bad request: the errors appear next to the offending fields, the page stays.
    form = page.locator("form.ow-slice-form")
    form.locator("input[name=start]").fill("2")
    form.locator("input[name=end]").fill("1")
    form.locator("input[name='options.hot_channel_threshold']").fill("5000")
    before = page.url
    form.locator("button.ow-slice-submit").click()
    start_error = form.locator(".ow-field-error[data-field=start]")
    start_error.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('.ow-field-error[data-field=start]').textContent.length > 0"
    )
    assert "must be less than end 1" in start_error.inner_text()
    option_error = form.locator(".ow-field-error[data-field='options.hot_channel_threshold']")
    assert "out of range" in option_error.inner_text()
    assert form.locator("input[name=start]").get_attribute("aria-invalid") == "true"
    assert page.url == before

    # A good one: the permalink opens in place and JSROOT draws the slice.
    form.locator("input[name=start]").fill("0.5")
    form.locator("input[name=end]").fill("2")
    form.locator("input[name='options.hot_channel_threshold']").fill("5")
    form.locator("select[name='options.scale_by_events']").select_option("true")
    form.locator("button.ow-slice-submit").click()
    page.wait_for_url(re.compile(r".*slice=\d+\.\.\d+.*hot_channel_threshold%3D5\.0.*"))
    page.wait_for_function(ALL_DRAWN)
    drawn = drawings(page)
    assert len(drawn) >= 2 and all(SLICE_ID.search(d["src"]) for d in drawn), drawn
    assert all(d["svg"].count("<path") > 2 for d in drawn)
    assert "group=SM00" in page.url and page.evaluate("window.__sameDocument") is True
    shown = page.inner_text(".ow-slice-shown")
    assert "on-demand slice" in shown and "minute 0.00 to 2.00" in shown
    assert "hot_channel_threshold=5.0" in shown and "scale_by_events=true" in shown
    assert page.locator(".ow-figure .ow-annotation-info").count() >= 1  # this slice's notes
    permalink = page.url

    # The permalink in a fresh tab: the same slice, drawn again.
    other = browser.new_page(viewport={"width": 1000, "height": 800})
    other.context.add_cookies(page.context.cookies())
    other.goto(permalink)
    other.wait_for_function(ALL_DRAWN)
    assert [d["src"] for d in drawings(other)] == [d["src"] for d in drawn]
    other.close()

    # A moving window: a preset that follows new snapshots.
    assert page.locator("form.ow-slice-form").is_visible()  # a slice page opens the form
    page.locator("form.ow-slice-form input[name=follow]").check()
    page.locator("form.ow-slice-form button[value='last:5']").click()
    page.wait_for_url(re.compile(r".*slice=last%3A5.*"))
    page.wait_for_function(ALL_DRAWN)
    assert page.locator(".ow-slice-shown[data-slice-window]").count() == 1
    assert "follows new snapshots" in page.inner_text("#ow-slice > summary")

    # A new snapshot is processed: the window moves, without a reload, and is drawn again.
    old = [d["src"] for d in drawings(page)]
    add_snapshot(site, "EMC")
    page.wait_for_function(
        "old => [...document.querySelectorAll('.ow-drawing')].every(d => !old.includes(d.dataset.src))",
        arg=old,
        timeout=60_000,
    )
    page.wait_for_function(ALL_DRAWN)
    assert all(SLICE_ID.search(d["src"]) for d in drawings(page))
    assert "minute 0.00 to 3.00" in page.inner_text(".ow-slice-interval")
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
    page.close()

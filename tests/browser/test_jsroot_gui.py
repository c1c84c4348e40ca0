"""The stock JSROOT GUI browses Overwatch from /jsroot/, in headless Chromium.

Against a real ``overwatch web`` (gunicorn over ZEO): sign in, open /jsroot/
with JSROOT's monitoring option, expand Run1 -> EMC -> cumulative -> EMCal by
clicking the tree, draw a histogram (JSROOT's painter draws it into the drawing
area and monitoring asks for it again), then expand a raw snapshot file under
``files``: JSROOT's openFile reads it over HTTP ranges (several at once) and
lists its keys, and an object read from the file is drawn too. Every request
the GUI makes under /jsroot/ is answered.
"""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import sign_in
from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.browser

DRAWN = """title => {
  const svg = document.querySelector('#onlineGUI_drawing svg');
  return Boolean(svg) && [...svg.querySelectorAll('text')].some(t => t.textContent === title);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("jsrootsite"), workers=1) as running:
        yield running


def test_the_jsroot_gui_lists_draws_monitors_and_opens_snapshot_files(site, browser) -> None:
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    answers: list[tuple[int, str, str, str]] = []  # status, method, path, Range header
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: answers.append(
        (r.status, r.request.method, r.url.removeprefix(site.url), r.request.headers.get("range", ""))
    ))  # fmt: skip
    sign_in(page, site)

    page.goto(site.url + "/jsroot/?monitoring=1000")
    page.wait_for_function("() => globalThis.OverwatchJsroot && OverwatchJsroot.painter")
    tree = page.locator(".jsroot_browser_hierarchy")

    def item(name: str):
        found = tree.locator(f"a.h_item:text-is('{name}')").first
        found.wait_for()
        return found

    assert item("Overwatch").is_visible()  # the embedded top: no first h.json request
    for name in ("Run1", "EMC", "cumulative", "EMCal"):
        item(name).click()
    for name in ("latest", "files", "HLT", "TPC", "SM00", "clusterEnergy"):
        assert item(name).is_visible()

    item("clusterEnergy").click()
    page.wait_for_function(DRAWN, arg="EMCal cluster energy")
    drawn = page.evaluate(
        "() => OverwatchJsroot.painter.isItemDisplayed('Run1/EMC/cumulative/EMCal/clusterEnergy')"
    )
    assert drawn is True
    histogram = "/jsroot/Run1/EMC/cumulative/EMCal/clusterEnergy/root.json.gz?compact=23"

    def asked_for(path: str) -> int:
        return sum(1 for _status, _method, url, _range in answers if url == path)

    deadline = time.monotonic() + 10
    while asked_for(histogram) < 2 and time.monotonic() < deadline:  # monitoring: every second
        page.wait_for_timeout(200)
    assert asked_for(histogram) >= 2

    # A raw snapshot file, opened by JSROOT's openFile over HTTP ranges.
    item("files").click()
    snapshots = tree.locator("a.h_item", has_text="EMChists.")
    snapshots.first.wait_for()
    names = snapshots.all_inner_texts()
    assert len(names) == 3 and names == sorted(names)
    snapshots.first.click()
    for key in ("EMCTrigger;1", "EMCal;1"):
        assert item(key).is_visible()
    item("EMCal;1").click()
    item("clusterEnergy;1").click()  # read from the file itself, drawn in place of the first
    page.wait_for_function(DRAWN, arg="EMCal cluster energy")
    file_url = f"/jsroot/Run1/EMC/files/{names[0]}"
    ranges = [(s, r) for s, _m, url, r in answers if url.split("?")[0] == file_url]
    assert ranges and all(status == 206 for status, _range in ranges)
    assert any("," in asked for _status, asked in ranges)  # several ranges in one request

    ours = [a for a in answers if a[2].startswith("/jsroot/")]
    assert [a for a in ours if a[0] not in (200, 206, 304)] == []
    assert {a[2].split("?")[0].rsplit("/", 1)[-1] for a in ours if a[2] != file_url} >= {
        "", "h.json", "root.json.gz"
    }  # fmt: skip
    assert errors == []
    assert time.monotonic() - started < 60

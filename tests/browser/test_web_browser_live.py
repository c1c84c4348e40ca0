"""Live pages in headless Chromium against real processes: pushed, in place, never missed.

A ZEO server, ``overwatch process`` and ``overwatch web`` (gunicorn) run as real
processes; the test writes snapshots as a receiver does (atomic rename, then a
notice), from a continuing simulator at uneven 1.1-2 s intervals. Measured from
the snapshot file appearing on disk to the page's drawing carrying that
snapshot in ``data-snapshot``: p95 <= 1.5 s over 20 snapshots on a run page and
on a histogram page, with a zoom set through JSROOT surviving the updates and
the header's snapshot count following; the same on a layout page written by
the test, and with 200 idle event streams held open besides. Then an alarm (the sender's counters
restart) shows its banner within 1.5 s of being stored and is acknowledged from
it; the web server going away shows the degraded banner and marks the page
stale, and its return clears both by themselves.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from receivers.simulator import DetectorSimulator
from tests.browser.conftest import sign_in
from tests.live_support import SUBSYSTEM, Feed, idle_streams
from tests.realtime import percentile
from tests.unit.test_web_support import BIN, running_site, stop_process, wait_until

pytestmark = pytest.mark.browser

LATENCY_TARGET = 1.5
UPDATES = 20
#: The newest data-snapshot on the page's drawings (0 before any is drawn).
NEWEST_SNAPSHOT = """() => Math.max(0, ...[...document.querySelectorAll('.ow-drawing')]
  .map(d => Number(d.dataset.snapshot || 0)))"""


#: A dashboard written by the test itself (not a shipped one).
LAYOUT = """\
name: Wall
description: TPC projections, live
tabs:
  - {name: Main, columns: 3}
items:
  - {subsystem: TPC, histogram: "TPC/trackPtEtaPhi_p?", title: Projection}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    start = float(int(time.time()) - 4)
    simulator = DetectorSimulator(subsystems=[SUBSYSTEM], start_time=start, seed=3, run=1,
                                  event_rate=200)  # fmt: skip
    layouts = folder / "layouts"
    layouts.mkdir()
    (layouts / "wall.yaml").write_text(LAYOUT)
    with running_site(
        folder, processing=True, snapshots=2, step=2.0, simulator=simulator,
        env_extra={"OVERWATCH_WEB__LAYOUTS_DIR": str(layouts)},
    ) as site:  # fmt: skip
        feed = Feed(simulator, site.data_dir, site.notify_address)
        try:
            yield site, feed
        finally:
            feed.close()


def signed_in(browser, site):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.logs = []
    page.on("console", lambda m: page.logs.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.logs.append(f"error: {e}"))
    sign_in(page, site)
    return page


def follow(page, feed: Feed, updates: int = UPDATES) -> list[float]:
    """Seconds from each new snapshot on disk to the page showing it (data-snapshot)."""
    latencies = []
    for _ in range(updates):
        stamp, written = feed.write()
        page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() >= {stamp}", polling=20)
        latencies.append(time.time() - written)
        feed.pause()
    return latencies


#: Zoom the first drawing that can be zoomed along x into the second quarter of its axis;
#: returns [its data-src, low, high].
ZOOM = """async () => {
  const J = await import(document.body.dataset.jsroot);
  for (const div of document.querySelectorAll('.ow-drawing.ow-drawn')) {
    const frame = J.getElementMainPainter(div).getFramePainter();
    const [low, high] = [frame.xmin + 0.25 * (frame.xmax - frame.xmin),
                         frame.xmin + 0.5 * (frame.xmax - frame.xmin)];
    // As a user does with the mouse (interactive): JSROOT keeps such a zoom across updates.
    if (await frame.zoom(low, high, undefined, undefined, undefined, undefined, true)) {
      return [div.dataset.src, low, high];
    }
  }
  return null;
}"""


def zoom_a_drawing(page, timeout: float = 30.0) -> list:
    """ZOOM, once a drawing that can be zoomed is drawn: the page draws one plot after
    the other, and the first drawn may be one without an x range to zoom."""
    deadline = time.monotonic() + timeout
    while (zoomed := page.evaluate(ZOOM)) is None:
        assert time.monotonic() < deadline, "no drawing on the page could be zoomed"
        time.sleep(0.2)
    return zoomed


#: [zoom_xmin, zoom_xmax] of the drawing whose data-src is given.
ZOOMED = """async (src) => {
  const J = await import(document.body.dataset.jsroot);
  const div = [...document.querySelectorAll('.ow-drawing')].find(d => d.dataset.src === src);
  const frame = J.getElementMainPainter(div).getFramePainter();
  return [frame.zoom_xmin, frame.zoom_xmax];
}"""


def test_run_page_follows_each_snapshot_in_place(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    page.goto(f"{site.url}/runs/1/{SUBSYSTEM}?slice=latest")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() > 0")
    page.evaluate("window.__sameDocument = true")
    facts = page.inner_text(".ow-facts")
    src, low, high = zoom_a_drawing(page)
    assert page.evaluate(ZOOMED, src) == pytest.approx([low, high])
    latencies = follow(page, feed)
    p95 = percentile(latencies, 0.95)
    print(f"run page: p50 {percentile(latencies, 0.5):.3f} s, p95 {p95:.3f} s")
    assert p95 <= LATENCY_TARGET, latencies
    zoomed = page.evaluate(ZOOMED, src)
    assert zoomed == pytest.approx([low, high]), "the zoom did not survive the updates"
    assert page.evaluate("window.__sameDocument") is True  # in place, no reload
    assert page.evaluate("document.body.dataset.pushes") == "on"  # polling stands by
    assert page.inner_text(".ow-facts") != facts  # the snapshot count follows


def test_layout_page_follows_each_snapshot(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    page.goto(f"{site.url}/layouts/wall?slice=latest&cycle=0")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() > 0")
    assert page.locator(".ow-drawing").count() == 3
    latencies = follow(page, feed)
    p95 = percentile(latencies, 0.95)
    print(f"layout page: p50 {percentile(latencies, 0.5):.3f} s, p95 {p95:.3f} s")
    assert p95 <= LATENCY_TARGET, latencies
    # Every item follows, not only the first.
    page.wait_for_function(
        "() => new Set([...document.querySelectorAll('.ow-drawing')]"
        ".map(d => d.dataset.snapshot)).size === 1",
        timeout=5_000,
    )


def test_histogram_page_follows_each_snapshot(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    listing = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{site.url}/api/runs/1/{SUBSYSTEM}/histograms",
                headers={"Authorization": f"Bearer {site.token}"},
            ),
            timeout=30,
        ).read()
    )
    path = next(h["path"] for h in listing["histograms"] if h["class_name"].startswith("TH1"))
    page.goto(f"{site.url}/runs/1/{SUBSYSTEM}/hist/{path}?slice=latest")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() > 0")
    latencies = follow(page, feed)
    p95 = percentile(latencies, 0.95)
    print(f"histogram page: p50 {percentile(latencies, 0.5):.3f} s, p95 {p95:.3f} s")
    assert p95 <= LATENCY_TARGET, latencies


IDLE_CLIENTS = 200


def test_updates_still_come_at_once_with_200_idle_streams(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    page.goto(f"{site.url}/runs/1/{SUBSYSTEM}?slice=latest")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() > 0")
    with idle_streams(site.url, site.token, IDLE_CLIENTS) as held:
        assert held == IDLE_CLIENTS
        latencies = follow(page, feed)
        health = api(site, "/healthz")
    p95 = percentile(latencies, 0.95)
    print(f"run page with {held} idle streams: p50 {percentile(latencies, 0.5):.3f} s, "
          f"p95 {p95:.3f} s")  # fmt: skip
    assert p95 <= LATENCY_TARGET, latencies
    assert health["status"] == "ok"  # ordinary requests are still answered


def test_an_alarm_shows_a_banner_at_once_and_is_acknowledged_from_it(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    page.goto(f"{site.url}/runs/1/{SUBSYSTEM}")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    assert page.locator("#ow-alarm-banner:visible").count() == 0
    # The moment the banner appears, taken by the page itself (the test sleeps meanwhile).
    page.evaluate(
        """() => { const watch = setInterval(() => {
          const b = document.getElementById('ow-alarm-banner');
          if (b && !b.hidden) { window.__bannerShown = Date.now() / 1000; clearInterval(watch); }
        }, 10); }"""
    )
    # The sender restarts: its counters begin again from zero (a fresh simulator).
    restarted = DetectorSimulator(subsystems=[SUBSYSTEM], start_time=feed.simulator.now, seed=9,
                                  run=1, event_rate=200)  # fmt: skip
    for _ in range(3):  # counter-reset is Bad on every slice of the next two minutes: K=2
        restarted.advance(1.5)
        feed.write(payload=restarted.payload(SUBSYSTEM))
        feed.pause()
    page.wait_for_selector("#ow-alarm-banner:visible", timeout=20_000)
    shown = page.evaluate("window.__bannerShown")
    alarms = api(site, "/api/alarms?active=1&acknowledged=0")["alarms"]
    assert [a["check"] for a in alarms] == ["counter-reset"]
    assert shown - alarms[0]["time"] <= LATENCY_TARGET, shown - alarms[0]["time"]
    assert page.title().startswith("(1) ")
    assert "counter-reset" in page.inner_text("#ow-alarm-banner")
    page.click("#ow-alarm-banner .ow-alarm-ack")
    page.wait_for_selector("#ow-alarm-banner", state="hidden")
    (acked,) = api(site, "/api/alarms?active=1")["alarms"]
    assert acked["acknowledged_by"] == "shifter"
    assert not page.title().startswith("(")


def test_a_server_going_away_is_said_and_recovered_from(live, browser) -> None:
    site, feed = live
    page = signed_in(browser, site)
    page.goto(f"{site.url}/runs/1/{SUBSYSTEM}?slice=latest")
    page.wait_for_function("() => document.body.dataset.live === 'on'")
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() > 0")
    command = site.web.args
    stop_process(site.web)
    page.wait_for_selector("#ow-degraded:visible", timeout=20_000)
    assert "Cannot reach" in page.inner_text("#ow-degraded")
    assert page.eval_on_selector("#ow-page", "p => p.classList.contains('ow-page-stale')")
    assert page.locator(".ow-drawing svg").count() > 0  # the last content stays
    with site.log.open("ab") as stream:
        site.web = subprocess.Popen(command, cwd=site.log.parent, stdout=stream,
                                    stderr=subprocess.STDOUT, env=site.env)  # fmt: skip
    wait_until(lambda: _healthy(site.url), 60, "the web server again")
    page.wait_for_selector("#ow-degraded", state="hidden", timeout=20_000)
    stamp, _ = feed.write()
    page.wait_for_function(f"() => ({NEWEST_SNAPSHOT})() >= {stamp}", timeout=20_000)
    assert not page.eval_on_selector("#ow-page", "p => p.classList.contains('ow-page-stale')")
    assert str(BIN) in command[0]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def api(site, path: str) -> dict:
    request = urllib.request.Request(
        site.url + path, headers={"Authorization": f"Bearer {site.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())

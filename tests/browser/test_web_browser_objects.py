"""Every object of a producer drawn on the run page in Chromium, under the site's own policy.

The ROOT-written fixture snapshots (histograms with their producer's styles,
graphs, a multigraph, functions, a stack, a polygon histogram, an efficiency,
a RooPlot) are processed into run 2; every figure of every group of its page,
whole run and latest slice, must be drawn by JSROOT (an SVG in the figure)
with no error in the console: the page's Content-Security-Policy must not stop
a drawing (JSROOT compiles a function's formula when it has no saved points).
"""

from __future__ import annotations

import shutil

import pytest

from processing.pipeline import Pipeline
from tests.browser.conftest import sign_in
from tests.processing_helpers import T0, snapshot_path
from tests.rootjson_support import FIXTURES
from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.browser


def _producer_run(data_dir, db) -> None:
    for k, n in enumerate((1, 2)):
        path = snapshot_path(data_dir, 2, "EMC", T0 + 60 * k)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / f"objects_{n}.root", path)
    assert Pipeline(data_dir, db).run_until_idle().processed == 2


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("objects"), workers=1, prepare=_producer_run) as s:
        yield s


ALL_DRAWN = """() => {
  const figures = [...document.querySelectorAll('.ow-drawing')];
  return figures.length > 0 && figures.every(f => f.querySelector('svg'));
}"""


def test_every_object_of_the_producer_is_drawn(site, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    sign_in(page, site)
    groups = page.request.get(site.url + "/api/runs/2/EMC/view").json()["groups"]
    drawn: set[str] = set()
    for view in ("cumulative", "latest"):
        for group in groups:
            page.goto(f"{site.url}/runs/2/EMC?slice={view}&group={group['name']}")
            page.wait_for_function(ALL_DRAWN)
            captions = page.locator("figure.ow-figure figcaption a").all_inner_texts()
            drawn.update(captions)
    expected = {"hEnergy", "gRate", "gGain", "gAsym", "mgLayers", "fSignal", "fShape2D",
                "effTrigger", "rooFrame", "sub/hsLayers", "sub/hPoly", "sub/gSurface"}  # fmt: skip
    assert expected <= drawn
    assert errors == []

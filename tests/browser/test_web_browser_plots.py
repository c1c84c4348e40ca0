"""Plots read right (issue 18): overlays, draw options, labels and boxes, annotations.

Headless Chromium against a real ``overwatch web`` (ZEO, gunicorn): run 1 (EMC, TPC, HLT,
three snapshots) compared with run 2 (the same detectors, two snapshots). Every assertion
reads JSROOT's own painter state in the page (log flags, axis ranges, palettes, the painters
of each pad) or the bounding boxes of what it drew; screenshots of the overlays are kept
under the test's tmp path.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.browser.conftest import sign_in
from tests.browser.test_web_browser import ALL_DRAWN
from tests.browser.test_web_browser_reference import ALL_OVERLAYS_DRAWN
from tests.unit.test_web_support import build_simulated_run, running_site

pytestmark = pytest.mark.browser

RUN, REFERENCE = 1, 2
CELL_MAP = "EMCal/SM03/cellHits"
OTHER_MAP = "EMCal/SM04/cellHits"


def _reference_run(data_dir: Path, db) -> None:
    build_simulated_run(data_dir, db, run=REFERENCE, snapshots=2, start=time.time() - 3 * 3600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    with running_site(tmp_path_factory.mktemp("plots"), workers=1, prepare=_reference_run) as s:
        yield s


@pytest.fixture()
def page(site, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.set_default_timeout(60_000)
    sign_in(page, site)
    page.errors = errors
    yield page
    assert errors == []
    page.close()


#: JSROOT's state of every pad of one overlay: per pad the frame's log flags and ranges and
#: the objects drawn (class, name, draw option, palette).
PADS = """async (path) => {
  const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
  const div = document.querySelector(`.ow-overlay[data-path="${path}"]`);
  const state = (pad) => {
    const main = J.getElementMainPainter(pad);
    const fp = main.getFramePainter();
    const drawn = painters(J, pad).map((p) => {
      const obj = p.getObject();
      return { type: obj?._typename, name: obj?.fName, option: p.getDrawOpt?.() || '',
               palette: (p.getOptions?.() || p.options)?.Palette || 0,
               zscale: Boolean((p.getOptions?.() || p.options)?.Zscale) };
    });
    return { row: pad.parentElement.className, pad: pad.dataset.pad, logx: Boolean(fp.logx),
             logy: Boolean(fp.logy), xmin: fp.scale_xmin, xmax: fp.scale_xmax,
             ymin: fp.scale_ymin, ymax: fp.scale_ymax, drawn };
  };
  return { mode: div.dataset.mode, pads: [...div.querySelectorAll('.ow-pad')].map(state) };
}"""

#: Bounding boxes of the text boxes JSROOT drew in every drawing of the page: titles, stat
#: boxes, legends, palettes (with their labels), and each axis' title and labels.
TEXT_BOXES = """async () => {
  const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
  const boxes = [];
  const pads = document.querySelectorAll('.ow-drawing.ow-drawn, .ow-overlay .ow-pad');
  for (const pad of pads) {
    const main = J.getElementMainPainter(pad);
    if (!main) continue;
    const where = pad.closest('[data-path]')?.dataset.path || pad.dataset.src;
    for (const p of painters(J, pad)) {
      const type = p.getObject()?._typename || '';
      if (!/^T(Pave|Legend|PaletteAxis)/.test(type)) continue;
      const r = p.getG()?.node().getBoundingClientRect();
      if (r && r.width && r.height) boxes.push({ where, what: type, x: r.x, y: r.y, w: r.width, h: r.height });
    }
    // The frame's axes (a palette's own axis is inside the palette's box).
    pad.querySelectorAll(':is(.xaxis_container, .yaxis_container) > :is(.axis_title, .axis_labels)').forEach((g) => {
      const r = g.getBoundingClientRect();
      const axis = g.parentElement.classList.contains('xaxis_container') ? 'x' : 'y';
      if (r.width && r.height) boxes.push({ where, what: `${axis} ${g.getAttribute('class')}`, x: r.x, y: r.y, w: r.width, h: r.height });
    });
  }
  return boxes;
}"""


def overlaps(boxes: list[dict]) -> list[tuple[str, str, str]]:
    """Pairs of boxes of one drawing that intersect by more than a pixel."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a["where"] != b["where"]:
                continue
            if {a["what"].split()[0], b["what"].split()[0]} == {"x", "y"}:
                continue  # the axes meet at the frame's corner
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > 1 and dy > 1:
                found.append((a["where"], a["what"], b["what"]))
    return found


#: The comparison as the page shows it: the summary table's rows and each figure's badge.
COMPARISON = """() => ({
  rows: Object.fromEntries([...document.querySelectorAll('#ow-reference tbody tr')].map((r) =>
    [r.dataset.path, { p: r.cells[2].textContent, statistic: r.cells[3].textContent }])),
  badges: Object.fromEntries([...document.querySelectorAll('.ow-figure')].flatMap((f) => {
    const badge = f.querySelector('figcaption .ow-cmp');
    const path = f.querySelector('.ow-overlay[data-path]')?.dataset.path;
    return badge && path && badge.title.startsWith('p = ') ? [[path, badge.title]] : [];
  })),
})"""


def open_overlays(page, site, subsystem: str, group: str, **query: str) -> None:
    extra = "".join(f"&{k}={quote(v)}" for k, v in query.items())
    page.goto(f"{site.url}/runs/{RUN}/{subsystem}?group={quote(group)}&ref={REFERENCE}{extra}")
    page.wait_for_function(ALL_OVERLAYS_DRAWN)


def test_overlays_1d_log_x_2d_ratio_map_and_3d_projections(site, page, tmp_path: Path) -> None:
    open_overlays(page, site, "TPC", "Tracks")

    # 1D, log x (TPC trackPt): the reference over the data, the ratio pad on the same log x.
    state = page.evaluate(PADS, "TPC/trackPt")
    assert state["mode"] == "lines"
    main, ratio = state["pads"]
    assert "main" in main["row"] and "ratio" in ratio["row"]
    assert main["logx"] and main["logy"] and ratio["logx"] and not ratio["logy"]
    assert ratio["xmin"] == pytest.approx(main["xmin"]) and ratio["xmax"] == pytest.approx(
        main["xmax"]
    )
    names = [d["name"] for d in main["drawn"] if d["type"] == "TH1F" or d["type"] == "TH1D"]
    assert "trackPt" in names and "trackPt_reference" in names
    assert ratio["ymin"] < 1 < ratio["ymax"] and ratio["ymax"] - 1 == pytest.approx(
        1 - ratio["ymin"]
    )
    assert any(d["name"] == "trackPt_ratio" for d in ratio["drawn"])
    figure = page.locator('.ow-overlay[data-path="TPC/trackPt"]')
    figure.screenshot(path=str(tmp_path / "overlay_1d_logx.png"))

    # The ratio pad follows a zoom of the main pad.
    page.evaluate(
        """async () => {
      const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
      const pad = document.querySelector('.ow-overlay[data-path="TPC/trackPt"] .ow-overlay-main .ow-pad');
      await J.getElementMainPainter(pad).getFramePainter().zoom(0.5, 5);
    }"""
    )
    zoomed = page.evaluate(PADS, "TPC/trackPt")["pads"]
    assert zoomed[0]["xmin"] == pytest.approx(0.5) and zoomed[0]["xmax"] == pytest.approx(5)
    assert zoomed[1]["xmin"] == pytest.approx(0.5) and zoomed[1]["xmax"] == pytest.approx(5)
    assert zoomed[1]["logx"]

    # 2D: the data map and beside it the ratio map on the diverging palette, z centred on 1.
    state = page.evaluate(PADS, "TPC/trackEtaPhi")
    assert state["mode"] == "ratio-map"
    data, ratio = state["pads"]
    assert [d["zscale"] for d in data["drawn"] if d["name"] == "trackEtaPhi"] == [True]
    ratio_hist = next(d for d in ratio["drawn"] if d["name"] == "trackEtaPhi_ratio")
    assert ratio_hist["palette"] == 87 and ratio_hist["zscale"]
    assert (data["xmin"], data["xmax"], data["ymin"], data["ymax"]) == pytest.approx(
        (ratio["xmin"], ratio["xmax"], ratio["ymin"], ratio["ymax"])
    )
    assert not any(d["name"] == "trackEtaPhi_reference" for p in state["pads"] for d in p["drawn"])
    boxes = page.locator('.ow-overlay[data-path="TPC/trackEtaPhi"]').bounding_box()
    pads = page.locator('.ow-overlay[data-path="TPC/trackEtaPhi"] .ow-pad')
    left, right = pads.nth(0).bounding_box(), pads.nth(1).bounding_box()
    assert right["x"] >= left["x"] + left["width"] - 1 and right["width"] == pytest.approx(
        left["width"], rel=0.05
    ) and left["height"] > 0.8 * boxes["height"]  # beside it, as large as it  # fmt: skip
    page.locator('.ow-overlay[data-path="TPC/trackEtaPhi"]').screenshot(
        path=str(tmp_path / "overlay_2d.png")
    )

    # 3D: three projections, each a main pad (data and reference) over its ratio pad.
    state = page.evaluate(PADS, "TPC/trackPtEtaPhi")
    assert state["mode"] == "projections"
    mains = [p for p in state["pads"] if "main" in p["row"]]
    ratios = [p for p in state["pads"] if "ratio" in p["row"]]
    assert [p["pad"] for p in mains] == [p["pad"] for p in ratios] == ["x", "y", "z"]
    for top, bottom in zip(mains, ratios, strict=True):
        axis = top["pad"]
        assert {d["name"] for d in top["drawn"] if (d["type"] or "").startswith("TH1")} == {
            f"trackPtEtaPhi_p{axis}",
            f"trackPtEtaPhi_p{axis}_reference",
        }
        assert (bottom["xmin"], bottom["xmax"]) == pytest.approx((top["xmin"], top["xmax"]))
        assert bottom["ymin"] < 1 < bottom["ymax"]
        # The plugin's log axes: the pT projection as TPC draws trackPtEtaPhi_px (log x and
        # y), the ratio on the same log x; eta and phi linear.
        pt = axis == "x"
        assert (top["logx"], top["logy"], bottom["logx"], bottom["logy"]) == (pt, pt, pt, False)
    widths = page.eval_on_selector_all(
        '.ow-overlay[data-path="TPC/trackPtEtaPhi"] .ow-pad', "pads => pads.map(p => p.offsetWidth)"
    )
    assert min(widths) > 250  # wide enough for JSROOT to draw axes (not its SmallPad)
    # One text size in the three projections (no pad drawn wide and then squeezed).
    sizes = page.eval_on_selector_all(
        '.ow-overlay[data-path="TPC/trackPtEtaPhi"] .ow-overlay-main .ow-pad',
        """pads => pads.map(p => [...p.querySelectorAll('.xaxis_container .axis_labels text')]
              .map(t => t.getBoundingClientRect().height).reduce((a, b) => Math.max(a, b), 0))""",
    )
    assert min(sizes) > 0 and max(sizes) < 1.05 * min(sizes), sizes
    page.locator('.ow-overlay[data-path="TPC/trackPtEtaPhi"]').screenshot(
        path=str(tmp_path / "overlay_3d.png")
    )
    boxes = page.evaluate(TEXT_BOXES)
    kinds = {b["what"] for b in boxes}
    assert {"TPaveStats", "TPaletteAxis", "y axis_title", "x axis_labels"} <= kinds, kinds
    found = overlaps(boxes)
    assert found == [], found

    # The summary says what is compared; with the run itself, it says so.
    note = page.inner_text(".ow-reference-of")
    assert f"whole run of run {RUN} with the whole run of run {REFERENCE}" in note
    page.goto(f"{site.url}/runs/{RUN}/TPC?group=Tracks&ref={RUN}&slice=latest")
    page.wait_for_function(ALL_OVERLAYS_DRAWN)
    note = page.inner_text(".ow-reference-of")
    assert "latest slice of run 1" in note and "the reference is run 1 itself" in note.lower()
    assert page.locator(".ow-reference-self").count() == 1
    # The table and the badges judge the slice the page shows: the latest slice differs from
    # the whole run it is compared with, the whole run agrees with itself exactly.
    latest = page.evaluate(COMPARISON)
    page.goto(f"{site.url}/runs/{RUN}/TPC?group=Tracks&ref={RUN}")
    page.wait_for_function(ALL_OVERLAYS_DRAWN)
    whole = page.evaluate(COMPARISON)
    for shown in (latest, whole):
        assert shown["badges"] and all(
            title == f"p = {shown['rows'][path]['p']}" for path, title in shown["badges"].items()
        ), shown
    assert {row["statistic"].split(" ")[0] for row in whole["rows"].values()} <= {"0", "–"}
    assert any(row["statistic"].split(" ")[0] not in ("0", "–") for row in latest["rows"].values())


#: Per drawing of the page: its option, log flags and whether it has a palette.
DRAWINGS = """async () => {
  const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
  const out = {};
  for (const figure of document.querySelectorAll('.ow-figure')) {
    const div = figure.querySelector('.ow-drawing');
    const path = figure.querySelector('figcaption a').textContent;
    const main = div && J.getElementMainPainter(div);
    const fp = main?.getFramePainter();
    out[path] = { opt: div?.dataset.opt, logx: Boolean(fp?.logx), logy: Boolean(fp?.logy),
                  logz: Boolean(div && J.getElementCanvPainter(div)?.getRootPad()?.fLogz),
                  palette: Boolean(div && main && painters(J, div).some((p) => p.getObject()?._typename === 'TPaletteAxis')),
                  stats: Boolean(div && main && painters(J, div).some((p) => p.getObject()?._typename === 'TPaveStats')),
                  error: figure.querySelector('[data-option-error]')?.textContent || null };
  }
  return out;
}"""


def test_draw_options_per_histogram_keep_plugin_defaults(site, page) -> None:
    group = "SM03"
    base = f"{site.url}/runs/{RUN}/EMC"
    page.goto(f"{base}?group={group}&{quote('opt.' + CELL_MAP)}=logy")
    page.wait_for_function(ALL_DRAWN)
    shown = page.evaluate(DRAWINGS)
    mine = shown[CELL_MAP]
    # The map keeps its palette and log z (the plugin's) and gets the user's log y.
    assert mine["opt"] == "colz;logz;nostat;logy" and mine["palette"] and mine["logz"], mine
    assert mine["logy"] and not mine["stats"] and mine["error"] is None
    # The other histograms of the group keep the plugin's option untouched.
    others = {path: s for path, s in shown.items() if path != CELL_MAP}
    assert others and all(not s["logy"] or "logy" in (s["opt"] or "") for s in others.values())
    assert all(s["error"] is None for s in others.values())
    # The histogram's option is view state: the page's links keep it (another group, a slice).
    hrefs = page.eval_on_selector_all(
        ".ow-groups a, .ow-switch a[data-slice]", "links => links.map(a => a.href)"
    )
    assert hrefs and all(f"{quote('opt.' + CELL_MAP, safe='')}=logy" in h for h in hrefs), hrefs

    # Page-wide opt= goes to the 1D histograms only: the maps keep their palette, linear y.
    page.goto(f"{base}?group={group}&opt=logy")
    page.wait_for_function(ALL_DRAWN)
    shown = page.evaluate(DRAWINGS)
    maps = {p: s for p, s in shown.items() if "colz" in (s["opt"] or "")}
    lines = {p: s for p, s in shown.items() if p not in maps}
    assert maps and lines
    assert all(s["palette"] and not s["logy"] for s in maps.values())
    assert all(s["logy"] for s in lines.values())

    # An option JSROOT does not know: said next to that plot, which keeps the plugin's option.
    page.goto(f"{base}?group={group}&{quote('opt.' + CELL_MAP)}=foo")
    page.wait_for_function(ALL_DRAWN)
    shown = page.evaluate(DRAWINGS)
    assert "unknown draw option 'foo'" in shown[CELL_MAP]["error"]
    assert shown[CELL_MAP]["opt"] == "colz;logz;nostat" and shown[CELL_MAP]["palette"]
    figure = page.locator(".ow-figure", has=page.locator(f'a:text-is("{CELL_MAP}")'))
    assert figure.locator("[data-option-error]").is_visible()

    # The histogram page sets that histogram's own option; the way back keeps it.
    page.goto(f"{site.url}/runs/{RUN}/EMC/hist/{CELL_MAP}?group={group}")
    page.wait_for_function(ALL_DRAWN)
    field = page.locator(f'.ow-option input[name="opt.{CELL_MAP}"]')
    assert field.get_attribute("placeholder") == "colz;logz;nostat"
    field.fill("gridx")
    page.click(".ow-option button[type=submit]")
    page.wait_for_url("**gridx**")
    page.wait_for_function(ALL_DRAWN)
    assert page.get_attribute(".ow-drawing", "data-opt") == "colz;logz;nostat;gridx"
    page.click(".ow-crumbs a:nth-child(2)")
    page.wait_for_url(f"**/runs/{RUN}/EMC?**")
    page.wait_for_function(ALL_DRAWN)
    assert page.evaluate(DRAWINGS)[CELL_MAP]["opt"] == "colz;logz;nostat;gridx"


def test_labels_boxes_legends_and_annotations(site, page, tmp_path: Path) -> None:
    # HLT counts: numbers level above the bars, every bin labelled, inside the frame.
    page.goto(f"{site.url}/runs/{RUN}/HLT?group=Triggers")
    page.wait_for_function(ALL_DRAWN)
    texts = page.evaluate(
        """async () => {
      const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
      const div = [...document.querySelectorAll('.ow-figure')].find(f =>
        f.querySelector('figcaption a').textContent === 'HLT/triggerClasses').querySelector('.ow-drawing');
      const main = J.getElementMainPainter(div);
      const frame = div.querySelector('.root_frame').getBoundingClientRect();
      const histo = painters(J, div).map(p => p.getObject()).find(o => o?._typename?.startsWith('TH1'));
      const numbers = [...div.querySelectorAll('.main_layer text')].map(t => {
        const r = t.getBoundingClientRect();
        return { text: t.textContent, x: r.x, y: r.y, w: r.width, h: r.height,
                 transform: t.getAttribute('transform') || '' };
      });
      // Each bar's top and x range in the page (the frame's own position, not its group's box).
      const fp = main.getFramePainter();
      const svg = div.querySelector('svg').getBoundingClientRect();
      const left = svg.x + fp.getFrameX(), top = svg.y + fp.getFrameY();
      const bars = [...Array(histo.fXaxis.fNbins).keys()].map((i) => ({
        x0: left + fp.grx(histo.fXaxis.GetBinLowEdge(i + 1)),
        x1: left + fp.grx(histo.fXaxis.GetBinLowEdge(i + 2)),
        top: top + fp.gry(histo.fArray[i + 1]) }));
      return { numbers, bars, frame: { top: frame.y, bottom: frame.y + frame.height },
               bins: histo.fXaxis.fNbins, contents: histo.fArray.slice(1, -1),
               stats: painters(J, div).some(p => p.getObject()?._typename === 'TPaveStats') };
    }"""
    )
    values = [str(round(v)) for v in texts["contents"]]
    drawn = {n["text"]: n for n in texts["numbers"]}
    assert set(values) <= set(drawn), (values, list(drawn))  # the first bin too
    assert not texts["stats"]
    for value in values:
        number = drawn[value]
        assert "rotate" not in number["transform"]
        assert number["w"] > number["h"] and number["h"] < 16  # level, sized to fit
        assert number["y"] >= texts["frame"]["top"] - 1  # inside the frame, not clipped
    # Each number sits above its own bar, clear of it.
    for number in texts["numbers"]:
        centre = number["x"] + number["w"] / 2
        bar = next((b for b in texts["bars"] if b["x0"] <= centre < b["x1"]), None)
        assert bar is not None and number["y"] + number["h"] <= bar["top"] + 1, (number, bar)
    ordered = sorted((drawn[v] for v in values), key=lambda n: n["x"])
    assert all(a["x"] + a["w"] <= b["x"] + 1 for a, b in zip(ordered, ordered[1:], strict=False))
    assert overlaps(page.evaluate(TEXT_BOXES)) == []

    # An annotation says which view it describes.
    page.goto(f"{site.url}/runs/{RUN}/HLT?group=Events")
    page.wait_for_function(ALL_DRAWN)
    about = page.inner_text(".ow-annotation-of")
    assert about.startswith("computed from slice") and "run start" in about
    page.goto(f"{site.url}/runs/{RUN}/HLT?group=Events&slice=latest")
    page.wait_for_function(ALL_DRAWN)
    assert "run start" not in page.inner_text(".ow-annotation-of")

    # A stack of 12 members has a legend naming each; nothing overlaps (stat boxes, maps).
    page.goto(f"{site.url}/runs/{RUN}/EMC?group=Overview")
    page.wait_for_function(ALL_DRAWN)
    entries = page.evaluate(
        """async () => {
      const J = await import(document.body.dataset.jsroot);
  const painters = (J, pad) => { const list = []; J.getElementCanvPainter(pad).forEachPainterInPad((p) => list.push(p), 'objects'); return list; };
      const fig = [...document.querySelectorAll('.ow-figure')].find(f =>
        f.querySelector('figcaption a').textContent === 'EMCal/EMCalCellAmplitude');
      const legend = painters(J, fig.querySelector('.ow-drawing'))
        .find(p => p.getObject()?._typename === 'TLegend');
      return legend ? legend.getObject().fPrimitives.arr.map(e => e.fLabel) : [];
    }"""
    )
    assert len(entries) == 12 and entries[0] == "SM00"
    page.screenshot(path=str(tmp_path / "emc_overview.png"))
    boxes = page.evaluate(TEXT_BOXES)
    assert {"TLegend", "TPaveText"} <= {b["what"] for b in boxes}
    found = overlaps(boxes)
    assert found == [], (found, [b for b in boxes if "stacks" in b["where"]])
    page.goto(f"{site.url}/runs/{RUN}/EMC?group=SM03")
    page.wait_for_function(ALL_DRAWN)
    assert overlaps(page.evaluate(TEXT_BOXES)) == []

    # Trend graphs: the y title clear of its tick labels.
    page.goto(
        f"{site.url}/runs/{RUN}/TPC/trends?trend=events:event_rate&trend=TPC/clusterCharge:entries"
    )
    page.wait_for_function(ALL_DRAWN)
    boxes = page.evaluate(TEXT_BOXES)
    assert [b for b in boxes if b["what"] == "y axis_title"] and overlaps(boxes) == []


#: Per 1D drawing with a stat box: how many bins it has under the box and which of them
#: reach into it (a bar's top, or a point with its error bar, above the box's bottom edge).
STATS_COVER = """async () => {
  const J = await import(document.body.dataset.jsroot);
  const out = [];
  for (const div of document.querySelectorAll('.ow-drawing.ow-drawn')) {
    const main = J.getElementCanvPainter(div)?.getMainPainter(); // the histogram's painter
    const fp = main?.getFramePainter();
    const h = main?.getObject();
    if (!fp?.grx || !/^TH1|^TProfile$/.test(h?._typename || '')) continue;
    const stats = [];
    J.getElementCanvPainter(div).forEachPainterInPad((p) => {
      if (p.getObject()?._typename === 'TPaveStats') stats.push(p);
    }, 'objects');
    if (!stats.length) continue;
    const box = stats[0].getG().node().getBoundingClientRect();
    const svg = div.querySelector('svg').getBoundingClientRect();
    const left = svg.x + fp.getFrameX(), top = svg.y + fp.getFrameY();
    const errors = Boolean((main.getOptions?.() || main.options)?.Error);
    let under = 0;
    const covered = [];
    for (let i = 1; i <= h.fXaxis.fNbins; i++) {
      const x0 = left + fp.grx(h.fXaxis.GetBinLowEdge(i)), x1 = left + fp.grx(h.fXaxis.GetBinLowEdge(i + 1));
      if (Math.max(x0, x1) <= box.x || Math.min(x0, x1) >= box.x + box.width) continue;
      const value = h.getBinContent(i) + (errors ? h.getBinError(i) : 0);
      if (fp.logy && !(value > 0)) continue;
      under += 1;
      if (top + fp.gry(value) < box.y + box.height) covered.push(i);
    }
    out.push({ path: div.closest('.ow-figure').querySelector('figcaption a').textContent,
               under, covered });
  }
  return out;
}"""


def test_1d_stat_boxes_leave_the_data_clear(site, page) -> None:
    # Distributions high at the right edge, where JSROOT puts the box: a flat phi, counts
    # per sector, a rising profile; and the ordinary ones of each plugin.
    checked = {}
    for subsystem, group in [
        ("TPC", "Tracks"), ("TPC", "Clusters"), ("TPC", "DCA"), ("HLT", "Processing"),
        ("HLT", "Event size"), ("EMC", "Clusters"), ("EMC", "SM03"),
    ]:  # fmt: skip
        page.goto(f"{site.url}/runs/{RUN}/{subsystem}?group={quote(group)}")
        page.wait_for_function(ALL_DRAWN)
        for drawing in page.evaluate(STATS_COVER):
            checked[drawing["path"]] = drawing
    assert {"TPC/trackPhi", "TPC/clustersPerSector", "HLT/processingTimeVsEventSize"} <= set(
        checked
    )
    assert all(checked[p]["under"] > 0 for p in ("TPC/trackPhi", "TPC/clustersPerSector"))
    covered = {path: d["covered"] for path, d in checked.items() if d["covered"]}
    assert covered == {}, covered

"""Drill-down pages of the HTML report: one page per histogram, drawn by JSROOT.

Each page embeds its histograms as ROOT TBufferJSON objects (from
:func:`overwatch.jsroot.to_jsroot`) inside ``<script type="application/json">``
and draws them with the copy of JSROOT that sits in the report, so the report
works from a USB stick, without network or server. The single-file JSROOT
bundle (``build/jsroot.js``) is preferred because browsers load it from
``file://``; when only JSROOT's ES modules are available they are copied and the
pages use them, which needs the report served over HTTP (any static server).

One-dimensional histograms are overlaid (reference scaled to the test's
integral, so shapes compare); two- and three-dimensional ones are drawn side
by side.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from overwatch.histogram import Histogram
from processing.compare.results import ComparisonResult, Reason


def _webapp_jsroot() -> tuple[Path, ...]:
    """The JSROOT vendored with the web app (``webapp/static/jsroot``, package data of ``webapp``).

    Found through the import system, so an editable install and an installed
    wheel both answer, but without importing ``webapp`` (processing never
    imports the web app): :func:`importlib.util.find_spec` on a top-level
    package only locates it, it does not run its ``__init__`` (as
    ``importlib.resources.files("webapp")`` would). The distribution's RECORD
    (importlib.metadata) would not do: an editable install lists no package files.
    """
    spec = importlib.util.find_spec("webapp")
    if spec is None or not spec.submodule_search_locations:
        return ()
    return tuple(Path(root) / "static" / "jsroot" for root in spec.submodule_search_locations)


#: Where JSROOT is looked for: the copy vendored for the web app (the only one shipped).
JSROOT_CANDIDATES = _webapp_jsroot()
BUNDLES = ("build/jsroot.min.js", "build/jsroot.js")

TEST_COLOR, REFERENCE_COLOR = 602, 632  # ROOT kBlue+2, kRed


class JsrootMissingError(RuntimeError):
    """No copy of JSROOT was found to put in the report."""


@dataclass(frozen=True)
class PageSettings:
    """What a (worker) process needs to write histogram pages."""

    outdir: str
    #: "bundle": classic script jsroot/jsroot.js; "modules": ES modules under jsroot/modules.
    jsroot_mode: str = "bundle"


def page_name(path: str) -> str:
    """A file name for a histogram path: readable, safe and unique (never the raw path)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path).strip("._")[:80] or "histogram"
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}.html"


def locate_jsroot(candidates: Sequence[Path] = JSROOT_CANDIDATES) -> tuple[Path, str]:
    """(file or directory to copy, mode): a bundle anywhere first, else ES modules."""
    for root in candidates:
        for bundle in BUNDLES:
            if (root / bundle).is_file():
                return root / bundle, "bundle"
    for root in candidates:
        if (root / "modules" / "main.mjs").is_file():
            return root, "modules"
    raise JsrootMissingError(
        f"JSROOT not found in {', '.join(map(str, candidates)) or 'the webapp package'}: "
        "it is vendored with the web app (webapp/static/jsroot); reinstall overwatch"
    )


def install_jsroot(outdir: Path, candidates: Sequence[Path] = JSROOT_CANDIDATES) -> PageSettings:
    """Copy what the pages need of JSROOT (and its licence) into ``outdir/jsroot``."""
    source, mode = locate_jsroot(candidates)
    target = outdir / "jsroot"
    target.mkdir(parents=True, exist_ok=True)
    root = source.parents[1] if mode == "bundle" else source
    if mode == "bundle":
        shutil.copyfile(source, target / "jsroot.js")
    else:
        shutil.copytree(source / "modules", target / "modules", dirs_exist_ok=True)
    for extra in ("LICENSE", "VERSION"):
        if (root / extra).is_file():
            shutil.copyfile(root / extra, target / extra)
    if (root / "fonts").is_dir():
        shutil.copytree(root / "fonts", target / "fonts", dirs_exist_ok=True)
    script = _DRAW_SCRIPT
    if mode == "bundle":
        (outdir / "draw.js").write_text(script + "drawAll(window.JSROOT);\n", encoding="utf-8")
    else:
        header = "import * as JSROOT from './jsroot/modules/main.mjs';\n"
        (outdir / "draw.mjs").write_text(header + script + "drawAll(JSROOT);\n", encoding="utf-8")
    return PageSettings(outdir=str(outdir), jsroot_mode=mode)


def _script_json(obj) -> str:
    # "</" would end the <script> element early; JSON allows "<\/" for it.
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _embedded(histogram: Histogram | None, color: int, scale: float | None = None):
    from overwatch.jsroot import to_jsroot

    if histogram is None:
        return None
    if scale is not None and scale != 1.0:
        histogram = histogram.scaled(scale)
    obj = to_jsroot(histogram)
    obj["fLineColor"] = color
    obj["fMarkerColor"] = color
    return obj


def _drawing(
    test: Histogram | None, reference: Histogram | None
) -> tuple[dict, dict | None, dict | None]:
    sample = test if test is not None else reference
    overlay = test is not None and reference is not None and sample.ndim == 1
    scale = None
    if overlay and not test.is_profile:
        ref_integral = reference.integral()
        scale = test.integral() / ref_integral if ref_integral else None
    option = (
        "hist"
        if sample.ndim == 1 and not sample.is_profile
        else ("" if sample.ndim == 1 else "colz")
    )
    if sample.ndim == 3:
        option = "box2"
    config = {"mode": "overlay" if overlay else "side", "option": option, "scaled": scale}
    return config, _embedded(test, TEST_COLOR), _embedded(reference, REFERENCE_COLOR, scale)


def _figures(mode: str | None, has_test: bool, has_reference: bool) -> str:
    """The drawing areas, captioned so nobody mistakes the reference for the test."""
    if mode == "overlay":
        boxes = [("test", "test (blue) and reference (red)")]
    else:
        boxes = [("test", "test")] if has_test else []
        boxes += [("reference", "reference")] if has_reference else []
    figures = "".join(
        f'<figure><figcaption>{caption}</figcaption><div id="draw-{key}" class="plot"></div></figure>'
        for key, caption in boxes
    )
    return f'<div class="plots">{figures}</div>'


def _results_table(results: Sequence[ComparisonResult]) -> str:
    from processing.compare.report_text import describe

    if not results:
        return "<p>No test ran on this histogram.</p>"
    rows = "".join(
        f'<tr class="{r.status.value}"><td>{escape(r.test)}</td>'
        f'<td class="status">{r.status.value}</td><td>{escape(describe(r))}</td></tr>'
        for r in results
    )
    return f"<table><tr><th>test</th><th>status</th><th>result</th></tr>{rows}</table>"


def write_histogram_page(
    settings: PageSettings,
    path: str,
    results: Sequence[ComparisonResult],
    test: Histogram | None,
    reference: Histogram | None,
) -> Path:
    """Write ``hists/<name>.html`` for one histogram path."""
    outdir = Path(settings.outdir)
    target = outdir / "hists" / page_name(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    from processing.compare.report_html import directory_page, page_head
    from processing.compare.summary import directory_of

    if test is not None or reference is not None:
        config, test_obj, ref_obj = _drawing(test, reference)
    else:
        config, test_obj, ref_obj = {"mode": "none"}, None, None
    reasons = {r.reason for r in results}
    note = ""
    if config.get("scaled"):
        note = (
            f"<p class='note'>Reference scaled by {config['scaled']:.4g} "
            "to the test's integral.</p>"
        )
    elif Reason.MISSING_IN_TEST in reasons:
        note = "<p class='note'>Only in the reference file.</p>"
    elif Reason.MISSING_IN_REFERENCE in reasons:
        note = "<p class='note'>Only in the test file.</p>"
    blocks = []
    for key, obj in (("test", test_obj), ("reference", ref_obj)):
        if obj is not None:
            blocks.append(
                f'<script type="application/json" id="h-{key}">{_script_json(obj)}</script>'
            )
    if settings.jsroot_mode == "bundle":
        loader = '<script src="../jsroot/jsroot.js"></script><script src="../draw.js"></script>'
    else:
        loader = '<script type="module" src="../draw.mjs"></script>'
    directory = directory_of(path)
    html = (
        page_head(path) + f'<p class="crumbs"><a href="../index.html">summary</a> / '
        f'<a href="../dirs/{directory_page(directory)}">{escape(directory or "(top)")}</a></p>'
        f"<h1>{escape(path)}</h1>"
        + _results_table(results)
        + note
        + _figures(config.get("mode"), test_obj is not None, ref_obj is not None)
        + f'<script type="application/json" id="draw-config">{_script_json(config)}</script>'
        + "".join(blocks)
        + loader
        + "</body></html>\n"
    )
    target.write_text(html, encoding="utf-8")
    return target


_DRAW_SCRIPT = """\
// Draws the histograms embedded in a drill-down page of an Overwatch comparison report.
function drawAll(JSROOT) {
  const read = (id) => {
    const element = document.getElementById(id);
    return element ? JSROOT.parse(element.textContent) : null;
  };
  const config = read('draw-config');
  const test = read('h-test');
  const reference = read('h-reference');
  if (!config || config.mode === 'none') return;
  const done = [];
  if (config.mode === 'overlay') {
    done.push(JSROOT.draw('draw-test', test, config.option)
      .then(() => JSROOT.draw('draw-test', reference, 'same ' + config.option)));
  } else {
    if (test) done.push(JSROOT.draw('draw-test', test, config.option));
    if (reference) done.push(JSROOT.draw('draw-reference', reference, config.option));
  }
  Promise.all(done).then(() => { document.body.dataset.drawn = 'yes'; },
                         (error) => { document.body.dataset.drawn = 'error: ' + error; });
}
"""

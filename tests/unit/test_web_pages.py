"""The HTML pages: run list, run page, histogram page, partial answers, errors."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from processing.slices import draw_options
from tests.unit.test_web_support import (
    T0,
    add_user,
    build_sample_run,
    build_simulated_run,
    login,
    make_app,
    store_snapshot,
    tiny_snapshot,
)

SRC = re.compile(r'class="ow-drawing[^"]*" data-src="([^"]+)" data-opt="([^"]*)"')


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("pages")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_simulated_run(data_dir, db, run=1)
    build_sample_run(data_dir, db)
    for run in range(2, 30):  # older, short runs for the pagination
        store_snapshot(db, data_dir, run + 100, "EMC", T0 - run * 3600, tiny_snapshot(run))
    client = app.test_client()
    login(client, "alice")
    return client


def test_run_list_is_paginated_newest_first_and_marks_ongoing_runs(pages) -> None:
    text = pages.get("/runs").data.decode()
    runs = [int(n) for n in re.findall(r'class="ow-run-link" href="/runs/(\d+)"', text)]
    assert runs == sorted(runs, reverse=True) and len(runs) == 25
    assert runs[0] == 500
    assert '<tr class="ow-ongoing">' not in text  # all ended long ago
    assert "1 snapshot" in text and "last " in text
    assert 'href="/runs?page=2&amp;per_page=25"' in text
    second = pages.get("/runs?page=2").data.decode()
    assert "← Newer" in second and "Page 2 of 2 (30 runs)" in second
    assert second.count('<tr class="ow-ongoing">') == 1  # run 1, seconds old
    assert "3 snapshots" in second


def test_run_page_draws_the_selected_group_with_state_in_urls(pages) -> None:
    assert pages.get("/runs/1").headers["Location"] == "/runs/1/EMC"
    text = pages.get("/runs/1/TPC?slice=latest&opt=logy").data.decode()
    drawings = [(html.unescape(src), opt) for src, opt in SRC.findall(text)]
    # The TPC plugin's first group: the 6 projections it derives from its 3D histogram.
    assert len(drawings) == 6
    assert all(src.endswith("?slice=latest") for src, _opt in drawings)
    # opt= is merged into the 1D histograms' options; the 2D maps keep the plugin's (issue 18).
    by_name = {src.split("?")[0].rsplit("/", 1)[-1]: opt for src, opt in drawings}
    assert by_name["trackPtEtaPhi_px"] == "logx;logy" and by_name["trackPtEtaPhi_py"] == "logy"
    assert by_name["trackPtEtaPhi_pxy"] == "colz;nostat"
    assert 'href="/runs/1/TPC?group=Events&amp;slice=latest&amp;opt=logy"' in text
    assert 'data-slice="cumulative"' in text and 'ow-current" data-slice="latest"' in text
    assert "/download/Run1/TPC/TPChists." in text

    other = pages.get("/runs/1/TPC?group=Events").data.decode()
    assert [src for src, _ in SRC.findall(other)] == [
        "/api/runs/1/TPC/histograms/events?slice=cumulative"
    ]
    default = pages.get("/runs/1/TPC?group=Tracks").data.decode()
    options = dict((html.unescape(src).split("?")[0].rsplit("/", 1)[-1], opt)
                   for src, opt in SRC.findall(default))  # fmt: skip
    # Without a draw option in the URL, the plugin's display: 2D colz, log axes for pT.
    # (A map with a palette goes without a stat box.)
    assert options["trackEtaPhi"] == "colz;nostat" and options["trackPt"] == "logx;logy"


def test_histogram_page_with_spaces_in_the_path(pages) -> None:
    response = pages.get("/runs/500/GEN/hist/volume/variable%20xy?slice=latest&opt=lego")
    text = response.data.decode()
    assert response.status_code == 200
    (src, opt) = SRC.findall(text)[0]
    assert html.unescape(src) == "/api/runs/500/GEN/histograms/volume/variable%20xy?slice=latest"
    assert opt == "lego;nostat"  # the page's one histogram: opt= merged into the plugin's
    assert "TH2D" in text
    assert 'href="/runs/500/GEN/hist/volume/variable%20xy?slice=cumulative&amp;opt=lego"' in text


def test_partial_answer_has_only_the_page_content(pages) -> None:
    full = pages.get("/status").data.decode()
    partial = pages.get("/status", headers={"X-Overwatch-Partial": "1"})
    text = partial.data.decode()
    assert "<html" in full and "<html" not in text
    assert text.lstrip().startswith('<div id="ow-page" data-title="Status · Overwatch"')
    assert "X-Overwatch-Partial" in partial.headers["Vary"]


def test_unknown_things_are_404_pages_naming_them(pages) -> None:
    for url, words in (
        ("/runs/4242", "run 4242"),
        ("/runs/1/XYZ", "'XYZ'"),
        ("/runs/1/TPC/hist/TPC/none", "'TPC/none'"),
        ("/nowhere", "/nowhere"),
    ):
        response = pages.get(url)
        assert response.status_code == 404, url
        assert words in html.unescape(response.data.decode()), url
        assert "text/html" in response.headers["Content-Type"]
    assert pages.get("/runs/1/TPC/hist/a/../b").status_code == 400


def test_pages_carry_security_headers(pages) -> None:
    headers = pages.get("/runs").headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


def test_the_page_wide_draw_option_suggests_1d_options_and_names_opt_path(pages) -> None:
    text = html.unescape(pages.get("/runs/1/TPC").data.decode())
    field = re.search(r'<input name="opt" value="[^"]*" placeholder="e\.g\. ([^"]+)"', text)
    assert field, "no page-wide draw option field"
    words = [w.strip() for w in field.group(1).split(",")]
    # opt= goes to 1D histograms and stacks: every suggestion is JSROOT's and means something
    # there (no map style such as colz, box, cont, lego, surf).
    assert words and all(draw_options.check(w) == w for w in words)
    assert not [w for w in words if re.match(r"(?i)(col|box|cont|lego|surf|arr|candle)", w)]
    assert "Draw option (1D)" in text and "<code>opt.<path>=</code>" in text

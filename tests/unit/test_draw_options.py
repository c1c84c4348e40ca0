"""Draw options (processing/slices/draw_options.py): JSROOT's grammar, merging, the page's rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from processing.slices import draw_options
from processing.slices.draw_options import DrawOptionError, check, merge, merged

JSROOT_MODULES = Path(__file__).resolve().parents[2] / "webapp" / "static" / "jsroot" / "modules"


def test_keywords_are_those_the_vendored_jsroot_checks_for() -> None:
    """A JSROOT upgrade that adds or drops a keyword fails here until the list follows."""
    sources = [
        *sorted((JSROOT_MODULES / "hist2d").glob("*.mjs")),
        *sorted((JSROOT_MODULES / "hist").glob("*.mjs")),
        *sorted((JSROOT_MODULES / "draw").glob("*.mjs")),
        JSROOT_MODULES / "gpad" / "TPadPainter.mjs",
    ]
    found = set()
    for source in sources:
        found |= set(re.findall(r"\b[a-z]\.check\('([A-Z0-9_+\-]+)'", source.read_text()))
    assert len(found) > 150
    assert found == draw_options.KEYWORDS


@pytest.mark.parametrize(
    "option",
    ["logy", "hist text45", "E1 X0", "colz;logz", "pe", "box", "pal87 colz", "fill_red", "lego2",
     "hist,e", "textn", "LOGX;LOGY", "liny", "  gridx  "],
)  # fmt: skip
def test_options_jsroot_understands_are_accepted(option: str) -> None:
    assert check(option) == option.strip()


@pytest.mark.parametrize("option", ["foo", "logq", "colourz", "hist texty!", "abc", "bogus;logy"])
def test_words_jsroot_would_misread_are_refused_naming_the_word(option: str) -> None:
    with pytest.raises(DrawOptionError, match="unknown draw option"):
        check(option)


def test_an_overlong_option_is_refused() -> None:
    with pytest.raises(DrawOptionError, match="longer than"):
        check("e " * 60)


def test_merge_keeps_the_plugins_style_and_axes() -> None:
    assert merge("colz;logz;nostat", "logy") == "colz;logz;nostat;logy"  # the palette stays
    assert merge("colz;logz;nostat", "box") == "box;logz;nostat"  # a style replaces the style
    assert merge("hist textn nostat", "e") == "e;nostat"
    assert merge("logx;logy", "linx") == "logy"  # ours: a plugin's log axis taken away
    assert merge("logx;logy", "logy") == "logx;logy"  # not twice
    assert merge("colz;nostat", "stat") == "colz;stat"  # the user asks for the stat box
    assert merge("", "logy") == "logy"
    assert merge("hist", "") == "hist"


def test_a_refused_option_keeps_the_plugins_and_says_why() -> None:
    got = merged("colz;logz;nostat", "foo")
    assert got.option == "colz;logz;nostat"
    assert "'foo'" in got.error
    assert merged("colz", "  ") == draw_options.Merged("colz")
    assert merged("colz", "logy") == draw_options.Merged("colz;logy")


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    """The whole run of a processed simulator run (EMC): maps, 1D histograms and stacks."""
    from overwatch.store.db import open_db
    from processing.slices.service import SliceService
    from tests.unit.test_web_support import build_simulated_run

    data_dir = tmp_path_factory.mktemp("options") / "data"
    db = open_db("memory://")
    build_simulated_run(data_dir, db, run=1, subsystems=("EMC",), snapshots=1)
    service = SliceService(data_dir, db)
    yield service.resolve(1, "EMC", "cumulative", {}).view
    db.close()


def test_view_options_maps_go_without_a_stat_box_and_page_wide_options_reach_1d_only(view) -> None:
    assert view.draw_option("EMCal/SM03/cellHits") == "colz;logz;nostat"
    assert view.draw_option("EMCal/SM03/cellHits", "logy") == "colz;logz;nostat;logy"
    with pytest.raises(DrawOptionError):
        view.draw_option("EMCal/SM03/cellHits", "foo")
    # opt= (page-wide) is for 1D histograms and stacks; the map keeps the plugin's option.
    assert view.user_draw_option("EMCal/SM03/cellHits", "", "logy").option == "colz;logz;nostat"
    assert view.user_draw_option("EMCal/clusterEnergy", "", "hist").option == "hist;logy"
    assert view.user_draw_option("EMCal/EMCalCellAmplitude", "", "gridx").option == (
        "nostack;logy;gridx"
    )
    # A histogram's own option wins over the page-wide one.
    own = view.user_draw_option("EMCal/clusterEnergy", "e", "hist")
    assert own.option == "e;logy" and own.error is None
    assert "unknown" in view.user_draw_option("EMCal/clusterEnergy", "", "zzz").error


def test_a_3d_histograms_projections_keep_the_plugins_log_axes() -> None:
    # The projection on an axis the 3D draws log is log in x; the others are linear.
    assert [draw_options.projection_option("box;logy", axis) for axis in "xyz"] == ["", "logx", ""]
    assert [draw_options.projection_option("logxz", axis) for axis in "xyz"] == ["logx", "", "logx"]
    # The plugin's own projection (TPC's <path>_px: logx;logy) lends its log axes.
    assert draw_options.projection_option("", "x", "logx;logy") == "logx;logy"
    assert draw_options.projection_option("", "y", "hist;logy") == "logy"
    assert draw_options.projection_option("gridx", "z") == ""

"""Layout files: a valid file parses to its tabs and items; every error names file, line, key.

Also: the shipped layouts are valid and use histograms the simulator sends (or
the built-in plugins derive), the folder re-reads a changed file, and the glob
rule is the one of checks.yaml (``overwatch.globs``).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from overwatch.globs import compile_glob, is_glob
from overwatch.resources import resource
from processing.analysis.checks import load_checks
from webapp.layout_files import Layout, LayoutError, LayoutFolder, load_layout

VALID = """\
name: Test board
description: written by the test
tabs:
  - name: Main
    columns: 2
  - name: Wall
    columns: 1
    cycle_seconds: 7.5
items:
  - subsystem: EMC
    histogram: "EMCal/SM0*/cellHits"
    title: Hits
    draw_option: colz
  - subsystem: HLT
    histogram: HLT/eventSize
    reference: true
    tab: Wall
"""


def write(folder: Path, text: str, name: str = "board") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> LayoutError:
    path = write(tmp_path, text)
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    error = info.value
    assert error.file == str(path)
    assert str(error).startswith(f"{path}:{error.line}: ")
    return error


def line_of(text: str, needle: str) -> int:
    lines = [i + 1 for i, line in enumerate(textwrap.dedent(text).splitlines()) if needle in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_valid_file_gives_its_tabs_and_items(tmp_path: Path) -> None:
    board = load_layout(write(tmp_path, VALID))
    assert isinstance(board, Layout)
    assert (board.name, board.title, board.description) == (
        "board",
        "Test board",
        "written by the test",
    )
    assert [(t.name, t.columns, t.cycle_seconds) for t in board.tabs] == [
        ("Main", 2, None),
        ("Wall", 1, 7.5),
    ]
    hits, size = board.items
    assert (hits.subsystem, hits.histogram, hits.title, hits.draw_option) == (
        "EMC", "EMCal/SM0*/cellHits", "Hits", "colz",
    )  # fmt: skip
    assert (
        hits.tab == "Main"
        and not hits.reference
        and hits.line == line_of(VALID, "- subsystem: EMC")
    )
    assert size.tab == "Wall" and size.reference and size.title == "" and size.draw_option == ""
    assert board.tab(None) is board.tabs[0] and board.tab("Wall") is board.tabs[1]
    assert board.tab("Nope") is None
    assert board.items_on(board.tabs[1]) == [size]
    assert board.subsystems() == ["EMC", "HLT"]


def test_globs_select_like_checks_and_plain_paths_only_themselves(tmp_path: Path) -> None:
    board = load_layout(write(tmp_path, VALID))
    paths = ["EMCal/SM00/cellHits", "EMCal/SM01/cellAmplitude", "EMCal/SM09/cellHits",
             "EMCal/SM10/cellHits", "HLT/eventSize", "HLT/eventSizeX"]  # fmt: skip
    hits, size = board.items
    assert hits.is_glob and not size.is_glob
    assert hits.select(paths) == ["EMCal/SM00/cellHits", "EMCal/SM09/cellHits"]
    assert size.select(paths) == ["HLT/eventSize"]
    assert size.select(["HLT/other"]) == []
    # One rule: "*" crosses "/", the whole path must match, and checks.yaml uses the same.
    assert compile_glob("EMCal/*").fullmatch("EMCal/SM03/cellHits")
    assert not compile_glob("SM*").fullmatch("EMCal/SM03/cellHits")
    assert is_glob("a/*") and is_glob("a?") and is_glob("[ab]") and not is_glob("a/b c")
    checks = write(tmp_path, """\
        checks:
          - name: hot
            histogram: "EMCal/*Hits"
            check: mean
            parameters: {min: 0, max: 1}
        """, name="checks")  # fmt: skip
    (definition,) = load_checks(checks)
    assert definition.selects("EMCal/SM03/cellHits") and not definition.selects("TPC/cellHits")


@pytest.mark.parametrize(
    ("text", "key", "needle", "message"),
    [
        (
            VALID.replace("description:", "descripton:"),
            "descripton",
            "descripton:",
            "unknown key; did you mean 'description'?",
        ),
        (
            VALID.replace("    cycle_seconds: 7.5\n", "    cycle_seconds: 7.5\n    colour: red\n"),
            "tabs[1].colour",
            "colour",
            "unknown key",
        ),
        (
            VALID.replace("    draw_option: colz\n", "    draw_option: colz\n    size: 3\n"),
            "items[0].size",
            "size: 3",
            "unknown key",
        ),
        (VALID.replace("name: Test board\n", ""), "name", "description:", "missing key 'name'"),
        (
            VALID.replace("    columns: 2\n", ""),
            "tabs[0].columns",
            "- name: Main",
            "missing key 'columns'",
        ),
        (
            VALID.replace('    histogram: "EMCal/SM0*/cellHits"\n', ""),
            "items[0].histogram",
            "- subsystem: EMC",
            "missing key 'histogram'",
        ),
        (
            VALID.replace("columns: 2", "columns: two"),
            "tabs[0].columns",
            "columns: two",
            "expected an integer, got 'two'",
        ),
        (
            VALID.replace("columns: 2", "columns: 0"),
            "tabs[0].columns",
            "columns: 0",
            "must be 1 or more",
        ),
        (
            VALID.replace("cycle_seconds: 7.5", "cycle_seconds: -1"),
            "tabs[1].cycle_seconds",
            "cycle_seconds",
            "must be more than 0",
        ),
        (
            VALID.replace("reference: true", "reference: maybe"),
            "items[1].reference",
            "reference:",
            "expected true or false",
        ),
        (
            VALID.replace("tab: Wall", "tab: Wal"),
            "items[1].tab",
            "tab: Wal",
            "no tab 'Wal' in this layout (tabs: Main, Wall)",
        ),
        (
            VALID.replace("subsystem: HLT", "subsystem: H-LT"),
            "items[1].subsystem",
            "H-LT",
            "is not a subsystem name",
        ),
        (
            VALID.replace("  - name: Wall", "  - name: Main"),
            "tabs[1].name",
            "    cycle_seconds",
            "duplicate tab 'Main'",
        ),
        (
            VALID.replace("tabs:\n", "tabs: Main\n").split("  - name: Main")[0] + "items: []\n",
            "tabs",
            "tabs: Main",
            "expected a list of tabs",
        ),
        (
            VALID.replace("title: Hits", "title: [Hits]"),
            "items[0].title",
            "title:",
            "expected a single value",
        ),
    ],
)
def test_each_error_names_file_line_and_key(
    tmp_path: Path, text: str, key: str, needle: str, message: str
) -> None:
    error = error_of(tmp_path, text)
    assert error.key == key
    assert message in error.message
    expected = line_of(text, needle)
    if key == "tabs[1].name":  # a duplicate is reported at the second name
        expected = line_of(text, "cycle_seconds") - 2
    assert error.line == expected
    assert f":{error.line}: {key}: " in str(error)


def test_bad_yaml_empty_files_and_bad_file_names_are_errors_too(tmp_path: Path) -> None:
    broken = error_of(tmp_path, "name: x\ntabs: [\n")
    assert "not valid YAML" in broken.message and broken.line >= 2
    empty = error_of(tmp_path, "")
    assert "empty" in empty.message
    path = tmp_path / "my board.yaml"
    path.write_text(VALID)
    with pytest.raises(LayoutError, match="bad layout name 'my board'"):
        load_layout(path)
    with pytest.raises(LayoutError, match="cannot read the layout file"):
        load_layout(tmp_path / "missing.yaml")


def test_the_folder_reports_a_broken_file_and_keeps_the_others(tmp_path: Path) -> None:
    write(tmp_path, VALID, "good")
    write(tmp_path, VALID.replace("columns: 2", "colums: 2"), "bad")
    (tmp_path / "notes.txt").write_text("not a layout")
    folder = LayoutFolder(tmp_path)
    found = folder.all()
    assert list(found) == ["bad", "good"]
    assert isinstance(found["good"], Layout)
    assert isinstance(found["bad"], LayoutError) and found["bad"].key == "tabs[0].colums"
    assert folder.get("nothing") is None and folder.get("../good") is None


def test_the_folder_rereads_a_changed_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID, "live")
    folder = LayoutFolder(tmp_path)
    first = folder.get("live")
    assert isinstance(first, Layout) and first.title == "Test board"
    assert folder.get("live") is first  # unchanged: not parsed again
    path.write_text(VALID.replace("Test board", "Edited board"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = folder.get("live")
    assert isinstance(second, Layout) and second.title == "Edited board"
    path.write_text(VALID.replace("columns: 2", "columns: []"))
    broken = folder.get("live")
    assert isinstance(broken, LayoutError) and broken.key == "tabs[0].columns"


def test_the_shipped_layouts_are_valid_and_cover_every_detector() -> None:
    folder = LayoutFolder(resource("layouts"))
    found = folder.all()
    assert set(found) == {"emc", "tpc", "hlt", "overview"}
    errors = {name: str(v) for name, v in found.items() if isinstance(v, LayoutError)}
    assert errors == {}
    overview = found["overview"]
    assert isinstance(overview, Layout) and {"EMC", "TPC", "HLT"} <= set(overview.subsystems())

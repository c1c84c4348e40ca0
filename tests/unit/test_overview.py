"""The overview (subsystems x runs, pies of qualities) and the run page's quality filter.

Run 1 is the evaluated run of ``web_plugin_data`` (simulator with an EMC hot cell and a
dead region, processed with the checks of config/checks.yaml), so its EMC cell holds Bad
histograms; run 2 has only an HLT snapshot, processed without checks (all Null), so the
other cells of its column are empty. Expected counts are computed here from the check
results processing stored, and cross-checked against the latest slice's own view.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from overwatch.store.db import read
from tests.unit.test_web_support import add_user, build_simulated_run, login, make_app
from tests.unit.web_plugin_data import build_evaluated_run
from webapp import users

SEVERITY = {"Null": 0, "Good": 1, "Medium": 2, "Bad": 3}
FIGURE_PATH = re.compile(r'<figcaption[^>]*><a href="[^"]*" title="[^"]*">([^<]+)</a>')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("overview")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_evaluated_run(data_dir, db, subsystems=("EMC", "TPC", "HLT"))
    build_simulated_run(data_dir, db, run=2, subsystems=("HLT",), snapshots=1)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    browser = app.test_client()
    login(browser, "alice")
    return app, db, client, browser


def expected_counts(db, run: int, subsystem: str) -> dict[str, int]:
    """Worst quality per histogram of the stored check results; unchecked histograms are Null."""

    def work(ow):
        sub = ow.runs[run].subsystems[subsystem]
        return [dict(r) for r in sub.check_results], list(sub.histograms.keys())

    results, paths = read(db, work)
    per_path: dict[str, str] = {}
    for result in results:
        old = per_path.get(result["histogram"], "Null")
        if SEVERITY[result["quality"]] >= SEVERITY[old]:
            per_path[result["histogram"]] = result["quality"]
    counts = dict.fromkeys(SEVERITY, 0)
    for quality in per_path.values():
        counts[quality] += 1
    counts["Null"] += sum(1 for path in paths if path not in per_path)
    return counts


def test_api_counts_per_quality_match_the_check_results(site) -> None:
    _app, db, client, _browser = site
    response = client.get("/api/overview")
    assert response.status_code == 200
    data = response.get_json()
    assert [r["run"] for r in data["runs"]] == [2, 1]  # newest first
    assert data["subsystems"] == ["EMC", "HLT", "TPC"]
    cells = {(c["run"], c["subsystem"]): c for c in data["cells"]}
    assert set(cells) == {(1, "EMC"), (1, "HLT"), (1, "TPC"), (2, "HLT")}  # (2, EMC): no data
    for (run, name), cell in cells.items():
        assert cell["counts"] == expected_counts(db, run, name), (run, name)
        assert cell["histograms"] == sum(cell["counts"].values())
        assert set(cell["links"]) == {q for q, n in cell["counts"].items() if n}
        for quality, link in cell["links"].items():
            assert link == f"/runs/{run}/{name}?slice=latest&quality={quality}"
    emc = cells[1, "EMC"]["counts"]
    assert emc["Bad"] >= 2 and emc["Good"] > 0  # the hot cell's and the dead region's maps
    assert cells[2, "HLT"]["counts"]["Null"] == cells[2, "HLT"]["histograms"] > 0  # no checks


def test_api_counts_agree_with_the_latest_slice_view(site) -> None:
    """The stored results and the view service's latest slice give the same qualities."""
    _app, _db, client, _browser = site
    cells = {(c["run"], c["subsystem"]): c for c in client.get("/api/overview").get_json()["cells"]}
    for name in ("EMC", "TPC", "HLT"):
        view = client.get(f"/api/runs/1/{name}/view?slice=latest").get_json()
        shown = view["qualities"]["histograms"]
        for quality in ("Good", "Medium", "Bad"):
            got = cells[1, name]["counts"][quality]
            assert got == sum(1 for q in shown.values() if q == quality), (name, quality)


@pytest.mark.parametrize(
    ("query", "status", "runs"),
    [("?runs=1", 200, [2]), ("?runs=50", 200, [2, 1]), ("?runs=0", 400, None),
     ("?runs=51", 400, None), ("?runs=many", 400, None)],
)  # fmt: skip
def test_api_runs_parameter(site, query: str, status: int, runs: list[int] | None) -> None:
    _app, _db, client, _browser = site
    response = client.get("/api/overview" + query)
    assert response.status_code == status
    if runs is None:
        assert "runs must" in response.get_json()["error"]
    else:
        assert [r["run"] for r in response.get_json()["runs"]] == runs


def test_overview_page_draws_a_pie_per_cell_sized_by_count(site) -> None:
    _app, _db, client, browser = site
    assert browser.get("/overview").status_code == 200
    text = browser.get("/overview").get_data(as_text=True)
    assert 'data-live-overview="1"' in text and 'data-section="overview"' in text
    cells = re.findall(
        r'<td class="ow-overview-cell"[^>]*data-run="(\d+)" data-subsystem="(\w+)"', text
    )
    assert set(cells) == {("1", "EMC"), ("1", "HLT"), ("1", "TPC"), ("2", "HLT")}
    assert text.count("ow-overview-empty") == 2  # run 2: EMC and TPC
    assert html.escape("/runs/1/EMC?slice=latest&quality=Bad") in text
    assert "Bad: " in text and " histograms (run 1 EMC)</title>" in text  # slice tooltips
    data = {(c["run"], c["subsystem"]): c for c in client.get("/api/overview").get_json()["cells"]}
    radii = {}
    for run, name in data:
        block = text.split(f'data-run="{run}" data-subsystem="{name}"')[1].split("</td>")[0]
        found = re.findall(r'<circle r="([\d.]+)"', block) or re.findall(r"A([\d.]+),", block)
        radii[run, name] = float(found[0])
    by_count = sorted(data, key=lambda key: data[key]["histograms"])
    assert [radii[k] for k in by_count] == sorted(radii[k] for k in by_count)
    small, big = by_count[0], by_count[-1]
    area_ratio = (radii[big] / radii[small]) ** 2
    count_ratio = data[big]["histograms"] / data[small]["histograms"]
    if radii[small] > 9.0:  # not at the minimum size
        assert area_ratio == pytest.approx(count_ratio**0.5, rel=0.02)
    # The navigation links to it, and to the layouts.
    assert 'href="/overview" data-section="overview"' in text
    assert 'href="/layouts" data-section="layouts"' in text


def shown_paths(text: str) -> list[str]:
    return [html.unescape(p) for p in FIGURE_PATH.findall(text)]


def test_run_page_quality_filter(site) -> None:
    _app, _db, client, browser = site
    qualities = client.get("/api/runs/1/EMC/view?slice=latest").get_json()["qualities"]
    bad = sorted(p for p, q in qualities["histograms"].items() if q == "Bad")
    assert bad
    response = browser.get("/runs/1/EMC?slice=latest&quality=Bad")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert sorted(shown_paths(text)) == bad  # from every group, each once
    assert "Only histograms of quality" in text and "every group" in text
    clear = re.search(r'<a href="([^"]+)" data-ow-clear-quality>show every histogram</a>', text)
    assert clear and "quality=" not in html.unescape(clear.group(1))
    # Group links keep the filter; a group given restricts it.
    assert (
        html.escape("quality=Bad")
        in text.split('aria-label="Histogram groups"')[1].split("</nav>")[0]
    )
    view = client.get("/api/runs/1/EMC/view?slice=latest").get_json()
    group = next(g for g in view["groups"] if set(g["histograms"]) & set(bad))
    one = browser.get(f"/runs/1/EMC?slice=latest&quality=bad&group={group['name']}")
    assert sorted(shown_paths(one.get_data(as_text=True))) == sorted(
        set(group["histograms"]) & set(bad)
    )
    # Null: the histograms no check looked at.
    null = shown_paths(browser.get("/runs/1/EMC?slice=latest&quality=Null").get_data(as_text=True))
    assert null and all(qualities["histograms"].get(p, "Null") == "Null" for p in null)
    # A typo says what is allowed.
    wrong = browser.get("/runs/1/EMC?quality=Awful")
    assert wrong.status_code == 400 and "expected one of" in wrong.get_data(as_text=True)
    # Without the filter: the first group, as before.
    plain = browser.get("/runs/1/EMC?slice=latest").get_data(as_text=True)
    assert "Only histograms of quality" not in plain
    assert shown_paths(plain) == view["groups"][0]["histograms"]

"""Issue 18, links and lists: permalinks keep the group, an unknown group is said, one
histogram count (derived apart), no 1970 for runs never read, last_seen of current paths."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

from processing.ingest import records
from tests.unit.test_ondemand import RUN
from tests.unit.test_web_slices import post, web  # noqa: F401 - the shared site fixture

FACTS = re.compile(r'data-live-id="facts">(.*?)</p>', re.S)


def test_a_slice_permalink_keeps_the_group_it_was_asked_from(web) -> None:  # noqa: F811
    client = web[2]
    data = post(web, {"start": 1, "end": 3, "group": "SM03"}).get_json()
    query = parse_qs(urlsplit(data["permalink"]).query)
    assert query["group"] == ["SM03"] and query["slice"] == [data["link"]]
    page = client.get(data["permalink"]).get_data(as_text=True)
    assert 'class="ow-current">SM03' in page or 'ow-current">SM03' in page
    assert '<input type="hidden" name="group" value="SM03">' in page  # the form asks again
    shown = re.search(r'class="ow-slice-permalink" href="([^"]+)"', page)
    assert parse_qs(urlsplit(html.unescape(shown.group(1))).query)["group"] == ["SM03"]


def test_an_unknown_group_is_said_with_the_groups_there_are(web) -> None:  # noqa: F811
    client = web[2]
    answer = client.get(f"/runs/{RUN}/EMC?group=SM99")
    assert answer.status_code == 404
    text = html.unescape(answer.get_data(as_text=True))
    assert "no group 'SM99'" in text and "SM03" in text and "SM00" in text


def test_one_histogram_count_with_the_derived_apart(web) -> None:  # noqa: F811
    client = web[2]
    listing = client.get(f"/api/runs/{RUN}/EMC/histograms").get_json()
    derived = [h["path"] for h in listing["histograms"] if h["derived"]]
    raw = [h["path"] for h in listing["histograms"] if not h["derived"]]
    assert "EMCal/hitsPerSupermodule" in derived and raw
    assert listing["counts"] == {"histograms": len(raw), "derived": len(derived)}
    facts = FACTS.search(client.get(f"/runs/{RUN}/EMC").get_data(as_text=True)).group(1)
    assert f"{len(raw)} histograms + {len(derived)} derived" in " ".join(facts.split())
    detail = client.get(f"/api/runs/{RUN}").get_json()
    assert detail["subsystems"]["EMC"]["histograms"] == len(raw)


def test_last_seen_of_a_histogram_still_there_is_the_latest_snapshot(web) -> None:  # noqa: F811
    client = web[2]
    end = client.get(f"/api/runs/{RUN}").get_json()["subsystems"]["EMC"]["end"]
    listing = client.get(f"/api/runs/{RUN}/EMC/histograms").get_json()["histograms"]
    raw = [h for h in listing if not h["derived"]]
    assert all(h["last_seen"] == end for h in raw)
    assert any(h["first_seen"] < end for h in raw)


def test_a_run_of_bad_snapshots_only_has_no_1970_times(web) -> None:  # noqa: F811
    _app, db, client, *_ = web
    records.commit_bad(db, 424242, "EMC", "EMChists.2026_01_01_00_00_00.root", "truncated")
    runs = client.get("/api/runs?per_page=100").get_json()["runs"]
    (bad,) = [r for r in runs if r["run"] == 424242]
    assert bad["start"] is None and bad["end"] is None
    detail = client.get("/api/runs/424242").get_json()
    assert detail["start"] is None and detail["subsystems"]["EMC"]["start"] is None
    assert detail["subsystems"]["EMC"]["bad_snapshots"] == 1
    page = client.get("/runs").get_data(as_text=True)
    assert "1970" not in page

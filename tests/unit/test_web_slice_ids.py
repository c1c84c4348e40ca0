"""Slice ids that name nothing (any more): 404 JSON for the API, a "slice gone" page for people.

Two ways a slice id stops working: nobody described it (a typo, or its
description was forgotten), or its description is still in the database but
its snapshots are no longer processed (the slice has expired). Neither is a
server error.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from overwatch.store.db import overwatch_root, transact
from tests.unit.test_web_support import add_user, build_simulated_run, csrf_from, login, make_app

RUN = 1
UNKNOWN = "ab" * 12  # well formed, never asked for


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sliceids")
    app, db = make_app(tmp)
    add_user(db)
    build_simulated_run(Path(app.extensions["overwatch"].data_dir), db, run=RUN,
                        subsystems=("EMC",), snapshots=3)  # fmt: skip
    return app, db, tmp


def signed_in(app):
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client


def api_urls(slice_id: str) -> list[str]:
    base = f"/api/runs/{RUN}/EMC"
    return [f"{base}/slices/{slice_id}", f"{base}/slices?slice={slice_id}",
            f"{base}/histograms/EMCTrigger/events?slice={slice_id}"]  # fmt: skip


def test_an_unknown_id_is_a_404_in_the_api_and_a_gone_page(site) -> None:
    app, _db, _tmp = site
    client = signed_in(app)
    for url in api_urls(UNKNOWN):
        response = client.get(url)
        assert response.status_code == 404, url
        assert f"slice {UNKNOWN} is unknown" in response.get_json()["error"], url
    for url in (f"/runs/{RUN}/EMC?slice={UNKNOWN}", f"/runs/{RUN}/EMC/hist/EMCTrigger/events?slice={UNKNOWN}"):  # fmt: skip
        page = client.get(url)
        assert page.status_code == 404 and page.mimetype == "text/html", url
        text = html.unescape(page.get_data(as_text=True))
        assert "This time slice is gone" in text and UNKNOWN in text
        assert f'href="/runs/{RUN}/EMC#ow-slice"' in text  # the run page's slice form
        assert "ow-slice-recompute" not in text  # nothing describes it: no link to recompute


def test_an_expired_slice_is_a_404_and_the_page_offers_to_compute_it_again(site) -> None:
    app, db, tmp = site
    client = signed_in(app)
    token = csrf_from(client.get(f"/runs/{RUN}/EMC").data)
    created = client.post(f"/api/runs/{RUN}/EMC/slices", json={"start": "", "end": 3},
                          headers={"X-CSRF-Token": token})  # fmt: skip
    assert created.status_code == 201, created.get_json()
    data = created.get_json()
    gone_end = data["interval"]["end"]

    def forget_the_end_snapshot(root) -> None:  # e.g. a rebuild without that file
        del overwatch_root(root).runs[RUN].subsystems["EMC"].snapshots[gone_end]

    transact(db, forget_the_end_snapshot)
    other, _ = make_app(tmp, db=db)  # another worker: nothing cached, only the description
    client = signed_in(other)
    for url in api_urls(data["id"]):
        response = client.get(url)
        assert response.status_code == 404, (url, response.get_data(as_text=True))
        assert "slice gone" in response.get_json()["error"], url
    page = client.get(f"/runs/{RUN}/EMC?slice={data['id']}")
    assert page.status_code == 404
    text = html.unescape(page.get_data(as_text=True))
    assert "This time slice is gone" in text and "no longer processed" in text
    recompute = re.search(r'class="ow-slice-recompute" href="([^"]+)"', text)
    assert recompute, text
    again = client.get(recompute.group(1))  # the same interval, snapped to what is there now
    assert again.status_code == 200, html.unescape(again.get_data(as_text=True))[-1500:]
    assert "This page shows an on-demand slice" in again.get_data(as_text=True)

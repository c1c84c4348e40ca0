"""Pages and the JSON API show every object of a producer; a slice says which are not sliced."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from processing.pipeline import Pipeline
from tests.processing_helpers import T0, snapshot_path
from tests.rootjson_support import FIXTURES, differences, root_json
from tests.unit.test_web_support import add_user, login, make_app

FIGURE = re.compile(r'<figure class="ow-figure">(.*?)</figure>', re.S)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("objects")
    app, db = make_app(tmp_path)
    add_user(db)
    data = Path(app.extensions["overwatch"].data_dir)
    for k, n in enumerate((1, 2)):
        path = snapshot_path(data, 1, "EMC", T0 + 60 * k)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / f"objects_{n}.root", path)
    assert Pipeline(data, db).run_until_idle().processed == 2
    client = app.test_client()
    login(client, "alice")
    return client


def figures(client, query: str) -> dict[str, str]:
    """Every figure of the run page, over all its groups: path -> its HTML."""
    groups = client.get(f"/api/runs/1/EMC/view?{query}").get_json()["groups"]
    found = {}
    for group in groups:
        page = client.get(f"/runs/1/EMC?{query}&group={group['name']}").get_data(as_text=True)
        for body in FIGURE.findall(page):
            path = re.search(r'data-live-id="caption:([^"]+)"', body)
            found[html.unescape(path.group(1))] = body
    return found


def test_the_run_page_draws_graphs_functions_and_stacks(client) -> None:
    shown = figures(client, "slice=cumulative")
    for path in ("gRate", "gGain", "mgLayers", "fSignal", "sub/hsLayers", "sub/hPoly", "hEnergy"):
        assert path in shown, path
        assert 'class="ow-drawing' in shown[path]
    assert not any("not sliced" in body for body in shown.values())  # the whole run


def test_a_slice_says_which_objects_it_cannot_slice(client) -> None:
    shown = figures(client, "slice=latest")
    assert "not sliced" in shown["gRate"] and "not sliced" in shown["fSignal"]
    assert "not sliced" not in shown["sub/hsLayers"] and "not sliced" not in shown["hEnergy"]
    page = client.get("/runs/1/EMC/hist/gRate?slice=latest").get_data(as_text=True)
    assert "not sliced" in page


def test_the_json_api_serves_roots_json_of_an_object(client) -> None:
    listing = client.get("/api/runs/1/EMC/view?slice=latest").get_json()
    classes = {item["path"]: item["class_name"] for item in listing["histograms"]}
    assert classes["mgLayers"] == "TMultiGraph" and classes["sub/hPoly"] == "TH2Poly"
    assert "mgLayers" in listing["not_sliced"] and "sub/hPoly" not in listing["not_sliced"]
    answer = client.get("/api/runs/1/EMC/histograms/mgLayers?slice=cumulative")
    assert answer.status_code == 200
    assert differences(json.loads(answer.data), root_json(2, "mgLayers"), "mgLayers") == []


def test_the_jsroot_tree_titles_every_object(client) -> None:
    """THttpServer's h.json names each object with its class and its own title."""
    tree = client.get("/jsroot/Run1/EMC/cumulative/h.json").get_json()
    items = {c["_name"]: c for c in tree.get("_childs", [])}
    assert items["gRate"]["_kind"] == "ROOT.TGraph"
    assert items["gRate"]["_title"] == root_json(2, "gRate")["fTitle"]
    assert items["fSignal"]["_title"] == root_json(2, "fSignal")["fTitle"]

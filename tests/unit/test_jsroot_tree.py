"""The THttpServer-compatible tree under /jsroot/ on really processed snapshots.

h.json as THttpServer writes it (field names, kinds, lazy levels), root.json the
JSON API's bytes for the same view and path, the gzip variant, item.json,
multi.json, JSON 404s, the login, and HTTP ranges (several at once) on the raw
snapshot files.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from tests.unit.test_web_support import (
    T0,
    add_user,
    build_simulated_run,
    login,
    make_app,
    process,
    write_snapshot,
)
from webapp import jsroot_tree, users

RUN = 7
#: What THttpServer's h.json writes of a folder or object (TRootSniffer's item fields).
THTTP_FIELDS = {"_name", "_kind", "_title", "_childs", "_more", "_realname"}
#: Paths with THttpServer's special characters; "a-b" and "a_b" share one item name.
PATHS = ("EMCal/cell hits", "EMCal/SM00/amplitude", "Trigger/classes", "odd/a-b", "odd/a_b",
         "events")  # fmt: skip


def cumulative_snapshots() -> tuple[bytes, bytes]:
    """Two snapshots of one run: the second holds the first's fills and more."""
    rng = np.random.default_rng(11)
    hists = {path: Histogram.empty(path, [Axis.regular(20, 0.0, 1.0)], "TH1F") for path in PATHS}
    hists["events"].title = "Events;n;count"
    payloads = []
    for n in (40, 90):
        for h in hists.values():
            h.fill(rng.random(n))
        payloads.append(rootio.to_bytes(list(hists.values())))
    return payloads[0], payloads[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("jsroot")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    build_simulated_run(data_dir, db, run=1, subsystems=("EMC",))
    first, second = cumulative_snapshots()
    files = [write_snapshot(data_dir, RUN, "TST", T0, first),
             write_snapshot(data_dir, RUN, "TST", T0 + 60, second)]  # fmt: skip
    process(data_dir, db)
    token = users.issue_token(db, "alice")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return app, client, data_dir, files


def h_json(client, item: str = "") -> dict:
    response = client.get(f"/jsroot/{item}/h.json?compact=3" if item else "/jsroot/h.json")
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return response.get_json()


def child(node: dict, name: str) -> dict:
    found = [c for c in node.get("_childs", []) if c["_name"] == name]
    assert found, f"{name!r} not among {[c['_name'] for c in node.get('_childs', [])]}"
    return found[0]


def object_items(node: dict, prefix: str = "") -> dict[str, dict]:
    """Item path -> node of every object below a fully listed node."""
    found = {}
    for kid in node.get("_childs", []):
        path = f"{prefix}{kid['_name']}"
        if "_childs" in kid:
            found.update(object_items(kid, path + "/"))
        elif kid["_kind"] not in (jsroot_tree.FOLDER, jsroot_tree.DIRECTORY):
            found[path] = kid
    return found


def real_path(item: str, view: dict) -> str:
    """The histogram path an item path names, from the _realname fields along it."""
    node, parts = view, []
    for name in item.split("/"):
        node = child(node, name)
        parts.append(node.get("_realname", name))
    return "/".join(parts)


def test_top_lists_runs_newest_first_as_lazy_folders(site) -> None:
    _app, client, *_ = site
    top = h_json(client)
    assert set(top) == {"_name", "_kind", "_title", "_childs"}
    assert top["_name"] == "Overwatch" and top["_kind"] == "ROOT.Session"
    assert [run["_name"] for run in top["_childs"]] == [f"Run{RUN}", "Run1"]
    for run in top["_childs"]:
        assert set(run) == {"_name", "_kind", "_title", "_more"}  # expanded on demand
        assert run["_kind"] == "ROOT.TFolder" and run["_more"] is True
    assert top["_childs"][0]["_title"].startswith(f"Run {RUN}: 2025-11-22 10:00:00 UTC")
    assert "ongoing" in top["_childs"][1]["_title"]  # run 1's snapshots are minutes old


def test_a_run_lists_subsystems_views_and_snapshot_files(site) -> None:
    _app, client, _data_dir, files = site
    run = h_json(client, f"Run{RUN}")
    tst = child(run, "TST")
    assert tst["_kind"] == "ROOT.TFolder" and "2 snapshots" in tst["_title"]
    views = [c["_name"] for c in tst["_childs"]]
    assert views[:2] == ["cumulative", "latest"] and views[-1] == "files"
    assert all(re.fullmatch("[0-9a-f]{24}", name) for name in views[2:-1])  # saved slices
    for name in ("cumulative", "latest"):  # a view is computed only when asked for
        view = child(tst, name)
        assert view["_more"] is True and "_childs" not in view
    snapshots = child(tst, "files")["_childs"]
    assert [s["_name"] for s in snapshots] == [Path(f).name for f in files]
    for item, relpath in zip(snapshots, files, strict=True):
        assert item["_kind"] == "ROOT.TFile" and item["_title"].startswith(relpath)
        assert item["_url"] == f"/jsroot/Run{RUN}/TST/files/{Path(relpath).name}"
        assert item["_expand"] == "OverwatchJsroot.openSnapshot" and item["_obj"] == {}
    for node in (run, tst):
        assert set(node) <= THTTP_FIELDS


def test_a_view_lists_directories_and_objects_under_thttpserver_names(site) -> None:
    _app, client, *_ = site
    view = h_json(client, f"Run{RUN}/TST/cumulative")
    assert [c["_name"] for c in view["_childs"]] == ["EMCal", "Trigger", "odd", "events"]
    emcal = child(view, "EMCal")
    assert emcal["_kind"] == "ROOT.TDirectoryFile"
    cell = child(emcal, "cell_hits")
    assert cell == {"_name": "cell_hits", "_kind": "ROOT.TH1F", "_title": "",
                    "_realname": "cell hits"}  # fmt: skip
    assert child(child(emcal, "SM00"), "amplitude")["_kind"] == "ROOT.TH1F"
    odd = child(view, "odd")["_childs"]
    assert [(c["_name"], c.get("_realname")) for c in odd] == [("a_b", "a-b"), ("a_b_0", "a_b")]
    assert child(view, "events")["_title"] == "Events;n;count"
    items = object_items(view)
    assert {real_path(item, view) for item in items} == set(PATHS)

    def fields(node: dict) -> set[str]:
        return set(node).union(*(fields(c) for c in node.get("_childs", [])))

    assert fields(view) <= THTTP_FIELDS


def test_levels_beyond_the_budget_are_expanded_lazily(site, monkeypatch) -> None:
    _app, client, *_ = site
    monkeypatch.setattr(jsroot_tree, "NODE_BUDGET", 1)
    view = h_json(client, f"Run{RUN}/TST/latest")
    emcal = child(view, "EMCal")  # the asked item's children are always listed ...
    assert emcal["_more"] is True and "_childs" not in emcal  # ... deeper levels on demand
    assert "_more" not in child(view, "events")  # an object has nothing to expand
    emcal = h_json(client, f"Run{RUN}/TST/latest/EMCal")
    assert [c["_name"] for c in emcal["_childs"]] == ["cell_hits", "SM00"]
    assert child(emcal, "SM00")["_more"] is True
    # A deep link works without any listing first (JSROOT's ?item=...).
    deep = client.get(f"/jsroot/Run{RUN}/TST/latest/EMCal/SM00/amplitude/root.json")
    assert deep.status_code == 200 and deep.get_json()["_typename"] == "TH1F"


def test_root_json_is_the_json_api_answer_for_every_view_and_object(site) -> None:
    _app, client, *_ = site
    created = client.post(f"/api/runs/{RUN}/TST/slices", json={"start": "", "end": 0})
    assert created.status_code == 201, created.data
    slice_id = created.get_json()["id"]
    tst = h_json(client, f"Run{RUN}/TST")
    saved = child(tst, slice_id)
    assert saved["_more"] is True and saved["_title"].startswith(f"on-demand slice {slice_id}")
    assert client.get(f"/jsroot/Run1/EMC/{slice_id}/h.json").status_code == 404  # TST's slice
    for run, subsystem, view in ((RUN, "TST", "cumulative"), (RUN, "TST", "latest"),
                                 (RUN, "TST", slice_id), (1, "EMC", "latest")):  # fmt: skip
        listing = h_json(client, f"Run{run}/{subsystem}/{view}")
        items = object_items(listing)
        assert len(items) >= len(PATHS) if subsystem == "TST" else len(items) > 10
        for item in items:
            path = quote(real_path(item, listing))
            api = client.get(f"/api/runs/{run}/{subsystem}/histograms/{path}?slice={view}")
            ours = client.get(f"/jsroot/Run{run}/{subsystem}/{view}/{item}/root.json?compact=23")
            assert ours.status_code == api.status_code == 200, (item, ours.data)
            assert ours.data == api.data, item
            assert ours.headers["ETag"] == api.headers["ETag"]
            assert ours.headers["X-Overwatch-Snapshot"] == api.headers["X-Overwatch-Snapshot"]
            again = client.get(ours.request.path, headers={"If-None-Match": ours.headers["ETag"]})
            assert again.status_code == 304
    # The slice and the whole run differ (the slice holds the first snapshot only).
    events = {v: client.get(f"/jsroot/Run{RUN}/TST/{v}/events/root.json").get_json()["fEntries"]
              for v in ("cumulative", slice_id, "latest")}  # fmt: skip
    assert events == {"cumulative": 130.0, slice_id: 40.0, "latest": 90.0}


def test_root_json_gz_is_gzip_encoded_whatever_the_client_accepts(site) -> None:
    _app, client, *_ = site
    api = client.get("/api/runs/1/EMC/histograms/EMCal/SM03/cellHits?slice=cumulative")
    for accept in ("identity", "gzip"):
        zipped = client.get("/jsroot/Run1/EMC/cumulative/EMCal/SM03/cellHits/root.json.gz",
                            headers={"Accept-Encoding": accept})  # fmt: skip
        assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
        assert zipped.mimetype == "application/json"
        assert gzip.decompress(zipped.data) == api.data
    small = client.get(f"/jsroot/Run{RUN}/TST/item.json.gz")  # below the size gzip pays for
    assert small.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(small.data))["_name"] == "TST"


def test_item_json_is_the_node_without_children(site) -> None:
    _app, client, *_ = site
    top = client.get("/jsroot/item.json").get_json()
    assert top == {"_name": "Overwatch", "_kind": "ROOT.Session", "_title": top["_title"],
                   "_more": True}  # fmt: skip
    folder = client.get(f"/jsroot/Run{RUN}/TST/cumulative/EMCal/item.json").get_json()
    assert folder == {"_name": "EMCal", "_kind": "ROOT.TDirectoryFile", "_title": "EMCal",
                      "_more": True}  # fmt: skip
    hist = client.get(f"/jsroot/Run{RUN}/TST/cumulative/EMCal/cell_hits/item.json").get_json()
    assert hist == {"_name": "cell_hits", "_kind": "ROOT.TH1F", "_title": "",
                    "_realname": "cell hits"}  # fmt: skip


def test_multi_json_answers_each_line_in_order(site) -> None:
    _app, client, *_ = site
    base = f"Run{RUN}/TST/cumulative"
    lines = [f"{base}/events/root.json", f"{base}/EMCal/cell_hits/root.json.gz?compact=23",
             f"{base}/nothing/root.json", f"{base}/EMCal/item.json", f"{base}/events/exe.json"]  # fmt: skip
    response = client.post(f"/jsroot/multi.json?number={len(lines)}", data="\n".join(lines) + "\n")
    assert response.status_code == 200 and response.mimetype == "application/json"
    answers = response.get_json()
    assert answers[0] == client.get(f"/jsroot/{base}/events/root.json").get_json()
    assert answers[1] == client.get(f"/jsroot/{base}/EMCal/cell_hits/root.json").get_json()
    assert answers[2] is None and answers[4] is None  # no such item; not a request served
    assert answers[3]["_name"] == "EMCal"
    relative = client.post(f"/jsroot/{base}/multi.json?number=1", data="events/root.json")
    assert relative.get_json() == answers[:1]
    gz = client.post("/jsroot/multi.json.gz", data=lines[0])
    assert json.loads(gzip.decompress(gz.data)) == answers[:1]
    wrong = client.post("/jsroot/multi.json?number=3", data=lines[0])
    assert wrong.status_code == 400 and "number=3" in wrong.get_json()["error"]
    empty = client.get("/jsroot/multi.json")
    assert empty.status_code == 400 and "POST body" in empty.get_json()["error"]


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/jsroot/Run999/h.json", 404, "no item 'Run999' in the top"),
        ("/jsroot/Run0007/h.json", 404, "no item 'Run0007'"),
        ("/jsroot/Run7/NOPE/h.json", 404, "no item 'NOPE' in Run7"),
        ("/jsroot/Run7/TST/other/h.json", 404, "no item 'other' in Run7/TST"),
        ("/jsroot/Run7/TST/0123456789abcdef/h.json", 404, "no item '0123456789abcdef'"),
        ("/jsroot/Run7/TST/0123456789abcdef01234567/h.json", 404, "no item '0123456789abcdef0"),
        ("/jsroot/Run7/TST/cumulative/EMCal/cell hits/root.json", 404, "no item 'cell hits'"),
        ("/jsroot/Run7/TST/cumulative/EMCal/root.json", 404, "not an object"),
        ("/jsroot/Run7/TST/files/root.json", 404, "not an object"),
        ("/jsroot/Run7/TST/cumulative/events/exe.json", 404, "nothing at"),
        ("/jsroot/h.xml", 404, "nothing at /jsroot/h.xml"),
        ("/jsroot/Run7/TST/files/TSThists.2025_11_22_10_00_00.root/root.json", 404, "not an obj"),
        ("/jsroot/Run7/../Run1/h.json", 400, "'..'"),
        ("/jsroot/Run7//h.json", 400, "empty path segments"),
    ],
)
def test_unknown_items_are_json_errors(site, url: str, status: int, words: str) -> None:
    _app, client, *_ = site
    response = client.get(url)
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert words in response.get_json()["error"]


def test_only_multi_json_takes_a_post(site) -> None:
    _app, client, *_ = site
    response = client.post(f"/jsroot/Run{RUN}/h.json", data="x")
    assert response.status_code == 405 and "only on multi.json" in response.get_json()["error"]


def test_the_login_or_a_token_is_needed_and_a_session_opens_the_gui(site) -> None:
    app, *_ = site
    anonymous = app.test_client()
    refused = anonymous.get("/jsroot/h.json", headers={"Accept": "application/json"})
    assert refused.status_code == 401 and "authentication required" in refused.get_json()["error"]
    bad_token = anonymous.get("/jsroot/h.json", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    page = anonymous.get("/jsroot/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert anonymous.get(f"/jsroot/Run{RUN}/TST/files/x.root").status_code in (302, 401)

    shifter = app.test_client()
    assert login(shifter, "alice").status_code == 302
    for url in ("/jsroot/", "/jsroot/index.htm"):
        page = shifter.get(url)
        assert page.status_code == 200 and page.mimetype == "text/html"
        html = page.get_data(as_text=True)
        assert "jsroot/modules/gui.mjs" in html and "jsroot_gui.js" in html
        embedded = re.search(r'id="ow-jsroot-hierarchy">(.*?)</script>', html, re.S)
        assert json.loads(embedded.group(1)) == h_json(shifter)
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert shifter.get("/jsroot").status_code == 308  # to /jsroot/, where relative URLs resolve
    assert h_json(shifter, f"Run{RUN}")["_name"] == f"Run{RUN}"
    csrf_less = shifter.post("/jsroot/multi.json", data=f"Run{RUN}/item.json")
    assert csrf_less.status_code == 400  # a browser's POST carries the session's CSRF token


def test_raw_snapshot_files_answer_ranges_one_or_several_at_once(site) -> None:
    _app, client, data_dir, files = site
    relpath = files[1]
    content = (data_dir / relpath).read_bytes()
    url = f"/jsroot/Run{RUN}/TST/files/{Path(relpath).name}"
    whole = client.get(url + "?stamp=123")  # JSROOT's stamp parameter is ignored
    assert whole.status_code == 200 and whole.data == content
    assert whole.headers["Accept-Ranges"] == "bytes"

    one = client.get(url, headers={"Range": "bytes=0-1023"})
    assert one.status_code == 206 and one.data == content[:1024]
    assert one.headers["Content-Range"] == f"bytes 0-1023/{len(content)}"
    suffix = client.get(url, headers={"Range": "bytes=-100"})
    assert suffix.status_code == 206 and suffix.data == content[-100:]

    asked = [(5000, 5099), (100, 163), (len(content) - 10, len(content) + 500)]
    header = "bytes=" + ",".join(f"{a}-{b}" for a, b in asked)
    several = client.get(url, headers={"Range": header})
    assert several.status_code == 206
    boundary = several.mimetype_params["boundary"]
    assert several.mimetype == "multipart/byteranges" and boundary
    parts = several.data.split(f"--{boundary}".encode())
    assert parts[0] == b"\r\n" and parts[-1] == b"--\r\n"
    for part, (start, stop) in zip(parts[1:-1], asked, strict=True):
        head, body = part.split(b"\r\n\r\n", 1)
        stop = min(stop, len(content) - 1)
        assert f"Content-Range: bytes {start}-{stop}/{len(content)}".encode() in head
        assert body == content[start : stop + 1] + b"\r\n"  # the CRLF before the next boundary

    outside = client.get(url, headers={"Range": f"bytes={len(content)}-,{len(content) + 9}-"})
    assert outside.status_code == 416
    assert outside.headers["Content-Range"] == f"bytes */{len(content)}"
    too_many = ",".join(f"{n}-{n}" for n in range(jsroot_tree.MAX_RANGES + 1))
    assert client.get(url, headers={"Range": f"bytes={too_many}"}).status_code == 416

    # The download route answers the single ranges JSROOT falls back to.
    download = client.get(f"/download/{relpath}", headers={"Range": "bytes=10-19"})
    assert download.status_code == 206 and download.data == content[10:20]

    node = client.get(url + "/item.json").get_json()
    assert node["_kind"] == "ROOT.TFile" and node["_url"] == url
    missing = client.get(f"/jsroot/Run{RUN}/TST/files/TSThists.2030_01_01_00_00_00.root")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-9", [(0, 10)]),
        ("bytes=500-599, 0-9,-20,7-", [(500, 600), (0, 10), (-20, None), (7, None)]),
        ("bytes=-0", [(0, 0)]),  # the last 0 bytes: nothing to serve
        ("bytes=9-0", []),
        ("bytes=a-b", []),
        ("bytes=-", []),
        ("bytes=", []),
        ("items=0-9", []),
        ("", []),
    ],
)
def test_range_headers_are_read_in_any_order(header: str, ranges: list) -> None:
    assert jsroot_tree.byte_ranges(header) == ranges

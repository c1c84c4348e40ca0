"""Alarms in the web app: the JSON list and its filters, acknowledging (API and form), errors.

The alarms are raised by the real processing chain (simulated hot cell and dead
region in the EMC, checks of config/checks.yaml, AlarmManager), see
``tests/unit/web_plugin_data.py``.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from overwatch.store.db import overwatch_root, read, transact
from tests.unit.test_web_support import add_user, csrf_from, login, make_app
from tests.unit.web_plugin_data import DEAD_MAP, HOT_MAP, build_evaluated_run
from webapp import users


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("alarms")
    app, db = make_app(tmp_path)
    add_user(db, "alice")
    add_user(db, "bob")
    build_evaluated_run(Path(app.extensions["overwatch"].data_dir), db)
    token = users.issue_token(db, "alice")
    app.config["BOB_TOKEN"] = users.issue_token(db, "bob")  # before the app caches tokens
    return app, db, token


@pytest.fixture
def api(site):
    """A token client, with every alarm unacknowledged again (tests acknowledge alarms)."""
    app, db, token = site

    def reset(root: dict) -> None:
        for alarm in overwatch_root(root).alarms.values():
            alarm.acknowledged_by, alarm.acknowledged_at = "", 0.0

    transact(db, reset)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def stored(db) -> dict[int, dict]:
    return read(
        db,
        lambda ow: {
            a.id: {"by": a.acknowledged_by, "at": a.acknowledged_at, "path": a.path}
            for a in ow.alarms.values()
        },
    )


def annotation_value(db, path: str, name: str) -> float:
    return read(db, lambda ow: ow.runs[1].subsystems["EMC"].annotations[path]["values"][name])


def test_the_raised_alarms_are_listed_newest_first_with_their_fields(site, api) -> None:
    _app, db, _token = site
    body = api.get("/api/alarms").get_json()
    alarms = body["alarms"]
    assert body["count"] == len(alarms) == 2
    assert [a["id"] for a in alarms] == sorted((a["id"] for a in alarms), reverse=True)
    by_path = {a["histogram"]: a for a in alarms}
    assert set(by_path) == {HOT_MAP, DEAD_MAP}
    hot = by_path[HOT_MAP]
    assert (hot["run"], hot["subsystem"], hot["trend"], hot["quality"]) == (
        1,
        "EMC",
        "hot_cells",
        "Bad",
    )
    # The message carries the trended value the plugin found on the same slice.
    assert f"last value = {annotation_value(db, HOT_MAP, 'hot_cells'):g}" in hot["message"]
    dead = by_path[DEAD_MAP]
    assert f"last value = {annotation_value(db, DEAD_MAP, 'dead_cells'):g}" in dead["message"]
    for alarm in alarms:
        assert abs(alarm["time"] - time.time()) < 3600
        assert alarm["acknowledged_by"] is None and alarm["acknowledged_at"] is None
        assert alarm["active"] is True
        assert alarm["histogram_url"] == f"/runs/1/EMC/hist/{alarm['histogram']}"
        assert alarm["ack_url"] == f"/api/alarms/{alarm['id']}/ack"
        # One alarm per episode: opened by alarms.open_after (2) Bad slices, updated since.
        assert alarm["occurrences"] >= 2
        assert alarm["first_seen"] < alarm["last_seen"] <= alarm["time"]
    page = api.get("/alarms").data.decode()
    for alarm in alarms:
        assert f'data-occurrences="{alarm["occurrences"]}"' in page


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("run=1", 2),
        ("run=2", 0),
        ("subsystem=EMC", 2),
        ("subsystem=TPC", 0),
        ("quality=Bad", 2),
        ("quality=bad", 2),  # any case
        ("quality=Good", 0),
        ("active=1", 2),
        ("active=false", 0),
        ("acknowledged=0", 2),
        ("acknowledged=1", 0),
        ("limit=1", 1),
        ("run=1&subsystem=EMC&quality=Bad&active=1", 2),
    ],
)
def test_filters(api, query: str, count: int) -> None:
    body = api.get(f"/api/alarms?{query}").get_json()
    assert body["count"] == count, query
    if "quality" in query and count:
        assert {a["quality"] for a in body["alarms"]} == {"Bad"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("quality=Terrible", "quality"),
        ("run=abc", "run"),
        ("run=-3", "run"),
        ("subsystem=E/M", "subsystem"),
        ("active=maybe", "active"),
        ("acknowledged=2", "acknowledged"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
    ],
)
def test_bad_filters_are_400_naming_the_field(api, query: str, field: str) -> None:
    response = api.get(f"/api/alarms?{query}")
    assert response.status_code == 400, query
    assert response.get_json()["error"].startswith(f"{field} "), response.get_json()


def test_acknowledge_with_a_token_first_acknowledgement_counts(site, api) -> None:
    app, db, _token = site
    first = api.get("/api/alarms").get_json()["alarms"][-1]["id"]
    before = time.time()
    response = api.post(f"/api/alarms/{first}/ack")
    assert response.status_code == 200
    body = response.get_json()
    assert body["acknowledged_by"] == "alice" and body["acknowledged_now"] is True
    assert before - 1 <= body["acknowledged_at"] <= time.time() + 1
    assert stored(db)[first]["by"] == "alice"

    bob = app.test_client()
    bob.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {app.config['BOB_TOKEN']}"
    again = bob.post(f"/api/alarms/{first}/ack").get_json()
    assert again["acknowledged_by"] == "alice" and again["acknowledged_now"] is False
    assert stored(db)[first]["at"] == body["acknowledged_at"]
    listing = {a["id"]: a for a in api.get("/api/alarms").get_json()["alarms"]}
    assert listing[first]["acknowledged_by"] == "alice"
    assert api.get("/api/alarms?acknowledged=0").get_json()["count"] == 1


def test_acknowledge_in_a_session_needs_the_csrf_header(site, api) -> None:
    app, db, _token = site
    alarm = api.get("/api/alarms").get_json()["alarms"][0]["id"]
    browser = app.test_client()
    login(browser, "bob")
    refused = browser.post(f"/api/alarms/{alarm}/ack")
    assert refused.status_code == 400
    assert "form has expired" in refused.get_json()["error"]
    wrong = browser.post(f"/api/alarms/{alarm}/ack", headers={"X-CSRF-Token": "not-it"})
    assert wrong.status_code == 400
    assert stored(db)[alarm]["by"] == ""
    token = csrf_from(browser.get("/alarms").data)
    done = browser.post(f"/api/alarms/{alarm}/ack", headers={"X-CSRF-Token": token})
    assert done.status_code == 200 and done.get_json()["acknowledged_by"] == "bob"
    assert stored(db)[alarm]["by"] == "bob"


def test_acknowledge_from_the_alarms_page_form(site, api) -> None:
    app, db, _token = site
    browser = app.test_client()
    login(browser, "bob")
    page = browser.get("/alarms?quality=Bad&active=1").data.decode()
    forms = re.findall(r'<form method="post" action="(/alarms/(\d+)/ack)"', page)
    assert len(forms) == 2
    action, alarm = forms[0]
    assert 'name="next" value="/alarms?quality=Bad&amp;active=1"' in page
    token = csrf_from(page.encode())
    without = browser.post(action, data={"next": "/alarms"})
    assert without.status_code == 400 and "text/html" in without.headers["Content-Type"]
    assert stored(db)[int(alarm)]["by"] == ""
    response = browser.post(action, data={"csrf_token": token, "next": "/alarms?quality=Bad"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/alarms?quality=Bad"
    assert stored(db)[int(alarm)]["by"] == "bob"
    after = html.unescape(browser.get("/alarms?quality=Bad").data.decode())
    assert after.count("Acknowledge</button>") == 1
    assert "by <strong>bob</strong>" in after
    # An outside "next" is not followed.
    other = int(forms[1][1])
    elsewhere = browser.post(
        f"/alarms/{other}/ack", data={"csrf_token": token, "next": "https://evil.example/"}
    )
    assert elsewhere.headers["Location"] == "/alarms"


def test_unknown_alarm_is_404(site, api) -> None:
    app, _db, _token = site
    response = api.post("/api/alarms/9999/ack")
    assert response.status_code == 404
    assert response.get_json() == {"error": "alarm 9999 not found"}
    browser = app.test_client()
    login(browser, "bob")
    token = csrf_from(browser.get("/alarms").data)
    page = browser.post("/alarms/9999/ack", data={"csrf_token": token})
    assert page.status_code == 404 and "alarm 9999 not found" in page.data.decode()
    assert api.get("/api/alarms/x/ack").status_code == 404


def test_alarms_page_keeps_filters_in_the_url_and_refuses_bad_ones(site, api) -> None:
    app, _db, _token = site
    browser = app.test_client()
    login(browser, "alice")
    text = browser.get("/alarms?subsystem=EMC&quality=Bad").data.decode()
    assert text.count('class="ow-alarm ') == 2
    assert '<option value="Bad" selected>' in text
    assert 'name="subsystem" value="EMC"' in text
    assert f"<code>{HOT_MAP}</code>" in text
    assert 'data-quality="Bad"' in text
    # The trend links to the trending page with that trend selected.
    assert f'href="/runs/1/EMC/trends?trend={HOT_MAP}:hot_cells"' in text
    empty = browser.get("/alarms?subsystem=TPC").data.decode()
    assert "No alarm matches" in empty
    bad = browser.get("/alarms?quality=Terrible")
    assert bad.status_code == 400
    assert "quality must be one of Good, Medium, Bad, Null" in html.unescape(bad.data.decode())


def test_anonymous_requests_are_refused(site) -> None:
    app, db, _token = site
    client = app.test_client()
    assert client.get("/api/alarms").status_code == 401
    assert client.post("/api/alarms/1/ack").status_code == 401
    assert client.get("/alarms").status_code == 302
    assert stored(db)[1]["by"] == ""

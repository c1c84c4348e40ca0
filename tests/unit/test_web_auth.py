"""Authentication, sessions, API tokens, CSRF and login rate limiting of the web app."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from tests.unit.test_web_support import (
    PASSWORD,
    T0,
    add_user,
    csrf_from,
    login,
    make_app,
    store_snapshot,
    tiny_snapshot,
)
from webapp import users
from webapp.auth import LOGIN_FAILED, PUBLIC_ENDPOINTS, TOO_MANY
from webapp.security import ADDRESS_FACTOR, load_secret_key

#: Values for URL converters, so every rule of the URL map can be requested.
CONVERTER_VALUES = {"IntegerConverter": "1", "PathConverter": "EMCal/cell hits"}


def concrete_urls(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) for every rule and method of the app."""
    result = []
    for rule in app.url_map.iter_rules():
        values = {
            name: CONVERTER_VALUES.get(type(conv).__name__, "EMC")
            for name, conv in rule._converters.items()
        }
        url = app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            result.append((rule.endpoint, method, url))
    return result


@pytest.fixture
def app_db(tmp_path: Path):
    app, db = make_app(tmp_path)
    add_user(db, "alice")
    store_snapshot(db, Path(app.extensions["overwatch"].data_dir), 1, "EMC", T0, tiny_snapshot(1))
    return app, db


def test_the_public_routes_are_exactly_login_healthz_and_static(app_db) -> None:
    app, _db = app_db
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert PUBLIC_ENDPOINTS == {"auth.login", "api.healthz", "static", "metrics.scrape"}
    assert PUBLIC_ENDPOINTS <= endpoints
    client = app.test_client()
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/overwatch.css").status_code == 200


def test_every_route_refuses_anonymous_requests(app_db) -> None:
    """Walk the URL map: a new route is covered without editing this test."""
    app, _db = app_db
    client = app.test_client()
    checked = 0
    for endpoint, method, url in concrete_urls(app):
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        response = client.open(url, method=method)
        if url.startswith("/api/"):
            assert response.status_code == 401, (method, url)
            assert "error" in response.get_json(), url
        else:
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.headers["Location"].startswith("/login?next="), url
        checked += 1
    assert checked >= 12  # every page, API, status and download route


def test_every_route_refuses_an_invalid_token_and_accepts_a_valid_one(app_db) -> None:
    app, db = app_db
    token = users.issue_token(db, "alice")
    client = app.test_client()
    for endpoint, method, url in concrete_urls(app):
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        bad = client.open(url, method=method, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401, (method, url)
        assert bad.get_json() == {"error": "invalid or revoked API token"}
        good = client.open(url, method=method, headers={"Authorization": f"Bearer {token}"})
        assert good.status_code != 401, (method, url)
        assert not good.headers.get("Location", "").startswith("/login?next="), (method, url)


def test_token_is_stored_only_as_a_hash_and_can_be_revoked(app_db) -> None:
    app, db = app_db
    token = users.issue_token(db, "alice")
    from overwatch.store.db import read

    stored = read(db, lambda root: list(root.users["alice"].token_hashes))
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/runs", headers=headers).status_code == 200
    assert users.revoke_tokens(db, "alice") == 1
    app.extensions["overwatch"].auth.invalidate()
    assert client.get("/api/runs", headers=headers).status_code == 401


def test_session_cookie_is_httponly_and_samesite_lax(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db)
    response = login(app.test_client(), "alice")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_secure_cookie_is_configurable(tmp_path: Path) -> None:
    app, db = make_app(tmp_path, secure_cookies=True)
    add_user(db)
    response = login(app.test_client(), "alice")
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_then_logout(app_db) -> None:
    app, _db = app_db
    client = app.test_client()
    assert client.get("/runs").status_code == 302
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/runs"
    assert b"Run" in client.get("/runs").data
    token = csrf_from(client.get("/runs").data)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/runs").status_code == 302


def test_login_redirects_only_to_paths_on_this_site(app_db) -> None:
    app, _db = app_db
    for target, expected in (("/runs/1/EMC?slice=latest", "/runs/1/EMC?slice=latest"),
                             ("//evil.example/x", "/runs"), ("https://evil.example/", "/runs"),
                             ("/\\evil.example", "/runs")):  # fmt: skip
        client = app.test_client()
        token = csrf_from(client.get("/login").data)
        response = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert response.headers["Location"] == expected, target


def test_wrong_password_answer_is_the_same_for_known_and_unknown_users(tmp_path: Path) -> None:
    app, db = make_app(tmp_path, login_attempts_per_minute=1000)
    add_user(db, "alice")
    client = app.test_client()
    token = csrf_from(client.get("/login").data)

    def attempt(name: str) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        response = client.post(
            "/login", data={"username": name, "password": "wrong password", "csrf_token": token}
        )
        return time.perf_counter() - started, response.status_code, response.data

    attempt("alice"), attempt("nobody")  # warm up
    known = [attempt("alice") for _ in range(5)]
    unknown = [attempt("nobody") for _ in range(5)]
    assert {(status, body) for _, status, body in known} == {(401, known[0][2])}
    assert {(status, body) for _, status, body in unknown} == {(401, known[0][2])}
    assert LOGIN_FAILED.encode() in known[0][2]
    known_time = statistics.median(t for t, _, _ in known)
    unknown_time = statistics.median(t for t, _, _ in unknown)
    # Both pay for one scrypt check (tens of milliseconds); without the dummy hash the
    # unknown user would answer in well under a millisecond.
    assert known_time > 0.005 and unknown_time > 0.005
    assert 0.5 < unknown_time / known_time < 2.0, (known_time, unknown_time)


def test_logins_are_rate_limited_per_client_address(tmp_path: Path) -> None:
    """One address guessing many names is slowed down (a looser count than per user)."""
    app, db = make_app(tmp_path, login_attempts_per_minute=3)
    add_user(db, "alice")
    client = app.test_client()
    names = [f"u{i}" for i in range(3 * ADDRESS_FACTOR)]  # many names, one address
    for name in names:
        assert login(client, name, "bad password!", REMOTE_ADDR="10.0.0.1").status_code == 401
    refused = login(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.1")
    assert refused.status_code == 429
    assert TOO_MANY.encode() in refused.data
    assert login(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.2").status_code == 302


def test_form_posts_without_the_csrf_token_are_refused(app_db) -> None:
    app, _db = app_db
    client = app.test_client()
    client.get("/login")
    no_token = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_token.status_code == 400
    wrong = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert wrong.status_code == 400
    fresh = app.test_client()  # no session at all (cookies blocked or a forged cross-site post)
    assert (
        fresh.post(
            "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "x"}
        ).status_code
        == 400
    )
    assert login(client, "alice").status_code == 302
    assert client.post("/logout").status_code == 400  # signing out needs the token too
    assert client.get("/runs").status_code == 200  # ...so the session is still there


def test_changing_the_password_ends_existing_sessions(app_db) -> None:
    app, db = app_db
    client = app.test_client()
    login(client, "alice")
    assert client.get("/runs").status_code == 200
    users.set_password(db, "alice", "another password")
    app.extensions["overwatch"].auth.invalidate()
    assert client.get("/runs").status_code == 302
    assert client.get("/api/runs").status_code == 401


def test_removed_user_cannot_sign_in_and_loses_the_session(app_db) -> None:
    app, db = app_db
    client = app.test_client()
    login(client, "alice")
    users.remove_user(db, "alice")
    app.extensions["overwatch"].auth.invalidate()
    assert client.get("/api/runs").status_code == 401
    assert login(app.test_client(), "alice").status_code == 401


def test_secret_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret"
    key = load_secret_key(path)
    assert len(key) == 64
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_secret_key(path) == key
    app, _db = make_app(tmp_path, secret_key_file=str(path))
    assert app.secret_key == key


def test_user_names_and_passwords_are_checked(tmp_path: Path) -> None:
    _app, db = make_app(tmp_path)
    with pytest.raises(users.UserError, match="invalid user name"):
        users.add_user(db, "../root", PASSWORD)
    with pytest.raises(users.UserError, match="too short"):
        users.add_user(db, "carol", "short")
    add_user(db, "carol")
    with pytest.raises(users.UserError, match="exists already"):
        users.add_user(db, "carol", PASSWORD)
    with pytest.raises(users.UserError, match="no user"):
        users.issue_token(db, "dave")
    stored = users.list_users(db)
    assert stored == [("carol", 0)]

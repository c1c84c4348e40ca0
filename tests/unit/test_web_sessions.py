"""Sessions end on the server: sign-out, a password change and removal end them at once,
in every worker; API tokens are listed and revoked one by one (``overwatch users``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from overwatch.store.db import open_db
from tests.unit.test_web_support import BIN, add_user, csrf_from, login, make_app
from webapp import users

COOKIE = "overwatch_session"


def saved_cookie(client) -> str:
    return client.get_cookie(COOKIE).value


def with_cookie(app, value: str):
    client = app.test_client()
    client.set_cookie(COOKIE, value)
    return client


def test_a_cookie_saved_before_sign_out_stops_working_in_every_worker(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    other, _ = make_app(tmp_path, db=db)  # a second worker sharing the database
    add_user(db, "alice")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    saved = saved_cookie(client)
    laptop = app.test_client()  # the same user signed in elsewhere
    assert login(laptop, "alice").status_code == 302
    assert with_cookie(other, saved).get("/api/runs").status_code == 200
    token = csrf_from(client.get("/runs").data)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    for worker in (app, other):
        assert with_cookie(worker, saved).get("/api/runs").status_code == 401
        assert with_cookie(worker, saved).get("/runs").status_code == 302  # to the login form
    assert laptop.get("/api/runs").status_code == 401  # sign-out ends every session of alice
    again = app.test_client()
    assert login(again, "alice").status_code == 302 and again.get("/api/runs").status_code == 200


def test_password_change_and_removal_end_sessions_at_once(tmp_path: Path) -> None:
    app, db = make_app(tmp_path)
    add_user(db, "alice")
    add_user(db, "bob")
    alice, bob = app.test_client(), app.test_client()
    assert login(alice, "alice").status_code == 302 and login(bob, "bob").status_code == 302
    assert alice.get("/api/runs").status_code == 200 and bob.get("/api/runs").status_code == 200
    users.set_password(db, "alice", "another password")  # no cache to wait for
    users.remove_user(db, "bob")
    assert alice.get("/api/runs").status_code == 401 and bob.get("/api/runs").status_code == 401
    assert login(app.test_client(), "alice", "another password").status_code == 302


def overwatch_users(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "overwatch"), "users", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, check=False)  # fmt: skip


def test_tokens_are_listed_without_the_secret_and_revoked_one_by_one(tmp_path: Path) -> None:
    uri = f"file://{tmp_path / 'users.fs'}"
    db = open_db(uri)
    try:
        add_user(db, "alice")
        first, second = users.issue_token(db, "alice"), users.issue_token(db, "alice")
    finally:
        db.close()
    listed = overwatch_users("tokens", "alice", "--db", uri, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2 and all("issued 20" in line and " UTC" in line for line in lines)
    assert first not in listed.stdout and second not in listed.stdout
    first_id = lines[0].split("\t")[0]
    revoked = overwatch_users("revoke", "alice", first_id, "--db", uri, cwd=tmp_path)
    assert revoked.returncode == 0 and f"revoked token {first_id}" in revoked.stderr
    unknown = overwatch_users("revoke", "alice", "000000000000", "--db", uri, cwd=tmp_path)
    assert unknown.returncode == 1 and "has no token '000000000000'" in unknown.stderr
    nobody = overwatch_users("tokens", "mallory", "--db", uri, cwd=tmp_path)
    assert nobody.returncode == 1 and "no user 'mallory'" in nobody.stderr
    remaining = overwatch_users("tokens", "alice", "--db", uri, cwd=tmp_path)
    assert remaining.stdout.strip().splitlines() == lines[1:]
    db = open_db(uri)
    try:
        client = make_app(tmp_path, db=db)[0].test_client()
        bearer = {"Authorization": f"Bearer {first}"}
        assert client.get("/api/runs", headers=bearer).status_code == 401
        bearer = {"Authorization": f"Bearer {second}"}
        assert client.get("/api/runs", headers=bearer).status_code == 200
    finally:
        db.close()

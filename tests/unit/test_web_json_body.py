"""JSON request bodies are bounded in size and depth: a clear 400 or 413, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_web_support import add_user, build_simulated_run, csrf_from, login, make_app
from webapp.http import MAX_JSON_DEPTH, json_depth

RUN = 1
URL = f"/api/runs/{RUN}/EMC/slices"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jsonbody")
    app, db = make_app(tmp)
    add_user(db)
    build_simulated_run(Path(app.extensions["overwatch"].data_dir), db, run=RUN,
                        subsystems=("EMC",), snapshots=2)  # fmt: skip
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    client.csrf = csrf_from(client.get(f"/runs/{RUN}/EMC").data)
    return client


def post_raw(client, body: bytes):
    return client.post(URL, data=body, content_type="application/json",
                       headers={"X-CSRF-Token": client.csrf})  # fmt: skip


def test_a_deeply_nested_body_is_a_400_naming_the_depth(client) -> None:
    response = post_raw(client, b"[" * 30_000)
    assert response.status_code == 400
    error = response.get_json()["fields"]["body"]
    assert "30000 levels deep" in error and f"at most {MAX_JSON_DEPTH}" in error
    nested = b'{"options": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    assert post_raw(client, nested).status_code == 400  # one level too many
    assert "levels deep" in post_raw(client, nested).get_json()["error"]


def test_a_body_larger_than_the_limit_is_a_413(client) -> None:
    response = post_raw(client, b'{"start": "' + b"1" * 100_000 + b'"}')
    assert response.status_code == 413
    assert "larger than 65536 bytes" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "part"),
    [
        (b"{", "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_malformed_bodies_are_a_400_saying_why(client, body, part) -> None:
    response = post_raw(client, body)
    assert response.status_code == 400
    assert part in response.get_json()["fields"]["body"]


def test_a_good_body_still_works_and_brackets_in_strings_do_not_count(client) -> None:
    assert post_raw(client, b'{"preset": "run"}').status_code == 201
    assert json_depth('{"a": "[[[[{{{{", "b": [[1], {"c": "]\\"["}]}') == 3
    assert json_depth("[" * 5 + "]" * 5) == 5 and json_depth('"just text"') == 0

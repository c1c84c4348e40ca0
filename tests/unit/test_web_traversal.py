"""Path traversal attempts on downloads and histogram paths are refused, never served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_web_support import T0, add_user, login, make_app, store_snapshot, tiny_snapshot
from webapp.paths import UnsafePath, check_path, quote_path, snapshot_file

SECRET = b"top secret content outside the data directory"

TRAVERSALS = [
    "Run1/EMC/../../outside.txt",
    "Run1/EMC/%2e%2e/%2e%2e/outside.txt",
    "Run1/EMC/%2E%2E/%2E%2E/outside.txt",
    "Run1%2FEMC%2F..%2F..%2Foutside.txt",
    "..%2Foutside.txt",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "Run1\\EMC\\..\\..\\outside.txt",
    "Run1%5CEMC%5C..%5C..%5Coutside.txt",
    "Run1/EMC/EMChists.2025_11_22_10_00_00.root%00.txt",
    "Run1/./EMC/EMChists.2025_11_22_10_00_00.root",
    "Run1//EMC/EMChists.2025_11_22_10_00_00.root",
]


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("traversal")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    relpath = store_snapshot(db, data_dir, 1, "EMC", T0, tiny_snapshot(3))
    (tmp_path / "outside.txt").write_bytes(SECRET)
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client, data_dir, relpath


def test_a_snapshot_file_downloads_unchanged(signed_in) -> None:
    client, data_dir, relpath = signed_in
    response = client.get(f"/download/{relpath}")
    assert response.status_code == 200
    assert response.data == (data_dir / relpath).read_bytes()
    assert "attachment" in response.headers["Content-Disposition"]


def test_download_needs_a_session(signed_in, tmp_path: Path) -> None:
    _client, _data_dir, relpath = signed_in
    app, _db = make_app(tmp_path / "other")
    anonymous = app.test_client()
    assert anonymous.get(f"/download/{relpath}").status_code == 302


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_download_traversal_is_refused(signed_in, attempt: str) -> None:
    client, _data_dir, _relpath = signed_in
    response = client.get(f"/download/{attempt}")
    assert response.status_code in (400, 404), attempt
    assert SECRET not in response.data
    assert b"root" not in response.data[:4]  # no ROOT file either


@pytest.mark.parametrize(
    "name",
    ["secret.key", "ow.fs", "Run1/EMC/notes.txt", "Run1/TPC/EMChists.2025_11_22_10_00_00.root"],
)
def test_only_snapshot_files_can_be_downloaded(signed_in, name: str) -> None:
    client, data_dir, _relpath = signed_in
    target = data_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(SECRET)
    response = client.get(f"/download/{name}")
    assert response.status_code == 404
    assert SECRET not in response.data
    assert "no snapshot file" in response.get_json()["error"]


def test_a_symlink_out_of_the_data_directory_is_not_followed(signed_in) -> None:
    client, data_dir, _relpath = signed_in
    link = data_dir / "Run1" / "EMC" / "EMChists.2025_11_22_11_00_00.root"
    os.symlink(data_dir.parent / "outside.txt", link)
    response = client.get("/download/Run1/EMC/EMChists.2025_11_22_11_00_00.root")
    assert response.status_code == 404
    assert SECRET not in response.data


@pytest.mark.parametrize("attempt", TRAVERSALS)
def test_histogram_path_traversal_is_refused(signed_in, attempt: str) -> None:
    client, _data_dir, _relpath = signed_in
    for prefix in ("/api/runs/1/EMC/histograms/", "/runs/1/EMC/hist/"):
        response = client.get(prefix + attempt)
        assert response.status_code in (400, 404), (prefix, attempt)
        assert SECRET not in response.data


def test_api_traversal_answers_say_why(signed_in) -> None:
    client, _data_dir, _relpath = signed_in
    for attempt, reason in (
        ("EMCal/../events", "'.' and '..'"),
        ("EMCal/%2e%2e/events", "'.' and '..'"),
        ("EMCal%2F%2Fevents", "empty path segments"),
        ("EMCal\\events", "backslashes"),
        ("events%00", "control characters"),
    ):
        response = client.get(f"/api/runs/1/EMC/histograms/{attempt}")
        assert response.status_code == 400, attempt
        assert reason in response.get_json()["error"], attempt


def test_static_files_cannot_escape_the_static_folder(signed_in) -> None:
    client, _data_dir, _relpath = signed_in
    for attempt in ("../app.py", "%2e%2e/app.py", "..%2Fapp.py", "/etc/passwd"):
        response = client.get(f"/static/{attempt}")
        assert response.status_code == 404, attempt
        assert b"create_app" not in response.data


def test_check_path_and_quote_path() -> None:
    assert check_path("EMCal/SM00/cell hits") == "EMCal/SM00/cell hits"
    for bad in ("", "/abs", "a//b", "a/./b", "a/../b", "..", "a\\b", "a\x00b", "a\nb"):
        with pytest.raises(UnsafePath):
            check_path(bad)
    assert quote_path("EMCal/cell hits/50%?#") == "EMCal/cell%20hits/50%25%3F%23"


def test_snapshot_file_resolves_inside_the_data_directory(tmp_path: Path) -> None:
    good = tmp_path / "Run5" / "HLT" / "HLThists.2026_01_01_00_00_00.root"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"x")
    assert snapshot_file(tmp_path, "Run5/HLT/HLThists.2026_01_01_00_00_00.root") == good.resolve()
    assert snapshot_file(tmp_path, "Run5/HLT/HLThists.2026_01_01_00_00_01.root") is None
    with pytest.raises(UnsafePath):
        snapshot_file(tmp_path, "Run5/HLT/../HLT/HLThists.2026_01_01_00_00_00.root")

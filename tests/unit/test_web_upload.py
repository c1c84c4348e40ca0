"""``POST /api/upload`` through Flask's test client: fields, permissions, limits, outcomes;
and ``overwatch users ... --upload / allow-upload``."""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
import zmq

from overwatch.cli import main
from overwatch.notices import NoticeListener
from overwatch.store.db import open_db, read
from overwatch.store.layout import FileSystem
from receivers.quarantine import read_index
from tests.unit.test_web_support import PASSWORD, add_user, csrf_from, login, make_settings
from webapp import users
from webapp.app import create_app
from webapp.upload import uploads_of

#: 2025-11-22 10:00:00 UTC
T0 = 1_763_805_600.0
LIMIT = 200_000


def root_file(tmp_path: Path, seed: int = 0) -> bytes:
    """A ROOT file written by uproot (two histograms, one in a directory)."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"upload-{seed}.root"
    with uproot.recreate(path) as file:
        file["events"] = np.histogram(rng.random(100 + seed), bins=10, range=(0, 1))
        file["EMCal/cell hits"] = np.histogram(rng.normal(size=200), bins=20, range=(-3, 3))
    return path.read_bytes()


class FullDisk(FileSystem):
    """``write`` fails with ENOSPC while ``full`` is set."""

    full = False

    def write(self, fd: int, data: memoryview) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(fd, data)


class Unreadable(io.RawIOBase):
    """A body of ``size`` bytes that fails the test if anyone reads it (the test client
    only seeks to learn its length)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        raise AssertionError("the body was read")


@pytest.fixture
def site(tmp_path: Path):
    """(app, db, uploader's token, shifter's token, data dir); notices go to ``app.listener``."""
    settings = make_settings(tmp_path)
    context = zmq.Context()
    listener = NoticeListener("tcp://127.0.0.1:*", context=context)
    receiver = dataclasses.replace(
        settings.receiver, notify_address=listener.address, max_message_bytes=LIMIT, fsync=False
    )
    settings = dataclasses.replace(settings, receiver=receiver)
    db = open_db("memory://")
    app = create_app(settings, db=db, data_dir=settings.data.data_dir, testing=True)
    users.add_user(db, "agent", PASSWORD, can_upload=True)
    add_user(db, "shifter")
    app.listener = listener
    try:
        yield (
            app, db, users.issue_token(db, "agent"), users.issue_token(db, "shifter"),
            Path(settings.data.data_dir),
        )  # fmt: skip
    finally:
        listener.close()
        context.destroy(linger=0)


def fields(run="5", subsystem="EMC", **more: str) -> dict[str, str]:
    headers = {"X-Overwatch-Run": run, "X-Overwatch-Subsystem": subsystem}
    headers.update({f"X-Overwatch-{name.title()}": value for name, value in more.items()})
    return headers


def post(app, token: str | None, body=b"", headers=None, **kwargs):
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    kwargs.setdefault("content_type", "application/octet-stream")
    return app.test_client().post("/api/upload", data=body, headers=headers, **kwargs)


def stored(data_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(data_dir))
        for p in data_dir.glob("Run*/*/*")
        if not p.name.startswith(".")
    )


# -------------------------------------------------------------------------- stored


def test_a_raw_body_is_stored_announced_and_named_by_its_timestamp(site, tmp_path) -> None:
    app, _db, token, _other, data_dir = site
    payload = root_file(tmp_path)
    answer = post(app, token, payload, fields(timestamp="2025-11-22T11:00:00+01:00"))
    assert answer.status_code == 201, answer.get_json()
    relpath = "Run5/EMC/EMChists.2025_11_22_10_00_00.root"
    assert answer.get_json() == {"stored": relpath, "status": "stored"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert (data_dir / relpath).read_bytes() == payload
    assert app.listener.receive(5.0) == {"run": 5, "subsystem": "EMC", "path": relpath}


def test_a_multipart_form_carries_the_fields_and_the_file(site, tmp_path) -> None:
    app, _db, token, _other, data_dir = site
    payload = root_file(tmp_path)
    form = {"run": "7", "subsystem": "TPC", "timestamp": str(T0), "mode": "C",
            "file": (io.BytesIO(payload), "TPC.root")}  # fmt: skip
    answer = post(app, token, form, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["stored"] == "Run7/TPC/TPChists.2025_11_22_10_00_00.root"
    assert (data_dir / answer.get_json()["stored"]).read_bytes() == payload
    # A header may carry a field the form leaves out, or repeat it if both agree.
    form = {"subsystem": "TPC", "file": (io.BytesIO(root_file(tmp_path, 1)), "f.root")}
    agreeing = {"X-Overwatch-Run": "7", "X-Overwatch-Subsystem": "TPC"}
    answer = post(app, token, form, agreeing, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()


def test_without_a_timestamp_the_receipt_time_names_the_snapshot(site, tmp_path) -> None:
    app, _db, token, _other, data_dir = site
    before = time.time()
    answer = post(app, token, root_file(tmp_path), fields())
    after = time.time()
    assert answer.status_code == 201
    name = Path(answer.get_json()["stored"]).name
    allowed = {time.strftime("EMChists.%Y_%m_%d_%H_%M_%S.root", time.gmtime(t))
               for t in range(int(before), int(after) + 1)}  # fmt: skip
    assert name in allowed


def test_duplicates_and_run_zero_store_nothing(site, tmp_path) -> None:
    app, _db, token, _other, data_dir = site
    payload = root_file(tmp_path)
    assert post(app, token, payload, fields(timestamp=str(T0))).status_code == 201
    again = post(app, token, payload, fields(timestamp=str(T0 + 60)))
    assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
    zero = post(app, token, root_file(tmp_path, 1), fields(run="0"))
    assert (zero.status_code, zero.get_json()) == (200, {"status": "run_zero"})
    assert stored(data_dir) == ["Run5/EMC/EMChists.2025_11_22_10_00_00.root"]


# -------------------------------------------------------------------------- refused


def test_not_a_root_file_is_400_and_quarantined(site) -> None:
    app, _db, token, _other, data_dir = site
    answer = post(app, token, b"PK\x03\x04 a zip, not ROOT", fields(timestamp=str(T0)))
    assert answer.status_code == 400
    message = answer.get_json()["error"]
    assert message.startswith("not a ROOT file listing objects") and "quarantine" in message
    (record,) = read_index(data_dir, "EMC")
    assert record["payload_bytes"] == len(b"PK\x03\x04 a zip, not ROOT")
    assert (data_dir / "quarantine" / record["kept"]).read_bytes() == b"PK\x03\x04 a zip, not ROOT"
    assert stored(data_dir) == []


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Overwatch-Subsystem": "EMC"}, "run: missing; send the header X-Overwatch-Run"),
        ({"X-Overwatch-Run": "5"}, "subsystem: missing"),
        (fields(run="five"), "bad field run: invalid run number"),
        (fields(run="2147483648"), "bad field run"),
        (fields(subsystem="EMC/../x"), "bad field subsystem"),
        (fields(mode="B-2"), "bad field mode"),
        (
            fields(timestamp="2025-11-22T10:00:00"),
            "bad field timestamp: '2025-11-22T10:00:00' has no zone",
        ),
        (fields(timestamp="soon"), "bad field timestamp: 'soon': expected unix seconds"),
        (fields(timestamp="1e13"), "bad field timestamp"),
        (fields(timestamp=str(time.time() + 86_400)), "bad field timestamp: future timestamp"),
    ],
)
def test_a_bad_field_is_400_naming_it(site, tmp_path, headers, words) -> None:
    app, _db, token, _other, data_dir = site
    answer = post(app, token, root_file(tmp_path), headers)
    assert answer.status_code == 400
    assert words in answer.get_json()["error"]
    assert stored(data_dir) == []


def test_fields_given_twice_must_agree_and_a_form_needs_its_file(site, tmp_path) -> None:
    app, _db, token, _other, _data = site
    form = {"run": "7", "subsystem": "EMC", "file": (io.BytesIO(root_file(tmp_path)), "f.root")}
    answer = post(app, token, form, {"X-Overwatch-Run": "8"}, content_type="multipart/form-data")
    assert answer.status_code == 400
    assert (
        "run: the header X-Overwatch-Run says '8' and the form field says '7'"
        in (answer.get_json()["error"])
    )
    answer = post(app, token, {"run": "7", "subsystem": "EMC", "file": "text"},
                  content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 400
    assert "no file field 'file' (it came as a text field" in answer.get_json()["error"]
    answer = post(app, token, b"", fields())
    assert (answer.status_code, answer.get_json()) == (400, {"error": "the ROOT file is empty"})
    urlencoded = post(app, token, {"run": "7"}, content_type="application/x-www-form-urlencoded")
    assert urlencoded.status_code == 415


def test_too_big_is_413_from_content_length_without_reading_the_body(site) -> None:
    app, _db, token, _other, data_dir = site
    answer = app.test_client().post(
        "/api/upload",
        input_stream=Unreadable(LIMIT + 1),
        content_type="application/octet-stream",
        headers={**fields(), "Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 413
    assert f"more than receiver.max_message_bytes ({LIMIT})" in answer.get_json()["error"]
    assert stored(data_dir) == [] and read_index(data_dir, "EMC") == []


def test_too_big_is_413_while_reading_a_body_without_length(site) -> None:
    app, _db, token, _other, data_dir = site
    answer = app.test_client().post(
        "/api/upload",
        input_stream=io.BytesIO(b"x" * (LIMIT + 10)),
        content_type="application/octet-stream",
        headers={**fields(), "Authorization": f"Bearer {token}"},
        environ_overrides={"wsgi.input_terminated": True},  # e.g. chunked: no Content-Length
    )
    assert answer.status_code == 413
    assert stored(data_dir) == []


def test_a_file_field_too_big_is_413(site) -> None:
    app, _db, token, _other, data_dir = site
    form = {"run": "7", "subsystem": "EMC", "file": (io.BytesIO(b"x" * (LIMIT + 1)), "f.root")}
    answer = post(app, token, form, content_type="multipart/form-data")
    assert answer.status_code == 413
    assert stored(data_dir) == []


def test_a_full_disk_is_507_and_loses_nothing(site, tmp_path) -> None:
    app, _db, token, _other, data_dir = site
    disk = uploads_of(app).fs = FullDisk()
    first = root_file(tmp_path, 1)
    kept = post(app, token, first, fields(timestamp=str(T0))).get_json()["stored"]
    disk.full = True
    second = root_file(tmp_path, 2)
    answer = post(app, token, second, fields(timestamp=str(T0 + 60)))
    assert answer.status_code == 507
    assert "disk full" in answer.get_json()["error"] and answer.headers["Retry-After"]
    assert stored(data_dir) == [kept] and (data_dir / kept).read_bytes() == first
    assert not [p for p in (data_dir / "Run5" / "EMC").iterdir() if p.name.endswith(".tmp")]
    disk.full = False  # sent again later: stored (not taken for a duplicate)
    again = post(app, token, second, fields(timestamp=str(T0 + 60)))
    assert again.status_code == 201
    assert (data_dir / again.get_json()["stored"]).read_bytes() == second


# -------------------------------------------------------------------------- who may


def test_no_or_a_wrong_token_is_401(site, tmp_path) -> None:
    app, _db, _token, _other, data_dir = site
    assert post(app, None, root_file(tmp_path), fields()).status_code == 401
    wrong = post(app, "not-a-token", root_file(tmp_path), fields())
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid or revoked API token"
    assert stored(data_dir) == []


def test_a_user_not_allowed_to_upload_is_403(site, tmp_path) -> None:
    app, db, token, other, data_dir = site
    answer = post(app, other, root_file(tmp_path), fields())
    assert answer.status_code == 403
    assert "'overwatch users allow-upload shifter'" in answer.get_json()["error"]
    users.allow_upload(db, "agent", False)  # revoked: refused at the very next upload
    assert post(app, token, root_file(tmp_path), fields()).status_code == 403
    users.allow_upload(db, "shifter")
    assert post(app, other, root_file(tmp_path), fields()).status_code == 201
    assert len(stored(data_dir)) == 1


def test_a_browser_session_cannot_upload(site, tmp_path) -> None:
    app, _db, _token, _other, data_dir = site
    client = app.test_client()
    assert login(client, "agent").status_code == 302
    csrf = csrf_from(client.get("/alarms").data)
    headers = {**fields(), "X-CSRF-Token": csrf}
    answer = client.post("/api/upload", data=root_file(tmp_path), headers=headers,
                         content_type="application/octet-stream")  # fmt: skip
    assert answer.status_code == 403 and "API token" in answer.get_json()["error"]
    without_csrf = client.post("/api/upload", data=root_file(tmp_path), headers=fields(),
                               content_type="application/octet-stream")  # fmt: skip
    assert without_csrf.status_code == 400
    assert stored(data_dir) == []


def test_users_stored_before_uploads_existed_may_not_upload(site) -> None:
    _app, db, _token, _other, _data = site
    plain = read(db, lambda root: root.users["shifter"])
    assert "can_upload" not in plain.__dict__ and plain.can_upload is False
    assert users.uploaders(db) == {"agent"}


# -------------------------------------------------------------------------- the CLI


def test_the_users_command_allows_and_revokes_uploads(monkeypatch, capsys, tmp_path) -> None:
    uri = f"file://{tmp_path / 'users.fs'}"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "dqm", "--upload", "--db", uri, "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "eve", "--db", uri, "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--db", uri]) == 0
    assert capsys.readouterr().out == "dqm\t0 token(s)\tmay upload\neve\t0 token(s)\n"
    assert main(["users", "allow-upload", "eve", "--db", uri]) == 0
    assert "eve may now upload" in capsys.readouterr().err
    assert main(["users", "allow-upload", "dqm", "--revoke", "--db", uri]) == 0
    assert "dqm may no longer upload" in capsys.readouterr().err
    db = open_db(uri)
    try:
        assert users.uploaders(db) == {"eve"}
    finally:
        db.close()
    assert main(["users", "allow-upload", "nobody", "--db", uri]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err

"""``overwatch users ...`` and the option handling of ``overwatch web``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from overwatch.cli import build_parser, main
from overwatch.store.db import open_db, read
from webapp.commands import settings_from_args
from webapp.security import token_hash, verify_password

PASSWORD = "a long enough password"


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'users.fs'}"


def users_cmd(monkeypatch, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["users", *args])


def stored_user(uri: str, name: str):
    db = open_db(uri)
    try:
        return read(
            db,
            lambda root: (
                (root.users[name].password_hash, list(root.users[name].token_hashes))
                if name in root.users
                else None
            ),
        )
    finally:
        db.close()


def test_add_token_passwd_remove(monkeypatch, capsys, uri: str) -> None:
    add = ("add", "alice", "--db", uri, "--password-stdin")
    assert users_cmd(monkeypatch, *add, stdin=PASSWORD + "\n") == 0
    password_hash, tokens = stored_user(uri, "alice")
    assert password_hash.startswith("scrypt:") and verify_password(password_hash, PASSWORD)
    assert tokens == []

    capsys.readouterr()
    assert users_cmd(monkeypatch, "token", "alice", "--db", uri) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    assert stored_user(uri, "alice")[1] == [token_hash(token)]

    passwd = ("passwd", "alice", "--db", uri, "--password-stdin")
    assert users_cmd(monkeypatch, *passwd, stdin="new password 123\n") == 0
    assert verify_password(stored_user(uri, "alice")[0], "new password 123")

    assert users_cmd(monkeypatch, "list", "--db", uri) == 0
    assert capsys.readouterr().out == "alice\t1 token(s)\n"
    assert users_cmd(monkeypatch, "token", "alice", "--revoke", "--db", uri) == 0
    assert stored_user(uri, "alice")[1] == []
    assert users_cmd(monkeypatch, "remove", "alice", "--db", uri) == 0
    assert stored_user(uri, "alice") is None


def test_password_is_prompted_twice_without_stdin(monkeypatch, uri: str, capsys) -> None:
    answers = iter([PASSWORD, "something else"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert users_cmd(monkeypatch, "add", "bob", "--db", uri) == 2
    assert "differ" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD])
    assert users_cmd(monkeypatch, "add", "bob", "--db", uri) == 0
    assert verify_password(stored_user(uri, "bob")[0], PASSWORD)


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("add", "carol", "--password-stdin"), "short\n", 2, "too short"),
        (("add", "no/slash", "--password-stdin"), PASSWORD + "\n", 2, "invalid user name"),
        (("add", "carol", "--password-stdin"), "", 2, "too short"),  # empty stdin: no default
        (("passwd", "nobody", "--password-stdin"), PASSWORD + "\n", 1, "no user 'nobody'"),
        (("remove", "nobody"), "", 1, "no user 'nobody'"),
        (("token", "nobody"), "", 1, "no user 'nobody'"),
    ],
)
def test_bad_user_commands_say_why(monkeypatch, capsys, uri, args, stdin, code, message) -> None:
    assert users_cmd(monkeypatch, *args, "--db", uri, stdin=stdin) == code
    assert message in capsys.readouterr().err


def test_adding_an_existing_user_is_refused(monkeypatch, capsys, uri: str) -> None:
    add = ("add", "dave", "--db", uri, "--password-stdin")
    users_cmd(monkeypatch, *add, stdin=PASSWORD + "\n")
    assert users_cmd(monkeypatch, *add, stdin="other password\n") == 1
    assert "exists already" in capsys.readouterr().err
    assert verify_password(stored_user(uri, "dave")[0], PASSWORD)  # unchanged


def test_web_options_override_the_settings(tmp_path: Path) -> None:
    command = f"web --db zeo://127.0.0.1:9 --data-dir {tmp_path} --host 0.0.0.0 --port 9999"
    args = build_parser().parse_args(command.split())
    settings = settings_from_args(args)
    assert settings.database.uri == "zeo://127.0.0.1:9"
    assert settings.data.data_dir == str(tmp_path)
    assert (settings.web.host, settings.web.port) == ("0.0.0.0", 9999)
    assert settings.web.secret_key_file == str(tmp_path / ".secret_key")
    assert args.workers == 2 and args.threads == 4 and not args.dev


def test_wsgi_module_builds_the_app_from_environment_variables(monkeypatch, tmp_path: Path) -> None:
    import importlib
    import sys

    monkeypatch.chdir(tmp_path)  # no ./overwatch.yaml of the developer's
    monkeypatch.setenv("OVERWATCH_DATABASE__URI", "memory://")
    monkeypatch.setenv("OVERWATCH_DATA__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OVERWATCH_WEB__SECRET_KEY_FILE", str(tmp_path / "key"))
    sys.modules.pop("webapp.wsgi", None)
    wsgi = importlib.import_module("webapp.wsgi")
    try:
        resources = wsgi.app.extensions["overwatch"]
        assert resources._db is None  # nothing opened before the first request (gunicorn forks)
        assert resources.settings.database.uri == "memory://"
        assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
        assert wsgi.app.test_client().get("/healthz").status_code == 200
    finally:
        sys.modules.pop("webapp.wsgi", None)

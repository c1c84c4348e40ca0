"""A ZEO server that is not there is said once, quickly, with how to start one."""

from __future__ import annotations

import logging
import time

import pytest

from overwatch import cli
from overwatch.store import db
from tests.processing_helpers import free_port


def test_open_db_says_in_one_line_that_no_zeo_server_answers(caplog) -> None:
    port = free_port()
    started = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(db.DatabaseNotRunning) as raised:
        db.open_db(f"zeo://127.0.0.1:{port}", wait_timeout=1.0)
    assert time.monotonic() - started < 5
    text = str(raised.value)
    assert f"zeo://127.0.0.1:{port}" in text and f"runzeo -a 127.0.0.1:{port}" in text
    assert not [r for r in caplog.records if "retry connecting" in r.getMessage()]
    assert raised.value.public == "no database server answers"  # what /healthz may say


def test_process_exits_2_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(db, "ZEO_START_WAIT", 0.5)
    (tmp_path / "data").mkdir()
    code = cli.main(["process", "--once", "--data-dir", str(tmp_path / "data"),
                     "--db", f"zeo://127.0.0.1:{free_port()}"])  # fmt: skip
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no ZEO server answers" in lines[0] and "runzeo" in lines[0]

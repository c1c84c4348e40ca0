"""`overwatch demo` deletes only a data directory it made itself, and checks the port first."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from overwatch import demo

OVERWATCH = str(Path(sys.executable).parent / "overwatch")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.register(parser.add_subparsers())
    return parser.parse_args(["demo", *argv])


def _demo_folder(path: Path) -> Path:
    """A data directory as an earlier demo leaves it (marked, a database, snapshots)."""
    demo.claim_data_dir(path)
    (path / "overwatch.fs").write_bytes(b"database")
    (path / "Run1" / "EMC").mkdir(parents=True)
    (path / "Run1" / "EMC" / "EMChists.2026_01_01_00_00_00.root").write_bytes(b"snapshot")
    return path


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_a_new_or_empty_folder_is_taken_and_marked(tmp_path: Path) -> None:
    new, empty = tmp_path / "a" / "new", tmp_path / "empty"
    empty.mkdir()
    for folder in (new, empty):
        demo.claim_data_dir(folder)
        assert [p.name for p in folder.iterdir()] == [demo.MARKER]


def test_a_folder_with_foreign_files_is_refused_and_left_intact(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "thesis").mkdir(parents=True)
    (folder / "notes.txt").write_text("years of work")
    (folder / "thesis" / "draft.tex").write_text("\\chapter{}")
    before = _tree(folder)
    for keep in (False, True):
        with pytest.raises(demo.DemoDataDirError, match=r"holds files the demo did not create"):
            demo.claim_data_dir(folder, keep=keep)
        assert _tree(folder) == before


def test_the_demos_own_folder_starts_afresh_or_is_kept(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path / "demo")
    kept = _tree(folder)
    demo.claim_data_dir(folder, keep=True)
    assert _tree(folder) == kept
    demo.claim_data_dir(folder)
    assert [p.name for p in folder.iterdir()] == [demo.MARKER]
    assert _parse("--keep").keep and not _parse().keep


def test_a_folder_a_demo_still_runs_in_is_refused(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path / "demo")
    (folder / "supervisord.pid").write_text(f"{os.getpid()}\n")  # a live process
    before = _tree(folder)
    with pytest.raises(demo.DemoDataDirError, match=rf"still running .*pid {os.getpid()}"):
        demo.claim_data_dir(folder)
    assert _tree(folder) == before


def test_run_demo_refuses_a_foreign_folder_before_starting_anything(tmp_path, caplog) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    said: list[str] = []
    with caplog.at_level(logging.ERROR, logger="overwatch.demo"):
        code = demo.run_demo(folder, faults=None, say=said.append, web_port=demo.free_port())
    assert code == 2
    assert "holds files the demo did not create (notes.txt)" in caplog.text
    assert _tree(folder) == {"notes.txt": b"keep me"}


def _demo(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OVERWATCH, "demo", "--no-faults", *argv], capture_output=True, text=True, timeout=120
    )


def test_real_demo_refuses_a_folder_with_a_foreign_file(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.csv").write_text("1,2,3\n")
    done = _demo("--data-dir", str(folder), "--port", str(demo.free_port()))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--data-dir {folder} holds files the demo did not create (results.csv)" in done.stderr
    assert _tree(folder) == {"results.csv": b"1,2,3\n"}


def test_real_demo_checks_a_running_demos_port_before_touching_its_folder(tmp_path) -> None:
    folder = _demo_folder(tmp_path / "demo")
    before = _tree(folder)
    with socket.socket() as web:  # the running demo's web server holds its port
        web.bind(("127.0.0.1", 0))
        web.listen()
        port = web.getsockname()[1]
        done = _demo("--data-dir", str(folder), "--port", str(port))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} is already in use" in done.stderr
    assert _tree(folder) == before  # database and snapshots of the running demo untouched

"""Command conventions (issue 16): ``overwatch --version``, and progress bars on stderr
only when it is a terminal (``db rebuild`` through a pipe and on a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from overwatch.progress import progress_bar
from tests.unit.test_web_support import T0, tiny_snapshot, write_snapshot

BIN = Path(sys.executable).parent


def test_version_prints_the_installed_version_and_exits_0() -> None:
    done = subprocess.run(
        [str(BIN / "overwatch"), "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"overwatch {version('overwatch')}\n"


def rebuild_command(tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    for subsystem in ("EMC", "TPC"):
        for i in range(3):
            write_snapshot(data, 1, subsystem, T0 + 60 * i, tiny_snapshot(i + 1))
    uri = f"file://{tmp_path / 'ow.fs'}"
    return [str(BIN / "overwatch"), "db", "rebuild", "--db", uri, "--data-dir", str(data)]


def test_rebuild_shows_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        rebuild_command(tmp_path), capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt: 6 snapshots, 0 bad" in done.stdout
    assert "%|" not in done.stderr and "6/6" not in done.stderr, done.stderr


def test_rebuild_shows_a_bar_of_the_snapshots_on_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            rebuild_command(tmp_path), stdout=subprocess.PIPE, stderr=follower, cwd=tmp_path
        )
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert process.returncode == 0, seen.decode(errors="replace")
    assert b"rebuilt: 6 snapshots" in stdout
    text = seen.decode(errors="replace")
    assert "rebuild: 100%|" in text and "6/6" in text, text
    # stdout stays clean for scripts: the bar is on stderr only.
    assert b"%|" not in stdout


def test_a_bar_on_a_file_is_off_by_default_and_on_when_forced(tmp_path: Path) -> None:
    with (tmp_path / "quiet.txt").open("w") as quiet:
        with progress_bar(4, "work", "item", file=quiet) as bar:
            bar.update(4)
    assert (tmp_path / "quiet.txt").read_text() == ""
    with (tmp_path / "forced.txt").open("w") as forced:
        with progress_bar(4, "work", "item", file=forced, enabled=True) as bar:
            bar.update(4)
    assert "work: 100%|" in (tmp_path / "forced.txt").read_text()


def test_compare_help_lists_every_statistical_test() -> None:
    from processing.compare import available_tests

    done = subprocess.run(
        [str(BIN / "overwatch"), "compare", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    epilog = done.stdout.split("tests (-s NAME[:option[=value],...]):", 1)[1]
    listed = [
        line.split()[0]
        for line in epilog.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert listed == sorted(available_tests()), epilog

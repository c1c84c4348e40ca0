"""A newcomer's first hour: mistakes on the command line get a clear error and exit 2.

Real ``overwatch`` processes (the console script of the venv), so exit codes,
stderr and the absence of a traceback are what a shell sees. The last tests
are about a fresh clone: ``make lint`` uses the ruff the venv has, ``make
test`` waits for a busy apt lock, and tests on the ROOT sample files fail
(never skip) when the sample folder is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERWATCH = str(BIN / "overwatch")


def run(*argv: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [OVERWATCH, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_process_once_on_a_missing_data_dir_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    done = run("process", "--once", "--data-dir", str(missing), "--db", "memory://")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"data directory {missing} does not exist" in done.stderr
    assert "processed 0" not in done.stdout
    assert not missing.exists()


def test_receive_with_a_nonsense_address_is_one_clear_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    for address in ("nonsense", "tcp://127.0.0.1"):
        done = run(
            "receive", "--subsystem", "EMC", "--connect", address, "--data-dir", str(data_dir)
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert f"--connect {address!r} is not a ZMQ address" in done.stderr
        assert "tcp://127.0.0.1:5555" in done.stderr


def test_config_is_accepted_before_and_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    missing = tmp_path / "from-the-config"
    config.write_text(f"data:\n  data_dir: {missing}\n")
    after = run("process", "--once", "--db", "memory://", "--config", str(config))
    before = run("--config", str(config), "process", "--once", "--db", "memory://")
    nested = run("db", "rebuild", "--db", "memory://", "--config", str(config))
    for done in (after, before, nested):
        # The file was read: its data directory is the one named in the error.
        assert done.returncode == 2, done.stderr
        assert f"data directory {missing} does not exist" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [\n")
    done = run("process", "--once", "--db", "memory://", "--config", str(broken))
    assert done.returncode == 2 and str(broken) in done.stderr


def test_slice_refuses_an_output_folder_that_does_not_exist(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.root"
    done = run(
        "slice", "--db", "memory://", "--data-dir", str(tmp_path), "--run", "1",
        "--subsystem", "EMC", "-o", str(target),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path / 'no' / 'such'}, does not exist" in done.stderr
    assert not (tmp_path / "no").exists()


# -- a fresh clone --------------------------------------------------------------------


def test_ruff_is_pinned_to_the_version_make_lint_runs() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [spec for spec in dev["dev"] if re.match(r"ruff\b", spec)]
    installed = subprocess.run(
        [str(BIN / "ruff"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert pins == [f"ruff=={installed}"]


def test_system_deps_waits_for_a_busy_apt_lock() -> None:
    done = subprocess.run(
        ["make", "-n", "-B", "system-deps"], capture_output=True, text=True, cwd=REPO, check=True
    )
    calls = re.findall(r"apt-get[^;&|]*", done.stdout)
    assert calls, done.stdout
    for call in calls:
        timeout = re.search(r"-o DPkg::Lock::Timeout=(\d+)", call)
        assert timeout and 0 < int(timeout[1]) <= 600, call


def test_sample_file_tests_fail_loudly_without_the_sample_folder(tmp_path: Path) -> None:
    modules = [
        "tests/unit/test_cache.py::test_encoder_equals_reference_conversion_on_real_files",
        "tests/unit/test_compare_fastread.py::test_same_as_rootio_on_every_sample_file",
        "tests/integration/test_compare_cli.py::test_every_sample_file_against_itself",
        "tests/unit/test_rootio.py::test_every_histogram_is_read_as_uproot_sees_it",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "OVERWATCH_TEST_ROOT_SAMPLES": str(tmp_path / "missing")},
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout
    assert "skipped" not in summary and "deselected" not in summary, summary
    assert re.search(rf"\b{len(modules)} errors?\b", summary), summary
    assert "ROOT sample files not found" in done.stdout

"""A wheel built from the repository runs every command, installed far from the repository.

Why: files the commands read (the documented defaults, the checks, the
supervisord template, the vendored JSROOT) are package data found with
importlib.resources; one found by a path relative to the repository works in
the editable install of ``make test`` and breaks only once installed. So the
test builds the wheel (pip, in an isolated build environment), installs it with
its dependencies into a fresh virtual environment in a temporary directory and
runs the commands from another temporary directory, with HOME pointing at an
empty one (no user settings layer). Nothing is skipped: a failing build fails.

Slow on a cold pip cache (the dependencies are downloaded once); the timeouts
below bound each step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from overwatch.demo import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("overwatch", "receivers", "processing", "webapp")
#: Package data every command needs; the wheel must hold each of these.
SHIPPED = (
    "overwatch/defaults/overwatch.yaml",
    "overwatch/defaults/checks.yaml",
    "overwatch/defaults/faults/demo.yaml",
    "overwatch/defaults/deploy.example.yaml",
    "overwatch/defaults/deploy.demo.yaml",
    "overwatch/defaults/layouts/emc.yaml",
    "overwatch/defaults/layouts/tpc.yaml",
    "overwatch/defaults/layouts/hlt.yaml",
    "overwatch/defaults/layouts/overview.yaml",
    "overwatch/docker/supervisord.conf.template",
    "webapp/static/jsroot/build/jsroot.js",
    "webapp/templates/base.html",
)
#: Files that stay in the repository.
NOT_SHIPPED = ("overwatch/docker/Dockerfile", "overwatch/docker/compose.yaml")
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__",
    ".pytest_cache", ".ruff_cache", "data", "demo-data", "bench-out",
)  # fmt: skip


def _copy_sources(target: Path) -> None:
    """The repository's files (tracked and new, not ignored) without its build leftovers.

    Building in a copy keeps setuptools' build/ and egg-info out of the working
    tree, and a stale build/lib out of the wheel.
    """
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"],
        capture_output=True, timeout=60,
    ) if shutil.which("git") else None  # fmt: skip
    if listed is None or listed.returncode != 0:  # not a git checkout: copy all but leftovers
        shutil.copytree(REPOSITORY, target, ignore=_IGNORED)
        return
    for name in listed.stdout.decode().split("\0"):
        source = REPOSITORY / name
        if name and source.is_file():  # deleted but still tracked files are skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _clean_env(home: Path | None) -> dict[str, str]:
    """The environment of this test run less what points at the repository or its venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
        and not key.startswith("OVERWATCH_")
    }
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep) if not part.startswith(sys.prefix)
    )
    if home is not None:
        env["HOME"] = str(home)
    return env


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float):
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    shown = " ".join(command[:4])
    assert done.returncode == 0, f"{shown} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _no_missing_files(done: subprocess.CompletedProcess) -> None:
    for stream in (done.stdout, done.stderr):
        assert "missing" not in stream.lower(), stream
        assert "Traceback" not in stream, stream


def test_installed_wheel_runs_every_command_outside_the_repository(tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(REPOSITORY)
    timings: dict[str, float] = {}
    started = time.monotonic()
    pip_env = _clean_env(home=None)  # keep HOME: pip's cache lives there

    # 1. Build the wheel from a copy of the repository.
    source, dist = tmp_path / "src", tmp_path / "dist"
    _copy_sources(source)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
         cwd=tmp_path, env=pip_env, timeout=180)  # fmt: skip
    wheels = list(dist.glob("overwatch-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as archive:
        names = set(archive.namelist())
    for name in SHIPPED:
        assert name in names, f"{name} is not in the wheel"
    for name in NOT_SHIPPED:
        assert name not in names, f"{name} should stay in the repository"
    for init in source.glob("*/**/__init__.py"):
        relative = init.relative_to(source).as_posix()
        if relative.split("/")[0] in PACKAGES:
            assert relative in names, f"package {init.parent.name} is not in the wheel"
    timings["build"] = time.monotonic() - started

    # 2. A fresh virtual environment, the wheel and its dependencies (from the index).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=pip_env, timeout=120)
    python, overwatch = str(venv / "bin" / "python"), str(venv / "bin" / "overwatch")
    _run([python, "-m", "pip", "install", "-q", str(wheels[0])],
         cwd=tmp_path, env=pip_env, timeout=300)  # fmt: skip
    timings["install"] = time.monotonic() - started - timings["build"]

    # 3. The commands, from a working directory outside the repository.
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _clean_env(home)
    site = Path(
        _run([python, "-c", "import overwatch, pathlib; print(pathlib.Path(overwatch.__file__)"
              ".parent.parent)"], cwd=work, env=env, timeout=60).stdout.strip()
    )  # fmt: skip
    assert site.is_relative_to(venv), f"overwatch imported from {site}, not the fresh venv"

    helped = _run([overwatch, "--help"], cwd=work, env=env, timeout=60)
    for command in ("demo", "deploy", "process", "receive", "web", "compare"):
        assert command in helped.stdout
    _no_missing_files(helped)

    data = work / "data"
    data.mkdir()  # an empty data directory (a missing one is refused, exit 2)
    processed = _run(
        [overwatch, "-v", "process", "--once", "--data-dir", str(data),
         "--db", f"file://{data / 'overwatch.fs'}"],
        cwd=work, env=env, timeout=120,
    )  # fmt: skip
    assert "processed 0 snapshots" in processed.stdout
    _no_missing_files(processed)
    layer = re.search(r"loaded settings layer (\S+)", processed.stderr)
    assert layer and Path(layer[1]) == site / "overwatch" / "defaults" / "overwatch.yaml"
    checks = re.search(r"loaded \d+ check\(s\) from (\S+)", processed.stderr)
    assert checks and Path(checks[1]) == site / "overwatch" / "defaults" / "checks.yaml"
    timings["process"] = time.monotonic() - started - timings["build"] - timings["install"]

    demo_dir, port = work / "demo", free_port()
    demo = _run(
        [overwatch, "demo", "--duration", "60", "--port", str(port), "--interval", "1",
         "--data-dir", str(demo_dir)],
        cwd=work, env=env, timeout=240,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert "is missing" not in output and "Traceback" not in output, output
    assert f"Overwatch demo running at http://127.0.0.1:{port}/" in output
    assert "demo check: all subsystems served" in output
    snapshots = sorted((demo_dir / "Run1" / "EMC").glob("EMChists.*.root"))
    assert snapshots, output

    # The documented deployment file is shipped, printed and checks from the installed package.
    example = _run([overwatch, "deploy", "--example"], cwd=work, env=env, timeout=60).stdout
    shipped = site / "overwatch" / "defaults" / "deploy.example.yaml"
    assert example == shipped.read_text() and "data_dir:" in example
    (work / "deploy.yaml").write_text(example)
    checked = _run([overwatch, "deploy", "deploy.yaml", "--check"], cwd=work, env=env, timeout=60)
    assert checked.stdout.startswith("deploy.yaml: valid, 7 programs under supervisord")
    assert f"{venv / 'bin' / 'overwatch'}" not in checked.stdout  # told without the venv's folder
    _no_missing_files(checked)
    rendered = _run([overwatch, "deploy", str(shipped), "--render-only"], cwd=work, env=env,
                    timeout=60).stdout  # fmt: skip
    assert f"command={venv / 'bin' / 'runzeo'} -a 127.0.0.1:8100" in rendered
    assert not (work / "overwatch-data").exists()  # --check and --render-only write nothing

    # The compare report carries the web app's vendored JSROOT.
    report = work / "report"
    compared = _run(
        [overwatch, "compare", str(snapshots[-1]), str(snapshots[-1]), "-o", str(report)],
        cwd=work, env=env, timeout=120,
    )  # fmt: skip
    assert "HTML report:" in compared.stdout
    assert (report / "jsroot" / "jsroot.js").is_file()
    timings["demo and compare"] = time.monotonic() - started - sum(timings.values())
    print("wheel test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))

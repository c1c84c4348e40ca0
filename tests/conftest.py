"""Fixtures shared by every test suite (keep this file small and generic)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Real ROOT files written by ROOT itself, in the ``shared`` folder beside the repository
#: (``OVERWATCH_TEST_ROOT_SAMPLES`` points elsewhere: how the loud failure is itself tested).
ROOT_SAMPLES_DIR = Path(
    os.environ.get("OVERWATCH_TEST_ROOT_SAMPLES")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "root-samples"
).resolve()

_MISSING = "<root-samples folder missing or empty>"


@pytest.fixture(scope="session")
def root_samples_dir() -> Path:
    """The folder of real ROOT sample files; fails (never skips) when it is absent."""
    if not ROOT_SAMPLES_DIR.is_dir():
        pytest.fail(
            f"ROOT sample files not found at {ROOT_SAMPLES_DIR}: tests that read ROOT files "
            "need the shared data folder (shared/data/root-samples) beside the repository"
        )
    return ROOT_SAMPLES_DIR


@pytest.fixture(scope="session")
def sample_files(root_samples_dir: Path) -> list[Path]:
    """Every ``*.root`` file of the sample folder, sorted by name."""
    files = sorted(root_samples_dir.glob("*.root"))
    if not files:
        pytest.fail(f"no *.root files in {root_samples_dir}")
    return files


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``sample_file`` runs once for every sample file."""
    if "sample_file" in metafunc.fixturenames:
        names = sorted(path.name for path in ROOT_SAMPLES_DIR.glob("*.root"))
        # With no files the single placeholder makes the fixture fail loudly instead of the
        # test being silently skipped for an empty parameter set.
        metafunc.parametrize("sample_file", names or [_MISSING], indirect=True)


@pytest.fixture
def sample_file(request: pytest.FixtureRequest, sample_files: list[Path]) -> Path:
    """One sample file (parametrised by :func:`pytest_generate_tests`)."""
    path = ROOT_SAMPLES_DIR / request.param
    if path not in sample_files:
        pytest.fail(f"sample file {path} is missing")
    return path

"""Public names imported on first use (overwatch.lazy) by processing and processing.compare,
so commands and packages import only what they use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import processing.compare
from processing.compare import registry


def test_a_name_is_the_defining_module_s_object_and_then_an_attribute() -> None:
    assert processing.compare.configure is registry.configure
    assert vars(processing.compare)["configure"] is registry.configure


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    with pytest.raises(AttributeError, match="'processing.compare' has no attribute 'nope'"):
        processing.compare.nope  # noqa: B018


def test_dir_lists_every_public_name_before_use() -> None:
    assert set(processing.compare.__all__) <= set(dir(processing.compare))
    assert set(processing.__all__) <= set(dir(processing))


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    probe = f"import sys; {statement}; print(' '.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_the_packages_imports_none_of_their_stages() -> None:
    modules = modules_after("import processing, processing.compare")
    assert {m for m in modules if m.startswith("processing.")} == {"processing.compare"}


def test_building_the_command_line_imports_no_analysis_library() -> None:
    # Every command (a receiver too) builds the whole parser; the statistical tests
    # (scipy) and the readers (uproot) are imported by the commands that use them.
    modules = modules_after("from overwatch.cli import build_parser; build_parser()")
    assert modules.isdisjoint({"scipy", "uproot", "numpy"})

"""Public names imported on first use (overwatch.lazy) by processing and processing.compare."""

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


def test_importing_the_packages_imports_none_of_their_stages() -> None:
    probe = (
        "import sys, processing, processing.compare; "
        "print(' '.join(m for m in sys.modules if m.startswith('processing.') "
        "and m != 'processing.compare'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""

"""Package list for setuptools; everything else is in pyproject.toml.

Why a setup.py: ``overwatch.defaults`` and ``overwatch.docker`` are packages
mapped onto the repository's ``config/`` and ``docker/`` folders
(``[tool.setuptools.package-dir]``), so they cannot be discovered, and
pyproject.toml takes either a discovery rule or a fixed list. Here the list is
discovery plus the mapped packages (and ``config/faults/`` and ``config/layouts/``,
folders of ``overwatch.defaults``), so a new subpackage of the code needs no edit.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["overwatch*", "receivers*", "processing*", "webapp*"]),
        "overwatch.defaults",
        "overwatch.defaults.faults",
        "overwatch.defaults.layouts",
        "overwatch.docker",
    ]
)

"""This folder is also the package ``overwatch.defaults``: its YAML files are package data.

``pyproject.toml`` maps the package onto ``config/`` so that the documented
defaults stay where operators look for them and still ship in the wheel; this
file only makes the mapped package importable (see ``overwatch.resources``).
"""

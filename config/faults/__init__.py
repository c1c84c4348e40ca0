"""Fault schedules of the simulator (``overwatch.defaults.faults``): YAML package data.

A package only so that setuptools ships the folder as part of
``overwatch.defaults`` (a data folder inside a package is ambiguous to it); the
schedules are found with :func:`overwatch.resources.resource`, e.g.
``resource("faults/demo.yaml")``, the schedule ``overwatch demo`` uses.
"""

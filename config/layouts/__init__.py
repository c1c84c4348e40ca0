"""Dashboard layouts of the web app (``overwatch.defaults.layouts``): YAML package data.

A package only so that setuptools ships the folder as part of
``overwatch.defaults``, like ``faults/``. The web app reads every ``*.yaml``
here (or in ``web.layouts_dir``) with ``webapp.layout_files``; the format is
documented at the top of ``overview.yaml``. This file is not a layout.
"""

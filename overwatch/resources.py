"""The files Overwatch ships beside its code, found as package data.

Why: an installed wheel has no repository around it, so no module may find a
file by walking up from its own ``__file__``. Every such file is package data
of a package of this distribution and is found here, with
:func:`importlib.resources.files`, in an editable install and in a wheel alike.

Layout: the repository keeps its documented folders and ``pyproject.toml``
maps a package onto each (setuptools ``package-dir``, packages listed in
``setup.py``); the ``__init__.py`` in each folder is what makes the mapped
package importable in an editable install, where a namespace package would not
be found:

- ``overwatch.defaults`` is ``config/``: ``overwatch.yaml`` (the documented
  defaults), ``checks.yaml`` and ``faults/demo.yaml`` (the demo's fault
  schedule; a subfolder needs no ``__init__.py``, the ``**/*.yaml`` glob ships it),
  ``deploy.example.yaml`` and ``deploy.demo.yaml`` (deployment files)
  and ``layouts/`` (the web's dashboard layouts, a folder of YAML files);
- ``overwatch.docker`` is ``docker/``: ``supervisord.conf.template`` (the
  Dockerfile and compose file stay in the repository and are not shipped).

Files of the web app (templates, vendored JSROOT) are package data of
``webapp`` and are the web app's business; see
``processing.compare.report_plots`` for the one reader outside it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: Resource name -> the package that ships it (see the layout above).
RESOURCES = {
    "overwatch.yaml": "overwatch.defaults",
    "checks.yaml": "overwatch.defaults",
    "faults/demo.yaml": "overwatch.defaults",
    "deploy.example.yaml": "overwatch.defaults",  # the documented deployment file
    "deploy.demo.yaml": "overwatch.defaults",  # the deployment `overwatch demo` runs
    "layouts": "overwatch.defaults",  # a folder: the shipped dashboard layouts
    "supervisord.conf.template": "overwatch.docker",
}


class ResourceMissingError(FileNotFoundError):
    """A shipped file cannot be found: the installation is incomplete or out of date."""


def resource(name: str) -> Path:
    """The path of the shipped file ``name`` (a key of :data:`RESOURCES`).

    The file is not required to exist (callers decide how to report a missing
    file); its package is, else :class:`ResourceMissingError` says how to fix
    the installation. Overwatch is installed as files, never zipped, so the
    result is a real :class:`~pathlib.Path` that subprocesses can read too.
    """
    package = RESOURCES[name]
    try:
        root = files(package)
    except ModuleNotFoundError as exc:
        raise ResourceMissingError(
            f"package {package} (which ships {name}) is not installed: the installation of "
            "overwatch is incomplete or predates it; reinstall it (`make venv`, or "
            "`pip install -e .` in the repository, or `pip install overwatch-*.whl`)"
        ) from exc
    path = root / name
    if not isinstance(path, Path):
        raise ResourceMissingError(
            f"{name} of {package} is not a file on disk ({path!r}): install overwatch unzipped"
        )
    return path

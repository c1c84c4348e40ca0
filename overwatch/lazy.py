"""Public names of a package imported on first use (PEP 562).

A package's curated API can name everything its stages offer without importing
them all: ``import processing`` or one plugin module stays cheap, and every
``overwatch`` command builds the whole command line without scipy or uproot.

Usage, in a package's ``__init__``::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"Name": "pkg.module"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    exports: Mapping[str, str],
    renamed: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: each public name of
    ``exports`` (name -> defining module) is imported when first looked up, under
    the defining module's own name ``renamed[name]`` where given."""
    renamed = renamed or {}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), renamed.get(name, name))
        namespace[name] = value  # the next look-up is an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

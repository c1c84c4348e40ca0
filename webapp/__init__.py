"""Overwatch's web app: Flask pages, JSON API and JSROOT drawings (see ``webapp.app``)."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the Flask app (imported lazily so ``overwatch`` subcommands start fast)."""
    from webapp.app import create_app as build

    return build(*args, **kwargs)

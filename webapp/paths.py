"""Untrusted paths from URLs: histogram paths and snapshot files to download.

Histogram paths legitimately contain ``/`` and spaces, so they arrive as the
rest of the URL. Anything that looks like a file-system trick is refused
before any look-up: ``.``/``..`` segments (also when sent as ``%2e%2e``, which
the server decodes first), empty segments (a leading ``/`` or ``//``, also
from ``%2F``), backslashes, NUL and other control characters. A downloadable
file must moreover have exactly the name of a snapshot file
(``Run<run>/<SYS>/<SYS>hists.<time>.root``) and resolve inside the data
directory.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from overwatch import names

MAX_PATH_LENGTH = 1024


class UnsafePath(ValueError):
    """A path that could escape where it is meant to point; the text says why."""


def check_path(path: str) -> str:
    """Return ``path`` unchanged if every segment is a plain name, else raise UnsafePath."""
    if not path:
        raise UnsafePath("empty path")
    if len(path) > MAX_PATH_LENGTH:
        raise UnsafePath(f"path longer than {MAX_PATH_LENGTH} characters")
    if "\\" in path:
        raise UnsafePath("backslashes are not allowed in paths")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise UnsafePath("control characters (e.g. NUL) are not allowed in paths")
    for segment in path.split("/"):
        if segment == "":
            raise UnsafePath("absolute paths and empty path segments are not allowed")
        if segment in (".", ".."):
            raise UnsafePath("'.' and '..' are not allowed in paths")
    return path


def check_subsystem(name: str) -> bool:
    """Whether a URL's subsystem is a valid name (the rule is :mod:`overwatch.names`')."""
    return names.is_subsystem(name)


def snapshot_file(data_dir: str | Path, relpath: str) -> Path | None:
    """The file a download URL names, or None if it is not a snapshot file inside ``data_dir``.

    Raises UnsafePath for traversal attempts.
    """
    check_path(relpath)
    if names.split_snapshot_relpath(relpath) is None:
        return None
    root = Path(data_dir).resolve()
    target = (root / relpath).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return None  # e.g. a symbolic link pointing out of the data directory
    return target


def quote_path(path: str) -> str:
    """URL form of a histogram path: each segment percent-encoded, ``/`` kept between them."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))

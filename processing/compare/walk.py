"""Walk two files: list their objects, apply the directory and blacklist, pair them.

Listing reads only the files' key lists (cheap), with
:func:`processing.ingest.rootfile.list_keys`, or uproot (:func:`overwatch.rootio.list_keys`
and its errors) for a file that reader does not handle; histograms are read
later by whoever compares them. Paths are the histogram paths of
:mod:`overwatch.rootio` (``"EMC/SM00/cellHits"``).

Blacklist entries are ``NAME@LEVEL`` as in RelMon: a directory called NAME at
depth LEVEL is left out with everything under it. Depth 1 is a directory at the
top of the compared tree (the file, or the ``-d`` directory), 2 the one below,
and so on; ``-1`` matches at any depth. NAME may use shell wildcards (``HLT*``)
and ``__`` for a space (RelMon's convention for command lines).
"""

from __future__ import annotations

import fnmatch
import mmap
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from overwatch import rootio
from overwatch.histogram import is_histogram_class
from processing.ingest import rootfile
from processing.ingest.rootfile import Key


class WalkError(ValueError):
    """Bad input found while walking: unreadable file, unknown directory, bad blacklist."""


@dataclass(frozen=True)
class BlacklistEntry:
    name: str
    level: int  # -1 for any depth

    def matches(self, directory: str, depth: int) -> bool:
        return (self.level == -1 or self.level == depth) and fnmatch.fnmatchcase(
            directory, self.name
        )


_ENTRY = re.compile(r"^(?P<name>[^@]+)@(?P<level>-?\d+)$")


def parse_blacklist(text: str | None) -> list[BlacklistEntry]:
    """``"HLT@1,Tracking@-1"`` -> entries; a malformed entry raises :class:`WalkError`."""
    if text is None or not text.strip():
        return []
    entries = []
    for item in text.split(","):
        match = _ENTRY.match(item.strip())
        if match is None:
            raise WalkError(f"malformed blacklist entry {item.strip()!r}: expected NAME@LEVEL")
        level = int(match["level"])
        if level < -1 or level == 0:
            raise WalkError(
                f"blacklist entry {item.strip()!r}: LEVEL must be -1 (any depth) or 1 and more"
            )
        name = match["name"].strip().replace("__", " ")
        if not name or "/" in name:
            raise WalkError(f"blacklist entry {item.strip()!r}: NAME must be one directory name")
        entries.append(BlacklistEntry(name, level))
    return entries


def is_blacklisted(path: str, blacklist: Sequence[BlacklistEntry], root: str = "") -> bool:
    """True when a directory holding ``path`` (below ``root``) is blacklisted."""
    if not blacklist:
        return False
    relative = path[len(root) + 1 :] if root else path
    directories = relative.split("/")[:-1]
    return any(
        entry.matches(name, depth)
        for depth, name in enumerate(directories, start=1)
        for entry in blacklist
    )


def _list_fast(path: str | Path) -> dict[str, Key] | None:
    """The keys as :mod:`rootfile` reads them; None when it cannot (uproot then says why)."""
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return {key.path: key for key in rootfile.list_keys(data)}
    except (OSError, ValueError):  # rootfile.FormatError is a ValueError; so is an empty file
        return None


def list_objects(path: str | Path) -> dict[str, Key]:
    """{object path: where it is and its class} for every object of a ROOT file."""
    fast = _list_fast(path)
    if fast is not None:
        return fast
    try:
        with rootio.open_root(path) as file:
            return {
                name: Key(
                    name,
                    key.fClassName,
                    key.fCycle,
                    key.fNbytes,
                    key.fObjlen,
                    key.fKeylen,
                    key.fSeekKey,
                    listed_at=-1,
                )
                for name, key in rootio.list_keys(file)
            }
    except FileNotFoundError:
        raise WalkError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WalkError(f"{path}: is a directory, not a ROOT file") from None
    except rootio.RootFileError as error:
        raise WalkError(str(error)) from None
    except OSError as error:
        raise WalkError(f"{path}: cannot read: {error.strerror or error}") from None


def readable(class_name: str) -> bool:
    """Classes :mod:`overwatch.rootio` converts (TH1*/TH2*/TH3*/TProfile*)."""
    return rootio.HISTOGRAM_CLASS.match(class_name) is not None


def histogram_like(class_name: str) -> bool:
    """Histogram classes, including the ones Overwatch cannot read (TH2Poly, TH1K)."""
    return is_histogram_class(class_name)


@dataclass
class Pairing:
    """What the comparison will do with each path of the two files."""

    #: Paths readable in both files: compared.
    common: list[str] = field(default_factory=list)
    only_test: list[str] = field(default_factory=list)
    only_reference: list[str] = field(default_factory=list)
    #: path -> (test class, reference class) when one is not a histogram Overwatch reads.
    mismatched: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Non-histogram objects present (trees, functions, parameters): not compared.
    ignored: int = 0
    #: Paths left out by the blacklist.
    blacklisted: int = 0


def _under(path: str, root: str) -> bool:
    return not root or path.startswith(root + "/")


def pair_objects(
    test: Mapping[str, Key],
    reference: Mapping[str, Key],
    root: str = "",
    blacklist: Sequence[BlacklistEntry] = (),
) -> Pairing:
    """Sort the objects of two files into compared, missing and mismatched paths."""
    root = root.strip("/")
    pairing = Pairing()
    for path in sorted(set(test) | set(reference)):
        if not _under(path, root):
            continue
        mine = test[path].class_name if path in test else None
        theirs = reference[path].class_name if path in reference else None
        if not any(c is not None and histogram_like(c) for c in (mine, theirs)):
            pairing.ignored += 1
            continue
        if is_blacklisted(path, blacklist, root):
            pairing.blacklisted += 1
            continue
        if theirs is None:
            pairing.only_test.append(path)
        elif mine is None:
            pairing.only_reference.append(path)
        elif readable(mine) and readable(theirs):
            pairing.common.append(path)
        else:
            pairing.mismatched[path] = (mine, theirs)
    return pairing


def check_directory(objects: Mapping[str, Key], root: str, label: str) -> None:
    """Raise :class:`WalkError` when ``root`` is not a directory of the file."""
    root = root.strip("/")
    if root and not any(_under(path, root) for path in objects):
        raise WalkError(f"{label}: no directory {root!r}")


def chunks(paths: Sequence[str], count: int) -> list[list[str]]:
    """Split paths into ``count`` interleaved chunks of nearly equal size and mix."""
    count = max(1, min(count, len(paths)))
    return [list(paths[start::count]) for start in range(count)] if paths else []


def directories_of(paths: Iterable[str]) -> list[str]:
    """Every directory holding one of the paths, parents included ("" is the top)."""
    found = {""}
    for path in paths:
        parts = path.split("/")[:-1]
        for end in range(1, len(parts) + 1):
            found.add("/".join(parts[:end]))
    return sorted(found)

"""Reading snapshot folders of any generation: which clock their names are in, and in what order.

Why one module: processing (``overwatch process``, ``db rebuild``) reads a data
directory in place and ``overwatch replay`` serves one; both must give every
file the same instant, or a replay would disagree with processing in place.

**Which clock.** Nothing in an Overwatch-form name says whether its time is
UTC (new files) or Europe/Zurich local time (archived Overwatch data). A folder
declares it:

1. ``Run<N>/.overwatch-timezone`` (one line, a zone name): new receivers write
   ``UTC`` there when they create a run folder, so new runs always say so;
2. ``<data>/.overwatch-timezone``: for a whole directory (an operator writes it
   into an archive, ``echo Europe/Zurich > .overwatch-timezone``);
3. otherwise the ``data.timezone`` setting, which the ``--timezone ZONE`` and
   ``--archived`` flags of ``process``, ``db rebuild`` and ``replay`` set.

A marker wins over the setting, because it was written by what wrote the
files: an archive copied into a live data directory is read in the zone of the
flag while the runs its receivers write stay UTC. A marker that does not name
a zone is an error (it is never guessed around).

Old receivers' names (``EMChistos_<run>_<mode>_<Y_M_D_h_m_s>.root``) are
always Zurich local time and carry their run; they are read inside
``Run<N>/<SYS>/`` and flat in the data directory, where those receivers wrote them.

**What order.** Zurich's autumn hour (02:00-02:59 on the last Sunday of
October) happens twice, and a name alone cannot tell which pass it is from:
the names of one subsystem are put in *file order* - modification time, then
name - and read with :func:`overwatch.timestamps.parse_sequence`, which takes
the second pass where the first would go back in time. Receivers wrote the
files in order, so the modification times of an archive (kept by ``cp -p``,
``rsync -a``, ``tar``) carry that order. Names in UTC are not ambiguous and
need no order.

**Bad files.** A ``.root`` file in a subsystem folder whose name cannot be read
(not a snapshot name, an impossible date, another subsystem's or run's name)
gets a reason; callers record it as bad, never skip it in silence. Hidden
files (temporaries, markers) are no snapshots.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from overwatch import names, timestamps
from overwatch.store.layout import TIMEZONE_MARKER, DataDir, FileSystem, atomic_write

log = logging.getLogger(__name__)

UTC = "UTC"


class ArchiveError(ValueError):
    """A folder that cannot be read as snapshots: a bad marker, no run to give, nothing there."""


# --------------------------------------------------------------------------- which clock


def read_marker(folder: str | Path) -> str | None:
    """The zone a folder's marker declares, None without a marker; ArchiveError if invalid."""
    path = Path(folder) / TIMEZONE_MARKER
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return timestamps.check_timezone(text)
    except ValueError as error:
        raise ArchiveError(f"{path}: {error} (write one zone name, e.g. UTC)") from None


def write_marker(
    folder: str | Path, zone: str = UTC, *, fs: FileSystem | None = None, fsync: bool = True
) -> bool:
    """Declare the zone of ``folder``'s names unless it already says one; True if written.

    Raises ``OSError`` if it cannot be written (``fs``: the OS calls, for tests).
    """
    path = Path(folder) / TIMEZONE_MARKER
    fs = fs or FileSystem()
    if fs.exists(path):
        return False
    try:
        text = f"{timestamps.check_timezone(zone)}\n"
        atomic_write(path, text, replace=False, fs=fs, fsync=fsync)
    except FileExistsError:  # another writer was first; it says the same
        return False
    return True


def zone_of(data: DataDir, run: int, default: str = UTC) -> str:
    """The zone of a run's Overwatch-form names: its marker, the directory's, else ``default``."""
    return read_marker(data.run_dir(run)) or read_marker(data.root) or default


# --------------------------------------------------------------------------- what order


def is_candidate(name: str) -> bool:
    """Whether a file in a subsystem folder is meant as a snapshot (a visible ``.root`` file)."""
    return name.endswith(".root") and not name.startswith(".")


def file_order(paths: dict[str, Path]) -> list[str]:
    """Names by modification time, then name: the order they were written."""

    def key(name: str) -> tuple[int, str]:
        try:
            return os.stat(paths[name]).st_mtime_ns, name
        except OSError:  # gone meanwhile: its place does not matter
            return 0, name

    return sorted(paths, key=key)


def read_names(
    paths: dict[str, Path],
    zone: str,
    *,
    run: int | None = None,
    subsystem: str | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Instants (unix seconds) of the snapshot files of one run's subsystem, and the bad ones.

    ``paths`` maps each file name to where it is (for its modification time).
    Returns ``(good, bad)``: name -> instant, name -> reason. Names whose run or
    subsystem disagree with ``run``/``subsystem`` are bad.
    """
    unreadable: dict[str, str] = {}
    ambiguous = zone != UTC or any(names.RECEIVER_FILE_PATTERN.fullmatch(n) for n in paths)
    ordered = file_order(paths) if ambiguous else sorted(paths)
    parsed = timestamps.parse_sequence(ordered, timezone=zone, errors=unreadable)
    bad = {name: f"invalid snapshot name: {reason}" for name, reason in unreadable.items()}
    good: dict[str, float] = {}
    readable = [name for name in ordered if name not in unreadable]
    for name, snapshot in zip(readable, parsed, strict=True):
        if subsystem is not None and snapshot.subsystem != subsystem:
            bad[name] = f"the name is of subsystem {snapshot.subsystem}, the folder of {subsystem}"
        elif run is not None and snapshot.run is not None and snapshot.run != run:
            bad[name] = f"the name is of run {snapshot.run}, the folder of run {run}"
        else:
            good[name] = timestamps.to_unix(snapshot.instant)
    return good, bad


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceSnapshot:
    """One snapshot of a source: its run, subsystem, true instant and file."""

    run: int
    subsystem: str
    instant: float  # unix seconds (UTC)
    path: Path


@dataclass
class Source:
    """Every snapshot a folder holds, in time order, and the files that could not be read."""

    snapshots: list[SourceSnapshot] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def runs(self) -> list[int]:
        return sorted({s.run for s in self.snapshots})

    @property
    def subsystems(self) -> list[str]:
        return sorted({s.subsystem for s in self.snapshots})


def _receiver_files(folder: Path) -> dict[tuple[int, str], dict[str, Path]]:
    """Old receivers' snapshots lying flat in ``folder``, by (run, subsystem) of their names."""
    found: dict[tuple[int, str], dict[str, Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        match = names.RECEIVER_FILE_PATTERN.fullmatch(entry.name)
        if match is None or not entry.is_file():
            continue
        run = int(match["run"])
        if names.is_run(run):
            found.setdefault((run, match["subsystem"]), {})[entry.name] = Path(entry.path)
    return found


def _subsystem_files(folder: Path) -> dict[str, dict[str, Path]]:
    """Candidate snapshot files of each ``<SYS>/`` folder inside a run folder."""
    found: dict[str, dict[str, Path]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if names.is_subsystem(entry.name) and entry.is_dir():
            found[entry.name] = {
                n: Path(entry.path) / n for n in os.listdir(entry.path) if is_candidate(n)
            }
    return found


def _flat_files(folder: Path) -> dict[str, dict[str, Path]]:
    """Overwatch-form snapshots lying flat in ``folder`` (a folder of one run), by subsystem."""
    found: dict[str, dict[str, Path]] = {}
    for entry in os.scandir(folder):
        match = names.SNAPSHOT_FILE_PATTERN.fullmatch(entry.name)
        if match is not None and entry.is_file():
            found.setdefault(match["subsystem"], {})[entry.name] = Path(entry.path)
    return found


def read_source(path: str | Path, *, timezone: str = UTC, run: int | None = None) -> Source:
    """Every snapshot of a data directory, a run folder, a subsystem folder or a folder of
    one run's ROOT files, with its true instant (markers first, then ``timezone``).

    ``run`` numbers the snapshots of a folder that does not say its run (a folder
    of ``<SYS>hists.<time>.root`` files). Raises ArchiveError for a folder that is
    not there, holds no snapshot, or needs a run it was not given.
    """
    root = Path(path)
    if not root.is_dir():
        raise ArchiveError(f"{root} is not a folder")
    timestamps.check_timezone(timezone)
    default = read_marker(root) or timezone
    groups: list[tuple[int, str, dict[str, Path], str]] = []  # run, subsystem, files, zone
    folder_run = names.parse_run_dir(root.name)
    parent_run = names.parse_run_dir(root.parent.name)
    if folder_run is not None:  # Run<N>/: one run
        for subsystem, files in _subsystem_files(root).items():
            groups.append((folder_run, subsystem, files, default))
    elif parent_run is not None and names.is_subsystem(root.name):  # Run<N>/<SYS>/
        files = {n: root / n for n in os.listdir(root) if is_candidate(n)}
        zone = read_marker(root) or read_marker(root.parent) or timezone
        groups.append((parent_run, root.name, files, zone))
    else:
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            number = names.parse_run_dir(entry.name)
            if number is not None and entry.is_dir():
                zone = read_marker(entry.path) or default
                for subsystem, files in _subsystem_files(Path(entry.path)).items():
                    groups.append((number, subsystem, files, zone))
        for (number, subsystem), files in sorted(_receiver_files(root).items()):
            groups.append((number, subsystem, files, default))
        flat = _flat_files(root)
        if flat and run is None and not groups:
            raise ArchiveError(
                f"{root} holds snapshots of no named run ({', '.join(sorted(flat))}): "
                "give the run they belong to (--run-as N)"
            )
        for subsystem, files in sorted(flat.items()):
            groups.append((run, subsystem, files, default))  # type: ignore[arg-type]
    source = Source()
    for number, subsystem, files, zone in groups:
        good, bad = read_names(files, zone, run=number, subsystem=subsystem)
        source.snapshots.extend(
            SourceSnapshot(number, subsystem, instant, files[name])
            for name, instant in good.items()
        )
        source.bad.extend((files[name], reason) for name, reason in sorted(bad.items()))
    source.snapshots.sort(key=lambda s: (s.instant, s.run, s.subsystem, s.path.name))
    if not source.snapshots:
        raise ArchiveError(f"{root} holds no readable snapshot" + _first_reasons(source.bad))
    return source


def _first_reasons(bad: Iterable[tuple[Path, str]]) -> str:
    reasons = [f"{path.name}: {reason}" for path, reason in list(bad)[:3]]
    return f" ({'; '.join(reasons)})" if reasons else ""

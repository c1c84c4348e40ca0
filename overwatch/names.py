"""The one definition of subsystem, run and snapshot-file names.

Why one module: a subsystem name and a run number end up as directory names
(``Run<run>/<SYS>/``), in file names (``<SYS>hists.<time>.root``), in ZMQ
topics and in URLs. Every package that accepts one from outside (the wire, a
notice, a URL, a directory listing) must accept and refuse exactly the same
names, or a name one part stores is one another part cannot reach.

The rules:

* **Subsystem**: 1 to 32 ASCII letters and digits (``EMC``, ``TPC``, ``HLT``).
  Nothing else: no ``/``, ``.``, ``-``, ``_``, spaces or non-ASCII letters, so
  a name is safe as a path segment, in a URL and in a ZMQ topic without any
  escaping, and ``<SYS>hists.`` splits unambiguously. (Earlier copies of this
  rule differed: one allowed ``_`` and ``-`` up to 64 characters, one any
  length; none of them could be received, so nothing on disk used more.)
* **Run**: an integer from 1 to :data:`MAX_RUN` (2**31 - 1, the largest key
  ZODB's ``IOBTree`` of runs takes: a larger one stored on disk would make
  every processing pass fail). Run 0 is what senders send between runs ("no
  run going on", ``"run": 0`` on the wire): it holds no data, so it is
  no run here and never a directory. Booleans are not runs. Its directory is
  ``Run<run>`` in plain decimal, without leading zeros, so a directory name
  and its number convert both ways (``Run007`` is not a run directory).
* **Snapshot files** (Overwatch's layout, kept so archived data replays as is):
  ``<SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root`` inside ``Run<run>/<SYS>/``, the
  time zero-padded. What the time *means* (UTC or Zurich local time) is
  :mod:`overwatch.timestamps`' business; this module only says what a name
  looks like. The old receiver's form
  ``<SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root`` is recognised for reading
  archived data only.

Names are matched in full (``re.fullmatch``): a trailing newline, which ``$``
would let through, is refused too.
"""

from __future__ import annotations

import enum
import numbers
import re

__all__ = [
    "MAX_RUN",
    "MAX_SUBSYSTEM_LENGTH",
    "FileForm",
    "InvalidName",
    "check_mode",
    "check_run",
    "check_snapshot_file",
    "check_subsystem",
    "is_run",
    "is_snapshot_file",
    "is_subsystem",
    "match_snapshot_name",
    "parse_run",
    "parse_run_dir",
    "receiver_snapshot_file",
    "run_dir",
    "snapshot_file",
    "snapshot_relpath",
    "split_snapshot_relpath",
]

MAX_SUBSYSTEM_LENGTH = 32
#: Largest run number: ZODB's IOBTree (the runs of the database) takes 32-bit keys.
MAX_RUN = 2**31 - 1

_SUBSYSTEM = rf"[A-Za-z0-9]{{1,{MAX_SUBSYSTEM_LENGTH}}}"
_MODE = r"[A-Za-z0-9]{1,16}"
_RUN = r"[1-9][0-9]{0,9}"  # canonical decimal: what f"{run}" writes
#: The time of an Overwatch name, zero-padded ``YYYY_MM_DD_HH_MM_SS``.
_STAMP = (
    r"(?P<year>[0-9]{4})_(?P<month>[0-9]{2})_(?P<day>[0-9]{2})_"
    r"(?P<hour>[0-9]{2})_(?P<minute>[0-9]{2})_(?P<second>[0-9]{2})"
)
#: The old receiver's time: the same fields, not padded.
_RECEIVER_STAMP = (
    r"(?P<year>[0-9]{4})_(?P<month>[0-9]{1,2})_(?P<day>[0-9]{1,2})_"
    r"(?P<hour>[0-9]{1,2})_(?P<minute>[0-9]{1,2})_(?P<second>[0-9]{1,2})"
)

SUBSYSTEM_PATTERN = re.compile(_SUBSYSTEM)
MODE_PATTERN = re.compile(_MODE)
RUN_DIR_PATTERN = re.compile(rf"Run(?P<run>{_RUN})")
STAMP_PATTERN = re.compile(_STAMP)
#: ``<SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root``; groups ``subsystem`` and the six time fields.
SNAPSHOT_FILE_PATTERN = re.compile(rf"(?P<subsystem>{_SUBSYSTEM})hists\.{_STAMP}\.root")
#: ``<SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root`` (old receiver, archived data only).
RECEIVER_FILE_PATTERN = re.compile(
    rf"(?P<subsystem>{_SUBSYSTEM})histos_(?P<run>[0-9]{{1,10}})_(?P<mode>{_MODE})_"
    rf"{_RECEIVER_STAMP}\.root"
)
#: The fields of a snapshot file's time, in order (group names of both patterns).
TIME_FIELDS = ("year", "month", "day", "hour", "minute", "second")

_SNAPSHOT_FORMS = (
    "'<SYS>hists.YYYY_MM_DD_HH_MM_SS.root' (Overwatch, e.g. "
    "'EMChists.2015_11_24_18_05_10.root') or "
    "'<SYS>histos_<run>_<mode>_Y_M_D_h_m_s.root' (old receiver, e.g. "
    "'EMChistos_123456_B_2015_3_14_2_3_5.root')"
)


class InvalidName(ValueError):
    """A subsystem, run or file name that breaks the rules above; the text says which and why."""


class FileForm(enum.Enum):
    """Which layout a snapshot file name follows."""

    OVERWATCH = "overwatch"  # <SYS>hists.<YYYY_MM_DD_HH_MM_SS>.root
    RECEIVER = "receiver"  # <SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root


# --------------------------------------------------------------------------- subsystems


def is_subsystem(name: object) -> bool:
    """Whether ``name`` is a valid subsystem name (for callers that answer 404 rather than raise)."""
    return isinstance(name, str) and SUBSYSTEM_PATTERN.fullmatch(name) is not None


def check_subsystem(name: object) -> str:
    """Return ``name`` if it is a valid subsystem name; else raise :class:`InvalidName`."""
    if not is_subsystem(name):
        raise InvalidName(
            f"invalid subsystem {name!r}: expected 1-{MAX_SUBSYSTEM_LENGTH} ASCII letters "
            "and digits, e.g. 'EMC'"
        )
    return name  # type: ignore[return-value]


def check_mode(mode: object) -> str:
    """Return ``mode`` (the sender's data-taking mode, e.g. ``B``) if valid; else InvalidName."""
    if not isinstance(mode, str) or MODE_PATTERN.fullmatch(mode) is None:
        raise InvalidName(f"invalid mode {mode!r}: expected 1-16 letters or digits, e.g. 'B'")
    return mode


# --------------------------------------------------------------------------- runs


def is_run(run: object) -> bool:
    """Whether ``run`` is a valid run number (an integer, not a bool, 1 to MAX_RUN)."""
    return isinstance(run, numbers.Integral) and not isinstance(run, bool) and 1 <= run <= MAX_RUN


def check_run(run: object) -> int:
    """``run`` as an ``int`` if it is a valid run number; else raise :class:`InvalidName`.

    Integral types such as numpy integers are accepted and converted.
    """
    if not is_run(run):
        raise InvalidName(f"invalid run number {run!r}: expected an integer from 1 to {MAX_RUN}")
    return int(run)  # type: ignore[call-overload]


def parse_run(text: str) -> int:
    """A run number written in decimal (a URL or query parameter); else :class:`InvalidName`."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,10}", text):
        raise InvalidName(f"invalid run number {str(text)[:40]!r}: expected decimal digits")
    return check_run(int(text))


def run_dir(run: int) -> str:
    """Name of a run's directory: ``Run<run>``."""
    return f"Run{check_run(run)}"


def parse_run_dir(name: str) -> int | None:
    """The run of a ``Run<run>`` directory name, or None for any other name."""
    match = RUN_DIR_PATTERN.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    run = int(match["run"])
    return run if run <= MAX_RUN else None


# --------------------------------------------------------------------------- snapshot files


def snapshot_file(subsystem: str, stamp: str) -> str:
    """``<SYS>hists.<stamp>.root``; ``stamp`` is the zero-padded ``YYYY_MM_DD_HH_MM_SS``."""
    check_subsystem(subsystem)
    if not isinstance(stamp, str) or STAMP_PATTERN.fullmatch(stamp) is None:
        raise InvalidName(f"invalid snapshot time {stamp!r}: expected YYYY_MM_DD_HH_MM_SS")
    return f"{subsystem}hists.{stamp}.root"


def receiver_snapshot_file(subsystem: str, run: int, mode: str, stamp: str) -> str:
    """The old receiver's ``<SYS>histos_<run>_<mode>_<Y_M_D_h_m_s>.root`` (archived data only)."""
    name = f"{check_subsystem(subsystem)}histos_{check_run(run)}_{check_mode(mode)}_{stamp}.root"
    if RECEIVER_FILE_PATTERN.fullmatch(name) is None:
        raise InvalidName(f"invalid old-receiver snapshot time {stamp!r}: expected Y_M_D_h_m_s")
    return name


def snapshot_relpath(run: int, subsystem: str, stamp: str) -> str:
    """``Run<run>/<SYS>/<SYS>hists.<stamp>.root``: a snapshot's path inside the data directory."""
    return f"{run_dir(run)}/{subsystem}/{snapshot_file(subsystem, stamp)}"


def is_snapshot_file(name: str, subsystem: str | None = None) -> bool:
    """Whether ``name`` is an Overwatch snapshot file name (of ``subsystem``, if given)."""
    match = SNAPSHOT_FILE_PATTERN.fullmatch(name) if isinstance(name, str) else None
    return match is not None and (subsystem is None or match["subsystem"] == subsystem)


def check_snapshot_file(name: str) -> re.Match[str]:
    """The match of an Overwatch-form snapshot file name (groups ``subsystem`` and time fields).

    Raises :class:`InvalidName` naming the expected form.
    """
    match = SNAPSHOT_FILE_PATTERN.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise InvalidName(
            f"{name!r} is not a snapshot file name: expected '<SYS>hists.YYYY_MM_DD_HH_MM_SS.root',"
            " e.g. 'EMChists.2015_11_24_18_05_10.root'"
        )
    return match


def match_snapshot_name(name: str) -> tuple[FileForm, re.Match[str]]:
    """Form and match of a snapshot file name in either layout (for reading archived data).

    The match has the groups ``subsystem`` and :data:`TIME_FIELDS`, and for the
    old receiver's form also ``run`` and ``mode``. Raises :class:`InvalidName`
    naming both accepted forms.
    """
    if isinstance(name, str):
        match = SNAPSHOT_FILE_PATTERN.fullmatch(name)
        if match is not None:
            return FileForm.OVERWATCH, match
        match = RECEIVER_FILE_PATTERN.fullmatch(name)
        if match is not None:
            return FileForm.RECEIVER, match
    raise InvalidName(f"{name!r} is not a snapshot file name: expected {_SNAPSHOT_FORMS}")


def split_snapshot_relpath(relpath: str) -> tuple[int, str, str] | None:
    """(run, subsystem, file name) of ``Run<run>/<SYS>/<SYS>hists.<time>.root``, else None.

    The subsystem of the directory and of the file name must agree.
    """
    parts = relpath.split("/") if isinstance(relpath, str) else []
    if len(parts) != 3:
        return None
    run_name, subsystem, name = parts
    run = parse_run_dir(run_name)
    if run is None or not is_subsystem(subsystem) or not is_snapshot_file(name, subsystem):
        return None
    return run, subsystem, name

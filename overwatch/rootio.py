"""ROOT files <-> :class:`~overwatch.histogram.Histogram`, with uproot only.

Reading walks every directory of a file, keeps the highest cycle of each key,
converts histograms of every class and skips anything else (trees, functions,
parameters, ...) with a note instead of an exception, because real detector
files mix all of these. Writing produces ordinary ROOT files (on disk or as
bytes) that round-trip exactly: flow bins, sumw2, edges, labels, entries,
titles and ROOT's running statistics.

A histogram's *path* is its key name prefixed by the directories that hold it,
joined with ``/`` (``"EMC/SM00/cellHits"``). Key names may contain spaces.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uproot
from uproot.writing import identify

from overwatch import rootjson, rootmodels
from overwatch.histogram import (
    AXIS_NAMES,
    PROFILE_STAT_NAMES,
    STAT_NAMES,
    Axis,
    Histogram,
    dimension_of,
)

log = logging.getLogger(__name__)
rootmodels.register()  # uproot models of TEfficiency and RooPlot, for every reader

#: Classes read as histograms. TH2Poly, TH1K, THnSparse and friends are skipped.
HISTOGRAM_CLASS = re.compile(r"^(TH[123][CSIFDL]|TProfile|TProfile2D|TProfile3D)$")

#: Storage type of the bin array written for each class letter.
STORAGE_DTYPE = {
    "C": np.int8,
    "S": np.int16,
    "I": np.int32,
    "L": np.float64,  # uproot writes no TH*L; a double holds the same integers
    "F": np.float32,
    "D": np.float64,
}


class RootFileError(ValueError):
    """The bytes or file are not a readable ROOT file."""


@dataclass(frozen=True)
class SkippedObject:
    path: str
    class_name: str
    reason: str


@dataclass
class ReadResult:
    """The histograms of one file, by path, and what was passed over."""

    histograms: dict[str, Histogram] = field(default_factory=dict)
    skipped: list[SkippedObject] = field(default_factory=list)


# -- opening -----------------------------------------------------------------


def _check_complete(header: bytes, size: int, label: str) -> None:
    """Compare the file length ROOT's header declares (fEND) with the bytes present.

    A truncated file otherwise fails deep inside uproot with an opaque message, or
    worse, opens and silently loses the objects stored past the cut.
    """
    if not header.startswith(b"root"):
        raise RootFileError(f"{label} is not a ROOT file: it does not start with 'root'")
    if len(header) < 16:
        raise RootFileError(f"truncated ROOT file {label}: {size} bytes, shorter than the header")
    version = struct.unpack(">i", header[4:8])[0]
    if version >= 1_000_000:  # large-file header: 64-bit pointers
        if len(header) < 20:
            raise RootFileError(
                f"truncated ROOT file {label}: {size} bytes, shorter than the header"
            )
        end = struct.unpack(">q", header[12:20])[0]
    else:
        end = struct.unpack(">i", header[12:16])[0]
    if end > size:
        raise RootFileError(
            f"truncated ROOT file {label}: its header says {end} bytes, only {size} present"
        )


def open_root(source: str | Path | bytes | bytearray | memoryview):
    """Open a path or in-memory bytes with uproot, with a clear error if it is not ROOT."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = "<bytes>"
        _check_complete(data[:20], len(data), label)
        target = io.BytesIO(data)
    else:
        target = str(source)
        label = target
        if os.path.isdir(target):
            raise RootFileError(f"{label} is a directory, not a ROOT file")
        with open(target, "rb") as stream:  # FileNotFoundError passes through as is
            _check_complete(stream.read(20), os.fstat(stream.fileno()).st_size, label)
    try:
        return uproot.open(target)
    except FileNotFoundError:
        raise
    except Exception as error:  # uproot raises many types for damaged files
        raise RootFileError(f"{label} is not a readable ROOT file: {error}") from error


def list_keys(
    directory, prefix: str = "", skipped: list[SkippedObject] | None = None
) -> Iterator[tuple[str, object]]:
    """(path, TKey) for every object, recursively, highest cycle of each name only.

    A subdirectory whose key list is damaged raises :class:`RootFileError`, or, when
    ``skipped`` is given, is noted there so the rest of the file is still read.
    """
    # uproot's string-keyed lookup splits names on "/", so walk the TKeys directly.
    newest: dict[str, object] = {}
    for key in directory._keys:  # noqa: SLF001 - the only access to raw TKeys
        current = newest.get(key.fName)
        if current is None or key.fCycle > current.fCycle:
            newest[key.fName] = key
    for name, key in newest.items():
        path = f"{prefix}{name}"
        if key.fClassName in ("TDirectory", "TDirectoryFile"):
            try:
                subdirectory = key.get()
                check_key_list(subdirectory)
            except Exception as error:  # uproot raises many types for damaged bytes
                if skipped is None:
                    raise RootFileError(f"directory {path!r} unreadable: {error}") from error
                log.warning("skipping directory %s: %s", path, error)
                skipped.append(
                    SkippedObject(path, key.fClassName, f"unreadable directory: {error}")
                )
                continue
            yield from list_keys(subdirectory, prefix=path + "/", skipped=skipped)
        else:
            yield path, key


def check_key_list(directory) -> None:
    """Raise :class:`RootFileError` if a directory's key list does not hold what it says.

    Why: uproot reads a key list that is damaged in its count or lengths without
    complaint (a count of -1 reads as no keys), so the directory's histograms
    would silently vanish. The list is one record of ``fNbytesKeys`` bytes: a
    TKey header whose ``fNbytes`` repeats that length, the number of keys, then
    that many key headers, all inside the record (ROOT and uproot may leave
    spare room at its end).
    """
    start, length = directory._fSeekKeys, directory._fNbytesKeys  # noqa: SLF001
    if start == 0:
        return  # a directory that was never given a key list: empty by construction
    keys = directory._keys  # noqa: SLF001
    head_size = 18  # fNbytes, fVersion, fObjLen, fDatime, fKeylen: the fixed part we need
    stop = start + head_size
    chunk = directory._file.chunk(start, stop)  # noqa: SLF001
    head = chunk.get(start, stop, uproot.source.cursor.Cursor(start), {}).tobytes()
    nbytes, keylen = struct.unpack(">i", head[0:4])[0], struct.unpack(">h", head[14:16])[0]
    if nbytes != length or not 0 < keylen < length:
        raise RootFileError(
            f"damaged key list: record of {nbytes} bytes with a {keylen}-byte header, "
            f"the directory says {length} bytes"
        )
    at = start + keylen
    chunk = directory._file.chunk(at, at + 4)  # noqa: SLF001
    raw = chunk.get(at, at + 4, uproot.source.cursor.Cursor(at), {}).tobytes()
    count = struct.unpack(">i", raw)[0]
    used = keylen + 4 + sum(key._fKeylen for key in keys)  # noqa: SLF001
    if count != len(keys) or used > length:
        raise RootFileError(
            f"damaged key list: it counts {count} key(s) in {used} bytes, "
            f"{len(keys)} read, the record holds {length} bytes"
        )
    end = directory._file.fEND  # noqa: SLF001
    for key in keys:
        size, where = key._fNbytes, key._fSeekKey  # noqa: SLF001
        if not (key.fName and 0 < key._fKeylen <= size and 0 < where < end):  # noqa: SLF001
            raise RootFileError(
                f"damaged key list: key {key.fName!r} ({size} bytes at {where}) "
                f"does not fit in the file's {end} bytes"
            )


def validate_root_bytes(data: bytes) -> int:
    """Check that bytes are a complete ROOT file whose top directory lists objects.

    Returns the number of keys in the top directory. Cheap: reads the header
    and the key list, not the objects. Raises :class:`RootFileError`.
    """
    if not data:
        raise RootFileError("empty payload")
    with open_root(data) as file:
        try:
            keys = list(file._keys)  # noqa: SLF001
            end = file.file.fEND if hasattr(file, "file") else None
        except Exception as error:
            raise RootFileError(f"ROOT directory unreadable: {error}") from error
    if end is not None and end > len(data):
        raise RootFileError(f"truncated ROOT file: header says {end} bytes, got {len(data)}")
    if not keys:
        raise RootFileError("ROOT file lists no objects")
    return len(keys)


# -- reading -----------------------------------------------------------------


def read_histograms(source: str | Path | bytes, names: Iterable[str] | None = None) -> ReadResult:
    """Every histogram of a file (or only ``names``), converted; others skipped with a note."""
    wanted = set(names) if names is not None else None
    result = ReadResult()
    with open_root(source) as file:
        for path, key in list_keys(file, skipped=result.skipped):
            if wanted is not None and path not in wanted:
                continue
            class_name = key.fClassName
            if not HISTOGRAM_CLASS.match(class_name):
                result.skipped.append(SkippedObject(path, class_name, "not a histogram"))
                continue
            try:
                result.histograms[path] = from_uproot(path, key.get(), class_name, file=file.file)
            except Exception as error:  # one damaged object must not lose the others
                log.warning("skipping %s (%s): %s", path, class_name, error)
                result.skipped.append(SkippedObject(path, class_name, f"unreadable: {error}"))
    for item in result.skipped:
        log.debug("skipped %s (%s): %s", item.path, item.class_name, item.reason)
    return result


def _bin_array(model) -> np.ndarray:
    """The TArray behind a histogram model (fArray with flow bins), as float64."""
    pending = [model]
    while pending:
        current = pending.pop(0)
        if type(current).__name__.startswith("Model_TArray"):
            return np.asarray(current, dtype=np.float64)
        pending.extend(getattr(current, "bases", []))
    raise RootFileError(f"{type(model).__name__} holds no bin array")


def _optional_array(model, member: str) -> np.ndarray | None:
    value = model.all_members.get(member)
    if value is None or len(value) == 0:
        return None
    return np.asarray(value, dtype=np.float64)


def _axis_from_uproot(taxis, default_name: str) -> Axis:
    members = taxis.all_members
    explicit = np.asarray(members.get("fXbins", []), dtype=np.float64)
    nbins = int(members["fNbins"])
    if len(explicit) == nbins + 1:
        edges, variable = explicit, True
    else:
        edges, variable = np.linspace(members["fXmin"], members["fXmax"], nbins + 1), False
    labels = None
    raw_labels = members.get("fLabels")
    if raw_labels is not None and len(raw_labels):
        labels = {int(item.member("@fUniqueID")): str(item) for item in raw_labels}
    return Axis(
        edges=edges,
        title=str(members.get("fTitle", "")),
        labels=labels,
        variable=variable,
        name=str(members.get("fName") or default_name),
    )


def from_uproot(
    path: str, model, class_name: str, *, file=None, presentation: str | None = None
) -> Histogram:
    """Convert one uproot histogram model, with the producer's presentation.

    ``presentation`` (JSON text of :func:`overwatch.rootjson.presentation`) is
    computed unless given; ``file`` is the uproot file (its streamer info types
    map members of attached functions).
    """
    if presentation is None:
        presentation = json.dumps(rootjson.presentation(model, file), separators=(",", ":"))
    ndim = dimension_of(class_name)
    members = model.all_members
    axes = [
        _axis_from_uproot(members[f"f{letter}axis"], AXIS_NAMES[i])
        for i, letter in enumerate("XYZ"[:ndim])
    ]
    stat_names = STAT_NAMES[ndim]
    profile = class_name.startswith("TProfile")
    if profile:
        stat_names = stat_names + PROFILE_STAT_NAMES[ndim]
    stats = {name: float(members[name]) for name in stat_names if name in members}
    range_names = {1: ("fYmin", "fYmax"), 2: ("fZmin", "fZmax"), 3: ("fTmin", "fTmax")}[ndim]
    return Histogram(
        name=path,
        class_name=class_name,
        axes=axes,
        values=_bin_array(model),
        sumw2=_optional_array(model, "fSumw2"),
        entries=float(members["fEntries"]),
        title=str(members.get("fTitle", "")),
        bin_entries=_optional_array(model, "fBinEntries") if profile else None,
        bin_sumw2=_optional_array(model, "fBinSumw2") if profile else None,
        stats=stats,
        profile_range=(
            (float(members.get(range_names[0], 0.0)), float(members.get(range_names[1], 0.0)))
            if profile
            else (0.0, 0.0)
        ),
        error_mode=int(members.get("fErrorMode", 0)) if profile else 0,
        presentation=presentation,
    )


# -- writing -----------------------------------------------------------------


def _labels_to_uproot(labels: dict[int, str] | None):
    if not labels:
        return None
    strings = []
    for bin_number, text in sorted(labels.items()):
        string = identify.to_TObjString(text)
        string._bases[0]._members["@fUniqueID"] = bin_number  # ROOT binds a label to its bin so
        strings.append(string)
    return identify.to_THashList(strings)


def _axis_to_uproot(axis: Axis, default_name: str):
    return identify.to_TAxis(
        fName=axis.name or default_name,
        fTitle=axis.title,
        fNbins=axis.nbins,
        fXmin=axis.low,
        fXmax=axis.high,
        fXbins=axis.edges if axis.variable else None,
        fLabels=_labels_to_uproot(axis.labels),
    )


def _empty_or(array: np.ndarray | None) -> np.ndarray:
    if array is None:
        return np.array([], dtype=np.float64)
    return np.ascontiguousarray(array.ravel(order="F"), dtype=np.float64)


def to_uproot(histogram: Histogram):
    """Build the uproot model that writes ``histogram`` as its ROOT class."""
    h = histogram
    ndim = h.ndim
    stats = h.stats if all(k in h.stats for k in STAT_NAMES[ndim]) else h.compute_stats()
    if h.is_profile and not all(k in stats for k in PROFILE_STAT_NAMES[ndim]):
        stats = {**h.compute_stats(), **{k: v for k, v in stats.items() if k in STAT_NAMES[ndim]}}
    axes = [_axis_to_uproot(axis, AXIS_NAMES[i]) for i, axis in enumerate(h.axes)]
    blank = [_axis_to_uproot(Axis.regular(1, 0.0, 1.0, name=n), n) for n in AXIS_NAMES]
    while len(axes) < 3:
        axes.append(blank[len(axes)])
    name = h.name.rsplit("/", 1)[-1]
    common = dict(fName=name, fTitle=h.title, fEntries=h.entries, fSumw2=_empty_or(h.sumw2))
    sums = {k: stats[k] for k in STAT_NAMES[ndim]}
    if h.is_profile:
        data = _empty_or(h.values)
        extra = {k: stats[k] for k in PROFILE_STAT_NAMES[ndim]}
        profile = dict(
            fBinEntries=_empty_or(h.bin_entries),
            fBinSumw2=_empty_or(h.bin_sumw2),
            fErrorMode=h.error_mode,
        )
        low, high = h.profile_range
        if ndim == 1:
            return identify.to_TProfile(
                data=data, **common, **sums, **extra, **profile,
                fXaxis=axes[0], fYaxis=axes[1], fZaxis=axes[2], fYmin=low, fYmax=high,
            )  # fmt: skip
        if ndim == 2:
            return identify.to_TProfile2D(
                data=data, **common, **sums, **extra, **profile,
                fXaxis=axes[0], fYaxis=axes[1], fZaxis=axes[2], fZmin=low, fZmax=high,
            )  # fmt: skip
        return identify.to_TProfile3D(
            data=data, **common, **sums, **extra, **profile,
            fXaxis=axes[0], fYaxis=axes[1], fZaxis=axes[2], fTmin=low, fTmax=high,
        )  # fmt: skip
    dtype = STORAGE_DTYPE[h.class_name[-1]]
    data = np.ascontiguousarray(h.values.ravel(order="F")).astype(dtype)
    builder = {1: identify.to_TH1x, 2: identify.to_TH2x, 3: identify.to_TH3x}[ndim]
    return builder(data=data, **common, **sums, fXaxis=axes[0], fYaxis=axes[1], fZaxis=axes[2])


class _KeptBytesIO(io.BytesIO):
    """uproot closes its sink when done; keep the bytes readable afterwards."""

    def close(self) -> None:
        self.final = self.getvalue()
        super().close()


def _write(sink, histograms: Iterable[Histogram]) -> int:
    count = 0
    with uproot.recreate(sink) as file:
        for histogram in histograms:
            file[histogram.name] = to_uproot(histogram)
            count += 1
    return count


def write_file(path: str | Path, histograms: Iterable[Histogram]) -> int:
    """Write histograms to a ROOT file at their paths (directories created). Not atomic."""
    return _write(str(path), histograms)


def to_bytes(histograms: Iterable[Histogram]) -> bytes:
    """The bytes of a complete ROOT file holding the histograms (what a sender transmits)."""
    sink = _KeptBytesIO()
    _write(sink, histograms)
    return sink.final

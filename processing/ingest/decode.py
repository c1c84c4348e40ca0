"""The numbers of a histogram straight from its streamed bytes, and a signature of the rest.

Why: uproot builds a Python model of every member of every histogram, about a
millisecond each, yet between two snapshots of a producer only the numbers
change. :func:`plan` walks the object bytes of a TH1/TH2/TH3 (any storage
type but L) or TProfile/TProfile2D/TProfile3D once, checking every byte count
and class version, and returns a :class:`Plan`: where the numbers are
(``fArray``, ``fSumw2``, ``fBinEntries``, ``fBinSumw2``, ``fEntries`` and the
running sums of :data:`overwatch.histogram.STAT_NAMES` /
``PROFILE_STAT_NAMES``) and which bytes are everything else (names, titles,
attributes, axes with their labels, ``fMaximum``/``fMinimum``, contours,
option, functions, profile ranges and error mode, array lengths).

Those other bytes are the histogram's *signature*: two objects with equal
signatures differ only in their numbers (every length that steers the walk is
in the signature, and numbers have fixed widths), so whatever uproot and
``rootio.from_uproot`` made of the first (an
:class:`~processing.ingest.cache_layout.Entry`) holds for the second.

With ``describe=True`` the walk also reads what a caller building a whole
:class:`~overwatch.histogram.Histogram` needs besides the numbers (the title,
each axis's name, title, binning and whether it has labels, a profile's error
mode and range): a :class:`Description` in :attr:`Plan.description`. The
default walk reads none of it, so bulk decoding pays nothing for it.

Handled are the class versions written by ROOT 5.34 to 6 and by uproot's
writer (``rootio.to_bytes``), listed in :data:`VERSIONS`. Anything else (another version, an
object reference where a new object is expected, a length that does not add
up) raises :class:`Unknown`: that object is read with uproot.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from overwatch.histogram import PROFILE_STAT_NAMES, STAT_NAMES

if TYPE_CHECKING:
    from processing.ingest.cache_layout import Entry

_BYTE_COUNT = 0x40000000  # kByteCountMask
_VERSION_COUNT = 0x4000  # kByteCountVMask: a TObject version followed by a byte count
_NEW_CLASS = 0xFFFFFFFF  # kNewClassTag
_CLASS_TAG = 0x80000000  # kClassMask
_IS_REFERENCED = 1 << 4  # TObject::kIsReferenced: two more bytes (the process id)
_F8 = np.dtype(">f8")
_ARRAY_TYPES = {
    "C": np.dtype(">i1"),
    "S": np.dtype(">i2"),
    "I": np.dtype(">i4"),
    "F": np.dtype(">f4"),
    "D": _F8,
}
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_FRAME = struct.Struct(">IH")
_TOBJECT = struct.Struct(">HII")
_NONE = np.empty(0)  # fXbins of a regular axis (read-only: shared)
_NONE.flags.writeable = False
_BINNING = struct.Struct(">idd")  # fNbins, fXmin, fXmax
_PROFILE_TAIL = struct.Struct(">idd")  # fErrorMode and the profile's range

#: Class versions handled: those ROOT 5.34 to 6 and uproot write whose layout is known here
#: (TH1 7 lacks fStatOverflows and TAxis 9 fModLabs; the other changes did not move members).
VERSIONS = {
    "TNamed": (1,),
    "TAxis": (9, 10),
    "TH1": (7, 8),
    "TH2": (4, 5),
    "TH3": (6,),
    "TH1x": (1, 2, 3),
    "TH2x": (3, 4),
    "TH3x": (4,),
    "TProfile": (6, 7),
    "TProfile2D": (8,),
    "TProfile3D": (8,),
}
_TH2_SUMS = ("fTsumwy", "fTsumwy2", "fTsumwxy")
_TH3_SUMS = ("fTsumwy", "fTsumwy2", "fTsumwxy", "fTsumwz", "fTsumwz2", "fTsumwxz", "fTsumwyz")


class Unknown(Exception):
    """Bytes not decoded here (class, version or form not handled, or inconsistent)."""


@dataclass(frozen=True, slots=True)
class Span:
    """``count`` numbers of type ``dtype`` at ``offset`` of the object bytes."""

    offset: int
    dtype: np.dtype
    count: int


@dataclass(frozen=True, slots=True)
class AxisFields:
    """What a TAxis says of its binning and names (read with ``describe=True``)."""

    name: str
    title: str
    nbins: int
    low: float
    high: float
    xbins: np.ndarray  # fXbins as float64: explicit edges, empty for a regular axis
    labelled: bool  # fLabels is set (its contents are not read here)


@dataclass(frozen=True, slots=True)
class Description:
    """The members besides the numbers that make a Histogram (read with ``describe=True``)."""

    title: str
    axes: tuple[AxisFields, ...]  # all three TAxis, also the unused ones of a TH1/TH2
    error_mode: int = 0  # profiles only: fErrorMode
    profile_range: tuple[float, float] = (0.0, 0.0)  # profiles only: fYmin/fYmax, ...


@dataclass(frozen=True, eq=False)
class Plan:
    """Where one object's numbers are, and which of its bytes make its signature."""

    class_name: str
    size: int
    kept: tuple[tuple[int, int], ...]  # byte ranges that are not numbers
    spans: dict[str, Span]  # fArray, fSumw2..., fEntries and each running sum, by member name
    stat_names: tuple[str, ...]
    description: Description | None = None  # only when planned with describe=True

    def signature(self, data: bytes) -> bytes:
        """The object's bytes without its numbers."""
        return b"".join([data[start:stop] for start, stop in self.kept])

    def program(self, entry: Entry) -> Program | None:
        """How to copy these numbers into ``entry``'s block; None if they do not fit it."""
        parts, n = entry.parts, entry.ncells
        if entry.class_name != self.class_name or entry.stat_names != self.stat_names:
            return None
        moves = [(0, self.spans["fArray"])]
        for part, member in (
            ("sumw2", "fSumw2"),
            ("bin_entries", "fBinEntries"),
            ("bin_sumw2", "fBinSumw2"),
        ):
            span = self.spans.get(member)
            if part in parts:
                moves.append((parts[part], span))
            elif span is not None and span.count:
                return None  # numbers the entry has no room for
        if any(span is None or span.count != n for _, span in moves):
            return None
        moves.append((parts["entries"], self.spans["fEntries"]))
        start = parts["stats"]
        moves += [(start + i, self.spans[name]) for i, name in enumerate(self.stat_names)]
        return Program(_merge(moves))


def _merge(moves: list[tuple[int, Span]]) -> tuple[tuple[int, np.dtype, int, int], ...]:
    """(destination, dtype, count, offset) copies, neighbours in both places joined."""
    merged: list[list] = []
    for destination, span in sorted(moves, key=lambda move: move[0]):
        if merged:
            last = merged[-1]
            if (
                last[1] == span.dtype
                and last[0] + last[2] == destination
                and last[3] + last[2] * span.dtype.itemsize == span.offset
            ):
                last[2] += span.count
                continue
        merged.append([destination, span.dtype, span.count, span.offset])
    return tuple(tuple(move) for move in merged)


@dataclass(frozen=True, slots=True)
class Program:
    """The copies that put one object's numbers into its block of the flat buffer."""

    moves: tuple[tuple[int, np.dtype, int, int], ...]

    def pack(self, data: bytes, out: np.ndarray, start: int) -> None:
        """Write the numbers of ``data`` into ``out`` at the block starting at ``start``."""
        for destination, dtype, count, offset in self.moves:
            at = start + destination
            out[at : at + count] = np.frombuffer(data, dtype, count, offset)


class _Walk:
    """A position in the object bytes and the numbers found so far."""

    __slots__ = ("data", "fields", "pos", "spans")

    def __init__(self, data: bytes, describe: bool = False) -> None:
        self.data, self.pos, self.spans = data, 0, {}
        #: What a Description is made of, when asked for (None: not read).
        self.fields: dict | None = {"axes": []} if describe else None

    def frame(self, versions: tuple[int, ...]) -> tuple[int, int]:
        """A byte count and class version; returns where the frame ends, and the version."""
        count, version = _FRAME.unpack_from(self.data, self.pos)
        if not count & _BYTE_COUNT:
            raise Unknown("a class without byte count")
        if version not in versions:
            raise Unknown(f"class version {version} (handled: {versions})")
        end = self.pos + 4 + (count & ~_BYTE_COUNT)
        if end > len(self.data):
            raise Unknown("a byte count runs past the object")
        self.pos += 6
        return end, version

    def skip_frame(self) -> None:
        (count,) = _U32.unpack_from(self.data, self.pos)
        if not count & _BYTE_COUNT:
            raise Unknown("a member without byte count")
        self.pos += 4 + (count & ~_BYTE_COUNT)

    def close(self, end: int) -> None:
        if self.pos != end:
            raise Unknown(f"byte count mismatch: {self.pos} read, the frame ends at {end}")

    def int32(self) -> int:
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return value

    def skip(self, size: int) -> None:
        self.pos += size

    def string(self) -> None:
        length = self.data[self.pos]
        self.pos += 1
        if length == 255:
            length = self.int32()
        self.pos += length

    def text(self) -> str:
        """A string's characters, decoded as uproot decodes them."""
        length = self.data[self.pos]
        self.pos += 1
        if length == 255:
            length = self.int32()
        start = self.pos
        self.pos += length
        if self.pos > len(self.data):
            raise Unknown("a string runs past the object")
        return self.data[start : self.pos].decode(errors="surrogateescape")

    def unpack(self, layout: struct.Struct) -> tuple:
        values = layout.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return values

    def tobject(self) -> None:
        version, _, bits = _TOBJECT.unpack_from(self.data, self.pos)
        if version & _VERSION_COUNT:
            raise Unknown("TObject with a byte count")
        self.pos += _TOBJECT.size + (2 if bits & _IS_REFERENCED else 0)

    def pointer(self) -> None:
        """An object pointer: null, or a new object (of a new or known class) skipped whole."""
        (tag,) = _U32.unpack_from(self.data, self.pos)
        if tag == 0:
            self.pos += 4
            return
        if not tag & _BYTE_COUNT:
            raise Unknown("a reference to an object read before")
        (kind,) = _U32.unpack_from(self.data, self.pos + 4)
        if kind != _NEW_CLASS and not kind & _CLASS_TAG:
            raise Unknown("a reference to an object read before")
        self.pos += 4 + (tag & ~_BYTE_COUNT)

    def numbers(self, name: str, dtype: np.dtype, count: int) -> None:
        if count < 0:
            raise Unknown(f"{name}: negative length")
        self.spans[name] = Span(self.pos, dtype, count)
        self.pos += count * dtype.itemsize

    def array(self, name: str, dtype: np.dtype = _F8) -> None:
        """A TArray whose length is part of the signature and whose numbers are not."""
        count = self.int32()
        self.numbers(name, dtype, count)

    def kept_array(self, itemsize: int) -> None:
        count = self.int32()
        if count < 0:
            raise Unknown("negative array length")
        self.pos += count * itemsize


def _named(walk: _Walk) -> tuple[str, str] | None:
    """A TNamed; its name and title when describing."""
    end, _ = walk.frame(VERSIONS["TNamed"])
    walk.tobject()
    if walk.fields is None:
        walk.string()  # fName
        walk.string()  # fTitle
        walk.close(end)
        return None
    named = walk.text(), walk.text()
    walk.close(end)
    return named


def _axis(walk: _Walk) -> None:
    end, version = walk.frame(VERSIONS["TAxis"])
    named = _named(walk)
    walk.skip_frame()  # TAttAxis
    if named is None:
        walk.skip(20)  # fNbins, fXmin, fXmax
        walk.kept_array(8)  # fXbins
    else:
        nbins, low, high = walk.unpack(_BINNING)
        count = walk.int32()
        if not 0 <= count <= (len(walk.data) - walk.pos) // 8:
            raise Unknown("fXbins runs past the object")
        xbins = (
            np.frombuffer(walk.data, _F8, count, walk.pos).astype(np.float64) if count else _NONE
        )
        walk.skip(8 * count)
    walk.skip(11)  # fFirst, fLast, fBits2, fTimeDisplay
    walk.string()  # fTimeFormat
    labelled = _U32.unpack_from(walk.data, walk.pos)[0] != 0
    walk.pointer()  # fLabels
    if version >= 10:
        walk.pointer()  # fModLabs
    walk.close(end)
    if named is not None:
        axis = AxisFields(named[0], named[1], nbins, low, high, xbins, labelled)
        walk.fields["axes"].append(axis)


def _th1(walk: _Walk) -> None:
    end, version = walk.frame(VERSIONS["TH1"])
    named = _named(walk)
    if named is not None:
        walk.fields["title"] = named[1]
    for _ in range(3):  # TAttLine, TAttFill, TAttMarker
        walk.skip_frame()
    walk.skip(4)  # fNcells
    for _ in range(3):
        _axis(walk)
    walk.skip(4)  # fBarOffset, fBarWidth
    for name in ("fEntries",) + STAT_NAMES[1]:
        walk.numbers(name, _F8, 1)
    walk.skip(24)  # fMaximum, fMinimum, fNormFactor
    walk.kept_array(8)  # fContour
    walk.array("fSumw2")
    walk.string()  # fOption
    walk.skip_frame()  # fFunctions: a TList streamed in place
    buffer = walk.int32()  # fBufferSize, then a flag byte and the buffer (kept: rarely used)
    if buffer < 0:
        raise Unknown("negative buffer size")
    walk.skip(1 + 8 * buffer)
    walk.skip(8 if version >= 8 else 4)  # fBinStatErrOpt, fStatOverflows (from version 8)
    walk.close(end)


def _thn(walk: _Walk, ndim: int) -> None:
    """The TH1/TH2/TH3 part (base class) of a histogram."""
    if ndim == 1:
        _th1(walk)
        return
    end, _ = walk.frame(VERSIONS["TH2" if ndim == 2 else "TH3"])
    _th1(walk)
    if ndim == 2:
        walk.skip(8)  # fScalefactor
        sums = _TH2_SUMS
    else:
        walk.skip_frame()  # TAtt3D
        sums = _TH3_SUMS
    for name in sums:
        walk.numbers(name, _F8, 1)
    walk.close(end)


def _typed(walk: _Walk, ndim: int, letter: str) -> None:
    """TH{ndim}{letter}: the histogram and its bin array."""
    end, _ = walk.frame(VERSIONS[f"TH{ndim}x"])
    _thn(walk, ndim)
    walk.array("fArray", _ARRAY_TYPES[letter])
    walk.close(end)


_PROFILES = {"TProfile": 1, "TProfile2D": 2, "TProfile3D": 3}


def plan(class_name: str, data: bytes, *, describe: bool = False) -> Plan:
    """Where the numbers of a histogram's object bytes are; :class:`Unknown` if not handled.

    ``describe`` also reads the :class:`Description` (titles, axes, profile settings).
    """
    walk = _Walk(data, describe)
    ndim = _PROFILES.get(class_name)
    try:
        if ndim is not None:
            end, _ = walk.frame(VERSIONS[class_name])
            _typed(walk, ndim, "D")
            walk.array("fBinEntries")
            if walk.fields is None:
                walk.skip(4 + 16)  # fErrorMode, the range (fYmin/fYmax, fZmin/fZmax, ...)
            else:
                mode, low, high = walk.unpack(_PROFILE_TAIL)
                walk.fields.update(error_mode=mode, profile_range=(low, high))
            for name in PROFILE_STAT_NAMES[ndim]:
                walk.numbers(name, _F8, 1)
            walk.array("fBinSumw2")
            walk.close(end)
            stat_names = STAT_NAMES[ndim] + PROFILE_STAT_NAMES[ndim]
        elif (
            len(class_name) == 4
            and class_name[:2] == "TH"
            and class_name[2] in "123"
            and class_name[3] in _ARRAY_TYPES
        ):
            ndim = int(class_name[2])
            _typed(walk, ndim, class_name[3])
            stat_names = STAT_NAMES[ndim]
        else:
            raise Unknown(f"class {class_name}")
    except (struct.error, IndexError) as error:
        raise Unknown(f"cut short: {error}") from error
    if walk.pos != len(data):
        raise Unknown(f"{len(data) - walk.pos} bytes after the object")
    spans = walk.spans
    kept, position = [], 0
    for span in sorted(spans.values(), key=lambda s: s.offset):
        if span.offset > position:
            kept.append((position, span.offset))
        position = span.offset + span.count * span.dtype.itemsize
    if position < len(data):
        kept.append((position, len(data)))
    fields = walk.fields
    description = None
    if fields is not None:
        description = Description(
            fields["title"],
            tuple(fields["axes"]),
            fields.get("error_mode", 0),
            fields.get("profile_range", (0.0, 0.0)),
        )
    return Plan(class_name, len(data), tuple(kept), spans, stat_names, description)

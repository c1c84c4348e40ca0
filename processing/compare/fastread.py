"""A fast reader for the commonest histograms, falling back to overwatch.rootio.

``overwatch compare`` must read thousands of histograms per second from two
files; uproot's general object reader spends about a millisecond on each. Plain
TH1 and TH2 of any storage type, as written by ROOT 6 and by Overwatch (TH1
class version 8), are decoded here straight from the key's bytes with numpy,
about ten times faster. Anything else, or anything unexpected (another class
version, bin labels, LZ4/ZSTD compression, a byte count that does not add up),
is read by :func:`overwatch.rootio.read_histograms` instead, so the result is
always the same :class:`~overwatch.histogram.Histogram` rootio would give.

The byte layout is ROOT's streamer format for these classes (big-endian, each
class framed by a byte count and a version); every frame's length is checked.
"""

from __future__ import annotations

import lzma
import re
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from overwatch import rootio
from overwatch.histogram import STAT_NAMES, Axis, Histogram

_BYTE_COUNT = 0x40000000
_IS_REFERENCED = 1 << 4
#: Class versions decoded here (those ROOT 6 and Overwatch write).
_VERSIONS = {"TH1": 8, "TH2": 5, "TAxis": 10, "TNamed": 1, "TH1x": 3, "TH2x": 4}
_ARRAY_TYPES = {"C": ">i1", "S": ">i2", "I": ">i4", "F": ">f4", "D": ">f8"}
_CLASS = re.compile(r"^TH([12])([CSIFD])$")


@dataclass(frozen=True)
class KeyInfo:
    """Where an object sits in its file (from the directory's TKey)."""

    class_name: str
    seek: int
    keylen: int
    nbytes: int
    objlen: int


#: Edges of regular axes by (nbins, low, high), shared by every histogram read here.
_EDGES: dict[tuple[int, float, float], np.ndarray] = {}


class _Unsupported(Exception):
    """This object is left to overwatch.rootio."""


def _decompress(raw: bytes, objlen: int) -> bytes:
    if len(raw) == objlen:
        return raw
    out, position = [], 0
    while position < len(raw):
        header = raw[position : position + 9]
        size = header[3] | header[4] << 8 | header[5] << 16
        block = raw[position + 9 : position + 9 + size]
        if header[:2] == b"ZL":
            out.append(zlib.decompress(block))
        elif header[:2] == b"XZ":
            out.append(lzma.decompress(block))
        else:
            raise _Unsupported(f"compression {header[:2]!r}")
        position += 9 + size
    data = b"".join(out)
    if len(data) != objlen:
        raise _Unsupported("decompressed size differs from the key's")
    return data


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: struct.Struct):
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def frame(self, expected: int) -> int:
        """Read a byte count and version; return where the frame ends."""
        count, version = _FRAME.unpack_from(self.data, self.pos)
        if not count & _BYTE_COUNT:
            raise _Unsupported("class without byte count")
        if version != expected:
            raise _Unsupported(f"class version {version} (expected {expected})")
        end = self.pos + 4 + (count & ~_BYTE_COUNT)
        self.pos += 6
        return end

    def skip_frame(self) -> None:
        (count,) = _U32.unpack_from(self.data, self.pos)
        if not count & _BYTE_COUNT:
            raise _Unsupported("member without byte count")
        self.pos += 4 + (count & ~_BYTE_COUNT)

    def check(self, end: int) -> None:
        if self.pos != end:
            raise _Unsupported("byte count mismatch")

    def string(self) -> str:
        length = self.data[self.pos]
        self.pos += 1
        if length == 255:
            (length,) = _I32.unpack_from(self.data, self.pos)
            self.pos += 4
        text = self.data[self.pos : self.pos + length]
        self.pos += length
        return text.decode("utf-8", "replace")

    def array(self, dtype: str) -> np.ndarray:
        (n,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        values = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos)
        self.pos += values.nbytes
        return values.astype(np.float64)

    def pointer_is_null(self) -> bool:
        """Skip an object pointer member; True when it is null."""
        (tag,) = _U32.unpack_from(self.data, self.pos)
        if tag == 0:
            self.pos += 4
            return True
        if not tag & _BYTE_COUNT:
            raise _Unsupported("object reference")
        self.pos += 4 + (tag & ~_BYTE_COUNT)
        return False


_FRAME = struct.Struct(">IH")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_TOBJECT = struct.Struct(">hII")
_AXIS = struct.Struct(">idd")
_AXIS_TAIL = struct.Struct(">iihB")
_TH1_SUMS = struct.Struct(">hhdddddddd")
_TH2_SUMS = struct.Struct(">dddd")
_BUFFER = struct.Struct(">iB")
_TAIL = struct.Struct(">ii")


def _named(cursor: _Cursor) -> tuple[str, str]:
    end = cursor.frame(_VERSIONS["TNamed"])
    _, _, bits = cursor.unpack(_TOBJECT)
    if bits & _IS_REFERENCED:
        cursor.pos += 2
    name, title = cursor.string(), cursor.string()
    cursor.check(end)
    return name, title


def _axis(cursor: _Cursor, default_name: str, edges_cache: dict) -> Axis | None:
    """An axis; None for the unused axes of a lower-dimensional histogram (nbins 1)."""
    end = cursor.frame(_VERSIONS["TAxis"])
    name, title = _named(cursor)
    cursor.skip_frame()  # TAttAxis: drawing attributes
    nbins, low, high = cursor.unpack(_AXIS)
    explicit = cursor.array(">f8")
    cursor.unpack(_AXIS_TAIL)  # fFirst, fLast, fBits2, fTimeDisplay
    cursor.string()  # fTimeFormat
    if not cursor.pointer_is_null():
        raise _Unsupported("bin labels")
    cursor.pointer_is_null()  # fModLabs: label drawing changes, not needed
    cursor.check(end)
    if default_name is None:
        return None
    if len(explicit) == nbins + 1:
        return Axis(edges=explicit, title=title, variable=True, name=name or default_name)
    # Histograms of a file share few binnings: compute each one's edges once, as rootio does.
    key = (nbins, low, high)
    edges = edges_cache.get(key)
    if edges is None:
        edges = np.linspace(low, high, nbins + 1)
        edges.flags.writeable = False
        edges_cache[key] = edges
    return Axis(edges=edges, title=title, name=name or default_name)


def decode(path: str, class_name: str, data: bytes, edges_cache: dict | None = None) -> Histogram:
    """A TH1x/TH2x from its object bytes; raises _Unsupported for anything else."""
    match = _CLASS.match(class_name)
    if match is None:
        raise _Unsupported(class_name)
    ndim, letter = int(match[1]), match[2]
    cursor = _Cursor(data)
    outer = cursor.frame(_VERSIONS["TH1x"] if ndim == 1 else _VERSIONS["TH2x"])
    th2_end = cursor.frame(_VERSIONS["TH2"]) if ndim == 2 else None
    th1_end = cursor.frame(_VERSIONS["TH1"])
    _, title = _named(cursor)
    for _ in range(3):  # TAttLine, TAttFill, TAttMarker
        cursor.skip_frame()
    cursor.pos += 4  # fNcells
    cache = {} if edges_cache is None else edges_cache
    names = ("xaxis", "yaxis", "zaxis")[:ndim] + (None,) * (3 - ndim)
    axes = [_axis(cursor, name, cache) for name in names]
    sums = cursor.unpack(_TH1_SUMS)
    entries, tsumw, tsumw2, tsumwx, tsumwx2 = sums[2:7]
    cursor.array(">f8")  # fContour
    sumw2 = cursor.array(">f8")
    cursor.string()  # fOption
    cursor.pointer_is_null()  # fFunctions: fits are not compared
    buffer_size, _ = cursor.unpack(_BUFFER)
    cursor.pos += 8 * max(buffer_size, 0)
    cursor.unpack(_TAIL)  # fBinStatErrOpt, fStatOverflows
    cursor.check(th1_end)
    values = [tsumw, tsumw2, tsumwx, tsumwx2]
    if ndim == 2:
        values += list(cursor.unpack(_TH2_SUMS)[1:])
        cursor.check(th2_end)
    contents = cursor.array(_ARRAY_TYPES[letter])
    cursor.check(outer)
    return Histogram(
        name=path,
        class_name=class_name,
        axes=axes[:ndim],
        values=contents,
        sumw2=sumw2 if len(sumw2) else None,
        entries=float(entries),
        title=title,
        stats=dict(zip(STAT_NAMES[ndim], (float(v) for v in values), strict=True)),
    )


def read(path: str, keys: Mapping[str, KeyInfo], names: Iterable[str]) -> rootio.ReadResult:
    """The histograms ``names`` of a file: decoded here when possible, else by rootio."""
    result = rootio.ReadResult()
    others = []
    wanted = sorted((keys[name].seek, name) for name in names if name in keys)
    with open(path, "rb") as file:
        for _, name in wanted:
            info = keys[name]
            try:
                file.seek(info.seek + info.keylen)
                raw = file.read(info.nbytes - info.keylen)
                result.histograms[name] = decode(
                    name, info.class_name, _decompress(raw, info.objlen)
                )
            except (_Unsupported, struct.error, ValueError, IndexError, zlib.error, lzma.LZMAError):
                others.append(name)
    if others:
        slow = rootio.read_histograms(path, names=others)
        result.histograms.update(slow.histograms)
        result.skipped += slow.skipped
    return result

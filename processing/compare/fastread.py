"""Histograms for ``overwatch compare`` straight from their bytes, falling back to overwatch.rootio.

``overwatch compare`` must read thousands of histograms per second from two
files; uproot's general object reader spends about a millisecond on each. So
compare reads the way processing does: :mod:`processing.ingest.rootfile`
gives each key's object bytes (zlib, lzma, lz4 or zstd compressed) and
:mod:`processing.ingest.decode` walks TH1/TH2/TH3 of every storage type but L
and TProfile/TProfile2D/TProfile3D, checking every byte count and class
version. What only compare needs is here: the whole
:class:`~overwatch.histogram.Histogram` (axes, titles, profile settings) from
the walk's :class:`~processing.ingest.decode.Description` and its numbers.

Anything else (another class or version, bin labels, a compression or a file
structure those modules do not read, a byte count that does not add up, an
axis a Histogram refuses) is read by :func:`overwatch.rootio.read_histograms`
instead, so the result is always the Histogram rootio would give (without the
producer's presentation, which comparisons do not use).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Mapping

import numpy as np

from overwatch import rootio
from overwatch.histogram import AXIS_NAMES, Axis, Histogram, dimension_of
from processing.ingest import decode, rootfile
from processing.ingest.rootfile import Key

_F8 = struct.Struct(">d")
#: Edges of regular axes by (nbins, low, high), read-only and shared by every histogram read
#: here: files share few binnings, and the binning check of two equal axes is then ``is``.
_EDGES: dict[tuple[int, float, float], np.ndarray] = {}
_EDGES_KEPT = 4096


class _Unsupported(Exception):
    """This object is left to overwatch.rootio."""


def _axis(fields: decode.AxisFields, default_name: str) -> Axis:
    """The axis rootio's ``_axis_from_uproot`` makes of the same members."""
    if len(fields.xbins) == fields.nbins + 1:
        edges, variable = fields.xbins, True
    else:
        binning = (fields.nbins, fields.low, fields.high)
        edges, variable = _EDGES.get(binning), False
        if edges is None:
            edges = np.linspace(fields.low, fields.high, fields.nbins + 1)
            edges.flags.writeable = False
            if len(_EDGES) >= _EDGES_KEPT:
                _EDGES.clear()
            _EDGES[binning] = edges
    return Axis(
        edges=edges, title=fields.title, variable=variable, name=fields.name or default_name
    )


def _array(payload: bytes, span: decode.Span | None) -> np.ndarray | None:
    """A TArray as float64 (a copy), None when absent or empty as rootio has it."""
    if span is None or not span.count:
        return None
    return np.frombuffer(payload, span.dtype, span.count, span.offset).astype(np.float64)


def histogram(path: str, class_name: str, payload: bytes) -> Histogram:
    """The Histogram of one object's bytes; decode.Unknown or _Unsupported if not read here."""
    plan = decode.plan(class_name, payload, describe=True)
    description = plan.description
    ndim = dimension_of(class_name)
    used = description.axes[:ndim]
    if any(axis.labelled for axis in used):
        raise _Unsupported("bin labels")
    spans = plan.spans

    def number(name: str) -> float:
        return _F8.unpack_from(payload, spans[name].offset)[0]

    profile = class_name.startswith("TProfile")
    return Histogram(
        name=path,
        class_name=class_name,
        axes=[_axis(axis, default) for axis, default in zip(used, AXIS_NAMES, strict=False)],
        values=_array(payload, spans["fArray"]),
        sumw2=_array(payload, spans["fSumw2"]),
        entries=number("fEntries"),
        title=description.title,
        bin_entries=_array(payload, spans["fBinEntries"]) if profile else None,
        bin_sumw2=_array(payload, spans["fBinSumw2"]) if profile else None,
        stats={name: number(name) for name in plan.stat_names},
        profile_range=description.profile_range,
        error_mode=description.error_mode,
    )


def read(path: str, keys: Mapping[str, Key], names: Iterable[str]) -> rootio.ReadResult:
    """The histograms ``names`` of a file: decoded here when possible, else by rootio."""
    result = rootio.ReadResult()
    wanted = sorted((keys[name].seek, name) for name in names if name in keys)
    others = []
    with open(path, "rb") as file:
        try:
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file: rootio says what is wrong with it
            data = None
        if data is None:
            others = [name for _, name in wanted]
        else:
            with data:
                for _, name in wanted:
                    key = keys[name]
                    try:
                        payload = rootfile.object_bytes(data, key)
                        result.histograms[name] = histogram(name, key.class_name, payload)
                    except (rootfile.FormatError, decode.Unknown, _Unsupported, ValueError):
                        others.append(name)
    if others:
        slow = rootio.read_histograms(path, names=others)
        result.histograms.update(slow.histograms)
        result.skipped += slow.skipped
    return result

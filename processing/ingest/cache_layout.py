"""The flat-buffer format of the array cache: what each histogram's block holds.

An :class:`Entry` describes one histogram of a snapshot (path, class, axes,
titles, which sums it keeps); a :class:`Layout` is the ordered entries of one
snapshot with the offset of each block in the flat float64 buffer, and a hash
of its content that names it on disk. See ``processing.ingest.cache`` for the files.

Block of one histogram: ``[values][sumw2?][bin_entries?][bin_sumw2?][entries][stats...]``,
arrays with flow bins in ROOT's ``fArray`` order; profiles always keep Σw·y²
(``sumw2``) and Σw (``bin_entries``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from overwatch.histogram import AXIS_NAMES, Axis, Histogram
from overwatch.lru import LRU

LAYOUT_FORMAT = 1


class LayoutError(ValueError):
    """A layout description that cannot be read (damaged or from another format)."""


@dataclass(frozen=True)
class AxisSpec:
    """One axis as stored in a layout; ``edges`` only for variable binning."""

    nbins: int
    low: float
    high: float
    edges: tuple[float, ...] | None = None
    title: str = ""
    name: str = ""
    labels: tuple[tuple[int, str], ...] | None = None

    @classmethod
    def from_axis(cls, axis: Axis) -> AxisSpec:
        return cls(
            nbins=axis.nbins,
            low=axis.low,
            high=axis.high,
            edges=tuple(float(e) for e in axis.edges) if axis.variable else None,
            title=axis.title,
            name=axis.name,
            labels=tuple(sorted(axis.labels.items())) if axis.labels else None,
        )

    def to_axis(self) -> Axis:
        # Same construction as overwatch.rootio, so the edges are bit-identical.
        if self.edges is not None:
            edges, variable = np.asarray(self.edges, dtype=np.float64), True
        else:
            edges, variable = np.linspace(self.low, self.high, self.nbins + 1), False
        labels = dict(self.labels) if self.labels else None
        return Axis(edges, title=self.title, labels=labels, variable=variable, name=self.name)

    def to_json(self) -> dict:
        data: dict = {"n": self.nbins, "low": self.low, "high": self.high}
        if self.edges is not None:
            data["edges"] = list(self.edges)
        if self.title:
            data["title"] = self.title
        if self.name:
            data["name"] = self.name
        if self.labels:
            data["labels"] = [[b, text] for b, text in self.labels]
        return data

    @classmethod
    def from_json(cls, data: dict) -> AxisSpec:
        edges = data.get("edges")
        labels = data.get("labels")
        return cls(
            nbins=int(data["n"]),
            low=float(data["low"]),
            high=float(data["high"]),
            edges=tuple(float(e) for e in edges) if edges is not None else None,
            title=data.get("title", ""),
            name=data.get("name", ""),
            labels=tuple((int(b), str(t)) for b, t in labels) if labels else None,
        )


@dataclass(frozen=True)
class Entry:
    """Everything about one histogram of a snapshot except its numbers."""

    path: str
    class_name: str
    title: str
    axes: tuple[AxisSpec, ...]
    has_sumw2: bool
    has_bin_sumw2: bool
    stat_names: tuple[str, ...]
    profile_range: tuple[float, float] = (0.0, 0.0)
    error_mode: int = 0
    presentation: str = ""  # the producer's JSON without the numbers (Histogram.presentation)

    @classmethod
    def from_histogram(cls, h: Histogram) -> Entry:
        return cls(
            path=h.name,
            class_name=h.class_name,
            title=h.title,
            axes=tuple(AxisSpec.from_axis(a) for a in h.axes),
            has_sumw2=h.sumw2 is not None and not h.is_profile,
            has_bin_sumw2=h.bin_sumw2 is not None,
            stat_names=tuple(h.stats),
            profile_range=tuple(float(x) for x in h.profile_range),
            error_mode=int(h.error_mode),
            presentation=h.presentation,
        )

    # -- geometry of the block ------------------------------------------------
    @property
    def is_profile(self) -> bool:
        return self.class_name.startswith("TProfile")

    @cached_property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.nbins + 2 for a in self.axes)

    @cached_property
    def ncells(self) -> int:
        return int(np.prod(self.shape))

    @cached_property
    def parts(self) -> dict[str, int]:
        """Offset of each quantity within the block (profiles always have sumw2)."""
        n, offsets, position = self.ncells, {}, 0
        names = ["values"]
        if self.has_sumw2 or self.is_profile:
            names.append("sumw2")
        if self.is_profile:
            names.append("bin_entries")
            if self.has_bin_sumw2:
                names.append("bin_sumw2")
        for name in names:
            offsets[name] = position
            position += n
        offsets["entries"] = position
        offsets["stats"] = position + 1
        return offsets

    @cached_property
    def size(self) -> int:
        return self.parts["stats"] + len(self.stat_names)

    @cached_property
    def binning_key(self) -> tuple:
        """What must match for two states of a histogram to be subtracted."""
        return (self.is_profile, tuple(a.to_axis().edges.tobytes() for a in self.axes))

    @cached_property
    def axis_objects(self) -> tuple[Axis, ...]:
        """Axes shared by every histogram built from this entry (treat them as read-only)."""
        axes = tuple(a.to_axis() for a in self.axes)
        for axis, default_name in zip(axes, AXIS_NAMES, strict=False):
            axis.name = axis.name or default_name  # as Histogram names an unnamed axis
        return axes

    @cached_property
    def monotone_parts(self) -> tuple[str, ...]:
        """Quantities that only grow while a sender fills (with weights >= 0).

        Plain counts; Σw² once weighted (contents may go down with negative
        weights, Σw² never); for profiles Σw, Σw·y² and Σw² (Σw·y may go
        either way). A drop in one of these beyond rounding is a counter reset.
        """
        if self.is_profile:
            names = ("sumw2", "bin_entries") + (("bin_sumw2",) if self.has_bin_sumw2 else ())
        else:
            names = ("sumw2",) if self.has_sumw2 else ("values",)
        return names + ("entries",)

    # -- (de)serialisation ----------------------------------------------------
    def to_json(self) -> dict:
        return {
            "path": self.path,
            "class": self.class_name,
            "title": self.title,
            "axes": [a.to_json() for a in self.axes],
            "sumw2": self.has_sumw2,
            "bin_sumw2": self.has_bin_sumw2,
            "stats": list(self.stat_names),
            "profile_range": list(self.profile_range),
            "error_mode": self.error_mode,
            **({"presentation": self.presentation} if self.presentation else {}),
        }

    @classmethod
    def from_json(cls, data: dict) -> Entry:
        return cls(
            path=data["path"],
            class_name=data["class"],
            title=data.get("title", ""),
            axes=tuple(AxisSpec.from_json(a) for a in data["axes"]),
            has_sumw2=bool(data["sumw2"]),
            has_bin_sumw2=bool(data["bin_sumw2"]),
            stat_names=tuple(data["stats"]),
            profile_range=tuple(data.get("profile_range", (0.0, 0.0))),
            error_mode=int(data.get("error_mode", 0)),
            presentation=str(data.get("presentation", "")),
        )

    @cached_property
    def digest(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    # -- packing ----------------------------------------------------------------
    def pack(self, h: Histogram, out: np.ndarray) -> None:
        """Write a histogram's numbers into its block ``out`` (a view of the buffer)."""
        self.pack_arrays(
            out,
            h.values.ravel(order="F"),
            None if h.sumw2 is None else h.sumw2.ravel(order="F"),
            None if h.bin_entries is None else h.bin_entries.ravel(order="F"),
            None if h.bin_sumw2 is None else h.bin_sumw2.ravel(order="F"),
            h.entries,
            [h.stats.get(name, 0.0) for name in self.stat_names],
        )

    def pack_arrays(self, out, values, sumw2, bin_entries, bin_sumw2, entries, stats) -> None:
        parts, n = self.parts, self.ncells
        out[:n] = values
        if "sumw2" in parts:
            out[parts["sumw2"] : parts["sumw2"] + n] = sumw2
        if "bin_entries" in parts:
            out[parts["bin_entries"] : parts["bin_entries"] + n] = bin_entries
        if "bin_sumw2" in parts:
            out[parts["bin_sumw2"] : parts["bin_sumw2"] + n] = bin_sumw2
        out[parts["entries"]] = entries
        out[parts["stats"] : parts["stats"] + len(stats)] = stats

    # -- slices -----------------------------------------------------------------
    @property
    def stats_from_bins_flag(self) -> bool:
        """Whether the block can say "statistics from the bins" (ROOT's ``fTsumw = 0``)."""
        return bool(self.stat_names) and self.stat_names[0] == "fTsumw"

    def statistics(self, block: np.ndarray) -> np.ndarray:
        """The block's statistics as ROOT's ``TH1::GetStats`` gives them.

        ROOT stores ``fTsumw = 0`` with entries (after ``SetBinContent``,
        ``Divide`` or label fills) to mean "recompute from the bins"; then the
        sums come from the in-range bins, otherwise they are the stored ones.
        """
        start = self.parts["stats"]
        stored = block[start : start + len(self.stat_names)]
        if not self.stats_from_bins_flag or stored[0] != 0 or block[self.parts["entries"]] == 0:
            return stored
        computed = self.unpack(block).compute_stats()
        return np.array([computed.get(name, 0.0) for name in self.stat_names])

    def subtract(self, end: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``end - base`` of two blocks, as ROOT's ``Add(base, -1)`` gives it.

        Contents, errors and entries subtract; the statistics are
        ``GetStats(end) - GetStats(base)``, so a side that says "from the bins"
        counts with its bins' sums, not with a literal 0.
        """
        result = end - base
        if self.stats_from_bins_flag:
            start = self.parts["stats"]
            result[start : start + len(self.stat_names)] = self.statistics(end) - self.statistics(
                base
            )
        return result

    def unpack(self, block: np.ndarray) -> Histogram:
        """A histogram whose arrays are views of ``block`` (no copy)."""
        parts, n, shape = self.parts, self.ncells, self.shape

        def view(name: str) -> np.ndarray | None:
            if name not in parts:
                return None
            return block[parts[name] : parts[name] + n].reshape(shape, order="F")

        stats_start = parts["stats"]
        stat_values = block[stats_start : stats_start + len(self.stat_names)].tolist()
        # The entry's layout was checked when it was made: no need for Histogram's checks.
        return Histogram.assemble(
            {
                **self._constant_fields,
                "axes": list(self.axis_objects),
                "values": view("values"),
                "sumw2": view("sumw2"),
                "entries": float(block[parts["entries"]]),
                "bin_entries": view("bin_entries"),
                "bin_sumw2": view("bin_sumw2"),
                "stats": dict(zip(self.stat_names, stat_values, strict=True)),
            }
        )

    @cached_property
    def _constant_fields(self) -> dict:
        """The fields every histogram unpacked from this entry shares."""
        return {
            "name": self.path,
            "class_name": self.class_name,
            "title": self.title,
            "profile_range": self.profile_range,
            "error_mode": self.error_mode,
            "presentation": self.presentation,
        }


class Layout:
    """The ordered entries of one snapshot and where each block starts in the buffer."""

    def __init__(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        self.entries = tuple(entries)
        self.sizes = np.fromiter((e.size for e in self.entries), dtype=np.int64, count=len(entries))
        self.starts = np.zeros(len(self.entries), dtype=np.int64)
        if len(self.entries) > 1:
            np.cumsum(self.sizes[:-1], out=self.starts[1:])
        self.size = int(self.sizes.sum())
        self.index = {e.path: i for i, e in enumerate(self.entries)}
        if len(self.index) != len(self.entries):
            raise ValueError("a layout cannot hold the same histogram path twice")
        joined = "\n".join(e.digest for e in self.entries).encode()
        self.hash = hashlib.blake2b(joined, digest_size=8).hexdigest()

    def __len__(self) -> int:
        return len(self.entries)

    def block(self, buffer: np.ndarray, i: int) -> np.ndarray:
        start = int(self.starts[i])
        return buffer[start : start + int(self.sizes[i])]

    @cached_property
    def _stat_positions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entry index, fTsumw position, fEntries position) of entries that keep fTsumw."""
        rows = [
            (i, start + e.parts["stats"], start + e.parts["entries"])
            for i, (e, start) in enumerate(zip(self.entries, self.starts.tolist(), strict=True))
            if e.stats_from_bins_flag
        ]
        if not rows:
            return (np.zeros(0, dtype=np.int64),) * 3
        table = np.array(rows, dtype=np.int64)
        return table[:, 0], table[:, 1], table[:, 2]

    def subtract(self, end: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``end - base`` of two buffers laid out alike: every histogram's slice.

        One vectorised subtraction; histograms where either side says
        "statistics from the bins" (``fTsumw = 0`` with entries) get their
        statistics as ROOT's ``Add`` computes them (:meth:`Entry.subtract`).
        """
        content = end - base
        index, tsumw, entries = self._stat_positions
        if len(index):
            says = ((end[tsumw] == 0) & (end[entries] != 0)) | (
                (base[tsumw] == 0) & (base[entries] != 0)
            )
            for i in index[says].tolist():
                block = self.block(content, i)
                block[:] = self.entries[i].subtract(self.block(end, i), self.block(base, i))
        return content

    def histogram(self, buffer: np.ndarray, path: str) -> Histogram:
        i = self.index[path]
        return self.entries[i].unpack(self.block(buffer, i))

    def entries_value(self, buffer: np.ndarray, path: str) -> float | None:
        i = self.index.get(path)
        if i is None:
            return None
        return float(buffer[int(self.starts[i]) + self.entries[i].parts["entries"]])

    @cached_property
    def monotone(self) -> np.ndarray:
        """Boolean mask of the buffer elements that only grow (see Entry.monotone_parts)."""
        mask = np.zeros(self.size, dtype=bool)
        for entry, start in zip(self.entries, self.starts.tolist(), strict=True):
            for name in entry.monotone_parts:
                begin = start + entry.parts[name]
                mask[begin : begin + (1 if name == "entries" else entry.ncells)] = True
        return mask

    def pack(self, histograms: list[Histogram]) -> np.ndarray:
        """One buffer holding the histograms (in this layout's order)."""
        buffer = np.empty(self.size, dtype=np.float64)
        for i, (entry, h) in enumerate(zip(self.entries, histograms, strict=True)):
            entry.pack(h, self.block(buffer, i))
        return buffer

    @classmethod
    def of(cls, histograms: list[Histogram]) -> Layout:
        return cls([Entry.from_histogram(h) for h in histograms])

    def to_json(self) -> str:
        data = {
            "format": LAYOUT_FORMAT,
            "hash": self.hash,
            "histograms": [e.to_json() for e in self.entries],
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        data = json.loads(text)
        if data.get("format") != LAYOUT_FORMAT:
            raise LayoutError(f"layout format {data.get('format')!r} is not {LAYOUT_FORMAT}")
        layout = cls([Entry.from_json(e) for e in data["histograms"]])
        if layout.hash != data.get("hash"):
            raise LayoutError(f"layout content does not match its hash {data.get('hash')!r}")
        return layout


_LAYOUTS_KEEP = 4096
#: Process-wide: a layout is parsed once (content-addressed), the least recently used forgotten.
_LAYOUTS: LRU[str, Layout] = LRU(_LAYOUTS_KEEP)


def known_layout(layout_hash: str) -> Layout | None:
    """The layout of that hash if this process has parsed or made it already."""
    return _LAYOUTS.get(layout_hash)


def remember_layout(layout: Layout) -> Layout:
    """Share one Layout object per hash within the process (also between threads)."""
    return _LAYOUTS.setdefault(layout.hash, layout)

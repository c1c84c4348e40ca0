"""The in-memory histogram every part of Overwatch works on.

One type covers ROOT's TH1/TH2/TH3 (any storage type) and the profiles
TProfile/TProfile2D/TProfile3D. Arrays always include the under- and overflow
bins and are indexed ``[ix, iy, iz]`` (bin 0 is the underflow, bin n+1 the
overflow). They are stored in Fortran order so ``values.ravel(order="F")`` is
ROOT's own flat ``fArray`` layout (x varies fastest) without a copy.

Profiles keep the sums ROOT keeps, never the means, so that arithmetic stays
exact: ``values`` is Σw·y per bin (ROOT ``fArray``), ``sumw2`` is Σw·y²
(``fSumw2``), ``bin_entries`` is Σw (``fBinEntries``) and ``bin_sumw2`` is Σw²
(``fBinSumw2``, absent for unweighted fills). The mean of a subtracted profile
is then ``(a.values - b.values) / (a.bin_entries - b.bin_entries)``, which is
right, whereas subtracting means would not be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Statistics ROOT keeps beside the bins, by dimension (TH1::GetStats order).
STAT_NAMES = {
    1: ("fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2"),
    2: ("fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2", "fTsumwy", "fTsumwy2", "fTsumwxy"),
    3: (
        "fTsumw",
        "fTsumw2",
        "fTsumwx",
        "fTsumwx2",
        "fTsumwy",
        "fTsumwy2",
        "fTsumwxy",
        "fTsumwz",
        "fTsumwz2",
        "fTsumwxz",
        "fTsumwyz",
    ),
}
#: Extra statistics of profiles: the sums of the profiled quantity.
PROFILE_STAT_NAMES = {
    1: ("fTsumwy", "fTsumwy2"),
    2: ("fTsumwz", "fTsumwz2"),
    3: ("fTsumwt", "fTsumwt2"),
}

AXIS_NAMES = ("xaxis", "yaxis", "zaxis")


class BinningError(ValueError):
    """Two histograms cannot be combined because their binning differs."""


def dimension_of(class_name: str) -> int:
    """Number of axes of a ROOT histogram class (TH2F -> 2, TProfile2D -> 2)."""
    if class_name.startswith("TProfile"):
        rest = class_name[len("TProfile") :]
        return int(rest[0]) if rest[:1].isdigit() else 1
    if class_name.startswith("TH") and class_name[2:3] in ("1", "2", "3"):
        return int(class_name[2])
    raise ValueError(f"{class_name!r} is not a ROOT histogram class")


def is_histogram_class(class_name: str) -> bool:
    """True for the classes Overwatch reads as histograms (TH1*, TH2*, TH3*, TProfile*)."""
    try:
        dimension_of(class_name)
    except ValueError:
        return False
    return True


def profile_class(ndim: int) -> str:
    return "TProfile" if ndim == 1 else f"TProfile{ndim}D"


@dataclass
class Axis:
    """One axis: bin edges, title, optional bin labels.

    ``variable`` records whether ROOT stored explicit edges (``fXbins``); it
    matters only to write the axis back exactly as it was read.
    ``labels`` maps a bin number (1..n) to its alphanumeric label.
    """

    edges: np.ndarray
    title: str = ""
    labels: dict[int, str] | None = None
    variable: bool = False
    name: str = "xaxis"

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        if self.edges.ndim != 1 or len(self.edges) < 2:
            raise ValueError("an axis needs at least two edges")
        if not np.all(np.isfinite(self.edges)):
            raise ValueError("axis edges must be finite numbers")
        if np.any(np.diff(self.edges) <= 0):
            raise ValueError("axis edges must increase strictly")

    @classmethod
    def regular(cls, nbins: int, low: float, high: float, **kwargs) -> Axis:
        return cls(np.linspace(low, high, nbins + 1), variable=False, **kwargs)

    @classmethod
    def from_edges(cls, edges: Sequence[float], **kwargs) -> Axis:
        return cls(np.asarray(edges, dtype=np.float64), variable=True, **kwargs)

    @property
    def nbins(self) -> int:
        return len(self.edges) - 1

    @property
    def low(self) -> float:
        return float(self.edges[0])

    @property
    def high(self) -> float:
        return float(self.edges[-1])

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def widths(self) -> np.ndarray:
        return np.diff(self.edges)

    def same_binning(self, other: Axis) -> bool:
        return self.nbins == other.nbins and np.array_equal(self.edges, other.edges)

    def copy(self) -> Axis:
        labels = dict(self.labels) if self.labels is not None else None
        return dataclasses.replace(self, edges=self.edges.copy(), labels=labels)


def _flow_array(data, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(data, dtype=np.float64)
    if array.shape != shape:
        # Only ROOT's flat fArray is reshaped; any other shape is a caller's mistake that a
        # reshape would silently turn into scrambled bins.
        if array.ndim != 1 or array.size != int(np.prod(shape)):
            raise ValueError(
                f"bin array of shape {array.shape} does not fit axes needing {shape} "
                f"(flow bins included) or a flat array of {int(np.prod(shape))}"
            )
        array = array.reshape(shape, order="F")
    return np.asfortranarray(array)


@dataclass
class Histogram:
    """A histogram with flow bins, errors and the bookkeeping ROOT keeps.

    ``sumw2`` is ``None`` when the histogram was filled without weights (then
    the variance of a bin equals its content). ``stats`` holds ROOT's running
    sums (``fTsumw``, ``fTsumwx``, ...) as read, so a file round-trips exactly;
    arithmetic recomputes them from the bins.
    """

    name: str
    class_name: str
    axes: list[Axis]
    values: np.ndarray
    sumw2: np.ndarray | None = None
    entries: float = 0.0
    title: str = ""
    bin_entries: np.ndarray | None = None
    bin_sumw2: np.ndarray | None = None
    stats: dict[str, float] = field(default_factory=dict)
    profile_range: tuple[float, float] = (0.0, 0.0)
    error_mode: int = 0
    #: The producer's presentation: ROOT's JSON of the object without what a slice
    #: recomputes (:func:`overwatch.rootjson.presentation`), as JSON text; "" if unknown.
    #: Kept by copies and arithmetic (same binning), so a slice looks as the producer drew it.
    presentation: str = ""

    def __post_init__(self) -> None:
        ndim = dimension_of(self.class_name)
        if len(self.axes) != ndim:
            raise ValueError(f"{self.class_name} needs {ndim} axes, got {len(self.axes)}")
        for axis, default_name in zip(self.axes, AXIS_NAMES, strict=False):
            if not axis.name:
                axis.name = default_name
        shape = self.shape
        self.values = _flow_array(self.values, shape)
        if self.sumw2 is not None:
            self.sumw2 = _flow_array(self.sumw2, shape)
        if self.is_profile:
            if self.bin_entries is None:
                raise ValueError(f"{self.class_name} {self.name!r} needs bin_entries")
            if self.sumw2 is None:
                raise ValueError(f"{self.class_name} {self.name!r} needs sumw2 (sum of w*y^2)")
            self.bin_entries = _flow_array(self.bin_entries, shape)
            if self.bin_sumw2 is not None:
                self.bin_sumw2 = _flow_array(self.bin_sumw2, shape)

    @classmethod
    def assemble(cls, fields: dict[str, Any]) -> Histogram:
        """A histogram from every field already in final form, without checks or copies.

        For readers of a layout checked when it was written (the array cache):
        arrays are flow-bin, Fortran-ordered and of the axes' shape, axes are
        named. Building 500 slice histograms per snapshot through
        ``__post_init__`` cost about as much as the slice arithmetic.
        """
        if fields.keys() != _FIELD_NAMES:
            raise ValueError(f"Histogram.assemble needs exactly the fields {sorted(_FIELD_NAMES)}")
        histogram = cls.__new__(cls)
        histogram.__dict__.update(fields)
        return histogram

    # -- shape -------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.nbins + 2 for axis in self.axes)

    @property
    def is_profile(self) -> bool:
        return self.class_name.startswith("TProfile")

    @property
    def inner(self) -> tuple[slice, ...]:
        """Index selecting the in-range bins (no under/overflow)."""
        return tuple(slice(1, -1) for _ in self.axes)

    def same_binning(self, other: Histogram) -> bool:
        return self.ndim == other.ndim and all(
            a.same_binning(b) for a, b in zip(self.axes, other.axes, strict=True)
        )

    # -- derived arrays ------------------------------------------------------
    def variances(self) -> np.ndarray:
        """Per-bin variance of the content (Σw² for histograms)."""
        if self.is_profile:
            return self._profile_errors() ** 2
        return self.sumw2 if self.sumw2 is not None else np.abs(self.values)

    def errors(self) -> np.ndarray:
        return np.sqrt(self.variances())

    def bin_means(self) -> np.ndarray:
        """Profile bin means Σw·y / Σw (0 where a bin is empty)."""
        if not self.is_profile:
            raise TypeError(f"{self.name!r} is a {self.class_name}, not a profile")
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(self.bin_entries != 0, self.values / self.bin_entries, 0.0)
        return means

    def contents(self) -> np.ndarray:
        """What ROOT's GetBinContent returns: counts, or means for profiles."""
        return self.bin_means() if self.is_profile else self.values

    def _profile_errors(self) -> np.ndarray:
        # ROOT's TProfile::GetBinError for the profile's own error mode (TProfileHelper):
        # 0 error on the mean, 1 ("s") spread, 2 ("i") integer spread, 3 ("g") 1/sqrt(Σw).
        sumw = self.bin_entries
        filled = sumw != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(filled, self.values / sumw, 0.0)
            spread = np.sqrt(np.abs(np.where(filled, self.sumw2 / sumw, 0.0) - mean**2))
            if self.bin_sumw2 is None:
                neff = sumw
            else:
                neff = np.where(self.bin_sumw2 > 0, sumw**2 / self.bin_sumw2, 0.0)
            if self.error_mode == 1:
                errors = spread
            elif self.error_mode == 2:
                errors = np.where(spread != 0, spread / np.sqrt(neff), 1.0 / np.sqrt(12.0 * neff))
            elif self.error_mode == 3:
                errors = 1.0 / np.sqrt(sumw)
            else:
                errors = spread / np.sqrt(neff)
        return np.where(filled & np.isfinite(errors), errors, 0.0)

    # -- arithmetic ----------------------------------------------------------
    def copy(self, name: str | None = None) -> Histogram:
        return Histogram(
            name=self.name if name is None else name,
            class_name=self.class_name,
            axes=[axis.copy() for axis in self.axes],
            values=self.values.copy(order="F"),
            sumw2=None if self.sumw2 is None else self.sumw2.copy(order="F"),
            entries=self.entries,
            title=self.title,
            bin_entries=None if self.bin_entries is None else self.bin_entries.copy(order="F"),
            bin_sumw2=None if self.bin_sumw2 is None else self.bin_sumw2.copy(order="F"),
            stats=dict(self.stats),
            profile_range=self.profile_range,
            error_mode=self.error_mode,
            presentation=self.presentation,
        )

    def _combine(self, other: Histogram, factor: float) -> Histogram:
        """self + factor * other, on the underlying sums."""
        if self.class_name.startswith("TProfile") != other.class_name.startswith("TProfile"):
            raise TypeError(f"cannot combine {self.class_name} with {other.class_name}")
        if not self.same_binning(other):
            raise BinningError(f"{self.name!r}: binning differs from {other.name!r}")
        result = self.copy()
        result.values = np.asfortranarray(self.values + factor * other.values)
        if self.is_profile:
            result.sumw2 = np.asfortranarray(self.sumw2 + factor * other.sumw2)
            result.bin_entries = np.asfortranarray(self.bin_entries + factor * other.bin_entries)
            if self.bin_sumw2 is not None or other.bin_sumw2 is not None:
                mine = self.bin_sumw2 if self.bin_sumw2 is not None else self.bin_entries
                theirs = other.bin_sumw2 if other.bin_sumw2 is not None else other.bin_entries
                result.bin_sumw2 = np.asfortranarray(mine + factor * theirs)
        elif self.sumw2 is not None or other.sumw2 is not None or abs(factor) != 1:
            mine = self.sumw2 if self.sumw2 is not None else np.abs(self.values)
            theirs = other.sumw2 if other.sumw2 is not None else np.abs(other.values)
            # Subtracting a cumulative earlier state removes its variance too (the fills
            # are the same ones); a genuine difference of independent samples would add.
            result.sumw2 = np.asfortranarray(mine + factor * theirs)
        result.entries = self.entries + factor * other.entries
        result.stats = result.compute_stats()
        return result

    def __add__(self, other: Histogram) -> Histogram:
        return self._combine(other, 1.0)

    def __sub__(self, other: Histogram) -> Histogram:
        """The content filled between ``other`` (earlier) and ``self`` (later)."""
        return self._combine(other, -1.0)

    def scaled(self, factor: float) -> Histogram:
        """ROOT's TH1::Scale: contents times factor, errors times |factor|."""
        result = self.copy()
        result.values = np.asfortranarray(self.values * factor)
        if self.is_profile:
            result.sumw2 = np.asfortranarray(self.sumw2 * factor * factor)
        else:
            result.sumw2 = np.asfortranarray(self.variances() * factor * factor)
        result.stats = result.compute_stats()
        return result

    # -- statistics ----------------------------------------------------------
    def compute_stats(self) -> dict[str, float]:
        """ROOT's running sums recomputed from the in-range bins (TH1::ResetStats)."""
        inner = self.inner
        weights = (self.bin_entries if self.is_profile else self.values)[inner]
        if self.is_profile:
            weights2 = (self.bin_sumw2 if self.bin_sumw2 is not None else self.bin_entries)[inner]
        else:
            weights2 = (self.sumw2 if self.sumw2 is not None else np.abs(self.values))[inner]
        centers = np.meshgrid(*(axis.centers for axis in self.axes), indexing="ij")
        stats = {"fTsumw": float(weights.sum()), "fTsumw2": float(weights2.sum())}
        letters = "xyz"
        for i in range(self.ndim):
            wx = weights * centers[i]
            stats[f"fTsumw{letters[i]}"] = float(wx.sum())
            stats[f"fTsumw{letters[i]}2"] = float((wx * centers[i]).sum())
            for j in range(i):
                stats[f"fTsumw{letters[j]}{letters[i]}"] = float((wx * centers[j]).sum())
        if self.is_profile:
            value_name, square_name = PROFILE_STAT_NAMES[self.ndim]
            stats[value_name] = float(self.values[inner].sum())
            stats[square_name] = float(self.sumw2[inner].sum())
        return stats

    def integral(self, flow: bool = False) -> float:
        """Sum of bin contents (Σw for profiles), in range unless ``flow``."""
        weights = self.bin_entries if self.is_profile else self.values
        return float(weights.sum() if flow else weights[self.inner].sum())

    def mean(self, axis: int = 0) -> float:
        """Mean along an axis from the in-range bins (bin centres), 0 if empty."""
        weights, coordinate = self._axis_weights(axis)
        total = weights.sum()
        return float((weights * coordinate).sum() / total) if total != 0 else 0.0

    def std(self, axis: int = 0) -> float:
        weights, coordinate = self._axis_weights(axis)
        total = weights.sum()
        if total == 0:
            return 0.0
        mean = (weights * coordinate).sum() / total
        variance = (weights * coordinate**2).sum() / total - mean**2
        return float(np.sqrt(max(variance, 0.0)))

    def maximum(self) -> float:
        """Largest in-range bin content (mean for profiles)."""
        contents = self.contents()[self.inner]
        return float(contents.max()) if contents.size else 0.0

    def _axis_weights(self, axis: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= axis < self.ndim:
            raise IndexError(f"{self.name!r} has {self.ndim} axes, not axis {axis}")
        weights = (self.bin_entries if self.is_profile else self.values)[self.inner]
        others = tuple(i for i in range(self.ndim) if i != axis)
        weights = weights.sum(axis=others) if others else weights
        return weights, self.axes[axis].centers

    # -- projections -----------------------------------------------------------
    def project(self, keep: Sequence[int], name: str | None = None) -> Histogram:
        """Sum over the other axes (all their bins, flow included, as ROOT does).

        A histogram keeps its kind: TH3 -> TH2D/TH1D, TProfile2D -> TProfile.
        """
        keep = tuple(keep)
        if not keep or len(set(keep)) != len(keep) or any(not 0 <= k < self.ndim for k in keep):
            raise ValueError(f"cannot project {self.ndim}D {self.name!r} onto axes {keep}")
        dropped = tuple(i for i in range(self.ndim) if i not in keep)

        def reduce(array: np.ndarray | None) -> np.ndarray | None:
            if array is None:
                return None
            summed = array.sum(axis=dropped) if dropped else array
            # Order the kept axes as asked (e.g. a TH3 projected onto "zx"): result axis i is
            # the summed array's axis holding keep[i] (kept axes stay ascending after the sum).
            order = [sorted(keep).index(k) for k in keep]
            return np.asfortranarray(np.transpose(summed, order))

        suffix = "_p" + "".join("xyz"[k] for k in keep)
        class_name = profile_class(len(keep)) if self.is_profile else f"TH{len(keep)}D"
        projected = Histogram(
            name=name or self.name + suffix,
            class_name=class_name,
            axes=[
                dataclasses.replace(self.axes[k].copy(), name=AXIS_NAMES[i])
                for i, k in enumerate(keep)
            ],
            values=reduce(self.values),
            sumw2=reduce(self.sumw2),
            entries=self.entries,
            title=self.title,
            bin_entries=reduce(self.bin_entries),
            bin_sumw2=reduce(self.bin_sumw2),
            error_mode=self.error_mode,
        )
        projected.stats = projected.compute_stats()
        return projected

    # -- construction helpers ----------------------------------------------------
    @classmethod
    def empty(
        cls,
        name: str,
        axes: Sequence[Axis],
        class_name: str | None = None,
        title: str = "",
        weighted: bool = False,
    ) -> Histogram:
        """A zeroed histogram; ``class_name`` defaults to TH<n>D."""
        axes = list(axes)
        class_name = class_name or f"TH{len(axes)}D"
        shape = tuple(axis.nbins + 2 for axis in axes)
        profile = class_name.startswith("TProfile")
        return cls(
            name=name,
            class_name=class_name,
            axes=axes,
            values=np.zeros(shape, order="F"),
            sumw2=np.zeros(shape, order="F") if (weighted or profile) else None,
            title=title,
            bin_entries=np.zeros(shape, order="F") if profile else None,
        )

    def fill(self, *coords: np.ndarray, weights: np.ndarray | None = None, y=None) -> None:
        """Fill many points at once (numpy), keeping sums, entries and stats consistent.

        For a profile, ``y`` is the profiled quantity.
        """
        if len(coords) != self.ndim:
            raise ValueError(f"{self.name!r} needs {self.ndim} coordinates")
        # Without this check a profile filled without y silently gets NaN bins.
        if self.is_profile and y is None:
            raise ValueError(f"{self.class_name} {self.name!r}: fill needs y, the profiled value")
        if not self.is_profile and y is not None:
            raise ValueError(f"{self.class_name} {self.name!r} is not a profile: y is not used")
        coords = [np.atleast_1d(np.asarray(c, dtype=np.float64)) for c in coords]
        n = len(coords[0])
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        index = tuple(
            np.searchsorted(axis.edges, c, side="right")
            for axis, c in zip(self.axes, coords, strict=True)
        )
        if self.is_profile:
            yv = np.asarray(y, dtype=np.float64)
            if weights is not None and self.bin_sumw2 is None:
                self.bin_sumw2 = self.bin_entries.copy(order="F")  # earlier fills had unit weight
            np.add.at(self.values, index, w * yv)
            np.add.at(self.sumw2, index, w * yv * yv)
            np.add.at(self.bin_entries, index, w)
            if self.bin_sumw2 is not None:
                np.add.at(self.bin_sumw2, index, w * w)
        else:
            if weights is not None and self.sumw2 is None:
                self.sumw2 = np.abs(self.values).copy(order="F")  # earlier fills had unit weight
            np.add.at(self.values, index, w)
            if self.sumw2 is not None:
                np.add.at(self.sumw2, index, w * w)
        self.entries += n
        self.stats = self.compute_stats()


#: Every field of a Histogram: what ``Histogram.assemble`` needs.
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Histogram))

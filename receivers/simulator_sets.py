"""The histogram sets the simulator fills, one per subsystem.

Each histogram is declared as a :class:`Spec`: its path in the snapshot, ROOT
class, axes and the *expected number of fills per event* in every bin (flow
bins included, Fortran order like :class:`~overwatch.histogram.Histogram`).
The simulator turns N events into Poisson draws of ``N * rate``, which is fast
(one vectorised draw per subsystem and time step) and gives contents that grow
cumulatively with realistic shapes.

Paths (``/`` separates ROOT directories):

EMC
  ``EMCTrigger/events`` (TH1D, 1 bin: number of events so far),
  ``EMCal/SM00..SM19/cellHits`` (TH2F 48 columns (eta) x 24 rows (phi)),
  ``EMCal/SM00..SM19/cellAmplitude`` (TH1F, GeV), ``EMCal/clusterEnergy``,
  ``EMCal/clusterMultiplicity``, ``EMCTrigger/L1GammaPatchAmp``,
  ``EMCTrigger/L1JetPatchAmp`` (TH1F, ADC), ``EMCTrigger/FastORL1Hits`` and
  ``EMCTrigger/FastORL0Amp`` (TH2F 48 x 104 FastOR grid).
TPC
  ``events``, ``TPC/clusterCharge``, ``TPC/clustersPerSector``,
  ``TPC/clustersPerTrack``, ``TPC/trackEta``, ``TPC/trackPhi``,
  ``TPC/trackEtaPhi`` (TH2F), ``TPC/trackPt`` (variable bins), ``TPC/dcaXY``,
  ``TPC/dcaZ``, ``TPC/trackPtEtaPhi`` (TH3F).
HLT
  ``events``, ``HLT/eventSize`` (MB), ``HLT/triggerClasses`` (labelled bins),
  ``HLT/processingTime`` (ms), ``HLT/processingTimeVsEventSize`` (TProfile),
  ``HLT/tracksVsEventSize`` (TH2F).
Any other name
  ``events`` and ``<SYS>/occupancy``, ``<SYS>/amplitude``.

``histograms=N`` adds ``<SYS>Extra/h0000...`` (TH1F, 100 bins) until the
subsystem holds at least N histograms, for benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from overwatch.histogram import Axis

#: Where each built-in subsystem keeps its events counter (matches processing.events_histogram).
EVENTS_HISTOGRAM = {"EMC": "EMCTrigger/events", "TPC": "events", "HLT": "events"}
EMC_SUPERMODULES = 20
EMC_COLUMNS, EMC_ROWS = 48, 24  # cells per supermodule: eta x phi
FASTOR_COLUMNS, FASTOR_ROWS = 48, 104
TRIGGER_CLASSES = ("CINT7-B", "CEMC7-B", "CDMC7-B", "CMUL7-B", "CDG5-B", "C0TVX-B", "CINT7-ACE")


@dataclass
class Spec:
    """One simulated histogram and how it fills.

    ``kind`` is ``"counts"`` (Poisson fills of ``rate``), ``"events"`` (one bin
    holding the number of events) or ``"profile"`` (``rate`` entries per event
    with profiled values drawn from ``mean`` +- ``sigma``).
    """

    path: str
    class_name: str
    axes: list[Axis]
    rate: np.ndarray
    title: str = ""
    kind: str = "counts"
    mean: np.ndarray | None = None
    sigma: np.ndarray | None = None

    def __post_init__(self) -> None:
        # ROOT's constructors read "title;x title;y title" and store only the first
        # part as the title; do the same so snapshots look like ROOT's own files.
        title, *axis_titles = self.title.split(";")
        self.title = title
        for axis, axis_title in zip(self.axes, axis_titles, strict=False):
            if axis_title and not axis.title:
                axis.title = axis_title

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.nbins + 2 for axis in self.axes)


# --------------------------------------------------------------------------- helpers


def _padded(inner: np.ndarray) -> np.ndarray:
    """Embed in-range rates into a flow-inclusive, Fortran-ordered array (flow bins empty)."""
    inner = np.asarray(inner, dtype=np.float64)
    out = np.zeros(tuple(n + 2 for n in inner.shape), order="F")
    out[tuple(slice(1, -1) for _ in inner.shape)] = inner
    return out


def _shape_1d(axis: Axis, density: Callable[[np.ndarray], np.ndarray], per_event: float):
    weights = np.clip(density(axis.centers), 0, None) * axis.widths
    return _padded(per_event * weights / weights.sum())


def _h1(path, axis, density, per_event, title="", class_name="TH1F") -> Spec:
    return Spec(path, class_name, [axis], _shape_1d(axis, density, per_event), title)


def _events(path: str) -> Spec:
    axis = Axis.regular(1, 0.0, 1.0, title="events")
    return Spec(path, "TH1D", [axis], _padded(np.ones(1)), "Number of events", kind="events")


def _exp(slope: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.exp(-x / slope)


def _gauss(mu: float, sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _moyal(mpv: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    # Landau-like energy-loss shape (Moyal approximation).
    def density(x: np.ndarray) -> np.ndarray:
        lam = (x - mpv) / width
        return np.exp(-0.5 * (lam + np.exp(-lam)))

    return density


# --------------------------------------------------------------------------- subsystems


def _emc(rng: np.random.Generator) -> list[Spec]:
    specs = [_events(EVENTS_HISTOGRAM["EMC"])]
    cols = Axis.regular(EMC_COLUMNS, 0, EMC_COLUMNS, title="column (#eta)")
    rows = Axis.regular(EMC_ROWS, 0, EMC_ROWS, title="row (#phi)")
    amplitude = Axis.regular(100, 0.0, 20.0, title="amplitude (GeV)")
    for sm in range(EMC_SUPERMODULES):
        # Cell-to-cell gain spread and a mild eta dependence, fixed for a seed.
        gain = np.clip(rng.normal(1.0, 0.08, (EMC_COLUMNS, EMC_ROWS)), 0.5, 1.5)
        eta_trend = 1.0 + 0.15 * np.cos(np.linspace(0, np.pi, EMC_COLUMNS))[:, None]
        occupancy = 0.012 * gain * eta_trend
        specs.append(
            Spec(
                f"EMCal/SM{sm:02d}/cellHits",
                "TH2F",
                [cols.copy(), rows.copy()],
                _padded(occupancy),
                f"EMCal SM{sm:02d} cell hits;column (#eta);row (#phi)",
            )
        )
        per_event = float(occupancy.sum())
        slope = 0.8 * rng.uniform(0.95, 1.05)
        specs.append(
            _h1(f"EMCal/SM{sm:02d}/cellAmplitude", amplitude.copy(), _exp(slope), per_event,
                f"EMCal SM{sm:02d} cell amplitude")
        )  # fmt: skip
    specs += [
        _h1("EMCal/clusterEnergy", Axis.regular(100, 0.0, 50.0, title="E (GeV)"),
            lambda e: (1.0 + e / 1.5) ** -5.5, 25.0, "EMCal cluster energy"),
        _h1("EMCal/clusterMultiplicity", Axis.regular(100, 0.0, 200.0, title="clusters"),
            _gauss(25.0, 12.0), 1.0, "EMCal clusters per event"),
        _h1("EMCTrigger/L1GammaPatchAmp", Axis.regular(128, 0.0, 1024.0, title="ADC"),
            _exp(60.0), 2.0, "L1 gamma patch amplitude"),
        _h1("EMCTrigger/L1JetPatchAmp", Axis.regular(128, 0.0, 2048.0, title="ADC"),
            _exp(180.0), 1.0, "L1 jet patch amplitude"),
    ]  # fmt: skip
    fastor_cols = Axis.regular(FASTOR_COLUMNS, 0, FASTOR_COLUMNS, title="column (#eta)")
    fastor_rows = Axis.regular(FASTOR_ROWS, 0, FASTOR_ROWS, title="row (#phi)")
    fastor_gain = np.clip(rng.normal(1.0, 0.1, (FASTOR_COLUMNS, FASTOR_ROWS)), 0.3, 2.0)
    specs.append(
        Spec("EMCTrigger/FastORL1Hits", "TH2F", [fastor_cols, fastor_rows.copy()],
             _padded(0.004 * fastor_gain), "FastOR L1 hits;column (#eta);row (#phi)")
    )  # fmt: skip
    specs.append(
        Spec("EMCTrigger/FastORL0Amp", "TH2F", [fastor_cols.copy(), fastor_rows.copy()],
             _padded(0.15 * fastor_gain), "FastOR L0 amplitude (ADC);column (#eta);row (#phi)")
    )  # fmt: skip
    return specs


def _tpc(rng: np.random.Generator) -> list[Spec]:
    tracks = 40.0  # per event
    eta = Axis.regular(36, -0.9, 0.9, title="#eta")
    phi = Axis.regular(72, 0.0, 2 * np.pi, title="#varphi")
    # Sector boundaries (every 20 degrees) lose a few tracks.
    phi_shape = 1.0 - 0.25 * np.exp(-0.5 * ((phi.centers % (np.pi / 9)) / 0.03) ** 2)
    eta_shape = 1.0 - 0.2 * eta.centers**2
    eta_phi = np.outer(eta_shape, phi_shape)
    pt_edges = np.concatenate(
        [np.arange(0.1, 2.0, 0.1), np.arange(2.0, 6.0, 0.5), [6, 8, 10, 15, 20, 30, 50]]
    )
    pt = Axis.from_edges(pt_edges, title="p_{T} (GeV/c)")
    pt3 = Axis.from_edges([0.15, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0], title="p_{T} (GeV/c)")
    eta3, phi3 = (
        Axis.regular(9, -0.9, 0.9, title="#eta"),
        Axis.regular(18, 0.0, 2 * np.pi, title="#varphi"),
    )
    pt3_weights = (1.0 + pt3.centers / 0.7) ** -6 * pt3.widths
    cube = np.einsum(
        "i,j,k->ijk", pt3_weights / pt3_weights.sum(), 1.0 - 0.2 * eta3.centers**2, np.ones(18)
    )
    sector_gain = np.clip(rng.normal(1.0, 0.05, 36), 0.7, 1.3)
    return [
        _events(EVENTS_HISTOGRAM["TPC"]),
        _h1("TPC/clusterCharge", Axis.regular(200, 0.0, 1000.0, title="Q_{max} (ADC)"),
            _moyal(120.0, 35.0), tracks * 60, "TPC cluster charge"),
        Spec("TPC/clustersPerSector", "TH1F", [Axis.regular(36, 0, 36, title="sector")],
             _padded(tracks * 60 / 36 * sector_gain), "TPC clusters per sector"),
        _h1("TPC/clustersPerTrack", Axis.regular(160, 0, 160, title="clusters"),
            _gauss(130.0, 15.0), tracks, "TPC clusters per track"),
        _h1("TPC/trackEta", eta.copy(), lambda x: 1.0 - 0.2 * x**2, tracks, "track #eta"),
        Spec("TPC/trackPhi", "TH1F", [phi.copy()], _padded(tracks * phi_shape / phi_shape.sum()),
             "track #varphi"),
        Spec("TPC/trackEtaPhi", "TH2F", [eta.copy(), phi.copy()],
             _padded(tracks * eta_phi / eta_phi.sum()), "tracks;#eta;#varphi"),
        _h1("TPC/trackPt", pt, lambda x: (1.0 + x / 0.7) ** -6, tracks, "track p_{T}"),
        _h1("TPC/dcaXY", Axis.regular(100, -3.0, 3.0, title="DCA_{xy} (cm)"),
            lambda x: _gauss(0, 0.05)(x) + 0.02 * np.exp(-np.abs(x)), tracks, "DCA xy"),
        _h1("TPC/dcaZ", Axis.regular(100, -3.0, 3.0, title="DCA_{z} (cm)"),
            lambda x: _gauss(0, 0.1)(x) + 0.02 * np.exp(-np.abs(x)), tracks, "DCA z"),
        Spec("TPC/trackPtEtaPhi", "TH3F", [pt3, eta3, phi3], _padded(tracks * cube / cube.sum()),
             "tracks;p_{T} (GeV/c);#eta;#varphi"),
    ]  # fmt: skip


def _hlt(rng: np.random.Generator) -> list[Spec]:
    size = Axis.regular(50, 0.0, 10.0, title="event size (MB)")

    def size_density(x: np.ndarray) -> np.ndarray:  # log-normal around 2 MB
        clipped = np.maximum(x, 1e-3)
        return np.exp(-0.5 * ((np.log(clipped) - 0.7) / 0.5) ** 2) / clipped

    fractions = np.array([0.55, 0.12, 0.08, 0.1, 0.05, 0.06, 0.04])
    trigger = Axis.regular(len(TRIGGER_CLASSES), 0, len(TRIGGER_CLASSES), title="trigger class")
    trigger.labels = {i + 1: name for i, name in enumerate(TRIGGER_CLASSES)}
    size_rate = _shape_1d(size, size_density, 1.0)
    time_mean = _padded(20.0 + 30.0 * size.centers)  # ms: processing grows with size
    tracks = Axis.regular(50, 0, 5000, title="tracks")
    # tracks ~ 600 per MB with 15% spread
    track_means = 600.0 * size.centers
    rows = np.exp(
        -0.5
        * ((tracks.centers[None, :] - track_means[:, None]) / (0.15 * track_means[:, None] + 50))
        ** 2
    )
    rows /= rows.sum(axis=1, keepdims=True)
    size_tracks = size_rate[1:-1, None] * rows
    return [
        _events(EVENTS_HISTOGRAM["HLT"]),
        Spec("HLT/eventSize", "TH1F", [size.copy()], size_rate.copy(), "HLT event size"),
        Spec("HLT/triggerClasses", "TH1F", [trigger], _padded(fractions * 1.3),
             "trigger class counts"),
        _h1("HLT/processingTime", Axis.regular(100, 0.0, 500.0, title="time (ms)"),
            _gauss(80.0, 45.0), 1.0, "HLT processing time per event"),
        Spec("HLT/processingTimeVsEventSize", "TProfile", [size.copy()], size_rate.copy(),
             "HLT processing time vs event size;event size (MB);time (ms)", kind="profile",
             mean=time_mean, sigma=_padded(np.full(size.nbins, 15.0))),
        Spec("HLT/tracksVsEventSize", "TH2F", [size.copy(), tracks], _padded(size_tracks),
             "tracks vs event size;event size (MB);tracks"),
    ]  # fmt: skip


def _generic(name: str, rng: np.random.Generator) -> list[Spec]:
    return [
        _events("events"),
        Spec(f"{name}/occupancy", "TH2F", [Axis.regular(32, 0, 32), Axis.regular(32, 0, 32)],
             _padded(np.clip(rng.normal(0.01, 0.001, (32, 32)), 0, None)), f"{name} occupancy"),
        _h1(f"{name}/amplitude", Axis.regular(100, 0.0, 100.0), _exp(10.0), 5.0,
            f"{name} amplitude"),
    ]  # fmt: skip


def _extra(name: str, index: int, rng: np.random.Generator) -> Spec:
    axis = Axis.regular(100, 0.0, 100.0, title="x")
    mu, sigma = rng.uniform(20, 80), rng.uniform(5, 20)
    return _h1(f"{name}Extra/h{index:04d}", axis, _gauss(mu, sigma), 2.0, f"{name} extra {index}")


def build_specs(subsystem: str, rng: np.random.Generator, histograms: int = 0) -> list[Spec]:
    """The histograms of ``subsystem``, padded with extras to at least ``histograms``."""
    builders = {"EMC": _emc, "TPC": _tpc, "HLT": _hlt}
    builder = builders.get(subsystem)
    specs = builder(rng) if builder else _generic(subsystem, rng)
    index = 0
    while len(specs) < histograms:
        specs.append(_extra(subsystem, index, rng))
        index += 1
    return specs


def events_histogram(subsystem: str) -> str:
    """Path of the events counter in a simulated snapshot of ``subsystem``."""
    return EVENTS_HISTOGRAM.get(subsystem, "events")

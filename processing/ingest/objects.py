"""Objects a producer sends besides histograms: how each kind is kept, sliced and rebuilt.

Why one module: a snapshot holds graphs, functions, stacks, efficiencies and
polygon histograms next to its TH1/TH2/TH3/profiles, and every one must be
listed, served and drawn the way ROOT shows it. What differs between them is
only *what a slice can change*; this module says it once, per kind:

- ``whole`` (TGraph and its kinds, TGraph2D, TMultiGraph, TF1/TF2/TF3,
  RooPlot): nothing can be subtracted. The object's ROOT JSON is kept as the
  snapshot has it, and every view shows it as in the snapshot the view ends at
  ("not sliced"). A RooPlot is served as JSROOT 7 draws it
  (:func:`overwatch.rootmodels.rooplot_for_jsroot`): ROOT's own JSON of a
  RooPlot v3 is not drawable.
- ``stack`` (THStack): each member histogram is a *part*, sliced like any
  histogram; the stack is rebuilt around the sliced members.
- ``efficiency`` (TEfficiency): its passed and total histograms are the parts.
- ``poly`` (TH2Poly): its bin contents, overflows and sums of squares are one
  part laid out as a flat histogram block, so they subtract as bins do.

Parts live in the snapshot's layout as histograms under hidden paths
``<path>;<part>`` (``;`` is ROOT's cycle separator, never part of an object
name); :func:`split_parts` keeps them away from plugins, checks and listings.
The object itself (its ROOT JSON, numbers of the snapshot included) is a
:class:`ObjectRecord`; the array cache keeps the records of each snapshot
(``processing.ingest.cache``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from overwatch import rootjson
from overwatch.histogram import STAT_NAMES, Axis, Histogram
from overwatch.jsroot import to_jsroot
from overwatch.rootmodels import rooplot_for_jsroot

PART = ";"
_WHOLE = re.compile(
    r"T(Graph(Errors|AsymmErrors|BentErrors|MultiErrors)?|Graph2D(Errors|AsymmErrors)?"
    r"|MultiGraph|F[123]|Spline[35]|Polyline|Cutg|CutG)|RooPlot|RooHist|RooCurve"
)
KINDS = {"THStack": "stack", "TEfficiency": "efficiency", "TH2Poly": "poly"}
_POLY_OVERFLOWS = 9  # TH2Poly::kNOverflow
_POLY_STATS = STAT_NAMES[2]  # a TH2Poly's sums (x and y), kept in its part's block

H = TypeVar("H")


def kind_of(class_name: str) -> str | None:
    """How objects of a class are kept (see the module docs), None if not drawable."""
    if class_name in KINDS:
        return KINDS[class_name]
    return "whole" if _WHOLE.fullmatch(class_name) else None


def part_path(path: str, part: str) -> str:
    return f"{path}{PART}{part}"


def is_part(path: str) -> bool:
    return PART in path


def split_parts(histograms: Mapping[str, H]) -> tuple[dict[str, H], dict[str, H]]:
    """(plain histograms, object parts) of a slice's histograms by path."""
    plain: dict[str, H] = {}
    parts: dict[str, H] = {}
    for path, histogram in histograms.items():
        (parts if PART in path else plain)[path] = histogram
    return plain, parts


@dataclass(frozen=True)
class ObjectRecord:
    """One non-histogram object of a snapshot: path, class, kind, parts and its ROOT JSON."""

    path: str
    class_name: str
    kind: str
    parts: tuple[str, ...]
    json: str  # ROOT's TBufferJSON of the object as the snapshot has it

    @cached_property
    def title(self) -> str:
        """The object's own title (``fTitle``), as ROOT lists it."""
        match = re.search(r'"fTitle":("(?:[^"\\]|\\.)*")', self.json)
        return json.loads(match.group(1)) if match else ""

    @property
    def sliced(self) -> bool:
        """Whether a slice changes it (else every view shows it as at the slice's end)."""
        return self.kind != "whole"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "class": self.class_name, "kind": self.kind,
                "parts": list(self.parts), "json": self.json}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObjectRecord:
        return cls(str(data["path"]), str(data["class"]), str(data["kind"]),
                   tuple(str(p) for p in data["parts"]), str(data["json"]))  # fmt: skip


@dataclass(frozen=True)
class Part:
    """A part to read as a histogram: an uproot model, or a histogram built here (poly)."""

    name: str
    class_name: str
    model: Any = None
    histogram: Histogram | None = None


def describe(path: str, class_name: str, model, file=None) -> tuple[ObjectRecord, list[Part]]:
    """The record of one object and the parts to slice (ValueError if not drawable)."""
    kind = kind_of(class_name)
    if kind is None:
        raise ValueError(f"{class_name} is not drawable")
    parts: list[Part] = []
    if kind == "stack":
        hists = model.member("fHists") or []
        for i, member in enumerate(hists):
            name = getattr(member, "classname", "")
            if re.fullmatch(r"TH[123][CSILFD]|TProfile(2D|3D)?", name or ""):
                parts.append(Part(str(i), name, model=member))
    elif kind == "efficiency":
        for name, member in (("passed", "fPassedHistogram"), ("total", "fTotalHistogram")):
            histogram = model.member(member)
            parts.append(Part(name, histogram.classname, model=histogram))
    elif kind == "poly":
        parts.append(Part("bins", "TH1D", histogram=_poly_part(path, model)))
    text = json.dumps(rootjson.to_json(model, file), separators=(",", ":"))
    record = ObjectRecord(path, class_name, kind, tuple(p.name for p in parts), text)
    return record, parts


def _poly_part(path: str, model) -> Histogram:
    """A TH2Poly's contents as one flat block: the 9 overflows, then each bin in list order."""
    members = model.all_members
    overflow = np.asarray(members["fOverflow"], dtype=np.float64)
    contents = np.array([float(b.member("fContent")) for b in members["fBins"]], dtype=np.float64)
    values = np.concatenate([overflow, contents])
    sumw2 = np.asarray(members.get("fSumw2") if members.get("fSumw2") is not None else [], float)
    histogram = Histogram.empty(part_path(path, "bins"), [Axis.regular(len(values) - 2, 0, 1)],
                                "TH1D")  # fmt: skip
    histogram.values = np.asfortranarray(values)
    if len(sumw2) == len(values):
        histogram.sumw2 = np.asfortranarray(sumw2)
    histogram.entries = float(members["fEntries"])
    histogram.stats = {name: float(members.get(name, 0.0)) for name in _POLY_STATS}
    return histogram


def assemble(record: ObjectRecord, parts: Mapping[str, Histogram]) -> dict[str, Any]:
    """The object's JSON for a view: as the snapshot has it, with each part (sliced as the
    view slices it) in its place. ``parts``: part name -> histogram."""
    obj = json.loads(record.json)
    if record.class_name == "RooPlot":  # ROOT's own JSON of it is not what JSROOT 7 draws
        return rooplot_for_jsroot(obj)
    if record.kind == "stack":
        members = obj["fHists"]["arr"]
        for name, part in parts.items():
            members[int(name)] = to_jsroot(part)
    elif record.kind == "efficiency":
        if "passed" in parts:
            obj["fPassedHistogram"] = to_jsroot(parts["passed"])
        if "total" in parts:
            obj["fTotalHistogram"] = to_jsroot(parts["total"])
    elif record.kind == "poly" and "bins" in parts:
        _poly_numbers(obj, parts["bins"])
    return obj


def _poly_numbers(obj: dict, part: Histogram) -> None:
    values = [_json_number(v) for v in part.values.ravel(order="F").tolist()]
    obj["fOverflow"] = values[:_POLY_OVERFLOWS]
    table = written_objects(obj)  # a bin first written in a cell list is a {"$ref": n} in fBins
    bins = [table[item["$ref"]] if "$ref" in item else item for item in obj["fBins"]["arr"]]
    for item, content in zip(bins, values[_POLY_OVERFLOWS:], strict=False):
        item["fContent"] = content
    if part.sumw2 is not None:
        obj["fSumw2"] = [_json_number(v) for v in part.sumw2.ravel(order="F").tolist()]
    obj["fEntries"] = _json_number(part.entries)
    for name in _POLY_STATS:
        obj[name] = _json_number(part.stats.get(name, 0.0))


def _json_number(value: float) -> float | int:
    if not math.isfinite(value):
        return 0
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def written_objects(document: Any) -> list[dict]:
    """The objects of a TBufferJSON document in writing order: what ``{"$ref": n}`` names."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "_typename" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found

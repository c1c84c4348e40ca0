"""Any ROOT object read by uproot -> the JSON ROOT's own ``TBufferJSON`` writes for it.

Why: a producer styles what it sends (titles, axis ranges, minimum and maximum,
line, fill and marker attributes, fit functions, labels) and sends more than
histograms (graphs, functions, stacks). ROOT's JSON of the object keeps all of
that and JSROOT draws it; so the JSON of a whole-run view is the producer's
object, member by member, with only the numbers that slicing changes replaced.

The conversion is generic: every streamed member of the model and of its base
classes, under its ROOT name (``@fUniqueID`` -> ``fUniqueID``), in streamer
order, as ``TBufferJSON`` does with compactness 0 (what THttpServer's
``root.json`` answers). What ``TBufferJSON`` writes differently from the
members is handled here, once:

* ``TObject::fBits`` without the in-memory flags ``kIsOnHeap`` and
  ``kNotDeleted``. (``kMustCleanup``, bit 3, is kept as the file has it; ROOT
  sets and clears it in memory as collections take objects, so its own JSON
  of a stack member or a multigraph member may say otherwise: drawing ignores it.)
* ``std::map`` members as lists of ``{"$pair": "pair<K,V,...>", "first", "second"}``
  (the type from the file's streamer info);
* collections (``TList``, ``THashList``, ``TObjArray``, ``TMap``...) as
  ``{"name", "arr", "opt"}``; ``TObjString`` with ``fString``;
* the ``TArray*`` base of a histogram as ``fArray`` (its ``fN`` is not written);
* ``float`` members (uproot widens them) at float precision (0.005, not
  0.004999999888241291);
* an object met a second time as ``{"$ref": n}``, ``n`` counting objects in
  writing order from 0, as ``TBufferJSON`` numbers them.

Objects uproot cannot read are not this module's business: the caller notes
them as unreadable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: TObject bits that live only in memory; ROOT never writes them.
_MEMORY_BITS = 0x01000000 | 0x02000000  # kIsOnHeap | kNotDeleted
_COLLECTIONS = frozenset({"TList", "THashList", "TObjArray", "TClonesArray", "TSeqCollection"})


def _classname(model) -> str:
    name = getattr(model, "classname", None) or type(model).__name__
    if name.startswith("Model_"):  # uproot.dynamic.Model_TH1F_v3 -> TH1F
        name = name[len("Model_") :].rsplit("_v", 1)[0]
    return name


def _number(value: float) -> float | int:
    """A JSON number: float-precision members at float precision, integers as integers."""
    if not math.isfinite(value):
        return 0
    narrow = np.float32(value)
    if float(narrow) == value and math.isfinite(float(narrow)):
        value = float(repr(narrow).removeprefix("np.float32(").removesuffix(")"))
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


#: Members of a histogram that a slice recomputes (contents, errors, entries, statistics):
#: everything else of its JSON is the producer's presentation.
SLICED_MEMBERS = frozenset(
    {"fArray", "fSumw2", "fBinEntries", "fBinSumw2", "fEntries", "fTsumw", "fTsumw2"}
    | {f"fTsumw{a}" for a in "xyzt"}
    | {f"fTsumw{a}2" for a in "xyzt"}
    | {"fTsumwxy", "fTsumwxz", "fTsumwyz"}
)


class _Writer:
    """One conversion: numbers objects in writing order for ``$ref``."""

    def __init__(self, file=None, skip: frozenset[str] = frozenset()) -> None:
        self.skip = skip  # top-level members left out (presentation only)
        self.file = file  # the uproot file: its streamer info types map members
        self.types: dict[str, dict[str, str]] = {}
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps ids valid while converting

    def value(self, value: Any) -> Any:
        if value is None:
            return None
        if hasattr(value, "all_members"):  # before str: a TObjString model is a str too
            return self.model(value)
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            return _number(float(value))
        if isinstance(value, str | bytes):
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(value, np.ndarray):
            return [self.value(v) for v in value.tolist()]
        if isinstance(value, dict):
            return {str(k): self.value(v) for k, v in value.items()}
        if hasattr(value, "keys") and hasattr(value, "values"):  # uproot's STLMap: see _map
            return [{"first": self.value(k), "second": self.value(v)} for k, v in value.items()]
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if hasattr(value, "tolist"):
            return [self.value(v) for v in value.tolist()]
        return str(value)

    def model(self, model) -> Any:
        classname = _classname(model)
        if classname == "TString":
            return str(model)
        if classname.startswith("TArray"):
            return [self.value(v) for v in np.asarray(model).tolist()]
        key = id(model)
        if key in self.seen:
            return {"$ref": self.seen[key]}
        self.seen[key] = len(self.seen)
        self.keep.append(model)
        if classname in _COLLECTIONS:
            return self._collection(model, classname)
        out: dict[str, Any] = {"_typename": classname}
        if classname == "TObjString":
            out.update(self._tobject(model))
            out["fString"] = str(model)
            return out
        array = _array_base(model)
        types = self._member_types(model)
        top, self.skip = self.skip, frozenset()  # nested objects are written whole
        for name, member in model.all_members.items():
            if (name == "fN" and array is not None) or name in top:
                continue
            if name in ("@fUniqueID", "@fBits"):
                out.update(self._tobject(model))
                continue
            out[name] = self.value(member)
            kind = types.get(name, "")
            if kind.startswith(("map<", "std::map<")) and isinstance(out[name], list):
                pair = "pair<" + kind.split("<", 1)[1]
                out[name] = [{"$pair": pair, **item} for item in out[name]]
        if array is not None and "fArray" not in top:
            out["fArray"] = [self.value(v) for v in np.asarray(array).tolist()]
        return out

    def _member_types(self, model) -> dict[str, str]:
        """Member name -> C++ type name of the model's class and its bases, from the
        file's streamer info (empty without a file)."""
        classname = _classname(model)
        if classname not in self.types:
            types: dict[str, str] = {}
            stack = [model]
            while self.file is not None and stack:
                current = stack.pop()
                stack.extend(getattr(current, "bases", ()))
                try:
                    streamer = self.file.streamer_named(_classname(current))
                except Exception:  # no streamer info for it: its maps stay plain lists
                    streamer = None
                for element in getattr(streamer, "elements", None) or ():
                    try:
                        types[str(element.member("fName"))] = str(element.member("fTypeName"))
                    except Exception:  # an element without those says nothing about types
                        continue
            self.types[classname] = types
        return self.types[classname]

    @staticmethod
    def _tobject(model) -> dict[str, int]:
        members = model.all_members
        return {
            "fUniqueID": int(members.get("@fUniqueID", 0)),
            "fBits": int(members.get("@fBits", 0)) & ~_MEMORY_BITS,
        }

    def _collection(self, model, classname: str) -> dict[str, Any]:
        items = [self.value(item) for item in model]
        name = (
            str(model.all_members.get("fName", "") or "") if hasattr(model, "all_members") else ""
        )
        options = getattr(model, "_options", None) or [None] * len(items)
        opt = [_text(o) or None for o in options]  # an empty option is written as null
        return {"_typename": classname, "name": name or classname, "arr": items, "opt": opt}


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _array_base(model):
    """The ``TArray*`` base of a model (a histogram's bins), searched through its bases."""
    for base in getattr(model, "bases", ()):
        if _classname(base).startswith("TArray"):
            return base
        found = _array_base(base)
        if found is not None:
            return found
    return None


def to_json(model, file=None) -> dict[str, Any]:
    """ROOT's TBufferJSON (compactness 0) of an object read by uproot, as plain data.

    ``file`` is the uproot file it was read from (``ReadOnlyFile``, e.g.
    ``uproot.open(...).file``): its streamer info names the type of map members.
    """
    return _Writer(file).model(model)


def presentation(model, file=None) -> dict[str, Any]:
    """A histogram's JSON without what a slice recomputes (:data:`SLICED_MEMBERS`): titles,
    axes and their ranges, minimum and maximum, attributes, functions, bits, option."""
    return _Writer(file, SLICED_MEMBERS).model(model)


def presentation_key(model) -> tuple | None:
    """A cheap fingerprint of what :func:`presentation` depends on, to convert a histogram's
    presentation once while it stays the same; None when it cannot be had cheaply (the
    histogram carries functions, whose parameters a producer refits)."""
    key: list = []
    if not _fingerprint(model, key, 0, SLICED_MEMBERS):
        return None
    return tuple(key)


_SCALARS = (bool, int, float, str, type(None), np.bool_, np.integer, np.floating)


def _fingerprint(model, key: list, depth: int, skip: frozenset[str] = frozenset()) -> bool:
    """Append what ``model``'s members are to ``key`` (walking uproot's own member dicts,
    faster than ``all_members``); False if something would be costly to compare."""
    for base in getattr(model, "_bases", ()):
        classname = _classname(base)
        if classname.startswith("TArray"):
            continue  # a histogram's bins: sliced
        if not _fingerprint(base, key, depth, skip):
            return False
    for name, value in model._members.items():  # noqa: SLF001 - uproot's own storage
        if name in skip:
            continue
        if isinstance(value, _SCALARS):
            key.append(value)
        elif isinstance(value, np.ndarray):
            key.append(value.tobytes())
        elif hasattr(value, "_members"):
            classname = _classname(value)
            if classname.startswith("TArray") or classname == "TString":
                key.append(str(value) if classname == "TString" else np.asarray(value).tobytes())
            elif classname in _COLLECTIONS:
                if len(value) == 0:
                    key.append(())
                elif all(_classname(item) == "TObjString" for item in value):  # axis labels
                    key.append(tuple((str(i), int(i.member("@fUniqueID"))) for i in value))
                else:
                    return False
            elif depth >= 2 or not _fingerprint(value, key, depth + 1):
                return False
        else:
            return False
    return True

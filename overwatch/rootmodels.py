"""Our own uproot models for the ROOT classes uproot 5.7 cannot read: TEfficiency and RooPlot.

Why: producers send efficiencies and RooFit frames; uproot stops on both, so Overwatch
would list neither. uproot lets a program register a model for a ROOT class name
(``uproot.classes[name]``, a :class:`uproot.model.DispatchByVersion` whose
``known_versions`` maps a class version to a model); :func:`register` installs the
models below, once, and ``overwatch.rootio`` calls it on import so every reader of
the project has them.

What uproot gets wrong, and what each model decodes by hand (the layouts are ROOT's
streamers: the file's streamer info where the class has one, the class's custom
``Streamer`` where it has none):

* ``TEfficiency`` v2: ``fBeta_bin_params`` (``vector<pair<double,double>>``) is
  written memberwise (all ``first`` then all ``second``); uproot has no streamer for
  the pair and refuses.
* ``RooPlot`` v3: ``_items`` (``vector<pair<TObject*,string>>``) is memberwise too,
  and its strings share one header (uproot expects one per string).
* ``RooRealVar`` v10, ``RooRefArray`` v1 and ``RooAbsBinning`` v2 have custom
  streamers and no streamer info; uproot would skip them silently.
* ``RooAbsArg`` v9 and ``RooRealVarSharedProperties`` v2 hold memberwise maps
  (``map<string,string>``, ``unordered_map<string,RooAbsBinning*>``: the count, all
  keys under one header, then all values), which uproot misreads.
* A RooFit object graph points back at objects still being read (a pdf's proxy at
  its owner, a variable's client at the variable). ROOT registers an object before
  its members; uproot registers it after, and reads such a pointer as None without
  a word. ``RooAbsArg`` (the base of every RooFit variable and pdf) therefore
  registers the object it is part of when reading starts, so those pointers resolve
  to it, in our models and in the ones uproot generates (RooGaussian, RooAddPdf...).

Every other class (histograms, graphs, RooHist, RooCurve, RooGaussian, texts...) is
read by uproot as usual, from its own models or the file's streamers.

Only the versions in Overwatch's fixtures (ROOT 6.40) are decoded. Another version
of TEfficiency or RooPlot is left to uproot (which raises for both); another version
of a class with a custom streamer raises :class:`UnsupportedVersion`: a wrong
decode is never returned.

JSON: ``overwatch.rootjson.to_json`` writes every model member by member. Where
ROOT's ``TBufferJSON`` writes something other than the members, the model's members
are what it writes (the decoded values stay on the model as attributes):

* ``RooRealVar``: the custom streamer's plain numbers (``_error``, ``_asymErrLo``,
  ``_asymErrHi``) as ``_blob``; its shared properties' members (``fUniqueID``,
  ``fBits``, ``_uuid``, ``_altBinning``) flattened into the variable; its default
  binning (``RooRealVar.binning``) not written at all.
* ``RooRefArray``: ``name`` and an empty ``arr``, as ROOT writes it for an object
  read from a file (the proxies are filled in only when a workspace is read; the
  references read are ``RooRefArray.uids``).
* map members of those models as ``{"$pair", "first", "second"}`` lists;
* ``fPID`` (always 0) in every referenced TObject of a RooPlot (the RooFit proxies):
  TBufferJSON writes it, uproot reads past the id the file stores.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import uproot
import uproot.containers
import uproot.deserialization
import uproot.model
import uproot.models.TObject
from uproot.deserialization import DeserializationError, read_object_any

from overwatch.rootjson import to_json

_BOOL = struct.Struct(">?")
_BOOLS2 = struct.Struct(">??")
_DOUBLE = struct.Struct(">d")
_DOUBLES2 = struct.Struct(">dd")
_DOUBLES3 = struct.Struct(">ddd")
_DOUBLES4 = struct.Struct(">dddd")
_INT = struct.Struct(">i")
_INTS2 = struct.Struct(">ii")
_UINT = struct.Struct(">I")
_USHORT = struct.Struct(">H")
_MEMBERWISE_HEADER = 6  # element class version (2 bytes) and checksum (4 bytes)

_BYTE_COUNT = 0x40000000
_CLASS_TAG = 0x80000000
_NEW_CLASS = 0xFFFFFFFF
_MAP_OFFSET = 2  # ROOT's kMapOffset: an object's reference tag is its position + 2


class UnsupportedVersion(DeserializationError):
    """A class version whose custom streamer Overwatch does not decode."""


# -- helpers -----------------------------------------------------------------


def _refuse_forth(context) -> None:
    if uproot._awkwardforth.get_forth_obj(context) is not None:
        raise uproot.interpretation.objects.CannotBeForth()


def _collection_header(chunk, cursor, context, file, what: str) -> tuple[int, int]:
    """Read the header of an STL collection written memberwise: (start index, byte count).

    Objectwise collections of these types are not what ROOT 6 writes; they are refused
    rather than guessed."""
    start = cursor.copy()
    num_bytes, _version, memberwise = uproot.deserialization.numbytes_version(
        chunk, cursor, context
    )
    if not memberwise:
        raise NotImplementedError(f"objectwise serialization of {what}\nin file {file.file_path}")
    cursor.skip(_MEMBERWISE_HEADER)
    return start, num_bytes


def _check_bytes(chunk, start, cursor, num_bytes, what, context, file) -> None:
    uproot.deserialization.numbytes_check(
        chunk, start, cursor, num_bytes, what, context, file.file_path
    )


def _strings(chunk, cursor, context, file, count: int) -> list[str]:
    """``count`` std::strings written under one collection header (memberwise pairs)."""
    if count == 0:
        return []
    start = cursor.copy()
    num_bytes, _version, _memberwise = uproot.deserialization.numbytes_version(
        chunk, cursor, context
    )
    out = [cursor.string(chunk, context) for _ in range(count)]
    _check_bytes(chunk, start, cursor, num_bytes, "std::string", context, file)
    return out


def _string_set(chunk, cursor, context, file) -> list[str]:
    """A ``set<string>`` (objectwise: a count and the strings)."""
    start = cursor.copy()
    num_bytes, _version, memberwise = uproot.deserialization.numbytes_version(
        chunk, cursor, context
    )
    if memberwise:
        raise NotImplementedError(
            f"memberwise serialization of set<string>\nin file {file.file_path}"
        )
    count = cursor.field(chunk, _UINT, context)
    out = [cursor.string(chunk, context) for _ in range(count)]
    _check_bytes(chunk, start, cursor, num_bytes, "set<string>", context, file)
    return out


def _memberwise_map(chunk, cursor, context, file, what: str, read_values) -> tuple[list, list]:
    """A memberwise ``map<string,V>``: the count, the keys, then ``read_values`` the values."""
    start, num_bytes = _collection_header(chunk, cursor, context, file, what)
    count = cursor.field(chunk, _UINT, context)
    keys = _strings(chunk, cursor, context, file, count)
    values = read_values(chunk, cursor, context, file, count)
    _check_bytes(chunk, start, cursor, num_bytes, what, context, file)
    return keys, values


_PAIR_CLASSES: dict[str, type] = {}


def _pair(typename: str, first: Any, second: Any) -> uproot.model.Model:
    """A ``pair<...>`` element as a model: ROOT's JSON writes it as an object."""
    cls = _PAIR_CLASSES.get(typename)
    if cls is None:
        cls = type(uproot.model.classname_encode(typename), (uproot.model.Model,), {})
        _PAIR_CLASSES[typename] = cls
    out = cls.empty()
    out._members = {"first": first, "second": second}
    return out


def _base(file, classname: str, chunk, cursor, context, model, version=None):
    """Read a base-class part of ``model`` (the version from the bytes unless given)."""
    cls = file.class_named(classname, version)
    return cls.read(
        chunk, cursor, context, file, model._file, model._parent, concrete=model.concrete
    )


class _Dispatch(uproot.model.DispatchByVersion):
    """Our decoders by version; other versions as uproot does from the file's streamers.

    uproot files a class it generates under the version of the streamer it used, which
    for a version the file has no streamer of is the newest one: that must not replace
    our decoder of that version."""

    ours: dict[int, type] = {}

    @classmethod
    def new_class(cls, file, version):
        generated = super().new_class(file, version)
        cls.known_versions.update(cls.ours)
        return generated


class _CustomStreamerDispatch(_Dispatch):
    """A class with a custom streamer (no streamer info): an unknown version raises."""

    @classmethod
    def new_class(cls, file, version):
        classname = uproot.model.classname_decode(cls.__name__)[0]
        raise UnsupportedVersion(
            f"{classname} version {version} has a custom streamer that Overwatch does not "
            f"decode (known: {sorted(cls.known_versions)})",
            None,
            None,
            {},
            getattr(file, "file_path", None),
        )


def _dispatch(base: type, classname: str, versions: dict[int, type]) -> type:
    attributes = {"known_versions": dict(versions), "ours": dict(versions)}
    return type(uproot.model.classname_encode(classname), (base,), attributes)


# -- TEfficiency ---------------------------------------------------------------


class Model_TEfficiency_v2(uproot.model.VersionedModel):
    """TEfficiency version 2 (ROOT 6): uproot's members, ``fBeta_bin_params`` by hand."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        if self.is_memberwise:
            raise NotImplementedError(
                f"memberwise serialization of TEfficiency\nin file {file.file_path}"
            )
        for name, version in (("TNamed", 1), ("TAttLine", 2), ("TAttFill", 2), ("TAttMarker", 3)):
            self._bases.append(_base(file, name, chunk, cursor, context, self, version))
        m = self._members
        m["fBeta_alpha"], m["fBeta_beta"] = cursor.fields(chunk, _DOUBLES2, context)
        m["fBeta_bin_params"] = self._beta_bin_params(chunk, cursor, context, file)
        m["fConfLevel"] = cursor.field(chunk, _DOUBLE, context)
        m["fFunctions"] = file.class_named("TList").read(
            chunk, cursor, context, file, self._file, self.concrete
        )
        m["fPassedHistogram"] = read_object_any(chunk, cursor, context, file, self._file, self)
        m["fStatisticOption"] = cursor.field(chunk, _INT, context)
        m["fTotalHistogram"] = read_object_any(chunk, cursor, context, file, self._file, self)
        m["fWeight"] = cursor.field(chunk, _DOUBLE, context)

    @staticmethod
    def _beta_bin_params(chunk, cursor, context, file) -> list:
        what = "vector<pair<double,double>>"
        start, num_bytes = _collection_header(chunk, cursor, context, file, what)
        count = cursor.field(chunk, _UINT, context)
        first = cursor.array(chunk, count, np.dtype(">f8"), context)
        second = cursor.array(chunk, count, np.dtype(">f8"), context)
        _check_bytes(chunk, start, cursor, num_bytes, what, context, file)
        return [
            _pair("pair<double,double>", float(a), float(b))
            for a, b in zip(first, second, strict=True)
        ]

    @property
    def beta_bin_params(self) -> np.ndarray:
        """The per-bin beta prior (alpha, beta), shape (n, 2); empty when not set."""
        params = self._members["fBeta_bin_params"]
        return np.array([[p.member("first"), p.member("second")] for p in params]).reshape(-1, 2)


# -- RooPlot and the RooFit classes it holds -------------------------------------


class Model_RooPlot_v3(uproot.model.VersionedModel):
    """RooPlot version 3 (ROOT 6.28 and later): ``_items`` by hand, the rest as uproot."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        if self.is_memberwise:
            raise NotImplementedError(
                f"memberwise serialization of RooPlot\nin file {file.file_path}"
            )
        self._bases.append(_base(file, "TNamed", chunk, cursor, context, self, 1))
        self._bases.append(_base(file, "RooPrintable", chunk, cursor, context, self, 1))
        m = self._members
        m["_hist"] = read_object_any(chunk, cursor, context, file, self._file, self)
        m["_items"] = self._items(chunk, cursor, context, file)
        m["_padFactor"] = cursor.field(chunk, _DOUBLE, context)
        for name in ("_plotVar", "_plotVarSet", "_normVars"):
            m[name] = read_object_any(chunk, cursor, context, file, self._file, self)
        (m["_normNumEvts"], m["_normBinWidth"], m["_defYmin"], m["_defYmax"]) = cursor.fields(
            chunk, _DOUBLES4, context
        )

    def hook_after_read_members(self, chunk, cursor, context, file):
        _mark_referenced(self)

    def _items(self, chunk, cursor, context, file) -> list:
        what = "vector<pair<TObject*,string>>"
        start, num_bytes = _collection_header(chunk, cursor, context, file, what)
        count = cursor.field(chunk, _UINT, context)
        objects = [
            read_object_any(chunk, cursor, context, file, self._file, self) for _ in range(count)
        ]
        options = _strings(chunk, cursor, context, file, count)
        _check_bytes(chunk, start, cursor, num_bytes, what, context, file)
        return [
            _pair("pair<TObject*,string>", obj, option)
            for obj, option in zip(objects, options, strict=True)
        ]

    @property
    def items(self) -> list[tuple[Any, str]]:
        """(object, draw option) of everything drawn on the frame, in drawing order."""
        return [(p.member("first"), p.member("second")) for p in self._members["_items"]]


class Model_RooRealVar_v10(uproot.model.VersionedModel):
    """RooRealVar version 10 (custom streamer): its RooAbsRealLValue part, three errors,
    the default binning and the shared properties (ranges by name)."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        self._bases.append(_base(file, "RooAbsRealLValue", chunk, cursor, context, self))
        self.error, self.asym_error_lo, self.asym_error_hi = cursor.fields(
            chunk, _DOUBLES3, context
        )
        self.binning = read_object_any(chunk, cursor, context, file, self._file, self)
        shared = file.class_named("RooRealVarSharedProperties").read(
            chunk, cursor, context, file, self._file, self
        )
        self.shared_properties = shared
        self._members.update(shared.all_members)  # TBufferJSON writes them into the variable
        self._members["_blob"] = np.array([self.error, self.asym_error_lo, self.asym_error_hi])


class Model_RooRefArray_v1(uproot.model.VersionedModel):
    """RooRefArray version 1 (custom streamer): a TRefArray of the proxies' unique ids."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        start = cursor.copy()
        num_bytes, version, _memberwise = uproot.deserialization.numbytes_version(
            chunk, cursor, context
        )
        if version != 1:
            raise UnsupportedVersion(
                f"TRefArray version {version} inside RooRefArray",
                chunk,
                cursor,
                context,
                file.file_path,
            )
        self.tobject = uproot.models.TObject.Model_TObject.read(
            chunk, cursor, context, file, self._file, self
        )
        name = cursor.string(chunk, context)
        count, self.lower_bound = cursor.fields(chunk, _INTS2, context)
        self.pid = cursor.field(chunk, _USHORT, context)
        self.uids = cursor.array(chunk, count, np.dtype(">u4"), context)
        _check_bytes(chunk, start, cursor, num_bytes, "TRefArray", context, file)
        self._members = {"name": name or "RooRefArray", "arr": []}


class Model_RooAbsBinning_v2(uproot.model.VersionedModel):
    """RooAbsBinning version 2 (custom streamer): TNamed and RooPrintable."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        self._bases.append(_base(file, "TNamed", chunk, cursor, context, self))
        self._bases.append(_base(file, "RooPrintable", chunk, cursor, context, self))


class Model_RooAbsArg_v9(uproot.model.VersionedModel):
    """RooAbsArg version 9, the base of every RooFit variable and pdf. It registers the
    object it is part of when reading starts (ROOT's order), so pointers back to an
    object still being read resolve to it; its map of string attributes is memberwise."""

    def hook_before_read(self, chunk, cursor, context, file):
        _register_in_progress(self, chunk, cursor, context)

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        if self.is_memberwise:
            raise NotImplementedError(
                f"memberwise serialization of RooAbsArg\nin file {file.file_path}"
            )
        self._bases.append(_base(file, "TNamed", chunk, cursor, context, self, 1))
        self._bases.append(_base(file, "RooPrintable", chunk, cursor, context, self, 1))
        m = self._members
        lists = file.class_named("RooSTLRefCountList<RooAbsArg>")
        for name in ("_serverList", "_clientList", "_clientListShape", "_clientListValue"):
            m[name] = lists.read(chunk, cursor, context, file, self._file, self)
        m["_proxyList"] = file.class_named("RooRefArray").read(
            chunk, cursor, context, file, self._file, self
        )
        m["_boolAttrib"] = _string_set(chunk, cursor, context, file)
        keys, values = _memberwise_map(chunk, cursor, context, file, "map<string,string>", _strings)
        m["_stringAttrib"] = [
            {"$pair": "pair<string,string>", "first": k, "second": v}
            for k, v in zip(keys, values, strict=True)
        ]
        m["_valueDirty"], m["_shapeDirty"] = (
            bool(b) for b in cursor.fields(chunk, _BOOLS2, context)
        )
        m["_operMode"] = cursor.field(chunk, _INT, context)
        m["_fast"] = bool(cursor.field(chunk, _BOOL, context))


class Model_RooRealVarSharedProperties_v2(uproot.model.VersionedModel):
    """RooRealVarSharedProperties version 2: the named ranges of a variable (a memberwise
    ``unordered_map<string,RooAbsBinning*>``)."""

    def read_members(self, chunk, cursor, context, file):
        _refuse_forth(context)
        self._bases.append(_base(file, "RooSharedProperties", chunk, cursor, context, self, 1))

        def binnings(chunk, cursor, context, file, count):
            return [
                read_object_any(chunk, cursor, context, file, self._file, self)
                for _ in range(count)
            ]

        what = "unordered_map<string,RooAbsBinning*>"
        keys, values = _memberwise_map(chunk, cursor, context, file, what, binnings)
        self._members["_altBinning"] = [
            {"$pair": "pair<string,RooAbsBinning*>", "first": k, "second": v}
            for k, v in zip(keys, values, strict=True)
        ]

    @property
    def ranges(self) -> dict[str, Any]:
        """Named binnings (ranges) by name."""
        return {p["first"]: p["second"] for p in self._members["_altBinning"]}


def _register_in_progress(self, chunk, cursor, context) -> None:
    """Put the object this RooAbsArg part belongs to in the cursor's references now.

    Only an object read through a pointer has a reference tag: its bytes start with a
    byte count and either a new class tag and its name or a class reference, which is
    checked before anything is registered."""
    concrete = self._concrete if self._concrete is not None else self
    start = concrete._cursor.index
    name = concrete.classname.encode()
    key = None
    spelled = start - 8 - len(name) - 1  # byte count, kNewClassTag, name, NUL
    if spelled >= chunk.start:
        head = bytes(chunk.get(spelled, start, cursor, context))
        count, tag = struct.unpack(">II", head[:8])
        if count & _BYTE_COUNT and tag == _NEW_CLASS and head[8:] == name + b"\0":
            key = spelled
    if key is None and start - 8 >= chunk.start:
        count, tag = struct.unpack(">II", bytes(chunk.get(start - 8, start, cursor, context)))
        known = cursor.refs.get(tag & ~_CLASS_TAG) if tag & _CLASS_TAG else None
        if (
            count & _BYTE_COUNT
            and tag != _NEW_CLASS
            and known is not None
            and uproot.model.classname_decode(known.__name__)[0] == concrete.classname
        ):
            key = start - 8
    if key is not None:
        cursor.refs.setdefault(key - cursor.origin + _MAP_OFFSET, concrete)


_K_IS_REFERENCED = 1 << 4


def _mark_referenced(root) -> None:
    """Give each referenced TObject (RooFit proxies, which a RooRefArray names by unique
    id) the ``fPID`` member TBufferJSON writes for it: always 0, a JSON buffer has no
    file and so no process id table. uproot reads past the id stored in the file."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, uproot.models.TObject.Model_TObject):
            if int(node._members.get("@fBits", 0)) & _K_IS_REFERENCED:
                node._members.setdefault("fPID", 0)
            continue
        if isinstance(node, uproot.model.Model):
            stack.extend(node._bases)
            stack.extend(node._members.values())
            stack.extend(getattr(node, "_data", ()))  # collections (TList)
        elif isinstance(node, dict | uproot.containers.STLMap):
            stack.extend(node.values())
        elif isinstance(
            node, list | tuple | uproot.containers.STLVector | uproot.containers.STLSet
        ):
            stack.extend(node)


# -- RooPlot for drawing -----------------------------------------------------------


@dataclass(frozen=True)
class RooPlotMember:
    """One object drawn on a RooPlot: a RooHist (a TGraphAsymmErrors to JSROOT), a RooCurve
    (a TGraph), or whatever else was added (a parameter box, a text)."""

    name: str  # the object's fName, made unique within the frame
    classname: str
    option: str  # the draw option the frame stores for it
    json: dict[str, Any]  # ROOT's TBufferJSON of the object alone


def rooplot_members(model, file=None) -> list[RooPlotMember]:
    """The objects drawn on a RooPlot read with :func:`register`'s models, in drawing order.

    ``file`` is the uproot file (``ReadOnlyFile``) it was read from, for the JSON."""
    out: list[RooPlotMember] = []
    taken: set[str] = set()
    for index, (obj, option) in enumerate(model.items):
        if obj is None:
            continue
        name = str(obj.member("fName")) if "fName" in obj.all_members else ""
        name = name or f"item{index}"
        if name in taken:
            name = f"{name}_{index}"
        taken.add(name)
        out.append(RooPlotMember(name, obj.classname, option, to_json(obj, file)))
    return out


def rooplot_for_jsroot(document: dict[str, Any]) -> dict[str, Any]:
    """ROOT's JSON of a RooPlot -> the JSON JSROOT 7 draws.

    ROOT 6.28+ writes RooPlot v3, whose ``_items`` is a list of
    ``{"_typename": "pair<TObject*,string>", "first": object, "second": option}``;
    JSROOT's ``drawRooPlot`` reads ``_items.arr`` and ``_items.opt`` (RooPlot v2's TList).
    The items become a TList; the ``$ref`` numbers are rewritten for the objects that
    moved (JSROOT numbers every object in document order). The input is not changed."""
    copy = json.loads(json.dumps(document))
    items = copy.get("_items")
    if not isinstance(items, list):
        return copy  # already a TList (RooPlot v2) or no items
    before = _numbered(copy)
    copy["_items"] = {
        "_typename": "TList",
        "name": "TList",
        "arr": [item.get("first") for item in items],
        "opt": [item.get("second") or "" for item in items],
    }
    after = {id(node): n for n, node in enumerate(_numbered(copy))}
    renumber = {old: after[id(node)] for old, node in enumerate(before) if id(node) in after}
    _rewrite_refs(copy, renumber)
    return copy


def _is_ref(node: dict) -> bool:
    return len(node) == 1 and "$ref" in node


def _numbered(document: Any) -> list[dict]:
    """The objects of a document in JSROOT's numbering: every JSON object in document
    order except references, ``$pair`` entries and encoded arrays (JSROOT's ``parse``)."""
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if not (_is_ref(node) or "$pair" in node or "$arr" in node):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def _rewrite_refs(node: Any, renumber: dict[int, int]) -> None:
    if isinstance(node, dict):
        if _is_ref(node) and isinstance(node["$ref"], int):
            node["$ref"] = renumber.get(node["$ref"], node["$ref"])
            return
        for value in node.values():
            _rewrite_refs(value, renumber)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, renumber)


# -- registration ----------------------------------------------------------------

_MODELS: dict[str, type] = {
    "TEfficiency": _dispatch(_Dispatch, "TEfficiency", {2: Model_TEfficiency_v2}),
    "RooPlot": _dispatch(_Dispatch, "RooPlot", {3: Model_RooPlot_v3}),
    "RooRealVar": _dispatch(_CustomStreamerDispatch, "RooRealVar", {10: Model_RooRealVar_v10}),
    "RooRefArray": _dispatch(_CustomStreamerDispatch, "RooRefArray", {1: Model_RooRefArray_v1}),
    "RooAbsBinning": _dispatch(
        _CustomStreamerDispatch, "RooAbsBinning", {2: Model_RooAbsBinning_v2}
    ),
    "RooAbsArg": _dispatch(_Dispatch, "RooAbsArg", {9: Model_RooAbsArg_v9}),
    "RooRealVarSharedProperties": _dispatch(
        _Dispatch, "RooRealVarSharedProperties", {2: Model_RooRealVarSharedProperties_v2}
    ),
}


def register() -> None:
    """Install Overwatch's models in uproot's class registry (idempotent)."""
    for classname, model in _MODELS.items():
        if uproot.classes.get(classname) is not model:
            uproot.classes[classname] = model
        model.known_versions.update(model.ours)


def registered() -> bool:
    """Whether every model of this module is the one uproot uses now."""
    return all(
        uproot.classes.get(name) is model
        and all(model.known_versions.get(v) is m for v, m in model.ours.items())
        for name, model in _MODELS.items()
    )

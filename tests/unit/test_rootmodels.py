"""overwatch.rootmodels: TEfficiency and RooPlot read from ROOT 6.40's files, as ROOT writes them.

The RooPlot JSON is compared with references written as the path of the object they
point at (:func:`ref_targets`): ``differences`` follows a ``$ref`` into its target, and a
RooFit graph is full of cycles (a variable lists its pdf as a client, the pdf its
variable as a server), which it would walk again at every turn. ROOT numbers one object
per RooRealVar that it never writes (the variable's default binning, streamed by the
custom streamer between the variable and its shared properties), so every ROOT
reference after one points that many objects further; ROOT's side is numbered with it.
Every other field compares as it is, and nothing is left out.
"""

from __future__ import annotations

import copy
import struct
from typing import Any

import numpy as np
import pytest
import uproot
import uproot.behaviors.TH1
import uproot.source.chunk
import uproot.source.cursor

import overwatch.rootio  # noqa: F401 - importing the readers registers the models
from overwatch import rootmodels
from overwatch.rootjson import to_json
from overwatch.rootmodels import UnsupportedVersion, rooplot_for_jsroot, rooplot_members
from tests.jsroot_node import run_jsroot
from tests.rootjson_support import differences, root_json, snapshot

FILES = (1, 2)


def ref_targets(document: Any, root_binnings: bool = False) -> Any:
    """The document with each ``{"$ref": n}`` as ``{"$ref_to": path of object n}``.

    Objects are numbered as TBufferJSON and JSROOT number them (document order, every
    object with a ``_typename``). ``root_binnings``: number, as ROOT does, the binning of
    each RooRealVar that ROOT streams just before the variable's ``_uuid`` but does not
    write."""
    table: list[str] = []

    def number(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if set(node) == {"$ref"}:
                return
            if "_typename" in node:
                table.append(path)
            for key, value in node.items():
                if root_binnings and node.get("_typename") == "RooRealVar" and key == "_uuid":
                    table.append(f"{path}.<binning, not written>")
                number(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                number(value, f"{path}[{i}]")

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"$ref"}:
                n = node["$ref"]
                return {"$ref_to": table[n] if 0 <= n < len(table) else f"<no object {n}>"}
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rewrite(value) for value in node]
        return node

    number(document, "")
    return rewrite(document)


def _read(n: int, key: str):
    with uproot.open(snapshot(n)) as file:
        return file[key], to_json(file[key], file.file)


# -- reading -----------------------------------------------------------------------


def test_register_is_idempotent_and_done_by_rootio() -> None:
    assert rootmodels.registered()
    rootmodels.register()
    rootmodels.register()
    assert rootmodels.registered()
    assert uproot.classes["TEfficiency"].known_versions[2] is rootmodels.Model_TEfficiency_v2


@pytest.mark.parametrize("n", FILES)
def test_efficiency_reads_with_its_histograms_as_uproot_reads_them(n: int) -> None:
    with uproot.open(snapshot(n)) as file:
        eff = file["effTrigger"]
        passed, total = eff.member("fPassedHistogram"), eff.member("fTotalHistogram")
        assert isinstance(eff, rootmodels.Model_TEfficiency_v2)
        assert eff.member("fName") == "effTrigger"
        for histogram in (passed, total):
            assert isinstance(histogram, uproot.behaviors.TH1.TH1)
            assert histogram.classname == "TH1D"
        roots = root_json(n, "effTrigger")
        assert passed.values(flow=True).tolist() == roots["fPassedHistogram"]["fArray"]
        assert total.values(flow=True).tolist() == roots["fTotalHistogram"]["fArray"]
        assert (passed.values() <= total.values()).all()
        assert eff.beta_bin_params.shape == (0, 2)  # the fixture sets no per-bin priors


@pytest.mark.parametrize("n", FILES)
def test_rooplot_reads_its_frame_items_and_variable(n: int) -> None:
    with uproot.open(snapshot(n)) as file:
        frame = file["rooFrame"]
        assert isinstance(frame, rootmodels.Model_RooPlot_v3)
        assert frame.member("fName") == "massFrame"
        assert frame.member("_hist").classname == "TH1D"
        items = [(obj.classname, obj.member("fName"), option) for obj, option in frame.items]
        assert items == [("RooHist", "h_gaussData", "P"), ("RooCurve", "gauss_Norm[mass]", "L")]
        mass = frame.member("_plotVar")
        assert isinstance(mass, rootmodels.Model_RooRealVar_v10)
        assert (mass.error, mass.asym_error_lo, mass.asym_error_hi) == (-1.0, 1.0, -1.0)
        binning = mass.binning.all_members
        assert (binning["_xlo"], binning["_xhi"], binning["_nbins"]) == (0.0, 10.0, 100)
        hist = frame.items[0][0]
        assert hist.member("fNpoints") == root_json(n, "rooFrame")["_items"][0]["first"]["fNpoints"]


def test_pointers_back_to_objects_being_read_resolve_to_them() -> None:
    """A pdf's proxies point at the pdf (still being read) and at the variable that lists
    the pdf as its client (also still being read): the very objects, not None."""
    frame, _ = _read(1, "rooFrame")
    mass = frame.member("_plotVar")
    (gauss,) = list(mass.member("_clientList").member("_storage"))
    assert gauss.classname == "RooGaussian"
    assert list(gauss.member("_serverList").member("_storage"))[0] is mass
    for proxy in ("x", "mean", "sigma"):
        assert gauss.member(proxy).member("_owner") is gauss
    assert gauss.member("x").member("_arg") is mass
    assert gauss.member("sigma").member("_arg").member("fName") == "sigma"


# -- JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", FILES)
def test_efficiency_json_equals_roots_field_by_field(n: int) -> None:
    _, ours = _read(n, "effTrigger")
    assert differences(ours, root_json(n, "effTrigger"), "effTrigger") == []


@pytest.mark.parametrize("n", FILES)
def test_rooplot_json_equals_roots_field_by_field(n: int) -> None:
    _, ours = _read(n, "rooFrame")
    roots = root_json(n, "rooFrame")
    found = differences(ref_targets(ours), ref_targets(roots, root_binnings=True), "rooFrame")
    assert found == []


def test_roots_rooplot_references_count_binnings_it_never_writes() -> None:
    """Why ROOT's side is numbered with the binnings: without them, ROOT's reference of
    the sigma proxy lands one object before sigma; with them, on sigma, as ours does."""
    _, ours = _read(1, "rooFrame")
    roots = root_json(1, "rooFrame")
    sigma_arg = "._plotVar._clientList._storage[0].sigma._arg"
    path_of_sigma = "._plotVar._clientList._storage[0]._serverList._storage[2]"

    def target(document, **options):
        node = ref_targets(document, **options)
        for part in sigma_arg.strip(".").split("."):
            name, _, index = part.partition("[")
            node = node[name]
            if index:
                node = node[int(index.rstrip("]"))]
        return node["$ref_to"]

    assert target(ours) == path_of_sigma
    assert target(roots, root_binnings=True) == path_of_sigma
    assert target(roots) != path_of_sigma


def test_the_rooplot_comparison_finds_a_changed_field_and_a_wrong_reference() -> None:
    _, ours = _read(1, "rooFrame")
    roots = ref_targets(root_json(1, "rooFrame"), root_binnings=True)
    changed = copy.deepcopy(ours)
    changed["_items"][1]["second"] = "C"
    changed["_plotVar"]["_clientList"]["_storage"][0]["x"]["_arg"] = {"$ref": 0}
    found = differences(ref_targets(changed), roots, "rooFrame")
    assert any(line.startswith("rooFrame._items[1].second") for line in found)
    assert any(".x._arg.$ref_to" in line for line in found)


# -- versions ------------------------------------------------------------------------


def _read_patched(n: int, key: str, marker: bytes | None, version: int):
    """Read ``key`` with the class version after ``marker`` (the object itself when None)
    replaced: a version the models do not decode."""
    with uproot.open(snapshot(n)) as file:
        chunk, cursor = file.key(key).get_uncompressed_chunk_cursor()
        data = bytearray(chunk.get(chunk.start, chunk.stop, cursor, {}).tobytes())
        at = cursor.index - chunk.start
        if marker is not None:
            at = data.index(marker) + len(marker)
        struct.pack_into(">H", data, at + 4, version)  # after the byte count
        patched = uproot.source.chunk.Chunk.wrap(
            chunk.source, np.frombuffer(bytes(data), np.uint8), chunk.start
        )
        start = uproot.source.cursor.Cursor(cursor.index, origin=cursor.origin)
        classname = file.key(key).classname()
        cls = file.file.class_named(classname)
        return cls.read(patched, start, {"breadcrumbs": ()}, file.file, file.file, None)


def test_an_unpatched_read_through_the_same_path_works() -> None:
    frame = _read_patched(1, "rooFrame", None, 3)
    assert isinstance(frame, rootmodels.Model_RooPlot_v3)


@pytest.mark.parametrize(
    ("key", "marker", "version", "error"),
    [
        ("effTrigger", None, 3, NotImplementedError),  # uproot's generated reader refuses
        ("rooFrame", None, 4, uproot.deserialization.DeserializationError),
        ("rooFrame", b"RooRealVar\x00", 11, UnsupportedVersion),  # custom streamer
    ],
)
def test_other_versions_raise_instead_of_a_wrong_decode(key, marker, version, error) -> None:
    with pytest.raises(error):
        _read_patched(1, key, marker, version)
    assert rootmodels.registered()  # our decoders stay in place for their own version


# -- drawing -------------------------------------------------------------------------


def test_rooplot_members_lists_the_drawn_graphs_with_their_json() -> None:
    with uproot.open(snapshot(2)) as file:
        members = rooplot_members(file["rooFrame"], file.file)
    assert [(m.name, m.classname, m.option) for m in members] == [
        ("h_gaussData", "RooHist", "P"),
        ("gauss_Norm[mass]", "RooCurve", "L"),
    ]
    roots = root_json(2, "rooFrame")["_items"]
    for member, item in zip(members, roots, strict=True):
        assert differences(member.json, item["first"], member.name) == []


def test_rooplot_for_jsroot_makes_items_a_tlist_and_keeps_references() -> None:
    roots = root_json(1, "rooFrame")
    converted = rooplot_for_jsroot(roots)
    assert isinstance(roots["_items"], list)  # the input is not changed
    items = converted["_items"]
    assert items["_typename"] == "TList"
    assert [obj["_typename"] for obj in items["arr"]] == ["RooHist", "RooCurve"]
    assert items["opt"] == ["P", "L"]
    # two pair objects became one list: references after them move back by one
    before = roots["_plotVar"]["_clientList"]["_storage"][0]["x"]["_owner"]["$ref"]
    after = converted["_plotVar"]["_clientList"]["_storage"][0]["x"]["_owner"]["$ref"]
    assert after == before - 1
    assert rooplot_for_jsroot(converted) == converted  # a TList is left as it is


def test_jsroot_draws_the_converted_rooplot_and_each_member() -> None:
    _, ours = _read(1, "rooFrame")
    converted = rooplot_for_jsroot(ours)
    bare = copy.deepcopy(converted)
    bare["_items"]["arr"], bare["_items"]["opt"] = [], []
    first_only = copy.deepcopy(converted)
    del first_only["_items"]["arr"][1:], first_only["_items"]["opt"][1:]
    with uproot.open(snapshot(1)) as file:
        members = rooplot_members(file["rooFrame"], file.file)
    results = run_jsroot(
        [
            ("roots", root_json(1, "rooFrame"), ""),
            ("frame", converted, ""),
            ("axes only", bare, ""),
            ("first item", first_only, ""),
        ]
        + [(m.name, m.json, m.option) for m in members]
    )
    raw, drawn, axes, first, *alone = results
    # ROOT's own JSON (a vector of pairs) is what JSROOT 7.11 cannot draw
    assert raw["error"] is not None and "reading 'length'" in raw["error"]
    for result in (drawn, axes, first, *alone):
        assert result["error"] is None, result["error"]
        assert result["has_svg"]
    assert {"Mass fit", "Counts", "m (GeV/c"} <= set(drawn["svg_texts"])
    # the frame's painter draws the axes; each member adds its drawing
    assert axes["svg_length"] < first["svg_length"] < drawn["svg_length"]
    assert [r["typename"] for r in alone] == ["RooHist", "RooCurve"]

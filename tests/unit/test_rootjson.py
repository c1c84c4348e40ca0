"""overwatch.rootjson: every object uproot reads gives ROOT's own JSON, field by field."""

from __future__ import annotations

import pytest
import uproot

import overwatch.rootio  # noqa: F401 - registers the models of overwatch.rootmodels
from overwatch.rootjson import to_json
from tests.rootjson_support import differences, index, root_json, snapshot
from tests.unit.test_rootmodels import ref_targets

#: Classes uproot 5.7 cannot read itself: overwatch.rootmodels reads them.
UPROOT_CANNOT = {"TEfficiency", "RooPlot"}
#: Object graphs with cycles (RooFit): references compare by the object they point at
#: (see tests/unit/test_rootmodels.py), not by walking into them again.
CYCLIC = {"RooPlot"}


def _keys() -> list[tuple[int, str]]:
    return [(n, key) for n in (1, 2) for key, info in index(n).items() if info["json"]]


@pytest.mark.parametrize(("n", "key"), _keys(), ids=lambda v: str(v))
def test_json_equals_roots_field_by_field(n: int, key: str) -> None:
    with uproot.open(snapshot(n)) as file:
        ours = to_json(file[key], file.file)
    roots = root_json(n, key)
    if index(n)[key]["class"] in CYCLIC:
        ours, roots = ref_targets(ours), ref_targets(roots, root_binnings=True)
    assert differences(ours, roots, key) == []


def test_classes_uproot_cannot_read_are_compared() -> None:
    compared = {index(n)[key]["class"] for n, key in _keys()}
    assert UPROOT_CANNOT <= compared


def test_the_comparison_finds_a_changed_field() -> None:
    """The check itself must fail on a difference: a moved axis range and a lost colour."""
    with uproot.open(snapshot(1)) as file:
        ours = to_json(file["hEnergy"], file.file)
    ours["fXaxis"]["fLast"] += 1
    del ours["fFillColor"]
    found = differences(ours, root_json(1, "hEnergy"), "hEnergy")
    assert any("fXaxis.fLast" in line for line in found)
    assert any("fFillColor: missing" in line for line in found)


def test_every_fixture_class_is_covered() -> None:
    classes = {info["class"] for info in index(1).values() if info["json"]}
    expected = {"TH1F", "TH1D", "TH1I", "TH2F", "TH2D", "TH3F", "TProfile", "TProfile2D",
                "TGraph", "TGraphErrors", "TGraphAsymmErrors", "TGraph2D", "TMultiGraph",
                "TEfficiency", "TH2Poly", "THStack", "TF1", "TF2", "RooPlot"}  # fmt: skip
    assert expected <= classes

"""overwatch.rootjson: every object uproot reads gives ROOT's own JSON, field by field."""

from __future__ import annotations

import pytest
import uproot

from overwatch.rootjson import to_json
from tests.rootjson_support import differences, index, root_json, snapshot

#: Classes uproot cannot read at all (its own limits); they need our own models.
UPROOT_CANNOT = {"TEfficiency", "RooPlot"}


def _keys() -> list[tuple[int, str]]:
    return [
        (n, key)
        for n in (1, 2)
        for key, info in index(n).items()
        if info["json"] and info["class"] not in UPROOT_CANNOT
    ]


@pytest.mark.parametrize(("n", "key"), _keys(), ids=lambda v: str(v))
def test_json_equals_roots_field_by_field(n: int, key: str) -> None:
    with uproot.open(snapshot(n)) as file:
        ours = to_json(file[key], file.file)
    assert differences(ours, root_json(n, key), key) == []


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

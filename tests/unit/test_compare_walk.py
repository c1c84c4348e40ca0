"""Walking two files: blacklist, directory, pairing, listing errors."""

from __future__ import annotations

import pytest

from processing.compare.walk import (
    BlacklistEntry,
    WalkError,
    check_directory,
    chunks,
    directories_of,
    is_blacklisted,
    list_objects,
    pair_objects,
    parse_blacklist,
)
from processing.ingest.rootfile import Key


def listing(**classes: str) -> dict[str, Key]:
    keys = (Key(path.replace("__", "/"), c, 1, 0, 0, 0, 0, -1) for path, c in classes.items())
    return {key.path: key for key in keys}


def test_parse_blacklist():
    assert parse_blacklist("HLT@1, Tracking@-1,Run__summary@2") == [
        BlacklistEntry("HLT", 1),
        BlacklistEntry("Tracking", -1),
        BlacklistEntry("Run summary", 2),
    ]
    assert parse_blacklist("") == [] and parse_blacklist(None) == []


@pytest.mark.parametrize(
    "text", ["HLT", "HLT@", "@1", "HLT@one", "HLT@0", "HLT@-2", "a/b@1", "HLT@1,,X@2"]
)
def test_malformed_blacklist(text):
    with pytest.raises(WalkError, match="blacklist entry"):
        parse_blacklist(text)


def test_blacklist_depth_is_relative_to_the_compared_directory():
    entries = parse_blacklist("HLT@1,Noisy*@-1")
    assert is_blacklisted("HLT/h", entries)
    assert not is_blacklisted("EMC/HLT/h", entries)  # HLT at depth 2
    assert is_blacklisted("EMC/NoisyCells/deep/h", entries)  # any depth, wildcard
    assert not is_blacklisted("HLT", entries)  # a histogram called HLT, not a directory
    assert is_blacklisted("EMC/HLT/h", entries, root="EMC")  # depth 1 below -d EMC


def test_pairing():
    test = listing(
        a__h1="TH1F", a__h2="TH1D", a__only_test="TH2F", tree="TTree", poly="TH2Poly", b__x="TH1D"
    )
    reference = listing(
        a__h1="TH1D",
        a__h2="TProfile",
        a__only_ref="TH1F",
        tree="TTree",
        poly="TH2Poly",
        b__x="TTree",
    )
    pairing = pair_objects(test, reference)
    assert pairing.common == ["a/h1", "a/h2"]
    assert pairing.only_test == ["a/only_test"]
    assert pairing.only_reference == ["a/only_ref"]
    assert pairing.mismatched == {"b/x": ("TH1D", "TTree"), "poly": ("TH2Poly", "TH2Poly")}
    assert pairing.ignored == 1  # the tree in both
    under = pair_objects(test, reference, root="b", blacklist=parse_blacklist("a@1"))
    assert (under.common, under.mismatched, under.blacklisted) == (
        [],
        {"b/x": ("TH1D", "TTree")},
        0,
    )
    skipped = pair_objects(test, reference, blacklist=parse_blacklist("a@1"))
    assert skipped.blacklisted == 4 and not skipped.common


def test_directory_must_exist():
    objects = listing(EMC__SM0__h="TH1F")
    check_directory(objects, "EMC/SM0", "test.root")
    with pytest.raises(WalkError, match="test.root: no directory 'EMC/SM1'"):
        check_directory(objects, "EMC/SM1", "test.root")
    with pytest.raises(WalkError):
        check_directory(objects, "EM", "test.root")  # a prefix is not a directory


def test_chunks_and_directories():
    paths = [f"p{i}" for i in range(7)]
    split = chunks(paths, 3)
    assert sorted(sum(split, [])) == paths and [len(c) for c in split] == [3, 2, 2]
    assert chunks([], 2) == [] and chunks(paths[:1], 4) == [["p0"]]
    assert directories_of(["a/b/h", "a/h", "h"]) == ["", "a", "a/b"]


def test_listing_errors(tmp_path):
    with pytest.raises(WalkError, match="no such file"):
        list_objects(tmp_path / "missing.root")
    text = tmp_path / "notes.root"
    text.write_text("not a ROOT file at all\n")
    with pytest.raises(WalkError, match="not a (readable )?ROOT file"):
        list_objects(text)
    with pytest.raises(WalkError, match="is a directory"):
        list_objects(tmp_path)

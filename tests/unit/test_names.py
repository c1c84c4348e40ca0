"""overwatch.names: the one rule for subsystem, run and snapshot-file names."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from overwatch import names
from overwatch.names import InvalidName


@pytest.mark.parametrize("name", ["EMC", "TPC", "HLT", "A", "emc2", "X" * 32, "0"])
def test_accepted_subsystems(name: str) -> None:
    assert names.is_subsystem(name)
    assert names.check_subsystem(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "X" * 33, "EM C", "../EMC", "EMC/x", "EMC.x", "EMC-A", "EMC_A", "ÉMC", "EMC\n", "EMC\x00"],
)
def test_refused_subsystems_say_what_is_expected(name: str) -> None:
    assert not names.is_subsystem(name)
    with pytest.raises(InvalidName, match=r"invalid subsystem .*: expected 1-32 ASCII letters"):
        names.check_subsystem(name)


@pytest.mark.parametrize("value", [None, 7, b"EMC", ["EMC"]])
def test_non_strings_are_no_subsystems(value: object) -> None:
    assert not names.is_subsystem(value)
    with pytest.raises(InvalidName, match="invalid subsystem"):
        names.check_subsystem(value)


def test_invalid_name_is_a_value_error() -> None:
    assert issubclass(InvalidName, ValueError)


def test_runs() -> None:
    assert names.check_run(1) == 1
    assert names.check_run(names.MAX_RUN) == 2**31 - 1
    assert names.check_run(np.int64(7)) == 7 and type(names.check_run(np.int64(7))) is int
    for bad in (0, -1, names.MAX_RUN + 1, True, 1.0, "12", None):
        assert not names.is_run(bad)
        with pytest.raises(InvalidName, match=r"invalid run number .*: expected an integer from 1"):
            names.check_run(bad)


def test_parse_run_from_text() -> None:
    assert names.parse_run("245000") == 245000
    for bad in ("", "-1", "1.5", "²", "12a", " 12", "99999999999", "2147483648"):
        with pytest.raises(InvalidName, match="invalid run number"):
            names.parse_run(bad)


def test_run_directories_convert_both_ways() -> None:
    assert names.run_dir(245000) == "Run245000"
    assert names.parse_run_dir("Run245000") == 245000
    assert names.parse_run_dir("Run0") is None  # run 0 means "no run": never a directory
    for other in ("Run", "run1", "Run-1", "Run007", "Run1x", "Run1\n", "Run١", "Run99999999999"):
        assert names.parse_run_dir(other) is None, other
    with pytest.raises(InvalidName):
        names.run_dir(-1)


def test_snapshot_file_names() -> None:
    assert names.snapshot_file("EMC", "2026_11_22_02_21_53") == "EMChists.2026_11_22_02_21_53.root"
    assert (
        names.snapshot_relpath(3, "EMC", "2026_11_22_02_21_53")
        == "Run3/EMC/EMChists.2026_11_22_02_21_53.root"
    )
    with pytest.raises(InvalidName, match="invalid snapshot time"):
        names.snapshot_file("EMC", "2026_1_22_02_21_53")
    with pytest.raises(InvalidName, match="invalid subsystem"):
        names.snapshot_file("E/MC", "2026_11_22_02_21_53")
    match = names.check_snapshot_file("TPChists.2015_01_02_03_04_05.root")
    assert match["subsystem"] == "TPC"
    assert [int(match[f]) for f in names.TIME_FIELDS] == [2015, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "name",
    [
        "EMChists.2015_11_24_18_05_10.txt",
        "EMChists.2015_1_24_18_05_10.root",
        "hists.2015_11_24_18_05_10.root",
        "EMC hists.2015_11_24_18_05_10.root",
        "EMChists.2015_11_24_18_05_10.root\n",
        ".EMChists.2015_11_24_18_05_10.root.1.2.tmp",
    ],
)
def test_refused_snapshot_file_names(name: str) -> None:
    assert not names.is_snapshot_file(name)
    with pytest.raises(InvalidName, match="is not a snapshot file name: expected '<SYS>hists"):
        names.check_snapshot_file(name)


def test_snapshot_file_of_a_subsystem() -> None:
    assert names.is_snapshot_file("EMChists.2015_11_24_18_05_10.root", "EMC")
    assert not names.is_snapshot_file("EMChists.2015_11_24_18_05_10.root", "TPC")


def test_both_forms_for_archived_data() -> None:
    form, match = names.match_snapshot_name("EMChistos_123456_B_2015_3_14_2_3_5.root")
    assert form is names.FileForm.RECEIVER
    assert (match["subsystem"], match["run"], match["mode"]) == ("EMC", "123456", "B")
    form, match = names.match_snapshot_name("EMChists.2015_11_24_18_05_10.root")
    assert form is names.FileForm.OVERWATCH and match["subsystem"] == "EMC"
    with pytest.raises(InvalidName, match="old receiver"):
        names.match_snapshot_name("EMChistos_123456_2015_3_14_2_3_5.root")
    assert (
        names.receiver_snapshot_file("EMC", 1, "B", "2015_3_14_2_3_5")
        == "EMChistos_1_B_2015_3_14_2_3_5.root"
    )
    with pytest.raises(InvalidName, match="invalid mode"):
        names.receiver_snapshot_file("EMC", 1, "", "2015_3_14_2_3_5")


def test_split_snapshot_relpath() -> None:
    assert names.split_snapshot_relpath("Run5/HLT/HLThists.2026_01_01_00_00_00.root") == (
        5,
        "HLT",
        "HLThists.2026_01_01_00_00_00.root",
    )
    for other in (
        "Run5/TPC/HLThists.2026_01_01_00_00_00.root",  # directory and file disagree
        "Run05/HLT/HLThists.2026_01_01_00_00_00.root",
        "x/Run5/HLT/HLThists.2026_01_01_00_00_00.root",
        "Run5/HLT/notes.txt",
        "Run5/HLT",
    ):
        assert names.split_snapshot_relpath(other) is None, other


def test_core_modules_import_no_other_package_and_no_sockets() -> None:
    code = (
        "import sys; import overwatch.names, overwatch.notices, overwatch.lru, "
        "overwatch.store.layout, overwatch.timestamps; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'processing', 'receivers', 'webapp', 'zmq', 'flask', 'apscheduler'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

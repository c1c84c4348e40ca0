"""Snapshot names <-> instants: three name forms, both DST transitions, run-relative time."""

from __future__ import annotations

import datetime as dt
import logging

import pendulum
import pytest

from overwatch.timestamps import (
    NameForm,
    SnapshotName,
    from_unix,
    instant_at,
    minutes_since,
    parse_sequence,
    parse_snapshot_filename,
    snapshot_filename,
    snapshot_relpath,
    to_unix,
)


def utc(*fields: int) -> pendulum.DateTime:
    return pendulum.datetime(*fields, tz="UTC")


def archived(wall: str) -> str:
    """Overwatch-form name for a Zurich wall time 'YYYY_MM_DD_HH_MM_SS'."""
    return f"EMChists.{wall}.root"


# --------------------------------------------------------------------------- new names


def test_snapshot_filename_is_zero_padded_utc() -> None:
    assert (
        snapshot_filename("EMC", utc(2026, 11, 22, 2, 21, 53))
        == "EMChists.2026_11_22_02_21_53.root"
    )
    assert snapshot_filename("TPC", utc(2015, 3, 4, 5, 6, 7)) == "TPChists.2015_03_04_05_06_07.root"


def test_snapshot_filename_converts_to_utc_and_drops_subseconds() -> None:
    zurich = pendulum.datetime(2026, 7, 1, 14, 0, 5, 999_999, tz="Europe/Zurich")
    assert snapshot_filename("EMC", zurich) == "EMChists.2026_07_01_12_00_05.root"
    stdlib = dt.datetime(2026, 7, 1, 12, 0, 5, tzinfo=dt.UTC)
    assert snapshot_filename("EMC", stdlib) == "EMChists.2026_07_01_12_00_05.root"


def test_snapshot_relpath_follows_the_layout() -> None:
    instant = utc(2026, 11, 22, 2, 21, 53)
    assert (
        snapshot_relpath(123456, "EMC", instant)
        == "Run123456/EMC/EMChists.2026_11_22_02_21_53.root"
    )


@pytest.mark.parametrize("subsystem", ["", "EM C", "../EMC", "EMC/x", "ÉMC"])
def test_snapshot_filename_rejects_unsafe_subsystems(subsystem: str) -> None:
    with pytest.raises(ValueError, match="invalid subsystem"):
        snapshot_filename(subsystem, utc(2026, 1, 1))


@pytest.mark.parametrize("run", [-1, True, "12", 1.5])
def test_snapshot_relpath_rejects_bad_runs(run: object) -> None:
    with pytest.raises(ValueError, match="invalid run number"):
        snapshot_relpath(run, "EMC", utc(2026, 1, 1))  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2026, 1, 1, 12, 0, 0)
    with pytest.raises(ValueError, match="naive datetime"):
        snapshot_filename("EMC", naive)
    with pytest.raises(ValueError, match="naive datetime"):
        to_unix(naive)
    with pytest.raises(ValueError, match="naive datetime"):
        minutes_since(naive, utc(2026, 1, 1))


# --------------------------------------------------------------------------- parsing


def test_parse_new_name_is_utc() -> None:
    name = parse_snapshot_filename("EMChists.2015_11_24_18_05_10.root")
    assert name == SnapshotName("EMC", utc(2015, 11, 24, 18, 5, 10), form=NameForm.OVERWATCH)
    assert name.instant.timezone_name == "UTC"
    assert parse_snapshot_filename("EMChists.2015_11_24_18_05_10.root", archived=False) == name


def test_parse_archived_name_is_zurich_local_time() -> None:
    winter = parse_snapshot_filename("EMChists.2015_11_24_18_05_10.root", archived=True)
    assert winter.instant == utc(2015, 11, 24, 17, 5, 10)  # CET, UTC+1
    assert winter.form is NameForm.ARCHIVED
    assert winter.instant.timezone_name == "UTC"
    summer = parse_snapshot_filename("TPChists.2015_07_01_12_00_00.root", archived=True)
    assert summer.instant == utc(2015, 7, 1, 10, 0, 0)  # CEST, UTC+2
    assert summer.subsystem == "TPC"


def test_parse_old_receiver_name() -> None:
    name = parse_snapshot_filename("EMChistos_123456_B_2015_3_14_2_3_5.root")
    assert name.subsystem == "EMC"
    assert name.run == 123456
    assert name.mode == "B"
    assert name.form is NameForm.RECEIVER
    assert name.instant == utc(2015, 3, 14, 1, 3, 5)  # Zurich, CET


def test_old_receiver_name_is_zurich_whatever_archived_says() -> None:
    name = "HLThistos_245000_A_2015_12_1_23_59_59.root"
    expected = utc(2015, 12, 1, 22, 59, 59)
    for flag in (None, False, True):
        assert parse_snapshot_filename(name, archived=flag).instant == expected


def test_old_receiver_name_accepts_padded_fields() -> None:
    name = parse_snapshot_filename("EMChistos_1_C_2015_03_14_02_03_05.root")
    assert (name.run, name.mode, name.instant) == (1, "C", utc(2015, 3, 14, 1, 3, 5))


def test_parse_path_takes_run_from_directories() -> None:
    name = parse_snapshot_filename("data/Run245000/EMC/EMChists.2015_11_24_18_05_10.root")
    assert name.run == 245000
    assert name.subsystem == "EMC"
    mismatched = parse_snapshot_filename("Run245000/TPC/EMChists.2015_11_24_18_05_10.root")
    assert mismatched.run is None  # the directory is not this subsystem's


@pytest.mark.parametrize(
    "name",
    [
        "",
        "EMChists.2015_11_24_18_05_10.txt",
        "EMChists.2015_11_24_18_05.root",
        "EMChists.2015_1_24_18_05_10.root",  # the Overwatch form is always zero-padded
        "hists.2015_11_24_18_05_10.root",
        "EMC hists.2015_11_24_18_05_10.root",
        "EMChists.combined.2015_11_24_18_05_10.root",
        "EMChistos_123456_2015_3_14_2_3_5.root",  # no mode
        "EMChistos_x_B_2015_3_14_2_3_5.root",
        "README.md",
    ],
)
def test_invalid_names_raise_clear_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="is not a snapshot file name: expected"):
        parse_snapshot_filename(name)


@pytest.mark.parametrize(
    "name",
    [
        "EMChists.2015_13_24_18_05_10.root",
        "EMChists.2015_02_30_18_05_10.root",
        "EMChists.2015_11_24_24_05_10.root",
        "EMChistos_1_B_2015_3_14_2_60_5.root",
    ],
)
def test_impossible_dates_raise_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid date"):
        parse_snapshot_filename(name)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "name",
    [
        "EMChists.2026_11_22_02_21_53.root",
        "TPChists.2015_01_01_00_00_00.root",
        "HLThists.2023_10_29_02_30_00.root",
    ],
)
def test_round_trip_new_names(name: str) -> None:
    parsed = parse_snapshot_filename(name)
    assert parsed.format() == name
    assert snapshot_filename(parsed.subsystem, parsed.instant) == name


@pytest.mark.parametrize(
    "name",
    [
        "EMChists.2015_11_24_18_05_10.root",
        "EMChists.2015_07_01_12_00_00.root",
        "EMChists.2015_10_25_02_30_00.root",  # ambiguous: first occurrence formats back
    ],
)
def test_round_trip_archived_names(name: str) -> None:
    assert parse_snapshot_filename(name, archived=True).format() == name


@pytest.mark.parametrize(
    "name",
    ["EMChistos_123456_B_2015_3_14_2_3_5.root", "TPChistos_7_A_2015_12_31_23_59_0.root"],
)
def test_round_trip_old_receiver_names(name: str) -> None:
    assert parse_snapshot_filename(name).format() == name


def test_format_old_receiver_needs_run_and_mode() -> None:
    with pytest.raises(ValueError, match="needs both run and mode"):
        SnapshotName("EMC", utc(2015, 1, 1), form=NameForm.RECEIVER).format()


# --------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        # Autumn: 02:00-02:59 happens twice; a single name takes the earlier (CEST, UTC+2).
        ("2015_10_25_02_30_00", utc(2015, 10, 25, 0, 30, 0)),
        ("2023_10_29_02_00_00", utc(2023, 10, 29, 0, 0, 0)),
        ("2023_10_29_02_59_59", utc(2023, 10, 29, 0, 59, 59)),
        ("2015_10_25_01_59_59", utc(2015, 10, 24, 23, 59, 59)),  # before: CEST
        ("2015_10_25_03_00_00", utc(2015, 10, 25, 2, 0, 0)),  # after: CET
        # Spring: 02:00-02:59 does not exist; shifted forward (02:30 reads as 03:30 CEST).
        ("2015_03_29_02_30_00", utc(2015, 3, 29, 1, 30, 0)),
        ("2023_03_26_02_00_00", utc(2023, 3, 26, 1, 0, 0)),
        ("2023_03_26_01_59_59", utc(2023, 3, 26, 0, 59, 59)),  # before: CET
        ("2023_03_26_03_00_00", utc(2023, 3, 26, 1, 0, 0)),  # after: CEST
    ],
)
def test_dst_transitions_in_archived_names(wall: str, expected: pendulum.DateTime) -> None:
    assert parse_snapshot_filename(archived(wall), archived=True).instant == expected


def test_dst_in_old_receiver_names() -> None:
    autumn = parse_snapshot_filename("EMChistos_1_B_2015_10_25_2_30_0.root")
    spring = parse_snapshot_filename("EMChistos_1_B_2015_3_29_2_30_0.root")
    assert autumn.instant == utc(2015, 10, 25, 0, 30, 0)
    assert spring.instant == utc(2015, 3, 29, 1, 30, 0)


def test_new_names_have_no_dst_ambiguity() -> None:
    assert parse_snapshot_filename(archived("2015_10_25_02_30_00")).instant == utc(
        2015, 10, 25, 2, 30
    )


def test_sequence_across_repeated_hour_is_monotonic() -> None:
    walls = [
        "2015_10_25_01_50_00",
        "2015_10_25_02_20_00",  # first pass, CEST
        "2015_10_25_02_50_00",
        "2015_10_25_02_10_00",  # clocks went back: second pass, CET
        "2015_10_25_02_40_00",
        "2015_10_25_03_05_00",
    ]
    instants = [
        name.instant for name in parse_sequence([archived(w) for w in walls], archived=True)
    ]
    assert instants == [
        utc(2015, 10, 24, 23, 50),
        utc(2015, 10, 25, 0, 20),
        utc(2015, 10, 25, 0, 50),
        utc(2015, 10, 25, 1, 10),
        utc(2015, 10, 25, 1, 40),
        utc(2015, 10, 25, 2, 5),
    ]
    assert instants == sorted(instants)


def test_sequence_of_old_receiver_names_2023() -> None:
    names = [
        "EMChistos_9_B_2023_10_29_2_45_0.root",
        "EMChistos_9_B_2023_10_29_2_5_0.root",  # second pass
        "EMChistos_9_B_2023_10_29_2_15_0.root",
    ]
    parsed = parse_sequence(names)
    assert [name.instant for name in parsed] == [
        utc(2023, 10, 29, 0, 45),
        utc(2023, 10, 29, 1, 5),
        utc(2023, 10, 29, 1, 15),
    ]
    assert all(name.run == 9 for name in parsed)


def test_sequence_without_dst_keeps_parsed_instants() -> None:
    names = ["EMChists.2015_11_24_18_05_10.root", "EMChists.2015_11_24_18_06_10.root"]
    assert [n.instant for n in parse_sequence(names, archived=False)] == [
        utc(2015, 11, 24, 18, 5, 10),
        utc(2015, 11, 24, 18, 6, 10),
    ]
    assert parse_sequence([], archived=True) == []


def test_sequence_out_of_order_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    names = [archived("2015_11_24_18_06_10"), archived("2015_11_24_18_05_10")]
    with caplog.at_level(logging.WARNING, logger="overwatch.timestamps"):
        parsed = parse_sequence(names, archived=True)
    assert [n.instant for n in parsed] == [
        utc(2015, 11, 24, 17, 6, 10),
        utc(2015, 11, 24, 17, 5, 10),
    ]
    assert "earlier than its predecessor" in caplog.text


# --------------------------------------------------------------------------- run-relative and unix


def test_minutes_since_and_instant_at_are_inverse() -> None:
    start = utc(2015, 10, 25, 0, 0, 0)
    later = pendulum.datetime(2015, 10, 25, 2, 30, 0, tz="Europe/Zurich", fold=1)  # 01:30 UTC
    assert minutes_since(start, later) == 90.0
    assert minutes_since(later, start) == -90.0
    # PEP 495: an ambiguous (fold=1) time never compares equal across zones; compare in UTC.
    assert instant_at(start, 90.0) == later.in_tz("UTC") == utc(2015, 10, 25, 1, 30)
    assert instant_at(start, 0.5) == utc(2015, 10, 25, 0, 0, 30)
    assert instant_at(start, 90.0).timezone_name == "UTC"


def test_unix_round_trip() -> None:
    instant = utc(2026, 11, 22, 2, 21, 53)
    assert to_unix(instant) == 1795314113.0
    assert from_unix(1795314113.0) == instant
    assert from_unix(1.5) == utc(1970, 1, 1, 0, 0, 1).add(microseconds=500_000)
    assert from_unix(1.5).timezone_name == "UTC"
    assert to_unix(from_unix(1448388310.25)) == 1448388310.25

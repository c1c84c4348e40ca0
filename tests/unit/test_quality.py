"""Qualities and their roll-up: worst of, Null ignored unless everything is Null."""

from __future__ import annotations

import pytest

from overwatch.quality import Quality, best, overall, roll_up, worst

G, M, B, N = Quality.GOOD, Quality.MEDIUM, Quality.BAD, Quality.NULL


@pytest.mark.parametrize(
    ("qualities", "expected"),
    [
        ([G, M, B], B),
        ([G, M], M),
        ([G, G], G),
        ([N, G], G),
        ([N, M, N], M),
        ([B, N], B),
        ([N, N], N),
        ([], N),
    ],
)
def test_worst_ignores_null_unless_all_null(qualities: list[Quality], expected: Quality) -> None:
    assert worst(qualities) is expected
    assert worst(reversed(qualities)) is expected


@pytest.mark.parametrize(
    ("qualities", "expected"),
    [([B, M, G], G), ([B, M], M), ([N, B], B), ([N, N], N), ([], N), ([B, N, M], M)],
)
def test_best_ignores_null_unless_all_null(qualities: list[Quality], expected: Quality) -> None:
    assert best(qualities) is expected


def test_roll_up_per_group_and_overall() -> None:
    groups = roll_up(
        [("EMCal", G), ("EMCal", B), ("Trigger", N), ("Trigger", M), ("Other", N), ("EMCal", N)]
    )
    assert groups == {"EMCal": B, "Trigger": M, "Other": N}
    assert overall(groups) is B
    assert overall({"a": N, "b": N}) is N
    assert overall({"a": N, "b": G}) is G


def test_parse_accepts_any_case_and_rejects_unknown_names() -> None:
    assert Quality.parse("bad") is B
    assert Quality.parse(" Medium ") is M
    assert Quality.parse("NULL") is N
    assert Quality.parse(G) is G
    with pytest.raises(ValueError, match="Good, Medium, Bad, Null"):
        Quality.parse("terrible")
    with pytest.raises(ValueError):
        Quality.parse(3)  # type: ignore[arg-type]


def test_str_is_the_stored_name_and_there_is_no_accidental_ordering() -> None:
    assert str(B) == "Bad" and B.value == "Bad"
    assert [q.severity for q in (N, G, M, B)] == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        max([G, B])  # type: ignore[type-var]

"""The quality a check gives its target, and how qualities roll up.

Four qualities, as in ALICE QualityControl: ``Good``, ``Medium``, ``Bad`` and
``Null``. ``Null`` means "cannot tell" (no data, too few points), not "fine"
and not "broken", so a roll-up ignores it: the quality of a group or a
subsystem is the worst of its non-Null qualities, and Null only when every
quality is Null (or there is none).

Qualities deliberately have no ``<`` ordering: Null has no place on the
Good..Bad scale, and an accidental ``max()`` must fail rather than silently
pick Null. Use :func:`worst`, :func:`best` or :attr:`Quality.severity`.
Store and send ``quality.value`` (the plain name, e.g. "Bad").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum


class Quality(Enum):
    """Outcome of a check."""

    GOOD = "Good"
    MEDIUM = "Medium"
    BAD = "Bad"
    NULL = "Null"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """0 for Null, then 1 Good, 2 Medium, 3 Bad."""
        return _SEVERITY[self]

    @classmethod
    def parse(cls, text: str | Quality) -> Quality:
        """A quality from its name, case-insensitive ("bad", "Bad", "BAD")."""
        if isinstance(text, Quality):
            return text
        if isinstance(text, str):
            found = _BY_NAME.get(text.strip().lower())
            if found is not None:
                return found
        names = ", ".join(q.value for q in cls)
        raise ValueError(f"{text!r} is not a quality (expected one of {names})")


_SEVERITY = {Quality.NULL: 0, Quality.GOOD: 1, Quality.MEDIUM: 2, Quality.BAD: 3}
_BY_NAME = {q.value.lower(): q for q in Quality}


def worst(qualities: Iterable[Quality]) -> Quality:
    """The worst non-Null quality; Null if all are Null or there are none."""
    result = Quality.NULL
    for quality in qualities:
        if quality is Quality.BAD:
            return quality  # nothing is worse
        if quality.severity > result.severity:
            result = quality
    return result


def best(qualities: Iterable[Quality]) -> Quality:
    """The best non-Null quality; Null if all are Null or there are none."""
    result = Quality.NULL
    for quality in qualities:
        if quality is Quality.NULL:
            continue
        if quality is Quality.GOOD:
            return quality
        if result is Quality.NULL or quality.severity < result.severity:
            result = quality
    return result


def roll_up(items: Iterable[tuple[str, Quality]]) -> dict[str, Quality]:
    """Worst quality per key (e.g. per group) of ``(key, quality)`` pairs."""
    result: dict[str, Quality] = {}
    for key, quality in items:
        current = result.get(key)
        if current is None or quality.severity > current.severity:
            result[key] = quality
    return result


def overall(per_key: Mapping[str, Quality]) -> Quality:
    """Worst of already rolled-up qualities (e.g. groups -> subsystem)."""
    return worst(per_key.values())

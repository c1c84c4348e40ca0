"""JSROOT draw options: checking a user's option and merging it with the plugin's.

What was decided (issue 18):

- A user's option is **merged** with the detector plugin's, never put in its place:
  its axis keywords (``logx``, ``gridy``, ...) are added to the plugin's, and its
  style (any other keyword: ``box``, ``e``, ``hist``...) replaces the plugin's style
  only when it gives one. So ``logy`` on an η–φ map keeps ``colz`` (the palette),
  ``box`` on it replaces ``colz``. ``linx``/``liny``/``linz`` (ours, not JSROOT's)
  take a plugin's log axis away.
- Where the option comes from (the URL form, decided in ``webapp/pages.py``):
  ``opt.<path>=...`` is that histogram's option (also a layout item's
  ``draw_option``); ``opt=...`` is merged into every **1D** histogram and stack of
  the page, because ``logy`` or ``hist`` mean something else on a map (a log φ
  axis, no palette). A histogram with its own ``opt.<path>`` ignores ``opt=``.
- An option is checked against JSROOT's grammar before anything is drawn:
  :data:`KEYWORDS` are the words the vendored JSROOT's painters look for
  (``tests/unit/test_draw_options.py`` reads them out of
  ``webapp/static/jsroot/modules`` so an upgrade that changes them fails there).
  Each token (split at spaces, ``;`` and ``,``) must split into keywords, each
  optionally followed by a number (``text45``, ``e1``, ``pal57``), with at most two
  one-letter keywords in a row: JSROOT reads ``foo`` as F, O, O and draws nothing
  useful, so such words are refused. A refused option is named next to the plot,
  and the plot keeps the plugin's option.
- A 3D histogram compared with a reference is drawn as its x, y and z projections
  (webapp/reference.py); each keeps the plugin's log axes (:func:`projection_option`): the
  projection on an axis the 3D's option draws log is log in x, and where the plugin
  derives that projection itself (TPC's ``<path>_px``) its log axes are used too, so the
  comparison looks like the plugin's own drawing of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

#: The keywords JSROOT 7's histogram, graph, stack and pad painters check for (upper case).
KEYWORDS = frozenset(
    """
    0 1 2 3 3D 4 5 9 A AITOFF ALLBINS ALLFUNC ARR AUTOCOL AUTOZOOM AXIG AXIS AXISG B B1 BAR
    BASE0 BB BOX C CANDLE CC CHAR CHORD CIRC CIRCULAR CJUST COL COL7 COLZ CONST CONT CONT5 CP
    CYL D E ERR F FB FILLPAT_ FILL_ FIRST FIXFRAME FIXSIZE FRAME FUNC G GL GLBOX GLCOL
    GRAYSCALE GRIDX GRIDXY GRIDY H HAXIG HAXIS HAXISG HBAR HIST HZ I IGNORE_PALETTE ISO L LCOL
    LCOLORS LEGO LINE LINE_ LIST LOG2X LOG2XY LOG2Y LOG2Z LOGV LOGX LOGXY LOGY LOGZ MERCATOR
    MIN0 MOLLWEIDE N NOCLEAR NOCOL NOCOLORS NOOPT NOOPTIMIZE NOPAL NOPALETTE NOSCALED NOSTACK
    NOSTAT NOTOOLTIP NOZOOMX NOZOOMY NO_INTERACTIVE O ONCE OPTFIT OPTIMIZE OPTSTAT ORTHO P P0
    P0COL PADS PAL PARABOLIC PERSP PERSPECTIVE PFC PIE PLC PMC POISSON POISSON2 POL POS3D_ PROJ
    PROJX PROJXY PROJY PSR R R3D_ RANGLE RDOT REPEAT ROTATE RX RY S SAME SAME0 SAMES SC SCALED
    SCAT SHOWEMPTY SINUSOIDAL SPEC SPH STACK STAT SURF SYMLOGX SYMLOGY T TEXT TF3 TICKX TICKX2
    TICKXY TICKXY2 TICKY TICKY2 TICKZ TICKZ2 TOOLTIP TRI TRI1 TRI2 TRIW USE_PAD_PALETTE
    USE_PAD_STATS USE_PAD_TITLE VIOLIN WIDTH_ X X+ X0 X3DSC XAXIS_ Y+ Y0 Y3DSC YAXIS_ Z
    ZOOM_MIN_MAX
    """.split()
)
#: Overwatch's own words: a plugin's log axis taken away (never handed to JSROOT).
LINEAR = {"LINX": "LOGX", "LINY": "LOGY", "LINZ": "LOGZ"}
#: Keywords about the pad's axes and boxes (added to the plugin's); every other one is style.
AXIS_WORDS = re.compile(
    r"^(SYM)?LOG2?(X|Y|Z|XY|V)\d*$|^GRID(X|Y|XY)$|^TICK(X|Y|Z|XY)2?$|^(NO|OPT)?STAT$"
)
MAX_LENGTH = 100
_SEPARATORS = re.compile(r"[\s;,]+")
_LOG = re.compile(r"^LOG([XYZ]+)$")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class DrawOptionError(ValueError):
    """A draw option JSROOT would not understand; the text names the word."""


def tokens(option: str) -> list[str]:
    return [token for token in _SEPARATORS.split(option.strip()) if token]


@lru_cache(maxsize=4096)
def _splits(token: str) -> bool:
    """Whether an upper-case token splits into keywords (each maybe followed by a number)."""
    ordered = sorted(KEYWORDS, key=len, reverse=True)

    def walk(rest: str, singles: int) -> bool:
        if not rest:
            return True
        for word in ordered:
            if not rest.startswith(word):
                continue
            tail = rest[len(word) :]
            if word.endswith("_"):  # FILL_RED, LINE_2: JSROOT reads a name or number after it
                return bool(re.fullmatch(r"[A-Z0-9]+", tail))
            number = _NUMBER.match(tail)
            after = tail[number.end() :] if number else tail
            run = singles + 1 if len(word) == 1 and word.isalpha() else 0
            if run <= 2 and walk(after, run):
                return True
        return False

    return walk(token, 0)


def check(option: str) -> str:
    """The option as given (stripped) when JSROOT understands it; DrawOptionError if not."""
    option = option.strip()
    if len(option) > MAX_LENGTH:
        raise DrawOptionError(f"draw option longer than {MAX_LENGTH} characters")
    for token in tokens(option):
        upper = token.upper()
        if upper in LINEAR:
            continue
        if not _splits(upper):
            raise DrawOptionError(
                f"unknown draw option {token!r}: JSROOT options are words such as "
                "hist, e, colz, box, text, logx, logy, logz, gridx (see the JSROOT docs)"
            )
    return option


@dataclass(frozen=True)
class Merged:
    """The option drawn and, when the user's was refused, why (shown next to the plot)."""

    option: str
    error: str | None = None


def merge(plugin: str, user: str) -> str:
    """The plugin's option with the user's merged in (see the module docs); both checked."""
    own, theirs = tokens(plugin), tokens(user)
    removed = {LINEAR[t.upper()] for t in theirs if t.upper() in LINEAR}
    if any(t.upper() == "STAT" for t in theirs):  # the user asks for the box a map goes without
        removed.add("NOSTAT")
    theirs = [t for t in theirs if t.upper() not in LINEAR]

    def is_axis(token: str) -> bool:
        return bool(AXIS_WORDS.match(token.upper()))

    style = [t for t in theirs if not is_axis(t)] or [t for t in own if not is_axis(t)]
    axes: list[str] = []
    for token in [t for t in own if is_axis(t)] + [t for t in theirs if is_axis(t)]:
        upper = token.upper()
        if upper in removed or upper in (a.upper() for a in axes):
            continue
        axes.append(token)
    return ";".join([" ".join(style)] + axes if style else axes)


def merged(plugin: str, user: str) -> Merged:
    """:func:`merge` of a user's option that may be wrong: a wrong one keeps the plugin's."""
    if not user.strip():
        return Merged(plugin)
    try:
        return Merged(merge(plugin, check(user)))
    except DrawOptionError as error:
        return Merged(plugin, str(error))


def _logs(option: str) -> set[str]:
    """The axes ("X", "Y", "Z") an option draws log."""
    found: set[str] = set()
    for token in tokens(option):
        match = _LOG.match(token.upper())
        if match:
            found.update(match.group(1))
    return found


def projection_option(option: str, axis: str, projected: str = "") -> str:
    """The option of a 3D histogram's 1D projection on ``axis`` ("x", "y" or "z"): log x
    when ``option`` (the 3D's) draws that axis log, plus the log axes of ``projected``
    (the plugin's option for its own projection on that axis, if it derives one)."""
    x = axis.upper() in _logs(option) or "X" in _logs(projected)
    flags = [name for name, on in (("logx", x), ("logy", "Y" in _logs(projected))) if on]
    return ";".join(flags)


__all__ = [
    "KEYWORDS",
    "DrawOptionError",
    "Merged",
    "check",
    "merge",
    "merged",
    "projection_option",
    "tokens",
]

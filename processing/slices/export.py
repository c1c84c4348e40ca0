"""``overwatch slice``: write one time slice of a run's subsystem as a ROOT file.

The command line twin of the browser's on-demand slices: the request is
checked by the same code (:func:`processing.slices.spec.validate_request`,
with flags named in the messages) and the slice is computed by the same
service (:meth:`processing.slices.service.SliceService.compute`), so a file
written here holds what the web page shows for the same interval and options.

Times are minutes relative to the run start, which is the earliest processed
snapshot of the run across all its subsystems (so the same minute means the
same instant for every subsystem of a run), or absolute UTC times
(``2026-01-01T10:05:00Z``). ``end`` may be the word ``end`` (the latest
snapshot). The interval snaps to snapshots as ``SliceReader.slice`` does:
``start`` 0 (or anything at or before the subsystem's first snapshot) means
"from the run start", i.e. the slice includes the first snapshot's content.

Options (``--option KEY=VALUE``, repeatable) are the subsystem plugin's
processing options (``overwatch.plugins.OptionSpec``); unknown names, wrong
types and values out of range are refused, all at once, naming each.

What is written (decided to match the web page): every histogram of the
slice **as shown**, i.e. after the plugin's ``transform`` with the options
(EMC ``scale_by_events=true`` writes contents and errors divided by the
events in the slice), plus the plugin's **derived** histograms (projections,
rates, energy axes...) computed with the options. With the default options
nothing is transformed, so the file holds the plain subtraction. Each
histogram keeps its Σw², entries and running sums, at its path (directories
created), so ROOT or uproot reads it as any other file. The file appears
atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ZODB

from overwatch import rootio
from overwatch.config import ProcessingSettings
from overwatch.store.layout import atomic_write
from processing.slices.service import SliceService, run_start
from processing.slices.spec import CLI_LABELS, SliceRequestError

log = logging.getLogger(__name__)

__all__ = ["ExportError", "ExportResult", "export_slice", "parse_options", "run_start"]


class ExportError(ValueError):
    """A slice request that cannot be served; the message says what to change."""


@dataclass
class ExportResult:
    path: Path
    start: float | None  # base snapshot (None: the run start)
    end: float
    n_histograms: int  # written, derived ones included
    left_out: list[str]
    derived: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    slice_id: str = ""


def parse_options(items: list[str] | None) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> dict; a malformed item is an ExportError."""
    options: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"option {item!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options


def request_message(error: SliceRequestError) -> str:
    """One line naming every bad flag (unknown options together, as the user typed them)."""
    unknown = [
        name.removeprefix("options.")
        for name, why in error.fields.items()
        if name.startswith("options.") and why.startswith("unknown slice option")
    ]
    parts = []
    if unknown:
        known = error.fields[f"options.{unknown[0]}"].rpartition("(known: ")[2].rstrip(")")
        parts.append(f"unknown slice option(s) {', '.join(unknown)} (known: {known})")
    for name, why in error.fields.items():
        if name.removeprefix("options.") in unknown:
            continue
        if name.startswith("options."):
            why = f"{CLI_LABELS['options']} {name.removeprefix('options.')}: {why}"
        elif name in ("start", "end") and not why.startswith(CLI_LABELS[name]):
            why = f"{CLI_LABELS[name]}: {why}"
        parts.append(why)
    return "; ".join(parts)


def export_slice(
    data_dir: str | Path,
    db: ZODB.DB,
    run: int,
    subsystem: str,
    start: float | str | None,
    end: float | str | None,
    output: str | Path,
    options: dict[str, str] | None = None,
    *,
    settings: ProcessingSettings | None = None,
) -> ExportResult:
    """Write the slice [start, end] with ``options`` to ``output`` as a ROOT file.

    Raises ExportError (bad flags: one message naming each), UnknownRun or
    UnknownSubsystem (LookupError), ``CacheError`` (cache file gone).
    """
    service = SliceService(data_dir, db, settings=settings)
    try:
        spec = service.validate(
            run, subsystem, start=start, end=end, options=options or {}, labels=CLI_LABELS
        )
    except SliceRequestError as error:
        raise ExportError(request_message(error)) from error
    result = service.compute(spec)
    if result.left_out:
        log.warning("left out of the slice (binning changed): %s", ", ".join(result.left_out))
    histograms = result.shown_all()
    if not histograms:
        raise ExportError("the slice holds no histogram (every binning changed within it)")
    output = Path(output)
    atomic_write(output, rootio.to_bytes(histograms.values()), fsync=False)  # rewritable
    log.info("wrote %d histograms of run %d %s to %s", len(histograms), run, subsystem, output)
    return ExportResult(
        output,
        spec.start,
        spec.end,
        len(histograms),
        result.left_out,
        result.derived,
        spec.option_values,
        result.slice_id,
    )

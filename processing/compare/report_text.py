"""The plain-text report ``overwatch compare`` prints: totals, directories worst
first, then every histogram that did not succeed with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from overwatch.store.layout import atomic_write
from processing.compare.results import STATUS_ORDER, ComparisonResult, Status
from processing.compare.runner import CompareRun
from processing.compare.summary import ordered, rollup, totals, worst_first


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def describe(result: ComparisonResult) -> str:
    """One line of numbers or of reason for a result."""
    if result.reason is not None:
        text = result.reason.value
        return f"{text}: {result.detail}" if result.detail else text
    parts = [f"statistic={_number(result.statistic)}", f"p={_number(result.pvalue)}"]
    if result.ndf is not None:
        parts.append(f"ndf={result.ndf}")
    parts += [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in result.info.items()
        if k in ("mode", "max_pull", "differing_bins", "max_distance")
    ]
    return " ".join(parts)


def _counts(counter) -> str:
    return " ".join(f"{counter.get(s, 0):>7}" for s in STATUS_ORDER)


def render(run: CompareRun) -> str:
    request, pairing = run.request, run.pairing
    references = ", ".join(str(p) for p in request.reference_files)
    tests = ", ".join(f"{t.name} (threshold {t.threshold:g})" for t in request.tests)
    lines = [
        f"Comparison of {request.test_file} against {references}",
        f"Tests: {tests}" + (f"; directory {request.directory}" if request.directory else ""),
        (
            f"{len(pairing.common)} histograms in both files, {len(pairing.only_test)} only in "
            f"the test file, {len(pairing.only_reference)} only in the reference, "
            f"{len(pairing.mismatched)} not comparable by class; {pairing.blacklisted} "
            f"blacklisted, {pairing.ignored} non-histogram objects ignored ({run.seconds:.2f} s)"
        ),
    ]
    overall = totals(run.results)
    lines.append("Results: " + ", ".join(f"{s.value} {overall.get(s, 0)}" for s in STATUS_ORDER))
    summaries = rollup(run.results)
    lines += ["", "Directories, worst first:"]
    lines.append(f"  {'worst':<8}" + "".join(f"{s.value:>8}" for s in STATUS_ORDER) + "  directory")
    for summary in ordered(summaries):
        if summary.total:
            name = summary.path or "(top)"
            lines.append(f"  {summary.worst.value:<8} {_counts(summary.counts)}  {name}")
    problems = [r for r in worst_first(run.results) if r.status is not Status.SUCCESS]
    if problems:
        lines += ["", "Histograms not passing, worst first:"]
        for result in problems:
            lines.append(
                f"  {result.status.value:<8} {result.test:<14} {result.path}  {describe(result)}"
            )
    return "\n".join(lines) + "\n"


def write_json(results: Iterable[ComparisonResult], target: Path) -> None:
    """The records of every result, as a JSON list (written whole, then renamed)."""
    records = [result.to_record() for result in results]
    # No fsync: a report is made again by running the comparison again.
    atomic_write(target, json.dumps(records, indent=1) + "\n", fsync=False)

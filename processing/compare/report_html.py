"""The static HTML report of ``overwatch compare -o OUTDIR``.

Layout, all relative links so the directory can be moved or zipped::

    OUTDIR/index.html          totals, pie, rank histograms, every directory worst first
    OUTDIR/dirs/<name>.html    one page per directory: pie, subdirectories, histograms
    OUTDIR/hists/<name>.html   one page per histogram: results and JSROOT drawing
    OUTDIR/jsroot/, draw.js    the copy of JSROOT the drawings use (works offline)

File names come from :func:`report_plots.page_name`, never from raw paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from processing.compare import svg
from processing.compare.report_plots import page_name
from processing.compare.report_text import describe
from processing.compare.results import STATUS_ORDER, ComparisonResult
from processing.compare.runner import CompareRun
from processing.compare.summary import DirectorySummary, ordered, rollup, totals

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: middle; }
tr.fail .status { color: #d32f2f; font-weight: bold; }
tr.skipped .status { color: #b07f00; font-weight: bold; }
tr.null .status { color: #777; }
tr.success .status { color: #3a9d23; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plot { width: 640px; height: 460px; }
.note, .crumbs { color: #555; }
.legend span { margin-right: 1em; }
"""


def directory_page(directory: str) -> str:
    """File name of a directory's page (the top directory is ``top``)."""
    return page_name(directory) if directory else "top.html"


def page_head(title: str) -> str:
    """Opening of every page: title and the report's style."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} - Overwatch comparison</title>"
        f"<style>{STYLE}</style></head><body>"
    )


def _legend() -> str:
    items = "".join(
        f'<span><svg width="10" height="10"><rect width="10" height="10" '
        f'fill="{svg.COLORS[s]}"/></svg> {s.value}</span>'
        for s in STATUS_ORDER
    )
    return f'<p class="legend">{items}</p>'


def _counts_cells(summary: DirectorySummary) -> str:
    return "".join(f"<td>{summary.counts.get(s, 0)}</td>" for s in STATUS_ORDER)


def _directory_rows(summaries: Sequence[DirectorySummary], prefix: str) -> str:
    header = "".join(f"<th>{s.value}</th>" for s in STATUS_ORDER)
    rows = [f"<table><tr><th></th><th>directory</th><th>worst</th>{header}</tr>"]
    for summary in summaries:
        if not summary.total:
            continue
        link = f"{prefix}{directory_page(summary.path)}"
        rows.append(
            f'<tr class="{summary.worst.value}"><td>{svg.pie(summary.counts, 24, summary.path)}</td>'
            f'<td><a href="{link}">{escape(summary.path or "(top)")}</a></td>'
            f'<td class="status">{summary.worst.value}</td>{_counts_cells(summary)}</tr>'
        )
    return "".join(rows) + "</table>"


def _rank_histograms(run: CompareRun, results: Sequence[ComparisonResult]) -> str:
    parts = []
    for configured in run.request.tests:
        pvalues = [r.pvalue for r in results if r.test == configured.name and r.pvalue is not None]
        title = f"{configured.name}: p-value (rank) of {len(pvalues)} comparisons"
        parts.append(svg.rank_histogram(pvalues, configured.threshold, title))
    return '<div class="ranks">' + "".join(parts) + "</div>"


def _histogram_rows(results: Sequence[ComparisonResult], drawn: bool) -> str:
    rows = ["<table><tr><th>histogram</th><th>test</th><th>status</th><th>result</th></tr>"]
    for result in results:
        name = escape(result.path.rsplit("/", 1)[-1])
        cell = f'<a href="../hists/{page_name(result.path)}">{name}</a>' if drawn else name
        rows.append(
            f'<tr class="{result.status.value}"><td>{cell}</td><td>{escape(result.test)}</td>'
            f'<td class="status">{result.status.value}</td><td>{escape(describe(result))}</td></tr>'
        )
    return "".join(rows) + "</table>"


def _write_directory(outdir: Path, summary: DirectorySummary, summaries, run, drawn: bool) -> None:
    parent = summary.path.rsplit("/", 1)[0] if "/" in summary.path else ""
    up = (
        f' / <a href="{directory_page(parent)}">{escape(parent or "(top)")}</a>'
        if summary.path
        else ""
    )
    body = [
        page_head(summary.path or "top"),
        f'<p class="crumbs"><a href="../index.html">summary</a>{up}</p>',
        f"<h1>{escape(summary.path or '(top)')}</h1>",
        svg.pie(summary.counts, 140, summary.path),
        _legend(),
        "<p>" + ", ".join(f"{s.value}: {summary.counts.get(s, 0)}" for s in STATUS_ORDER) + "</p>",
    ]
    if summary.subdirectories:
        body += ["<h2>Subdirectories</h2>"]
        body.append(_directory_rows([summaries[d] for d in summary.subdirectories], ""))
    if summary.results:
        body += ["<h2>Histograms, worst first</h2>", _histogram_rows(summary.results, drawn)]
        body.append(_rank_histograms(run, summary.results))
    body.append("</body></html>\n")
    (outdir / "dirs" / directory_page(summary.path)).write_text("".join(body), encoding="utf-8")


def write_report(run: CompareRun, outdir: Path, drawn: bool = True) -> Path:
    """Write the summary and directory pages (histogram pages come from the runner)."""
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "dirs").mkdir(exist_ok=True)
    summaries = rollup(run.results)
    for summary in summaries.values():
        _write_directory(outdir, summary, summaries, run, drawn)
    request, pairing = run.request, run.pairing
    overall = totals(run.results)
    references = ", ".join(escape(str(p)) for p in request.reference_files)
    tests = ", ".join(f"{escape(t.name)} (threshold {t.threshold:g})" for t in request.tests)
    body = [
        page_head("summary"),
        "<h1>Overwatch comparison</h1>",
        f"<p>Test file: {escape(str(request.test_file))}<br>Reference: {references}<br>"
        f"Tests: {tests}"
        + (f"<br>Directory: {escape(request.directory)}" if request.directory else "")
        + "</p>",
        f"<p>{len(pairing.common)} histograms in both files, {len(pairing.only_test)} only in "
        f"the test file, {len(pairing.only_reference)} only in the reference, "
        f"{len(pairing.mismatched)} not comparable by class, {pairing.blacklisted} blacklisted, "
        f"{pairing.ignored} non-histogram objects ignored.</p>",
        svg.pie(overall, 160, "all results"),
        _legend(),
        "<p>" + ", ".join(f"{s.value}: {overall.get(s, 0)}" for s in STATUS_ORDER) + "</p>",
        _rank_histograms(run, run.results),
        "<h2>Directories, worst first</h2>",
        _directory_rows(ordered(summaries), "dirs/"),
        "</body></html>\n",
    ]
    index = outdir / "index.html"
    index.write_text("".join(body), encoding="utf-8")
    return index

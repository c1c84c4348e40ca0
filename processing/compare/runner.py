"""Run a comparison of two files: list, pair, read and compare, in parallel if asked.

The parent lists both files (key lists only) and pairs the paths; the compared
paths are split into one interleaved chunk per job, and each job reads its own
histograms from both files once (:func:`processing.compare.fastread.read`:
from their bytes, or with overwatch.rootio) and runs every test on them.
Reading dominates the cost, so this splits the reading too. When an HTML report is asked for, each job also writes the
drill-down pages of its histograms, so the arrays never travel between processes.

Chunks hold at most :data:`CHUNK_PATHS` compared paths (more chunks than jobs
for a large file: each job takes the next when done), so a progress bar of the
histograms compared moves as chunks finish (``CompareRequest.progress``; the
command shows it on a terminal, see :mod:`overwatch.progress`).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from overwatch.histogram import Histogram
from overwatch.progress import progress_bar
from processing.compare import fastread, report_plots, walk
from processing.compare.registry import ConfiguredTest, configure
from processing.compare.report_plots import PageSettings
from processing.compare.results import ComparisonResult, Reason, Status, not_compared
from processing.ingest.rootfile import Key

log = logging.getLogger(__name__)

#: Most compared paths in one chunk: several chunks per job let the progress move.
CHUNK_PATHS = 500


@dataclass
class CompareRequest:
    test_file: Path
    reference_files: Sequence[Path]
    tests: Sequence[ConfiguredTest]
    directory: str = ""
    blacklist: Sequence[walk.BlacklistEntry] = ()
    jobs: int = 1
    #: Where and how to write a drill-down page per histogram (None: no HTML).
    pages: PageSettings | None = None
    #: A bar of the histograms compared on stderr: True, False, None (on a terminal only).
    progress: bool | None = False


@dataclass
class CompareRun:
    request: CompareRequest
    results: list[ComparisonResult] = field(default_factory=list)
    pairing: walk.Pairing = field(default_factory=walk.Pairing)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Chunk:
    test_file: str
    reference_files: tuple[str, ...]
    #: Key locations of this chunk's paths, per file (test first).
    keys: tuple[dict[str, Key], ...]
    tests: tuple[ConfiguredTest, ...]
    common: tuple[str, ...]
    only_test: tuple[str, ...] = ()
    only_reference: tuple[str, ...] = ()
    pages: PageSettings | None = None
    #: Results already decided for the only_test/only_reference paths (for their pages).
    decided: dict[str, list[ComparisonResult]] = field(default_factory=dict)


def _unreadable(path: str, tests: Sequence[ConfiguredTest], where: str, why: str):
    return [
        not_compared(path, t.name, Status.SKIPPED, Reason.UNREADABLE, f"{where}: {why}")
        for t in tests
    ]


def _run_tests(
    path: str, test: Histogram, references: list[Histogram], tests: Sequence[ConfiguredTest]
) -> list[ComparisonResult]:
    results = []
    for configured in tests:
        try:
            results.append(configured.run(path, test, references))
        except Exception as error:  # one bad histogram must not lose the others
            log.exception("%s failed on %s", configured.name, path)
            results.append(
                not_compared(path, configured.name, Status.SKIPPED, Reason.TEST_ERROR, f"{error!r}")
            )
    return results


def compare_chunk(chunk: _Chunk) -> list[ComparisonResult]:
    """Read one chunk of paths from every file and compare them (runs in a worker)."""
    test_read = fastread.read(chunk.test_file, chunk.keys[0], chunk.common + chunk.only_test)
    reads = [
        fastread.read(name, keys, chunk.common + chunk.only_reference)
        for name, keys in zip(chunk.reference_files, chunk.keys[1:], strict=True)
    ]
    failed = {item.path: item.reason for item in test_read.skipped}
    failed_ref = {item.path: item.reason for item in reads[0].skipped}
    results: list[ComparisonResult] = []
    for path in chunk.common:
        test = test_read.histograms.get(path)
        reference = reads[0].histograms.get(path)
        if test is None:
            found = _unreadable(path, chunk.tests, "test file", failed.get(path, "not read"))
        elif reference is None:
            found = _unreadable(
                path, chunk.tests, "reference file", failed_ref.get(path, "not read")
            )
        else:
            extra = [read.histograms[path] for read in reads[1:] if path in read.histograms]
            found = _run_tests(path, test, [reference, *extra], chunk.tests)
        results += found
        if chunk.pages is not None:
            report_plots.write_histogram_page(chunk.pages, path, found, test, reference)
    if chunk.pages is not None:
        # Present in one file only: their results were decided from the listings.
        for path in chunk.only_test:
            found = chunk.decided.get(path, [])
            test = test_read.histograms.get(path)
            report_plots.write_histogram_page(chunk.pages, path, found, test, None)
        for path in chunk.only_reference:
            found = chunk.decided.get(path, [])
            reference = reads[0].histograms.get(path)
            report_plots.write_histogram_page(chunk.pages, path, found, None, reference)
    return results


def _structural_results(
    pairing: walk.Pairing, tests: Sequence[ConfiguredTest]
) -> list[ComparisonResult]:
    """Results decided from the listings alone: missing or uncomparable classes."""
    results = []
    for configured in tests:
        name = configured.name
        for path in pairing.only_test:
            results.append(
                not_compared(
                    path, name, Status.SKIPPED, Reason.MISSING_IN_REFERENCE, "not in the reference"
                )
            )
        for path in pairing.only_reference:
            results.append(
                not_compared(
                    path, name, Status.SKIPPED, Reason.MISSING_IN_TEST, "not in the test file"
                )
            )
        for path, (mine, theirs) in pairing.mismatched.items():
            if walk.histogram_like(mine) and walk.histogram_like(theirs) and mine == theirs:
                reason, detail = Reason.UNSUPPORTED, f"{mine} histograms cannot be read"
            elif walk.histogram_like(mine) and walk.histogram_like(theirs):
                reason, detail = Reason.UNSUPPORTED, f"{mine} vs {theirs}: cannot be read"
            else:
                reason, detail = Reason.DIFFERENT_CLASS, f"{mine} vs {theirs}"
            results.append(not_compared(path, name, Status.SKIPPED, reason, detail))
    return results


def _tasks(
    request: CompareRequest,
    pairing: walk.Pairing,
    listings: Sequence[dict[str, Key]],
    decided: dict[str, list[ComparisonResult]],
) -> list[_Chunk]:
    """Chunks of at most CHUNK_PATHS compared paths, at least one per job, and where
    their paths sit in each file."""
    count = max(1, min(request.jobs, len(pairing.common)), -(-len(pairing.common) // CHUNK_PATHS))
    drawn = request.pages is not None
    common = walk.chunks(pairing.common, count)
    only_test = walk.chunks(pairing.only_test if drawn else [], count)
    only_reference = walk.chunks(pairing.only_reference if drawn else [], count)

    def share(parts: list[list[str]], i: int) -> tuple[str, ...]:
        return tuple(parts[i]) if i < len(parts) else ()

    tasks = []
    for i in range(count):
        mine = share(common, i) + share(only_test, i) + share(only_reference, i)
        if not mine:
            continue
        tasks.append(
            _Chunk(
                test_file=str(request.test_file),
                reference_files=tuple(str(p) for p in request.reference_files),
                keys=tuple({p: objects[p] for p in mine if p in objects} for objects in listings),
                tests=tuple(request.tests),
                common=share(common, i),
                only_test=share(only_test, i),
                only_reference=share(only_reference, i),
                pages=request.pages,
                decided={p: decided[p] for p in mine if p in decided},
            )
        )
    return tasks


def run_comparison(request: CompareRequest) -> CompareRun:
    """Compare every histogram of the test file with the reference(s). Raises WalkError."""
    started = time.perf_counter()
    listings = [walk.list_objects(request.test_file)]
    listings += [walk.list_objects(path) for path in request.reference_files]
    walk.check_directory(listings[0], request.directory, str(request.test_file))
    walk.check_directory(listings[1], request.directory, str(request.reference_files[0]))
    pairing = walk.pair_objects(listings[0], listings[1], request.directory, request.blacklist)
    run = CompareRun(request=request, pairing=pairing)
    run.results = _structural_results(pairing, request.tests)
    decided: dict[str, list[ComparisonResult]] = {}
    for result in run.results:
        decided.setdefault(result.path, []).append(result)
    tasks = _tasks(request, pairing, listings, decided)
    bar = progress_bar(len(pairing.common), "compare", "histogram", enabled=request.progress)
    with bar:
        if request.jobs > 1 and len(tasks) > 1:
            # fork: workers start in milliseconds and inherit the imported modules.
            context = multiprocessing.get_context("fork")
            workers = min(request.jobs, len(tasks))
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                for task, found in zip(tasks, pool.map(compare_chunk, tasks), strict=True):
                    run.results += found
                    bar.update(len(task.common))
        else:
            for task in tasks:
                run.results += compare_chunk(task)
                bar.update(len(task.common))
    if request.pages is not None:
        for path in pairing.mismatched:  # not readable as histograms: results only
            report_plots.write_histogram_page(request.pages, path, decided[path], None, None)
    order = {t.name: i for i, t in enumerate(request.tests)}
    run.results.sort(key=lambda r: (r.path, order.get(r.test, 0)))
    run.seconds = time.perf_counter() - started
    return run


def compare_files(
    test_file: str | Path,
    reference_files: Sequence[str | Path],
    tests: Sequence[str] = ("chi2",),
    threshold: float | None = None,
    directory: str = "",
    blacklist: str | None = None,
    jobs: int = 1,
) -> CompareRun:
    """Compare two files (more references for beta_binomial) as ``overwatch compare`` does."""
    request = CompareRequest(
        test_file=Path(test_file),
        reference_files=[Path(p) for p in reference_files],
        tests=[configure(spec, threshold) for spec in tests],
        directory=directory.strip("/"),
        blacklist=walk.parse_blacklist(blacklist),
        jobs=jobs,
    )
    return run_comparison(request)

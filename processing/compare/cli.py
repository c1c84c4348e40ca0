"""``overwatch compare``: compare every histogram of a file with a reference file.

Exit status: 0 when no comparison fails, 1 when at least one fails, 2 on bad
input (missing or non-ROOT file, unknown test, threshold out of range,
malformed blacklist, ...), which is reported on one line on stderr.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# The tests (scipy) and readers (uproot) are imported when the command runs or
# its help is shown: every ``overwatch`` command registers this one.
if TYPE_CHECKING:
    from processing.compare.runner import CompareRequest

#: Stands for the list of tests in the epilog until help is formatted.
_TESTS_EPILOG = "{tests}"


class CompareInputError(ValueError):
    """A command-line value that cannot be used."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the epilog's list of tests built only when help is shown."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(_tests_epilog() if text == _TESTS_EPILOG else text, width, indent)


def _tests_epilog() -> str:
    from processing.compare.registry import available_tests

    lines = ["tests (-s NAME[:option[=value],...]):"]
    for name, definition in sorted(available_tests().items()):
        aliases = f" (also {', '.join(definition.aliases)})" if definition.aliases else ""
        lines.append(f"  {name}{aliases}: {definition.description}")
        lines.append(f"      default threshold {definition.default_threshold:g}")
        for key, option in definition.options.items():
            lines.append(f"      {key}: {option.help} (default {option.default})")
    return "\n".join(lines)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare the histograms of a file with a reference file",
        description=(
            "Compare every histogram present in both files (nested directories walked), "
            "report those present in only one, roll results up per directory."
        ),
        epilog=_TESTS_EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("test_file", metavar="TEST.root", help="the file to check")
    parser.add_argument(
        "reference_files",
        metavar="REF.root",
        nargs="+",
        help="the reference; beta_binomial also uses any further references given",
    )
    parser.add_argument(
        "-s",
        "--stat-test",
        action="append",
        metavar="TEST",
        help="test to run, repeatable (default chi2); options as chi2:norm or bin2bin:rtol=1e-3",
    )
    parser.add_argument(
        "-t",
        "--threshold",
        metavar="P",
        help="p-value (or rank) below which a comparison fails, 0..1 (default: per test)",
    )
    parser.add_argument(
        "-B",
        "--blacklist",
        metavar="NAME@LEVEL,...",
        help="skip directories NAME at depth LEVEL (1 = top, -1 = any depth)",
    )
    parser.add_argument(
        "-d", "--directory", metavar="DIR", default="", help="compare only under DIR"
    )
    parser.add_argument("-o", "--outdir", metavar="OUTDIR", help="write a static HTML report here")
    parser.add_argument("--json", metavar="FILE", help="write one JSON record per result here")
    parser.add_argument("--jobs", metavar="N", default="1", help="worker processes (default 1)")
    parser.set_defaults(handler=handle)


def _threshold(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CompareInputError(
            f"threshold must be a number between 0 and 1, not {text!r}"
        ) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise CompareInputError(f"threshold must be between 0 and 1, not {text}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CompareInputError(f"--jobs needs a whole number, not {text!r}") from None
    if value < 1:
        raise CompareInputError(f"--jobs must be at least 1, not {value}")
    return value


def _paths(args) -> tuple[Path | None, Path | None]:
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise CompareInputError(f"--json: directory {json_path.parent} does not exist")
    outdir = Path(args.outdir) if args.outdir else None
    if outdir is not None and outdir.exists() and not outdir.is_dir():
        raise CompareInputError(f"-o: {outdir} exists and is not a directory")
    return json_path, outdir


def build_request(args) -> tuple[CompareRequest, Path | None, Path | None]:
    """Validate every option before any work; raises on the first bad value."""
    from processing.compare.registry import configure
    from processing.compare.runner import CompareRequest
    from processing.compare.walk import parse_blacklist

    threshold = _threshold(args.threshold)
    tests = [configure(spec, threshold) for spec in (args.stat_test or ["chi2"])]
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise CompareInputError(f"a test is given twice: {', '.join(names)}")
    blacklist = parse_blacklist(args.blacklist)
    jobs = _jobs(args.jobs)
    json_path, outdir = _paths(args)
    request = CompareRequest(
        test_file=Path(args.test_file),
        reference_files=[Path(p) for p in args.reference_files],
        tests=tests,
        directory=args.directory.strip("/"),
        blacklist=blacklist,
        jobs=jobs,
        progress=None,  # a bar of the histograms compared while stderr is a terminal
    )
    return request, json_path, outdir


def handle(args) -> int:
    from processing.compare import report_html, report_text
    from processing.compare.registry import SpecError
    from processing.compare.report_plots import JsrootMissingError, install_jsroot
    from processing.compare.results import Status
    from processing.compare.runner import run_comparison
    from processing.compare.walk import WalkError

    try:
        request, json_path, outdir = build_request(args)
        if outdir is not None:
            outdir.mkdir(parents=True, exist_ok=True)
            request.pages = install_jsroot(outdir)
        run = run_comparison(request)
    except (CompareInputError, SpecError, WalkError, JsrootMissingError) as error:
        print(f"overwatch compare: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"overwatch compare: error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(report_text.render(run))
    ignored = [r for r in run.results if "norm" in r.info]
    if ignored:  # -s chi2:norm where the histograms were weighted: say so once
        print(f"overwatch compare: note: {ignored[0].info['norm']} ({len(ignored)} "
              f"histogram(s), e.g. {ignored[0].path})", file=sys.stderr)  # fmt: skip
    if json_path is not None:
        report_text.write_json(run.results, json_path)
    if outdir is not None:
        index = report_html.write_report(run, outdir)
        print(f"HTML report: {index}")
    return 1 if any(r.status is Status.FAIL for r in run.results) else 0

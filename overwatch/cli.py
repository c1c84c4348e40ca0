"""The ``overwatch`` command.

Subcommands live with the code they drive: each package registers its own
through the ``overwatch.commands`` entry-point group (see pyproject.toml), so the
core package never imports receivers, processing or webapp.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points, version

log = logging.getLogger("overwatch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overwatch", description="Streaming online monitoring of detector histograms."
    )
    parser.add_argument("--config", help="YAML file layered over the defaults")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"overwatch {version('overwatch')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for entry in sorted(entry_points(group="overwatch.commands"), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as error:  # a broken optional part must not hide the others
            log.warning("subcommands of %s unavailable: %s", entry.name, error)
            continue
        register(subparsers)
    _config_everywhere(parser)
    return parser


def _config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--config`` after any subcommand too (``overwatch process --config F``).

    The subcommands' copies default to SUPPRESS, so one given before the
    subcommand is not overwritten by the subcommand's absent one; given in
    both places, the later one wins.
    """
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk of subparsers
        if not isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            continue
        for sub in set(action.choices.values()):
            if "--config" not in sub._option_string_actions:  # noqa: SLF001
                sub.add_argument(
                    "--config",
                    default=argparse.SUPPRESS,
                    help="YAML file layered over the defaults",
                )
            _config_everywhere(sub)


def add_timezone_options(parser: argparse.ArgumentParser) -> None:
    """``--timezone ZONE`` and ``--archived``: the zone of names in folders that declare none."""
    from overwatch.timestamps import ARCHIVE_TIMEZONE

    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--timezone",
        metavar="ZONE",
        help="time zone of snapshot names in run folders without a .overwatch-timezone file "
        "(default: data.timezone, UTC)",
    )
    group.add_argument(
        "--archived",
        action="store_const",
        const=ARCHIVE_TIMEZONE,
        dest="timezone",
        help=f"archived Overwatch data: names in {ARCHIVE_TIMEZONE} local time",
    )


def timezone_option(args: argparse.Namespace, default: str) -> str:
    """The zone the options of :func:`add_timezone_options` name; ValueError if unknown."""
    from overwatch.timestamps import check_timezone

    return check_timezone(getattr(args, "timezone", None) or default)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

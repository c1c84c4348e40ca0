"""``overwatch web`` and ``overwatch users ...``.

``overwatch web [--db URI] [--data-dir DIR] [--host H] [--port P] [--dev]``
serves the web app (gunicorn, 2 workers x 4 threads by default; with a
``file://`` database, which one process holds, 1 worker x 8 threads, said in
the log). A storage another process holds stops it at start with exit code 2.

``overwatch users add|remove|passwd|token|tokens|allow-upload|list NAME [--db URI]``
manages the web users. There is no default password: ``add`` and ``passwd`` prompt for
one (twice) or read one line from standard input with ``--password-stdin``.
``token`` prints a new API token for ``Authorization: Bearer <token>``; only
its hash is stored, so it is shown this once. ``tokens NAME`` lists a user's
tokens by id and issue time (never the token), ``revoke NAME TOKEN_ID`` revokes
one. Changing a password or removing a user ends the user's sessions.
``add NAME --upload`` or ``allow-upload NAME`` lets the user's API tokens store
snapshots (``POST /api/upload``); ``allow-upload NAME --revoke`` takes that back.
``list`` marks such users with "may upload".
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import sys
from datetime import UTC, datetime

from overwatch.config import ConfigError, Settings, WebSettings, load_settings
from overwatch.store.db import redact
from overwatch.store.layout import DataDir

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    web = subparsers.add_parser("web", help="serve the web pages and the JSON API")
    _database_options(web)
    web.add_argument("--data-dir", help="data directory (default: data.data_dir)")
    web.add_argument("--host", help="listen address (default: web.host)")
    web.add_argument("--port", type=int, help="listen port (default: web.port)")
    web.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    web.add_argument("--threads", type=int, default=4, help="threads per worker")
    web.add_argument("--access-log", action="store_true", help="log every request")
    web.add_argument("--dev", action="store_true", help="Flask's development server instead")
    web.set_defaults(handler=run_web)

    users = subparsers.add_parser("users", help="manage web users and API tokens")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION")
    actions.required = True
    for name, text in (
        ("add", "add a user (asks for the password)"),
        ("passwd", "change a user's password"),
        ("remove", "remove a user"),
        ("token", "print a new API token for a user"),
        ("tokens", "list a user's API tokens (ids and issue times, never the tokens)"),
        ("revoke", "revoke one API token of a user by its id"),
        ("allow-upload", "let a user's API tokens upload snapshots (POST /api/upload)"),
    ):
        parser = actions.add_parser(name, help=text)
        parser.add_argument("name", metavar="NAME")
        _database_options(parser)
        if name in ("add", "passwd"):
            parser.add_argument(
                "--password-stdin", action="store_true", help="read the password from stdin"
            )
        if name == "add":
            parser.add_argument(
                "--upload",
                action="store_true",
                help="allow the user's API tokens to upload snapshots (POST /api/upload)",
            )
        if name == "token":
            parser.add_argument(
                "--revoke", action="store_true", help="revoke all of the user's tokens instead"
            )
        if name == "allow-upload":
            parser.add_argument(
                "--revoke", action="store_true", help="no longer allow the user to upload"
            )
        if name == "revoke":
            parser.add_argument("token_id", metavar="TOKEN_ID", help="as 'tokens NAME' lists it")
        parser.set_defaults(handler=run_users)
    listing = actions.add_parser("list", help="list users")
    _database_options(listing)
    listing.set_defaults(handler=run_users, name=None)


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="storage URI (default: database.uri)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings with the command-line overrides applied."""
    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "db", None):
        settings = dataclasses.replace(
            settings, database=dataclasses.replace(settings.database, uri=args.db)
        )
    web = {}
    if getattr(args, "data_dir", None):
        settings = dataclasses.replace(
            settings, data=dataclasses.replace(settings.data, data_dir=args.data_dir)
        )
        # The default key file sits in the default data directory: follow --data-dir.
        if settings.web.secret_key_file == WebSettings.secret_key_file:
            web["secret_key_file"] = str(DataDir(args.data_dir).secret_key_file)
    if getattr(args, "host", None):
        web["host"] = args.host
    if getattr(args, "port", None) is not None:
        if not 1 <= args.port <= 65535:
            raise ConfigError(f"--port: expected 1-65535, got {args.port}")
        web["port"] = args.port
    if web:
        settings = dataclasses.replace(settings, web=dataclasses.replace(settings.web, **web))
    return settings


def run_web(args: argparse.Namespace) -> int:
    from overwatch.store.db import DatabaseLocked
    from webapp.server import serve

    try:
        settings = settings_from_args(args)
    except ConfigError as error:
        print(f"overwatch web: {error}", file=sys.stderr)
        return 2
    try:
        return serve(
            settings,
            workers=max(1, args.workers),
            threads=max(1, args.threads),
            dev=args.dev,
            access_log=args.access_log,
        )
    except DatabaseLocked as error:  # its message names the URI and says to use zeo://
        print(f"overwatch web: {error}", file=sys.stderr)
    except OSError as error:  # the database's folder cannot be made or read
        uri = redact(settings.database.uri)
        print(f"overwatch web: cannot open the database {uri}: {error}", file=sys.stderr)
    return 2


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise ValueError("the two passwords differ; nothing changed")
    return first


def run_users(args: argparse.Namespace) -> int:
    from overwatch.store.db import DatabaseLocked, open_db
    from webapp import users

    action = args.users_command
    try:
        settings = settings_from_args(args)
        password = ""
        if action in ("add", "passwd"):
            password = users.check_password(_read_password(args.password_stdin))
        if action == "add":
            users.check_name(args.name)
        db = open_db(settings.database.uri)
    except (ConfigError, ValueError) as error:
        print(f"overwatch users {action}: {error}", file=sys.stderr)
        return 2
    except DatabaseLocked as error:  # its message names the URI and says to use zeo://
        print(f"overwatch users {action}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # e.g. a ZEO server that does not answer
        print(
            f"overwatch users {action}: cannot open the database "
            f"{redact(settings.database.uri)}: {error}",
            file=sys.stderr,
        )
        return 1
    try:
        if action == "add":
            users.add_user(db, args.name, password, can_upload=args.upload)
            allowed = " (may upload snapshots)" if args.upload else ""
            print(f"added user {args.name}{allowed}", file=sys.stderr)
        elif action == "passwd":
            users.set_password(db, args.name, password)
            print(f"changed the password of {args.name}", file=sys.stderr)
        elif action == "remove":
            users.remove_user(db, args.name)
            print(f"removed user {args.name}", file=sys.stderr)
        elif action == "token" and args.revoke:
            count = users.revoke_tokens(db, args.name)
            print(f"revoked {count} token(s) of {args.name}", file=sys.stderr)
        elif action == "token":
            print(users.issue_token(db, args.name))
        elif action == "tokens":
            for token_id, issued in users.list_tokens(db, args.name):
                print(f"{token_id}\t{_issued(issued)}")
        elif action == "revoke":
            users.revoke_token(db, args.name, args.token_id)
            print(f"revoked token {args.token_id} of {args.name}", file=sys.stderr)
        elif action == "allow-upload":
            users.allow_upload(db, args.name, not args.revoke)
            now = "may no longer" if args.revoke else "may now"
            print(f"{args.name} {now} upload snapshots", file=sys.stderr)
        else:
            uploaders = users.uploaders(db)
            for name, tokens in users.list_users(db):
                mark = "\tmay upload" if name in uploaders else ""
                print(f"{name}\t{tokens} token(s){mark}")
    except users.UserError as error:
        print(f"overwatch users {action}: {error}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def _issued(timestamp: float | None) -> str:
    if timestamp is None:
        return "issued before issue times were kept"
    return datetime.fromtimestamp(timestamp, UTC).strftime("issued %Y-%m-%d %H:%M:%S UTC")

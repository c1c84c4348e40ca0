"""RelStorage on PostgreSQL: the ``postgresql://`` storage URI, opened and probed.

``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?KEY=VALUE&...]`` names a
PostgreSQL database; the query keys are passed to libpq as connection
parameters (``sslmode=require``, ``application_name=...``). A password with
reserved characters (``@ : / ?``) is percent-encoded, as in any URL.

What was decided, and why:

- **History-free** (``keep_history=False``): Overwatch never undoes a
  transaction, and the cumulative snapshot files are the source of truth, so
  old object revisions are only disk space. No pack is needed to reclaim it.
- **The schema is created on first open** (``create_schema=True``, RelStorage's
  default), so an empty database owned by the configured user is all an
  operator prepares (``createdb -O overwatch overwatch``). A read-only opener
  never creates it.
- **Caches**: each process keeps RelStorage's in-memory pickle cache (its
  default, 10 MB, shared by the process's threads) and polls the database for
  invalidations when a transaction starts, so several processes on several
  machines see each other's commits without memcache. No ``cache-local-dir``:
  RelStorage may share such a persistent cache between the processes of one
  machine, but it only speeds a restart, and a folder per machine and database
  is one more thing to get wrong. Blobs are not used.
- **Bounded waits**: libpq's ``connect_timeout`` is the caller's
  ``wait_timeout`` (at least 2 s, libpq's minimum), so the web app's open fails
  within ``web.database_timeout`` while the server is down, and
  :func:`probe` makes the real round trip ``/healthz`` asks for.
  :class:`Liveness` is the web app's "is it connected?" that costs nothing per
  request (what a ZEO client knows from its open socket). A lost
  connection raises psycopg2's ``OperationalError`` / ``InterfaceError``
  (:data:`DISCONNECTED`): :func:`overwatch.store.db.transact` retries on them
  and RelStorage reconnects on the next transaction.
- The password is never logged: messages name the URI through :func:`redact`.
"""

from __future__ import annotations

import logging
import math
import re
import select
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from overwatch.store.db import DatabaseURIError, redact

log = logging.getLogger(__name__)

#: The URI schemes this module opens (``postgres://`` is a common spelling of the same).
SCHEMES = ("postgresql", "postgres")
DEFAULT_PORT = 5432
#: libpq refuses a ``connect_timeout`` below 2 s (it rounds 1 up to 2).
MIN_CONNECT_TIMEOUT = 2
#: Parameters Overwatch sets itself: a URI may not override them.
_RESERVED = {"host", "port", "user", "password", "dbname", "connect_timeout"}


class PostgresURIError(DatabaseURIError):
    """A ``postgresql://`` URI that does not name a database; the message says what is missing."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where a ``postgresql://`` URI points: the parts of a libpq connection string."""

    user: str
    password: str | None
    host: str
    port: int
    dbname: str
    params: tuple[tuple[str, str], ...] = ()

    def dsn(self, connect_timeout: float) -> str:
        """The libpq ``key=value`` connection string, with a bounded connection time."""
        parts: list[tuple[str, str]] = [
            ("host", self.host),
            ("port", str(self.port)),
            ("user", self.user),
            ("dbname", self.dbname),
        ]
        if self.password is not None:
            parts.append(("password", self.password))
        parts.append(("connect_timeout", str(_connect_timeout(connect_timeout))))
        parts.extend(self.params)
        return " ".join(f"{key}={_quote(value)}" for key, value in parts)


_FORM = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"


def parse_uri(uri: str) -> PostgresTarget:
    """The parts of a ``postgresql://`` URI; :class:`PostgresURIError` names what is wrong."""
    shown = redact(uri)
    parsed = urlparse(uri)
    if parsed.scheme not in SCHEMES:
        raise PostgresURIError(f"{shown!r}: not a PostgreSQL URI; use {_FORM}")
    try:
        port = parsed.port
    except ValueError:
        raise PostgresURIError(f"{shown!r}: the port must be a number from 1 to 65535") from None
    if not parsed.hostname:
        raise PostgresURIError(f"{shown!r}: no host; use {_FORM}")
    if not parsed.username:
        raise PostgresURIError(f"{shown!r}: no user name; use {_FORM}")
    dbname = unquote(parsed.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise PostgresURIError(f"{shown!r}: name one database after the host, {_FORM}")
    if parsed.fragment or parsed.params:
        raise PostgresURIError(f"{shown!r}: unexpected '#' or ';' part; use {_FORM}")
    try:
        params = parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query))
    except ValueError:
        raise PostgresURIError(f"{shown!r}: the query must be KEY=VALUE&KEY=VALUE") from None
    for key, _ in params:
        if key in _RESERVED:
            raise PostgresURIError(
                f"{shown!r}: {key!r} in the query; put it in the URI itself ({_FORM})"
            )
        if not re.fullmatch(r"[a-z_]+", key):
            raise PostgresURIError(f"{shown!r}: {key!r} is not a libpq connection parameter")
    return PostgresTarget(
        user=unquote(parsed.username),
        password=unquote(parsed.password) if parsed.password is not None else None,
        host=parsed.hostname,
        port=port or DEFAULT_PORT,
        dbname=dbname,
        params=tuple(params),
    )


def open_storage(uri: str, *, wait_timeout: float, read_only: bool = False) -> Any:
    """A history-free RelStorage on the database a ``postgresql://`` URI names.

    Raises :class:`PostgresURIError` for a bad URI, a :data:`DISCONNECTED` error
    when the server does not answer within ``wait_timeout`` (at least 2 s).
    """
    target = parse_uri(uri)
    try:
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
    except ImportError as error:  # a dependency, but say what to install if it is missing
        raise PostgresURIError(
            f"{redact(uri)!r}: PostgreSQL needs RelStorage and psycopg2 "
            "(pip install RelStorage psycopg2-binary)"
        ) from error
    options = Options(
        keep_history=False,
        create_schema=not read_only,
        read_only=read_only,
        driver="psycopg2",
    )
    adapter = PostgreSQLAdapter(dsn=target.dsn(wait_timeout), options=options)
    return RelStorage(adapter, options=options)


def probe(uri: str, timeout: float) -> None:
    """One round trip to the server (a new connection and ``SELECT 1``) within ``timeout``.

    Why a new connection: the storage's own connections answer from the
    process's cache and notice a dead server only on their next query.
    Raises a :data:`DISCONNECTED` error when the server does not answer.
    """
    import psycopg2

    connection = psycopg2.connect(parse_uri(uri).dsn(timeout))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


class Liveness:
    """Whether the server is up, known without waiting: a watcher thread keeps one connection.

    Why: the web app answers from caches and must still say 503 at once when the
    database is gone, as it does on ZEO, whose client sees its socket close.
    The watcher waits on its connection's socket (a server shutting down closes
    it: noticed within milliseconds), runs ``SELECT 1`` every ``interval`` s (a
    hung server: stale after ``interval + timeout``), and reconnects every
    ``retry`` s while the server is away. Started on the first question, so
    processes that never ask (processing) hold no extra connection.
    """

    def __init__(
        self, uri: str, *, interval: float = 1.0, timeout: float = 2.0, retry: float = 0.2
    ) -> None:
        self._dsn = parse_uri(uri).dsn(timeout)
        self.interval, self.timeout, self.retry = interval, timeout, retry
        self._up = True  # just opened: the server answered
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def connected(self) -> bool:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(
                        target=self._watch, name="overwatch-db-liveness", daemon=True
                    )
                    self._thread.start()
        fresh = time.monotonic() - self._last_ok < self.interval + self.timeout
        return self._up and fresh

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        import psycopg2

        connection = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = psycopg2.connect(self._dsn)
                    connection.autocommit = True
                    self._answered()
                readable, _, _ = select.select([connection], [], [], self.interval)
                if readable:  # unprompted: notices, or the server closing this connection
                    connection.poll()  # raises once the connection is closed
                else:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")
                    self._answered()
            except Exception as error:  # every failure means "down" until a reconnection works
                if self._up:
                    log.warning("database server unreachable: %s", str(error).strip())
                self._up = False
                if connection is not None:
                    connection.close()
                    connection = None
                self._stop.wait(self.retry)
        if connection is not None:
            connection.close()

    def _answered(self) -> None:
        if not self._up:
            log.info("database server reachable again")
        self._last_ok = time.monotonic()
        self._up = True


def disconnected_errors() -> tuple[type[BaseException], ...]:
    """What psycopg2 raises when the server is down or a connection was lost."""
    try:
        import psycopg2
    except ImportError:
        return ()
    return (psycopg2.OperationalError, psycopg2.InterfaceError)


def _connect_timeout(seconds: float) -> int:
    return max(MIN_CONNECT_TIMEOUT, math.ceil(seconds))


def _quote(value: str) -> str:
    """A libpq connection-string value: single-quoted, with ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

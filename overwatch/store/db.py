"""Opening the database and writing to it safely.

One URI selects the backend:

- ``file://PATH``: an embedded FileStorage, for one process (tests, small set-ups):
  a second process opening it gets :class:`DatabaseLocked`, which says to use ZEO;
- ``zeo://HOST:PORT``: a ZEO server, so receivers, processing and the web app
  can share one database from separate processes (the deployment default);
- ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME``: a history-free RelStorage
  on PostgreSQL, shared like ZEO by processes on several machines
  (:mod:`overwatch.store.postgres` says what was chosen and why);
- ``memory://``: a throw-away MappingStorage for unit tests.

Every write goes through :func:`transact`, which retries the whole unit of work
on ``ConflictError`` (two processes wrote the same object) and on a lost
server (ZEO or PostgreSQL restarted), so callers never handle either.

Readers that must not wait (the web app) open a shared storage with a short
``wait_timeout`` and ask :func:`wait_connected` / :func:`check_reachable`, which
raise :class:`DatabaseUnavailable` instead of blocking. Messages name a URI
through :func:`redact`: a PostgreSQL password is never printed.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

import transaction
import ZODB
import ZODB.Connection
from ZODB.POSException import ConflictError

from overwatch.store import migrations
from overwatch.store.models import ROOT_KEY, OverwatchRoot

if TYPE_CHECKING:
    from overwatch.store import postgres

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseURIError(ValueError):
    """A storage URI Overwatch cannot open."""


class DatabaseLocked(RuntimeError):
    """A ``file://`` storage another process holds: a configuration problem, not a transient one."""


class DatabaseUnavailable(RuntimeError):
    """The database does not answer within the time the caller can wait (its server is down)."""


class DatabaseNotRunning(DatabaseUnavailable):
    """Nothing listens at the storage's address at all (never started, or gone).

    Its text names the address and how to start a server; ``public`` is what a
    page anyone may see says instead.
    """

    public = "no database server answers"


def redact(uri: str) -> str:
    """A storage URI without its password, for messages, logs and pages.

    Greedy up to the last ``@`` of the authority, as URL parsers split it, so a
    password with an unencoded ``@`` is hidden whole.
    """
    return re.sub(r"//([^:/@]*):[^/?#]*@", r"//\1:***@", uri)


def single_process(uri: str) -> bool:
    """Whether only one process at a time can open the storage a URI names."""
    return urlparse(uri).scheme in ("file", "memory")


def disconnected_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises when its server went away (ZEO's ``ClientDisconnected``,
    psycopg2's ``OperationalError`` and ``InterfaceError``)."""
    from overwatch.store import postgres

    try:
        from ZEO.Exceptions import ClientDisconnected
    except ImportError:  # ZEO is a dependency, but keep file:// usable without it
        return postgres.disconnected_errors()
    return (ClientDisconnected, *postgres.disconnected_errors())


class _Connection(ZODB.Connection.Connection):
    """A connection that goes back to the pool when opening it fails.

    Why: RelStorage polls the server while a connection opens; with the server
    down ZODB's ``open`` raises after taking the connection from the pool and
    before registering it with its transaction manager, so it would leak and
    ``DB.close()`` would fail on it later.
    """

    def open(self, transaction_manager=None, delegate=True):  # noqa: ANN001 - ZODB's signature
        try:
            super().open(transaction_manager, delegate)
        except BaseException:
            self.transaction_manager = None  # never registered: close() must not unregister it
            self.close()
            raise


class _DB(ZODB.DB):
    klass = _Connection

    def close(self) -> None:
        liveness = _liveness.pop(self, None)
        if liveness is not None:
            liveness.close()
        super().close()


#: Per open PostgreSQL database, whether its server is up (known without waiting).
_liveness: weakref.WeakKeyDictionary[ZODB.DB, postgres.Liveness] = weakref.WeakKeyDictionary()
#: Per open database, the real round trip :func:`check_reachable` makes (timeout in s).
_round_trips: weakref.WeakKeyDictionary[ZODB.DB, Callable[[float], None]] = (
    weakref.WeakKeyDictionary()
)


#: Seconds a process waits for a ZEO server that does not answer at all when it starts
#: (one started at the same moment gets that long to listen), then says so in one line.
ZEO_START_WAIT = 10.0


def _await_server(host: str, port: int, timeout: float) -> None:
    """Wait until something listens at ``host:port``; DatabaseUnavailable after ``timeout``.

    Why: ZEO's client retries in silence-breaking lines (two log lines a second for its
    whole wait); a server that is not there at all is said once, with how to start one.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise DatabaseNotRunning(
                    f"the database is unreachable: no ZEO server answers at zeo://{host}:{port} "
                    f"({error.strerror or error}; waited {timeout:.0f} s): start one with "
                    f"`runzeo -a {host}:{port} -f "
                    "data/overwatch.fs`, or run everything with `overwatch deploy`"
                ) from None
        time.sleep(0.2)


def open_db(uri: str, *, wait_timeout: float = 30.0, read_only: bool = False) -> ZODB.DB:
    """Open the database a URI names and make sure its root and schema are current."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(parsed.netloc + parsed.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from zc.lockfile import LockError
        from ZODB.FileStorage import FileStorage

        try:
            storage = FileStorage(str(path), read_only=read_only)
        except LockError:
            raise DatabaseLocked(
                f"{uri}: another process has this file storage open (a file:// database "
                "belongs to one process); to share it, serve it with ZEO "
                f"(runzeo -a 127.0.0.1:8100 -f {path}) and use zeo://127.0.0.1:8100"
            ) from None
    elif parsed.scheme == "zeo":
        if not parsed.hostname or not parsed.port:
            raise DatabaseURIError(f"{uri!r}: a ZEO URI needs a host and a port, zeo://HOST:PORT")
        from ZEO.ClientStorage import ClientStorage

        _await_server(parsed.hostname, parsed.port, min(wait_timeout, ZEO_START_WAIT))
        storage = ClientStorage(
            (parsed.hostname, parsed.port), wait_timeout=wait_timeout, read_only=read_only
        )
    elif parsed.scheme in ("postgresql", "postgres"):
        from overwatch.store import postgres

        storage = postgres.open_storage(uri, wait_timeout=wait_timeout, read_only=read_only)
    elif parsed.scheme == "memory":
        from ZODB.MappingStorage import MappingStorage

        storage = MappingStorage()
    else:
        raise DatabaseURIError(
            f"{redact(uri)!r}: unknown storage; use file://PATH, zeo://HOST:PORT, "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME or memory://"
        )
    db = _DB(storage)
    if parsed.scheme in ("postgresql", "postgres"):
        _round_trips[db] = lambda timeout: postgres.probe(uri, timeout)
        _liveness[db] = postgres.Liveness(uri)
    elif callable(getattr(storage, "server_status", None)):
        _round_trips[db] = lambda timeout: storage.server_status(timeout=timeout)
    if not read_only:
        transact(db, _ensure_root)
    return db


def wait_connected(db: ZODB.DB, timeout: float) -> bool:
    """Whether the storage is connected, waiting at most ``timeout`` s for a reconnection.

    ZEO's client knows; PostgreSQL's :class:`~overwatch.store.postgres.Liveness`
    watches. Embedded storages are always connected.
    """
    liveness = _liveness.get(db)
    connected = (
        liveness.connected if liveness is not None else getattr(db.storage, "is_connected", None)
    )
    if not callable(connected):
        return True
    deadline = time.monotonic() + timeout
    while not connected():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


_probing = threading.Lock()  # one round trip in flight per process: a hung server holds one thread


def check_reachable(db: ZODB.DB, timeout: float) -> None:
    """Raise :class:`DatabaseUnavailable` unless the storage answers a round trip in ``timeout`` s.

    Why a round trip: a ZEO client answers loads and ``lastTransaction()`` from
    its cache while the server is down, and ``is_connected()`` stays true while
    a server hangs. ``server_status`` needs the server; on PostgreSQL a new
    connection runs ``SELECT 1``. Embedded storages are read by the caller itself.
    """
    status = _round_trips.get(db)
    if status is None:
        return
    deadline = time.monotonic() + timeout
    if not _probing.acquire(timeout=timeout):
        raise DatabaseUnavailable(f"no answer within {timeout:g} s: an earlier check still waits")
    outcome: list[BaseException] = []
    done = threading.Event()

    def probe() -> None:
        try:
            status(max(0.01, deadline - time.monotonic()))
        except Exception as error:  # reported to the caller below
            outcome.append(error)
        finally:
            done.set()
            _probing.release()

    threading.Thread(target=probe, name="overwatch-db-probe", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise DatabaseUnavailable(f"no answer from the server within {timeout:g} s")
    if outcome:
        error = outcome[0]
        raise DatabaseUnavailable(f"the server is unreachable: {error}") from error


def _ensure_root(root: dict) -> None:
    if ROOT_KEY not in root:
        root[ROOT_KEY] = OverwatchRoot()
    migrations.upgrade(root[ROOT_KEY])


def transact(
    db: ZODB.DB,
    work: Callable[[dict], T],
    *,
    retries: int = 20,
    note: str = "",
) -> T:
    """Run ``work(root)`` in its own transaction, retrying on conflicts and disconnections.

    ``work`` receives the connection's root mapping and must be safe to run
    again: it is re-run from scratch after a conflict, on fresh state.
    """
    disconnected = disconnected_errors()
    delay = 0.01
    for attempt in range(1, retries + 1):
        manager = transaction.TransactionManager()
        connection = db.open(manager)
        try:
            with manager:
                if note:
                    manager.get().note(note)
                result = work(connection.root())
            return result
        except ConflictError:
            if attempt == retries:
                raise
            log.debug("conflict on attempt %d of %s, retrying", attempt, note or "a write")
        except disconnected:
            if attempt == retries:
                raise
            log.warning("database disconnected; retrying %s", note or "the write")
            delay = max(delay, 0.5)
        finally:
            connection.close()
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def read(db: ZODB.DB, work: Callable[[OverwatchRoot], T]) -> T:
    """Run a read-only look-up on a fresh connection and return plain data.

    ``work`` gets the Overwatch root; it must copy what it needs out of
    persistent objects, which are not usable after the connection closes.
    """
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    try:
        manager.begin()
        return work(connection.root()[ROOT_KEY])
    finally:
        manager.abort()  # a reader never commits
        connection.close()


def overwatch_root(root: dict) -> OverwatchRoot:
    """The Overwatch entry point inside a connection's root mapping."""
    return root[ROOT_KEY]

"""Opening the database and writing to it safely.

One URI selects the backend:

- ``file://PATH``: an embedded FileStorage, for one process (tests, small set-ups):
  a second process opening it gets :class:`DatabaseLocked`, which says to use ZEO;
- ``zeo://HOST:PORT``: a ZEO server, so receivers, processing and the web app
  can share one database from separate processes (the deployment default);
- ``memory://``: a throw-away MappingStorage for unit tests.

Every write goes through :func:`transact`, which retries the whole unit of work
on ``ConflictError`` (two processes wrote the same object) and on a ZEO
disconnection (the server restarted), so callers never handle either.

Readers that must not wait (the web app) open a ZEO storage with a short
``wait_timeout`` and ask :func:`wait_connected` / :func:`check_reachable`, which
raise :class:`DatabaseUnavailable` instead of blocking.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import transaction
import ZODB
from ZODB.POSException import ConflictError

from overwatch.store import migrations
from overwatch.store.models import ROOT_KEY, OverwatchRoot

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseURIError(ValueError):
    """A storage URI Overwatch cannot open."""


class DatabaseLocked(RuntimeError):
    """A ``file://`` storage another process holds: a configuration problem, not a transient one."""


class DatabaseUnavailable(RuntimeError):
    """The database does not answer within the time the caller can wait (ZEO server down)."""


def single_process(uri: str) -> bool:
    """Whether only one process at a time can open the storage a URI names."""
    return urlparse(uri).scheme in ("file", "memory")


def disconnected_errors() -> tuple[type[BaseException], ...]:
    """What a storage raises when its server went away (ZEO's ``ClientDisconnected``)."""
    try:
        from ZEO.Exceptions import ClientDisconnected
    except ImportError:  # ZEO is a dependency, but keep file:// usable without it
        return ()
    return (ClientDisconnected,)


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

        storage = ClientStorage(
            (parsed.hostname, parsed.port), wait_timeout=wait_timeout, read_only=read_only
        )
    elif parsed.scheme == "memory":
        from ZODB.MappingStorage import MappingStorage

        storage = MappingStorage()
    else:
        raise DatabaseURIError(
            f"{uri!r}: unknown storage; use file://PATH, zeo://HOST:PORT or memory://"
        )
    db = ZODB.DB(storage)
    if not read_only:
        transact(db, _ensure_root)
    return db


def wait_connected(db: ZODB.DB, timeout: float) -> bool:
    """Whether the storage is connected, waiting at most ``timeout`` s for a ZEO reconnection.

    Embedded storages are always connected.
    """
    connected = getattr(db.storage, "is_connected", None)
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
    a server hangs. ``server_status`` needs the server. Embedded storages are
    read by the caller itself.
    """
    status = getattr(db.storage, "server_status", None)
    if not callable(status):
        return
    deadline = time.monotonic() + timeout
    if not _probing.acquire(timeout=timeout):
        raise DatabaseUnavailable(f"no answer within {timeout:g} s: an earlier check still waits")
    outcome: list[BaseException] = []
    done = threading.Event()

    def probe() -> None:
        try:
            status(timeout=max(0.01, deadline - time.monotonic()))
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

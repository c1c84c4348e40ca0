"""Per-process resources of the web app and the per-request ZODB connection.

The ``ZODB.DB`` object is opened once per process, lazily, and re-opened when
the process id changes: gunicorn forks its workers after importing the app,
and a ZEO client connection must not be shared across a fork. Each request
that needs the database gets its own connection, opened lazily into
``flask.g`` and closed at app-context teardown (the pattern of Flask's own
tutorial, ``flaskr/db.py``). Requests only read: the transaction is aborted,
never committed.

A request never waits long for the database: the ZEO client is opened with
``web.database_timeout`` as its wait, and :attr:`Resources.db` waits at most that
long for a lost server to come back (not at all once it has been away longer),
then raises ``DatabaseUnavailable``, answered 503 by :mod:`webapp.app`.
Processing opens its own client with the long default wait and rides out a
restart; the web app tells users at once instead of holding a thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import transaction
import ZODB
from flask import current_app, g

from overwatch.store.db import (
    DatabaseUnavailable,
    check_reachable,
    disconnected_errors,
    open_db,
    read,
    redact,
    wait_connected,
)
from overwatch.store.models import ROOT_KEY, OverwatchRoot
from webapp.security import password_fingerprint

if TYPE_CHECKING:
    from overwatch.config import Settings

log = logging.getLogger(__name__)

EXTENSION = "overwatch"


class AuthCache:
    """Users and token hashes, refreshed from the database every few seconds.

    Why: checking a session or a bearer token on every request must not cost a
    database read (the JSON endpoints serve thousands of requests a second).
    A removed user, changed password or revoked token takes effect within
    ``ttl`` seconds in every process.
    """

    def __init__(self, resources: Resources, ttl: float = 5.0, miss_refresh: float = 0.5) -> None:
        self._resources = resources
        self.ttl = ttl
        self.miss_refresh = miss_refresh
        self._fingerprints: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    @staticmethod
    def _load(root: OverwatchRoot) -> tuple[dict[str, str], dict[str, str]]:
        fingerprints, tokens = {}, {}
        for user in root.users.values():
            fingerprints[user.name] = password_fingerprint(user.password_hash)
            for digest in user.token_hashes:
                tokens[digest] = user.name
        return fingerprints, tokens

    def _refresh(self, max_age: float) -> None:
        with self._lock:
            if time.monotonic() - self._loaded < max_age:
                return  # another thread refreshed meanwhile
            self._fingerprints, self._tokens = read(self._resources.db, AuthCache._load)
            self._loaded = time.monotonic()

    def _lookup(self, table: str, key: str) -> str | None:
        if time.monotonic() - self._loaded >= self.ttl:
            self._refresh(self.ttl)
        value = getattr(self, table).get(key)
        if value is None and time.monotonic() - self._loaded >= self.miss_refresh:
            self._refresh(self.miss_refresh)  # e.g. a user added a moment ago
            value = getattr(self, table).get(key)
        return value

    def user_for_token_hash(self, digest: str) -> str | None:
        return self._lookup("_tokens", digest)

    def session_valid(self, name: str, fingerprint: str) -> bool:
        return self._lookup("_fingerprints", name) == fingerprint

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = float("-inf")


class Resources:
    """What one web process shares between its requests and threads."""

    def __init__(
        self, settings: Settings, *, db: ZODB.DB | None = None, data_dir: str | Path | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir if data_dir is not None else settings.data.data_dir)
        self._db = db
        self._given_db = db is not None
        self._db_pid = os.getpid()
        self._reader: Any = None
        self._lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time the database was first missed
        self.auth = AuthCache(self)
        self._views: Any = None

    @property
    def db(self) -> ZODB.DB:
        """This process's database, connected; else ``DatabaseUnavailable`` within the timeout."""
        db = self._open()
        if not wait_connected(db, 0):
            self._wait_for(db)
        self._down_since = None
        return db

    @property
    def database_timeout(self) -> float:
        return self.settings.web.database_timeout

    def _open(self) -> ZODB.DB:
        if self._db is not None and (self._given_db or self._db_pid == os.getpid()):
            return self._db
        # Bounded, like the open itself: requests queued behind a failing open fail too.
        if not self._lock.acquire(timeout=self._remaining()):
            raise self._unavailable("another request is still trying to connect")
        try:
            if self._db is None or (not self._given_db and self._db_pid != os.getpid()):
                uri = self.settings.database.uri
                log.info("opening the database %s (process %d)", redact(uri), os.getpid())
                # At least a second: connecting takes a moment even once the server is back.
                wait = max(self._remaining(), min(1.0, self.database_timeout))
                try:
                    self._db = open_db(uri, wait_timeout=wait)
                except disconnected_errors() as error:
                    raise self._unavailable(f"cannot connect within {wait:.0f} s") from error
                self._db_pid = os.getpid()
                self._reader = None
            return self._db
        finally:
            self._lock.release()

    def _remaining(self) -> float:
        """Of this outage's timeout, the seconds left (the full timeout when nothing is wrong).

        Why not the full timeout per request: once the database has been away
        longer than the timeout, every further request is answered at once.
        """
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        return max(0.01, self._down_since + self.database_timeout - now)

    def _wait_for(self, db: ZODB.DB) -> None:
        if not wait_connected(db, self._remaining()):
            raise self._unavailable(f"not connected for {self.database_timeout:g} s")

    def _unavailable(self, why: str) -> DatabaseUnavailable:
        if self._down_since is None:
            self._down_since = time.monotonic()
        # No URI in the message: anonymous clients see it (the log has the URI).
        return DatabaseUnavailable(
            f"the database is unreachable ({why}); pages work again by themselves once it is back"
        )

    @property
    def reader(self) -> Any:
        """The processing package's ``SliceReader``: histogram contents and versions."""
        db = self.db
        if self._reader is None:
            with self._lock:
                if self._reader is None:
                    import processing

                    self._reader = processing.SliceReader(self.data_dir, db)
        return self._reader

    @property
    def views(self) -> Any:
        """The processing package's ``SliceService``: the view of every slice a page shows.

        Re-made with the reader when the process re-opens its database (after a fork).
        """
        reader = self.reader
        found = self._views
        if found is None or found.reader is not reader:
            with self._lock:
                found = self._views
                if found is None or found.reader is not reader:
                    import processing

                    found = self._views = processing.SliceService(
                        self.data_dir, self.db, reader=reader, settings=self.settings.processing,
                        max_entries=self.settings.web.slice_cache_entries,
                    )  # fmt: skip
        return found

    @property
    def ongoing_seconds(self) -> float:
        """How long after its last snapshot a run still counts as ongoing."""
        return self.settings.processing.ongoing_minutes * 60.0

    def database_reachable(self) -> bool:
        """Whether the database answers, without waiting: a ZEO client knows if it is connected.

        True before this process opened it, unless opening it failed (nothing
        known to be wrong yet). :meth:`check_database` asks the server itself.
        """
        db = self._db
        if db is None:
            return self._down_since is None
        return wait_connected(db, 0)

    def check_database(self) -> None:
        """A real round trip to the storage within ``web.database_timeout``, for ``/healthz``.

        Raises ``DatabaseUnavailable`` (or the storage's own error) if it fails.
        """
        deadline = time.monotonic() + self.database_timeout
        db = self.db
        try:
            check_reachable(db, max(0.01, deadline - time.monotonic()))
        except DatabaseUnavailable as error:
            raise self._unavailable(str(error)) from error

    def close(self) -> None:
        if self._db is not None and not self._given_db and self._db_pid == os.getpid():
            self._db.close()
        self._db = None


def resources() -> Resources:
    return current_app.extensions[EXTENSION]


def connection() -> ZODB.Connection.Connection:
    """This request's database connection, opened on first use."""
    if "zodb" not in g:
        manager = transaction.TransactionManager()
        conn = resources().db.open(manager)
        manager.begin()
        g.zodb = (conn, manager)
    return g.zodb[0]


def overwatch() -> OverwatchRoot:
    """The Overwatch root object seen by this request."""
    return connection().root()[ROOT_KEY]


def close_connection(_error: BaseException | None = None) -> None:
    pair = g.pop("zodb", None)
    if pair is not None:
        conn, manager = pair
        try:
            manager.abort()
        finally:
            conn.close()

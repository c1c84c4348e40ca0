"""Secrets, password and token hashing, login rate limiting and CSRF tokens.

Decisions:

- Passwords are hashed with werkzeug's ``generate_password_hash`` (scrypt).
  There is no built-in default password: users are created with
  ``overwatch users add``.
- A wrong password costs the same whether or not the user exists: for an
  unknown user a dummy scrypt hash with the same parameters is checked, so the
  answer time does not tell which user names exist.
- API tokens are 32 random bytes (URL-safe text). Only their SHA-256 is stored;
  a token is high-entropy, so a slow hash adds nothing but request latency.
- Failed sign-ins are throttled per (user name, client address) with growing
  delays (:class:`LoginThrottle`): after ``web.login_attempts_per_minute``
  free failures the client waits 1 s, then 2 s, 4 s ... up to 5 minutes
  before it may try that user again. Someone else's failures never block the
  right password from another address. A looser count per address alone
  (:data:`ADDRESS_FACTOR` times as many) brakes one client spraying many names.
- The counts live in one SQLite file in the data directory's status folder,
  shared by every gunicorn worker. Why SQLite and not ZODB: a failed guess
  then costs no ZODB transaction (an append-only FileStorage would grow with
  every guess and conflict between workers); SQLite's locking makes each
  count one atomic update across processes, and a crash loses nothing. The
  counts are per machine: web servers on several hosts count separately.
  If the file cannot be used, sign-in is not throttled and the log says so.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from overwatch.store.layout import atomic_write

log = logging.getLogger(__name__)

#: Hex digits of a token's hash that name it in ``overwatch users tokens``/``revoke``.
TOKEN_ID_LENGTH = 12


@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so both failures take as long."""
    return generate_password_hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """Salted scrypt hash of a password, as stored in ``User.password_hash``."""
    return generate_password_hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with ``password_hash=None`` (unknown user) still pay the full cost."""
    if password_hash is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(password_hash, password)


def new_token() -> str:
    """A fresh API token (shown once to the user, never stored)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored hash, kept in the session cookie.

    Why: changing a password (or removing and re-adding the user) changes the
    fingerprint, which ends every session opened with the old password.
    """
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def session_fingerprint(password_hash: str, epoch: int) -> str:
    """What a session cookie must carry to stay valid: a digest of the password and epoch.

    Why both: a new password or a raised ``User.session_epoch`` (sign-out) gives
    another digest, which ends every session opened before, in every worker.
    """
    return hashlib.sha256(f"{int(epoch)}:{password_hash}".encode()).hexdigest()[:16]


def token_id(digest: str) -> str:
    """The public name of an API token: a prefix of its stored hash (never the secret)."""
    return digest[:TOKEN_ID_LENGTH]


def load_secret_key(path: str | Path) -> str:
    """Read the key that signs session cookies, creating it (mode 0600) on first start.

    The key is written atomically without replacing an existing file
    (``atomic_write(replace=False)``: a temporary file hard-linked into place),
    so two processes starting at once agree on one key and none reads a half file.
    """
    path = Path(path)
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    try:
        atomic_write(path, secrets.token_hex(32) + "\n", mode=0o600, replace=False)
        log.info("created a new secret key in %s", path)
    except FileExistsError:
        pass  # another process won the race: use its key
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path}: the secret key file is empty; delete it to create a new one")
    return key


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; missing values never match."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


#: The address-only count allows this many times the per-user free failures.
ADDRESS_FACTOR = 5
#: Name of the throttle's file in the data directory's status folder.


class LoginThrottle:
    """Failed sign-ins per (user, client address) with growing delays, shared by processes.

    ``wait`` says how long a client must wait before trying a user again
    (0: it may try now); ``failed`` and ``succeeded`` record the outcome. Each
    call opens the file briefly (sign-ins are rare and cost a password hash
    anyway), which is also safe across gunicorn's fork.
    """

    def __init__(
        self,
        path: str | Path,
        free_attempts: int,
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 3600.0,
    ) -> None:
        self.path = Path(path)
        self.free_attempts = max(1, int(free_attempts))
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after

    def _keys(self, user: str, address: str) -> list[tuple[str, int]]:
        return [(f"user:{user.lower()}\x1f{address}", self.free_attempts),
                (f"address:{address}", self.free_attempts * ADDRESS_FACTOR)]  # fmt: skip

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, count INTEGER, last REAL)"
        )
        return connection

    def _delay(self, count: int, free: int) -> float:
        if count < free:
            return 0.0
        return min(self.base_delay * 2.0 ** min(count - free, 64), self.max_delay)

    def wait(self, user: str, address: str, now: float | None = None) -> float:
        """Seconds this client must wait before it may try this user again."""
        now = time.time() if now is None else now
        keys = self._keys(user, address)
        try:
            with contextlib.closing(self._connect()) as db:
                rows = {key: (count, last) for key, count, last in db.execute(
                    "SELECT key, count, last FROM failures WHERE key IN (?, ?)",
                    [key for key, _free in keys])}  # fmt: skip
        except sqlite3.Error as error:
            log.error("login throttle %s unusable, not throttling: %s", self.path, error)
            return 0.0
        waits = [0.0]
        for key, free in keys:
            count, last = rows.get(key, (0, now))
            if now - last < self.forget_after:
                waits.append(last + self._delay(count, free) - now)
        return max(waits)

    def failed(self, user: str, address: str, now: float | None = None) -> None:
        """Count a failed sign-in (a fresh count after ``forget_after`` without failures)."""
        now = time.time() if now is None else now
        try:
            with contextlib.closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                for key, _free in self._keys(user, address):
                    db.execute(
                        "INSERT INTO failures VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
                        "count = CASE WHEN ? - last >= ? THEN 1 ELSE count + 1 END, last = ?",
                        (key, now, now, self.forget_after, now),
                    )
                db.execute("DELETE FROM failures WHERE last < ?", (now - self.forget_after,))
                db.execute("COMMIT")
        except sqlite3.Error as error:
            log.error("login throttle %s unusable, failure not counted: %s", self.path, error)

    def succeeded(self, user: str, address: str) -> None:
        """The right password: this client's failures for this user are forgotten."""
        try:
            with contextlib.closing(self._connect()) as db:
                db.execute("DELETE FROM failures WHERE key = ?", (self._keys(user, address)[0][0],))
        except sqlite3.Error as error:
            log.error("login throttle %s unusable: %s", self.path, error)

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
- The login rate limiter counts failed attempts in a sliding minute, per client
  address and per user name, in the memory of one web process. With several
  gunicorn workers each keeps its own count, so the effective limit is at most
  ``workers x login_attempts_per_minute``: still a brake on guessing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from overwatch.store.layout import atomic_write

log = logging.getLogger(__name__)


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


class RateLimiter:
    """Failed attempts per key in a sliding window; thread-safe, in memory."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._attempts: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        attempts = self._attempts[key]
        while attempts and now - attempts[0] >= self.window:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return deque()
        return attempts

    def blocked(self, key: str, now: float | None = None) -> bool:
        """True once ``limit`` failures happened within the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return len(self._prune(key, now)) >= self.limit

    def record(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune(key, now)
            self._attempts[key].append(now)
            if len(self._attempts) > 100_000:  # bound memory under a spray of names
                oldest = min(self._attempts, key=lambda k: self._attempts[k][-1])
                del self._attempts[oldest]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; missing values never match."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())

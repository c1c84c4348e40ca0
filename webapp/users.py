"""Web users in the database: add, remove, change password, sessions, API tokens, uploads.

Used by ``overwatch users ...``, by the tests and by sign-out (which ends the
user's sessions: :func:`end_sessions`). Every write goes through
``overwatch.store.db.transact``. A token is named by its id (a prefix of its
stored hash, :func:`webapp.security.token_id`): listing and revoking never
need the token itself.
"""

from __future__ import annotations

import re
import time

import ZODB
from persistent.mapping import PersistentMapping

from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import OverwatchRoot, User
from webapp.security import hash_password, new_token, token_hash, token_id

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user command that cannot be carried out; the text says why."""


def check_name(name: str) -> str:
    if not USER_NAME.match(name):
        raise UserError(
            f"invalid user name {name!r}: use 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return password


def add_user(db: ZODB.DB, name: str, password: str, *, can_upload: bool = False) -> None:
    check_name(name)
    password_hash = hash_password(check_password(password))

    def work(root: dict) -> None:
        users = overwatch_root(root).users
        if name in users:
            raise UserError(f"user {name!r} exists already; use 'overwatch users passwd {name}'")
        user = User(name, password_hash)
        if can_upload:
            user.can_upload = True
        users[name] = user

    transact(db, work, note=f"add user {name}")


def remove_user(db: ZODB.DB, name: str) -> None:
    def work(root: dict) -> None:
        users = overwatch_root(root).users
        if name not in users:
            raise UserError(f"no user {name!r}")
        del users[name]

    transact(db, work, note=f"remove user {name}")


def set_password(db: ZODB.DB, name: str, password: str) -> None:
    password_hash = hash_password(check_password(password))

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}; add it with 'overwatch users add {name}'")
        user.password_hash = password_hash
        user.session_epoch += 1

    transact(db, work, note=f"change password of {name}")


def end_sessions(db: ZODB.DB, name: str) -> None:
    """End every session of a user (sign-out): cookies saved before stop working."""

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is not None:  # removed meanwhile: its sessions are over anyway
            user.session_epoch += 1

    transact(db, work, note=f"end sessions of {name}")


def issue_token(db: ZODB.DB, name: str) -> str:
    """Create an API token for a user; only its hash is stored, the token is returned once."""
    token = new_token()
    digest = token_hash(token)

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}; add it with 'overwatch users add {name}'")
        user.token_hashes.append(digest)
        if user.token_times is None:  # a user stored before tokens had times
            user.token_times = PersistentMapping()
        user.token_times[digest] = time.time()

    transact(db, work, note=f"issue token for {name}")
    return token


def revoke_tokens(db: ZODB.DB, name: str) -> int:
    """Forget every API token of a user; returns how many there were."""

    def work(root: dict) -> int:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        count = len(user.token_hashes)
        del user.token_hashes[:]
        return count

    return transact(db, work, note=f"revoke tokens of {name}")


def list_tokens(db: ZODB.DB, name: str) -> list[tuple[str, float | None]]:
    """(token id, issued at or None if unknown) of a user's API tokens, oldest first."""

    def work(ow: OverwatchRoot) -> list[tuple[str, float | None]]:
        user = ow.users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        times = user.token_times or {}
        return [(token_id(digest), times.get(digest)) for digest in user.token_hashes]

    return read(db, work)


def revoke_token(db: ZODB.DB, name: str, wanted: str) -> None:
    """Revoke one API token of a user by its id (see :func:`list_tokens`)."""

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        found = [d for d in user.token_hashes if token_id(d) == wanted.strip().lower()]
        if not found:
            raise UserError(
                f"user {name!r} has no token {wanted!r}; 'overwatch users tokens {name}' lists them"
            )
        for digest in found:
            user.token_hashes.remove(digest)
            if user.token_times is not None:
                user.token_times.pop(digest, None)

    transact(db, work, note=f"revoke a token of {name}")


def allow_upload(db: ZODB.DB, name: str, allowed: bool = True) -> None:
    """Let a user's API tokens store snapshots (``POST /api/upload``), or no longer.

    Takes effect at the user's next upload (every upload reads the user).
    """

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}; add it with 'overwatch users add {name}'")
        user.can_upload = allowed

    verb = "allow" if allowed else "revoke"
    transact(db, work, note=f"{verb} uploads of {name}")


def uploaders(db: ZODB.DB) -> set[str]:
    """The names of the users allowed to upload snapshots."""
    return read(db, lambda root: {u.name for u in root.users.values() if u.can_upload})


def list_users(db: ZODB.DB) -> list[tuple[str, int]]:
    """(name, number of API tokens) of every user, by name."""
    return read(db, lambda root: [(u.name, len(u.token_hashes)) for u in root.users.values()])

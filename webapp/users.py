"""Web users in the database: add, remove, change password, issue API tokens.

Used by ``overwatch users ...`` and by the tests; the web app itself only reads
users. Every write goes through ``overwatch.store.db.transact``.
"""

from __future__ import annotations

import re

import ZODB

from overwatch.store.db import overwatch_root, read, transact
from overwatch.store.models import User
from webapp.security import hash_password, new_token, token_hash

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


def add_user(db: ZODB.DB, name: str, password: str) -> None:
    check_name(name)
    password_hash = hash_password(check_password(password))

    def work(root: dict) -> None:
        users = overwatch_root(root).users
        if name in users:
            raise UserError(f"user {name!r} exists already; use 'overwatch users passwd {name}'")
        users[name] = User(name, password_hash)

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

    transact(db, work, note=f"change password of {name}")


def issue_token(db: ZODB.DB, name: str) -> str:
    """Create an API token for a user; only its hash is stored, the token is returned once."""
    token = new_token()
    digest = token_hash(token)

    def work(root: dict) -> None:
        user = overwatch_root(root).users.get(name)
        if user is None:
            raise UserError(f"no user {name!r}; add it with 'overwatch users add {name}'")
        user.token_hashes.append(digest)

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


def list_users(db: ZODB.DB) -> list[tuple[str, int]]:
    """(name, number of API tokens) of every user, by name."""
    return read(db, lambda root: [(u.name, len(u.token_hashes)) for u in root.users.values()])

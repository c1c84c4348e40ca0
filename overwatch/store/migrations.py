"""Schema migrations: one function per version step, run when a database opens.

A database written by an older Overwatch carries a lower ``schema_version``;
each step upgrades the stored objects in place and bumps the number. The
snapshots on disk stay the source of truth: when a step cannot be written,
``overwatch db rebuild`` recreates everything instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree

from overwatch.store.models import SCHEMA_VERSION

log = logging.getLogger(__name__)

#: version -> function upgrading a root of that version to version + 1.
STEPS: dict[int, Callable[[object], None]] = {}


def _add_alarm_containers(root) -> None:
    """Schema 1 -> 2: alarms and the last quality of every check (for transitions)."""
    if not hasattr(root, "alarms"):
        root.alarms = IOBTree()
    if not hasattr(root, "check_states"):
        root.check_states = OOBTree()


STEPS[1] = _add_alarm_containers


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer Overwatch than this one."""


def upgrade(root) -> None:
    """Bring a root object up to :data:`SCHEMA_VERSION`."""
    version = getattr(root, "schema_version", 0)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"database schema {version} is newer than this Overwatch ({SCHEMA_VERSION}); "
            "upgrade Overwatch or rebuild the database from the snapshots"
        )
    while version < SCHEMA_VERSION:
        step = STEPS.get(version)
        if step is None:
            raise SchemaTooNewError(
                f"no migration from schema {version}; run `overwatch db rebuild`"
            )
        log.info("migrating database schema %d -> %d", version, version + 1)
        step(root)
        version += 1
        root.schema_version = version

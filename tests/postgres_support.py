"""A real PostgreSQL server for the tests: one per session, a fresh database per test.

The server is Debian's ``postgresql`` package (``make system-deps`` installs it):
``initdb`` into a temporary folder, ``pg_ctl`` to start it on a free port of
127.0.0.1 with password authentication over TCP (so the URIs the tests use carry
a password, as a deployment's would), durability off (``fsync=off``: a test
database is thrown away). PostgreSQL refuses to run as root, and the tests run
as root in CI: the server then runs as the ``postgres`` system user the Debian
package creates. When PostgreSQL is missing the fixtures fail, never skip.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.processing_helpers import free_port

USER = "overwatch"
PASSWORD = "pg-s3cret"  # noqa: S105 - a throw-away test server's password
SYSTEM_USER = "postgres"
MISSING = (
    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the tests of the "
    "postgresql:// backend need a real server; install it with `make system-deps` "
    "(the Debian package postgresql)"
)


class PostgresMissing(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def server_bin() -> Path:
    """The newest PostgreSQL's programs folder (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if not found:
        raise PostgresMissing(MISSING)
    return found[-1].parent


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1; :meth:`new_database` gives each test its own."""

    def __init__(self) -> None:
        self.bin = server_bin()
        # Not pytest's tmp_path: its parents are private to root, and the server
        # runs as another user when the tests run as root.
        self.base = Path(tempfile.mkdtemp(prefix="overwatch-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._names = itertools.count(1)
        if self._as_root:
            try:
                account = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise PostgresMissing(
                    f"no {SYSTEM_USER!r} system user to run PostgreSQL as (it refuses root): "
                    "the Debian package postgresql creates it; run `make system-deps`"
                ) from None
            os.chown(self.base, account.pw_uid, account.pw_gid)
        pwfile = self.base / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_root:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def uri(self, dbname: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@{self.address}/{dbname}"

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port and data; waits until it answers."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop at once, disconnecting clients (``-m fast``), as a crash or maintenance would."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        status = subprocess.run(
            self._argv("pg_ctl", "-D", str(self.data), "status"),
            capture_output=True, check=False, cwd=self.base,
        )  # fmt: skip
        return status.returncode == 0

    def new_database(self) -> str:
        """A fresh, empty database owned by the test user; its ``postgresql://`` URI."""
        name = f"overwatch_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.uri(name)

    def sql(self, statement: str) -> str:
        """Run one statement through the local socket (trusted) and return psql's output."""
        return self._run(
            "psql", "-X", "-q", "-A", "-t", "-h", str(self.base), "-p", str(self.port),
            "-U", USER, "-d", "postgres", "-c", statement,
        )  # fmt: skip

    def close(self) -> None:
        try:
            if self.data.is_dir() and self.running():
                self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _argv(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        if self._as_root:  # runuser keeps this process's environment minus the user's own
            return ["runuser", "-u", SYSTEM_USER, "--", *command]
        return command

    def _run(self, program: str, *args: str) -> str:
        done = subprocess.run(
            self._argv(program, *args), capture_output=True, text=True, check=False,
            timeout=120, cwd=self.base,  # a folder the server's user may enter
        )  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{log}"
            )
        return done.stdout

"""Fixtures of the integration tests: a real PostgreSQL server for the ``postgresql://`` backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_support import PostgresMissing, PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started on first use, stopped at the end).

    Fails, never skips, when PostgreSQL is not installed.
    """
    try:
        server = PostgresServer()
    except PostgresMissing as error:
        pytest.fail(str(error))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_uri(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a ``postgresql://`` URI.

    A test that stopped the server (to see an outage) gets it back for the next one.
    """
    if not postgres_server.running():
        postgres_server.start()
    return postgres_server.new_database()

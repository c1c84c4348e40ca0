"""``postgresql://`` URIs: parsing, the libpq connection string, errors, and the hidden password.

Opening a real database is the integration tests' part (tests/integration,
on the session's PostgreSQL server); these need no server.
"""

from __future__ import annotations

import pytest

from overwatch.store.db import DatabaseURIError, open_db, redact
from overwatch.store.postgres import PostgresTarget, PostgresURIError, parse_uri
from webapp.status import redact as status_redact


def test_a_full_uri_names_user_password_host_port_and_database() -> None:
    target = parse_uri("postgresql://overwatch:s3cret@db.example.org:5433/monitoring")
    assert target == PostgresTarget("overwatch", "s3cret", "db.example.org", 5433, "monitoring")


def test_the_port_defaults_to_5432_and_the_password_is_optional() -> None:
    target = parse_uri("postgresql://overwatch@127.0.0.1/overwatch")
    assert (target.port, target.password) == (5432, None)
    assert parse_uri("postgres://overwatch@127.0.0.1/overwatch") == target


def test_percent_encoded_parts_are_decoded() -> None:
    target = parse_uri("postgresql://ow%40cern:p%40ss%2Fw%3Ard@h:1/my%20db")
    assert (target.user, target.password, target.dbname) == ("ow@cern", "p@ss/w:rd", "my db")


def test_query_parameters_go_to_libpq() -> None:
    target = parse_uri("postgresql://u@h/d?sslmode=require&application_name=overwatch")
    assert target.params == (("sslmode", "require"), ("application_name", "overwatch"))
    dsn = target.dsn(3.0)
    assert "sslmode='require'" in dsn and "application_name='overwatch'" in dsn


def test_the_connection_string_quotes_values_and_bounds_the_connection_time() -> None:
    target = parse_uri("postgresql://u:it's%20a%5Cpass@h:1/d")
    dsn = target.dsn(0.5)
    assert r"password='it\'s a\\pass'" in dsn
    assert "connect_timeout='2'" in dsn  # libpq's minimum
    assert "connect_timeout='8'" in target.dsn(7.2)  # whole seconds, rounded up
    assert dsn.startswith("host='h' port='1' user='u' dbname='d'")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("postgresql://u@/d", "no host"),
        ("postgresql://127.0.0.1:5432/d", "no user name"),
        ("postgresql://u@h:5432", "name one database"),
        ("postgresql://u@h:5432/", "name one database"),
        ("postgresql://u@h/a/b", "name one database"),
        ("postgresql://u@h:port/d", "the port must be a number"),
        ("postgresql://u@h:99999/d", "the port must be a number"),
        ("postgresql://u@h/d?password=x", "'password' in the query"),
        ("postgresql://u@h/d?connect_timeout=60", "'connect_timeout' in the query"),
        ("postgresql://u@h/d?not-a-key=1", "not a libpq connection parameter"),
        ("postgresql://u@h/d?sslmode", "KEY=VALUE"),
        ("postgresql://u@h/d#x", "unexpected '#'"),
    ],
)
def test_bad_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(PostgresURIError, match=message) as caught:
        parse_uri(uri)
    assert str(caught.value).startswith(repr(uri))  # which URI, then what is wrong


def test_open_db_rejects_a_bad_uri_before_connecting_and_hides_the_password() -> None:
    with pytest.raises(DatabaseURIError, match="no host") as caught:
        open_db("postgresql://u:hunter2@/d")
    assert "hunter2" not in str(caught.value)
    assert "u:***@" in str(caught.value)


def test_an_unknown_scheme_lists_postgresql_and_hides_the_password() -> None:
    with pytest.raises(DatabaseURIError, match="postgresql://USER") as caught:
        open_db("mysql://u:hunter2@h/d")
    assert "hunter2" not in str(caught.value)


def test_a_server_that_refuses_is_a_disconnection_within_the_wait() -> None:
    import socket
    import time

    import psycopg2

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        open_db(f"postgresql://u:pw@127.0.0.1:{port}/d", wait_timeout=1.0)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("hide", [redact, status_redact])
def test_redact_hides_a_postgresql_password(hide) -> None:
    assert hide("postgresql://user:s3cret@db:5432/ow") == "postgresql://user:***@db:5432/ow"
    assert hide("postgresql://user:p@ss@db/ow?x=a@b") == "postgresql://user:***@db/ow?x=a@b"
    assert hide("postgresql://user@db:5432/ow") == "postgresql://user@db:5432/ow"
    assert hide("zeo://127.0.0.1:8100") == "zeo://127.0.0.1:8100"
    assert hide("file:///var/lib/overwatch/db.fs") == "file:///var/lib/overwatch/db.fs"

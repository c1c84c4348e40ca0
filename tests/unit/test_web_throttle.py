"""Sign-in throttling per (user, client address) with growing delays, counted across workers.

Someone guessing alice's password from one address slows down only that
address's attempts at alice: alice signs in from her own machine, and the
count is shared by every web process of the data directory.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_web_support import PASSWORD, add_user, login, make_app
from webapp.auth import TOO_MANY, throttle_of
from webapp.security import ADDRESS_FACTOR, LoginThrottle

ATTACKER, ALICE = "10.0.0.66", "10.0.0.7"


def test_the_right_password_from_another_client_is_not_blocked(tmp_path: Path) -> None:
    app, db = make_app(tmp_path, login_attempts_per_minute=3)
    add_user(db, "alice")
    client = app.test_client()
    for _ in range(3):
        assert login(client, "alice", "guess guess", REMOTE_ADDR=ATTACKER).status_code == 401
    refused = login(client, "alice", "guess guess", REMOTE_ADDR=ATTACKER)
    assert refused.status_code == 429 and TOO_MANY.encode() in refused.data
    assert int(refused.headers["Retry-After"]) >= 1
    assert login(app.test_client(), "alice", PASSWORD, REMOTE_ADDR=ALICE).status_code == 302


def test_failures_are_counted_across_workers(tmp_path: Path) -> None:
    first, db = make_app(tmp_path, login_attempts_per_minute=3)
    second, _ = make_app(tmp_path, db=db, login_attempts_per_minute=3)  # same data directory
    add_user(db, "alice")
    for app in (first, second, first):
        assert login(app.test_client(), "alice", "guess", REMOTE_ADDR=ATTACKER).status_code == 401
    assert login(second.test_client(), "alice", "guess", REMOTE_ADDR=ATTACKER).status_code == 429
    assert login(first.test_client(), "alice", PASSWORD, REMOTE_ADDR=ALICE).status_code == 302


def test_delays_grow_with_each_failure_and_are_forgotten(tmp_path: Path) -> None:
    throttle = LoginThrottle(tmp_path / "status" / "t.sqlite3", 3, max_delay=60.0,
                             forget_after=600.0)  # fmt: skip
    waits = []
    for n in range(10):
        now = 1000.0 + 100 * n  # each try after the previous delay has passed
        assert throttle.wait("alice", ATTACKER, now) <= 0
        throttle.failed("Alice", ATTACKER, now)  # user names count case-insensitively
        waits.append(round(throttle.wait("alice", ATTACKER, now), 3))
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert throttle.wait("alice", ALICE, 1900.0) == 0 and throttle.wait("bob", ATTACKER, 1900) == 0
    assert throttle.wait("alice", ATTACKER, 1900.0 + 600) == 0  # forgotten after a quiet while
    throttle.failed("alice", ATTACKER, 2600.0)
    assert throttle.wait("alice", ATTACKER, 2600.0) == 0  # counting starts again from one


def test_one_address_spraying_many_names_is_braked_and_success_clears(tmp_path: Path) -> None:
    app, db = make_app(tmp_path, login_attempts_per_minute=2)
    add_user(db, "alice")
    throttle = throttle_of(app)
    for n in range(2 * ADDRESS_FACTOR):
        throttle.failed(f"user{n}", ATTACKER)
    assert throttle.wait("someone-new", ATTACKER) > 0
    assert login(app.test_client(), "nobody", "guess", REMOTE_ADDR=ATTACKER).status_code == 429
    throttle.failed("alice", ALICE)
    assert login(app.test_client(), "alice", PASSWORD, REMOTE_ADDR=ALICE).status_code == 302
    throttle.failed("alice", ALICE)  # the success forgot the earlier failure: still free
    assert throttle.wait("alice", ALICE) == 0

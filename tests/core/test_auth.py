"""Basic-auth credential checks: the verified-credential cache, lockouts with an injected
clock, thread safety, and that the password never reaches a log record or an error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from mailkeep.core.admin.auth import Authenticator, AuthResult, address_key
from mailkeep.core.admin.users import Users

SECRET = "s3cret-Pa55word"
WRONG = "wr0ng-Gue55"
HERE = "192.0.2.10"
THERE = "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def users(users: Users) -> Users:
    """The root conftest's users, with the initial admin and alice, bob, carol and dave."""
    users.ensure_initial_admin()
    for name in ("alice", "bob", "carol", "dave"):
        users.create(name, ["login"], password=SECRET)
    return users


@pytest.fixture
def verified(users: Users, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user names that Users.verify_password (the Argon2 step) was called with."""
    calls: list[str] = []
    real = users.verify_password

    def counting(user_name: str, password: str) -> bool:
        calls.append(user_name)
        return real(user_name, password)

    monkeypatch.setattr(users, "verify_password", counting)
    return calls


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(users: Users, clock: Clock) -> Callable[..., Authenticator]:
    def make(**kwargs: Any) -> Authenticator:
        return Authenticator(users, clock=clock, **kwargs)
    return make


OK = AuthResult(True, "ok")
BAD = AuthResult(False, "bad-credentials")


# -- cache -----------------------------------------------------------------------------------

def test_second_check_hits_the_cache(make: Callable[..., Authenticator],
                                     verified: list[str]) -> None:
    auth = make()
    assert auth.check("alice", SECRET, HERE) == OK
    assert auth.check("alice", SECRET, THERE) == OK
    assert auth.check("alice", SECRET, HERE) == OK
    assert verified == ["alice"]
    assert auth.check("alice", WRONG, HERE) == BAD
    assert auth.check("alice", WRONG, HERE) == BAD  # failures are never cached
    assert auth.check("bob", SECRET, HERE) == OK  # another account, same password
    assert verified == ["alice", "alice", "alice", "bob"]


def test_check_cached_answers_only_without_hashing(make: Callable[..., Authenticator],
                                                  verified: list[str]) -> None:
    auth = make(max_failures=2)
    assert auth.check_cached("alice", SECRET, HERE) is None  # never verified: check must run
    assert auth.check("alice", SECRET, HERE) == OK
    assert auth.check_cached("alice", SECRET, HERE) == OK
    assert auth.check_cached("alice", WRONG, HERE) is None
    assert verified == ["alice"]
    for _ in range(2):
        assert auth.check("alice", WRONG, THERE) == BAD
    locked = auth.check_cached("alice", SECRET, THERE)
    assert locked is not None and locked.reason == "locked-out"


def test_password_change_invalidates_the_cache(make: Callable[..., Authenticator],
                                               users: Users, verified: list[str]) -> None:
    auth = make()
    assert auth.check("alice", SECRET, HERE) == OK
    users.set_password("alice", "n3w-Pa55word")
    assert auth.check("alice", SECRET, HERE) == BAD
    assert auth.check("alice", "n3w-Pa55word", HERE) == OK
    assert auth.check("alice", "n3w-Pa55word", HERE) == OK
    assert verified == ["alice", "alice", "alice"]


def test_authentication_change_and_deletion_invalidate_the_cache(
        make: Callable[..., Authenticator], users: Users) -> None:
    auth = make()
    assert auth.check("alice", SECRET, HERE) == OK
    assert auth.check("bob", SECRET, HERE) == OK
    users.set_authentication("alice", "directoryServices")
    users.delete("bob")
    assert auth.check("alice", SECRET, HERE) == BAD
    assert auth.check("bob", SECRET, HERE) == BAD


def test_cache_entries_expire(make: Callable[..., Authenticator], clock: Clock,
                              verified: list[str]) -> None:
    auth = make(cache_seconds=60)
    auth.check("alice", SECRET, HERE)
    clock.now += 59
    auth.check("alice", SECRET, HERE)
    assert len(verified) == 1
    clock.now += 2
    auth.check("alice", SECRET, HERE)
    assert len(verified) == 2


def test_no_cache_when_disabled(make: Callable[..., Authenticator],
                                verified: list[str]) -> None:
    auth = make(cache_seconds=0)
    for _ in range(3):
        assert auth.check("alice", SECRET, HERE) == OK
    assert len(verified) == 3


def test_user_name_case_does_not_matter(make: Callable[..., Authenticator]) -> None:
    auth = make()
    assert auth.check("ALICE", SECRET, HERE) == OK
    assert auth.check("Alice", SECRET, HERE) == OK


# -- lockout ---------------------------------------------------------------------------------

def test_lockout_after_max_failures_and_expiry(make: Callable[..., Authenticator],
                                               clock: Clock, verified: list[str]) -> None:
    auth = make(max_failures=3, lockout_seconds=300)
    for _ in range(3):
        assert auth.check("alice", WRONG, HERE) == BAD
    result = auth.check("alice", SECRET, HERE)  # the right password, but locked out
    assert result == AuthResult(False, "locked-out", 300.0)
    assert len(verified) == 3  # a locked-out check verifies nothing
    clock.now += 200
    assert auth.check("alice", WRONG, HERE).retry_after == pytest.approx(100.0)
    clock.now += 100
    assert auth.check("alice", SECRET, HERE) == OK


def test_a_cached_login_is_locked_out_too(make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=2)
    assert auth.check("alice", SECRET, HERE) == OK
    auth.check("alice", WRONG, HERE)
    auth.check("alice", WRONG, HERE)
    assert auth.check("alice", SECRET, HERE).reason == "locked-out"


def test_lockout_is_per_address(make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=3)
    for _ in range(3):
        auth.check("alice", WRONG, HERE)
    assert auth.check("alice", SECRET, HERE).reason == "locked-out"
    assert auth.check("alice", SECRET, THERE) == OK
    assert auth.check("bob", SECRET, HERE) == OK


def test_an_address_spraying_accounts_is_locked_for_all(
        make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=3, address_max_failures=6)
    for name in ("alice", "bob", "carol"):
        for _ in range(2):
            assert auth.check(name, WRONG, HERE) == BAD
    assert auth.check("dave", SECRET, HERE).reason == "locked-out"
    assert auth.check("ghost", WRONG, HERE).reason == "locked-out"
    assert auth.check("dave", SECRET, THERE) == OK


def test_failures_outside_the_window_are_forgotten(make: Callable[..., Authenticator],
                                                   clock: Clock) -> None:
    auth = make(max_failures=3, window_seconds=60)
    for _ in range(10):
        assert auth.check("alice", WRONG, HERE) == BAD
        clock.now += 31  # never three in one minute
    assert auth.check("alice", SECRET, HERE) == OK


def test_success_resets_the_account_count(make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=3)
    for _ in range(3):
        auth.check("alice", WRONG, HERE)
        auth.check("alice", WRONG, HERE)
        assert auth.check("alice", SECRET, HERE) == OK


def test_unknown_accounts_are_counted_like_known_ones(
        make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=2)
    assert auth.check("ghost", SECRET, HERE) == BAD
    assert auth.check("ghost", SECRET, HERE) == BAD
    assert auth.check("ghost", SECRET, HERE).reason == "locked-out"


def test_on_lockout_is_called_once(make: Callable[..., Authenticator], clock: Clock) -> None:
    calls: list[tuple[str, str]] = []
    auth = make(max_failures=3, on_lockout=lambda user, address: calls.append((user, address)))
    for _ in range(8):
        auth.check("alice", WRONG, HERE)
    assert calls == [("alice", HERE)]
    clock.now += 301
    for _ in range(3):
        auth.check("alice", WRONG, HERE)
    assert calls == [("alice", HERE)] * 2


def test_a_failing_hook_does_not_break_checks(make: Callable[..., Authenticator],
                                              caplog: pytest.LogCaptureFixture) -> None:
    def hook(user: str, address: str) -> None:
        raise RuntimeError("mail server down")

    auth = make(max_failures=1, on_lockout=hook)
    with caplog.at_level(logging.ERROR):
        assert auth.check("alice", WRONG, HERE) == BAD
    assert "lockout hook failed" in caplog.text
    assert auth.check("alice", SECRET, HERE).reason == "locked-out"


def test_unlock(make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=1, address_max_failures=1)
    auth.check("alice", WRONG, HERE)
    auth.unlock("alice", HERE)
    assert auth.check("alice", SECRET, HERE).reason == "locked-out"  # the address still is
    auth.unlock(address=HERE)
    assert auth.check("alice", SECRET, HERE) == OK
    auth.check("bob", WRONG, THERE)
    auth.unlock()
    assert auth.check("bob", SECRET, THERE) == OK


def test_address_keys() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("[2001:db8:1:2::9]")
    assert address_key("2001:db8:1:2:3:4:5:6") != address_key("2001:db8:1:3::1")
    assert address_key("testclient") == "testclient"


def test_ipv6_neighbours_share_a_lockout(make: Callable[..., Authenticator]) -> None:
    auth = make(max_failures=2)
    auth.check("alice", WRONG, "2001:db8::1")
    auth.check("alice", WRONG, "2001:db8::2")
    assert auth.check("alice", SECRET, "2001:db8::3").reason == "locked-out"


# -- threads ---------------------------------------------------------------------------------

def run_threads(count: int, target: Callable[[], AuthResult]) -> list[AuthResult]:
    results: list[AuthResult] = []
    barrier = threading.Barrier(count)

    def work() -> None:
        barrier.wait()
        results.append(target())

    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_parallel_logins_cost_one_hash(make: Callable[..., Authenticator],
                                       verified: list[str]) -> None:
    auth = make()
    results = run_threads(16, lambda: auth.check("alice", SECRET, HERE))
    assert results == [OK] * 16
    assert len(verified) == 1


def test_parallel_guesses_cannot_outrun_the_lockout(make: Callable[..., Authenticator],
                                                    verified: list[str]) -> None:
    auth = make(max_failures=3)
    results = run_threads(16, lambda: auth.check("alice", WRONG, HERE))
    assert len(verified) == 3
    assert sorted(r.reason for r in results) == ["bad-credentials"] * 3 + ["locked-out"] * 13


# -- secrecy ---------------------------------------------------------------------------------

def test_the_password_is_never_logged(make: Callable[..., Authenticator], users: Users,
                                      caplog: pytest.LogCaptureFixture) -> None:
    auth = make(max_failures=2, address_max_failures=3, on_lockout=lambda u, a: None)
    with caplog.at_level(logging.DEBUG):
        auth.check("alice", SECRET, HERE)
        auth.check("alice", SECRET, HERE)
        auth.check("alice", WRONG, HERE)
        auth.check("alice", WRONG, HERE)
        auth.check("alice", WRONG, HERE)
        auth.check("bob", WRONG, HERE)
        auth.check("ghost", WRONG, THERE)
        auth.check("alice", "ab\udcffcd", THERE)
        users.set_password("alice", WRONG)
        auth.check("alice", WRONG, THERE)
    assert caplog.records  # failures and the lockout were logged
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(record.exc_info)
        assert SECRET not in text
        assert WRONG not in text
    assert "locked out" in caplog.text


def test_results_hold_no_secret(make: Callable[..., Authenticator]) -> None:
    auth = make()
    for result in (auth.check("alice", SECRET, HERE), auth.check("alice", WRONG, HERE)):
        assert SECRET not in repr(result)
        assert WRONG not in repr(result)

"""Credential checks for HTTP Basic, without the HTTP: a cache of verified credentials, and
throttling of failed logins per account and address.

Transports call `Authenticator.check` on every request and decide themselves what a result
means (401, 403, ...); authorization (privileges, roles) is read from `Users` per request.

Lockout policy:
- failures are counted in a sliding window of `window_seconds` (default: `lockout_seconds`)
  per (account, address) and per address over all accounts;
- `max_failures` failures of one account from one address lock that account for that address;
- `address_max_failures` failures from one address (default 4 x `max_failures`, so that one
  person mistyping behind a shared NAT does not lock out the whole office) lock the address
  for every account;
- a lock lasts `lockout_seconds` and is not extended by attempts during it; a locked-out check
  verifies nothing. There is no address-independent account lock: it would let anyone lock
  the administrator out. `on_lockout(user, address)` runs once per lock, `on_failure(user,
  address, way)` once per failed check (a locked-out check is not one: it verified nothing),
  so what it records is bounded by the locks.
IPv6 addresses are counted per /64, the block one subscriber usually holds.

The way a login comes (`way`: "api", "smtp" or "web") decides what it may use: an app password
(core.admin.mfa) for the API and SMTP AUTH, never for the console; an account with MFA uses the
API and SMTP AUTH with app passwords only (its own password is refused there), and the console
with its password and a code (checked by the console).

A password check costs 64 MiB of Argon2 for tens of milliseconds: at most `max_hashing`
(default: the number of cores, at least 2) run at once, whatever the interface (HTTP, the
console, SMTP AUTH) and however many threads ask; the others wait their turn. A directory
account's password is checked by a bind as the account, each time (no cache: a password changed
or an account disabled in the directory counts at once), at most eight at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mailkeep.core.admin.directory import DIRECTORY, Directory
from mailkeep.core.admin.mfa import APP_PREFIX, MultiFactor
from mailkeep.core.admin.users import Users, name_key
from mailkeep.core.errors import NotFound

log = logging.getLogger(__name__)

MAX_CACHED = 10_000
PRUNE_EVERY = 256


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    reason: str  # "ok" | "bad-credentials" | "locked-out" | "busy" (the directory: try again)
    retry_after: float | None = None  # seconds, when locked out


@dataclass
class _Cached:
    generation: int
    expires: float


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


def address_key(address: str) -> str:
    """The unit an address is throttled by: the IPv4 address (also when IPv4-mapped), the
    IPv6 /64, or the text as given when it is no IP address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Authenticator:
    """Thread-safe. One instance per process: its cache key is random per instance."""

    def __init__(self, users: Users, *, cache_seconds: float = 300, max_failures: int = 5,
                 lockout_seconds: float = 300, window_seconds: float | None = None,
                 address_max_failures: int | None = None,
                 on_lockout: Callable[[str, str], None] | None = None,
                 on_failure: Callable[[str, str, str], None] | None = None,
                 max_hashing: int | None = None, code_failures: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self.mfa = MultiFactor(users.master, None)
        self.cache_seconds = cache_seconds
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.window_seconds = lockout_seconds if window_seconds is None else window_seconds
        self.address_max_failures = (4 * max_failures if address_max_failures is None
                                     else address_max_failures)
        self.on_lockout = on_lockout
        self.on_failure = on_failure
        self.clock = clock
        self.code_failures = code_failures
        self._codes: dict[str, _Failures] = {}
        self.max_hashing = max_hashing or max(2, os.cpu_count() or 2)
        self._hashing = threading.BoundedSemaphore(self.max_hashing)
        self._binding = threading.BoundedSemaphore(8)  # directory binds at once
        self._binding_from: set[str] = set()  # addresses with a bind in flight
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._pairs: dict[tuple[str, str], _Failures] = {}
        self._addresses: dict[str, _Failures] = {}
        # One verification at a time per address: parallel guesses cannot outrun the counters,
        # and parallel requests with the same new credentials cost one hash, not many.
        self._address_locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary())
        self._checks = 0

    def check_cached(self, user_name: str, password: str, address: str,
                     way: str = "api", settle: bool = True) -> AuthResult | None:
        """The answer when it needs no password hash (locked out, or verified recently);
        None when `check` must run (off the event loop: it may hash)."""
        pair = (name_key(user_name), address_key(address))
        locked = self._locked(pair)
        if locked is not None:
            return locked
        digest = self._digest(user_name, password, way)
        if self._cached(digest, user_name):
            if settle:
                self._succeeded(pair)
            return AuthResult(True, "ok")
        return None

    def check(self, user_name: str, password: str, address: str,
              way: str = "api", settle: bool = True) -> AuthResult:
        """Whether the password is right, throttled. settle=False: a second step follows (a
        one-time code), so a right password does not yet clear the failures counted for the
        account on this address; `succeeded` does once the second step passed."""
        pair = (name_key(user_name), address_key(address))
        digest = self._digest(user_name, password, way)
        locked = self._locked(pair)
        if locked is not None:
            return locked
        if self._cached(digest, user_name):
            if settle:
                self._succeeded(pair)
            return AuthResult(True, "ok")
        if way != "web" and password.startswith(APP_PREFIX):
            pass  # an app password: no bind, no hash, whatever the account
        elif self._directory(user_name):
            return self._check_directory(pair, user_name, password, address, way, settle)
        with self._address_lock(pair[1]):
            locked = self._locked(pair)  # another thread may have locked it meanwhile
            if locked is not None:
                return locked
            if self._cached(digest, user_name):
                if settle:
                    self._succeeded(pair)
                return AuthResult(True, "ok")
            generation = self._generation(user_name)  # read first: a change during the
            ok = self._verify(user_name, password, way)  # a change during the hash: missed
            if ok and generation is not None:
                self._remember(digest, generation)
                if settle:
                    self._succeeded(pair)
                return AuthResult(True, "ok")
            self._failed(pair, user_name, address, way)
        return AuthResult(False, "bad-credentials")

    def _verify(self, user_name: str, password: str, way: str) -> bool:
        if way != "web" and password.startswith(APP_PREFIX):
            return self.mfa.check_app_password(user_name, password)
        with self._hashing:
            ok = self.users.verify_password(user_name, password)
        return ok and (way == "web" or not self.mfa.required(user_name))

    def _check_directory(self, pair: tuple[str, str], user_name: str, password: str,
                         address: str, way: str, settle: bool) -> AuthResult:
        """A directory account's password: a bind as the account. A slow or unreachable
        directory must not stall the server: at most one bind per address and eight in all
        run at once, each bounded by the directory's timeout; a login that would wait for
        one gets "busy" at once (not counted as a failure) instead of holding a thread."""
        with self._lock:
            if pair[1] in self._binding_from:
                return AuthResult(False, "busy")
            self._binding_from.add(pair[1])
        try:
            if not self._binding.acquire(blocking=False):
                return AuthResult(False, "busy")
            try:
                locked = self._locked(pair)
                if locked is not None:
                    return locked
                ok = Directory(self.users.master, self.users.master.path.parent).bind(
                    user_name, password)
            finally:
                self._binding.release()
        finally:
            with self._lock:
                self._binding_from.discard(pair[1])
        if ok and (way == "web" or not self.mfa.required(user_name)):
            if settle:
                self._succeeded(pair)
            return AuthResult(True, "ok")  # not cached: the directory's word each time
        self._failed(pair, user_name, address, way)
        return AuthResult(False, "bad-credentials")

    def _directory(self, user_name: str) -> bool:
        account = self.users.account(user_name)
        return account is not None and account.authentication == DIRECTORY

    def _digest(self, user_name: str, password: str, way: str) -> bytes:
        text = f"{way}\0{user_name}\0{password}"
        return hmac.new(self._key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def succeeded(self, user_name: str, address: str) -> None:
        """The second step of a login passed: its failures are forgiven."""
        self._succeeded((name_key(user_name), address_key(address)))

    def failed(self, user_name: str, address: str) -> None:
        """Count a failed second step of a login (a wrong one-time code) like a wrong
        password, and also for the account whatever the address: whoever has the password
        may guess codes from many addresses, so `code_failures` wrong codes within the
        window stop code checks of the account for `lockout_seconds` (RFC 6238 5.2)."""
        self._failed((name_key(user_name), address_key(address)), user_name, address, "web")
        now = self.clock()
        with self._lock:
            failures = self._count(self._codes.setdefault(name_key(user_name), _Failures()),
                                   now)
            locked = len(failures.times) >= self.code_failures
            if locked:
                self._lock_out(failures, now)
        if locked:
            log.warning("one-time codes of user %r locked for %.0f s", user_name,
                        self.lockout_seconds)
            if self.on_lockout is not None:
                try:
                    self.on_lockout(user_name, "any address (one-time codes)")
                except Exception:
                    log.exception("lockout hook failed")

    def codes_locked(self, user_name: str) -> float | None:
        """Seconds until the account's one-time codes are checked again (None: now)."""
        now = self.clock()
        with self._lock:
            until = self._until(self._codes.get(name_key(user_name)))
        return until - now if until > now else None

    def unlock(self, user_name: str | None = None, address: str | None = None) -> None:
        """Lift locks and forget failures: of one account (on every address), of one address,
        of one account on one address, or everything when both are None."""
        account = None if user_name is None else name_key(user_name)
        where = None if address is None else address_key(address)
        with self._lock:
            for pair in [p for p in self._pairs
                         if account in (None, p[0]) and where in (None, p[1])]:
                del self._pairs[pair]
            if account is None:
                for key in [a for a in self._addresses if where in (None, a)]:
                    del self._addresses[key]

    # -- cache ----------------------------------------------------------------------------

    def _generation(self, user_name: str) -> int | None:
        try:
            return self.users.password_generation(user_name)
        except NotFound:
            return None

    def _cached(self, digest: bytes, user_name: str) -> bool:
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return False
            if entry.expires <= self.clock():
                del self._cache[digest]
                return False
        if self._generation(user_name) == entry.generation:
            return True
        with self._lock:
            self._cache.pop(digest, None)
        return False

    def _remember(self, digest: bytes, generation: int) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            self._cache[digest] = _Cached(generation, self.clock() + self.cache_seconds)
            self._cache.move_to_end(digest)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)

    # -- throttling -----------------------------------------------------------------------

    def _address_lock(self, address: str) -> threading.Lock:
        with self._lock:
            lock = self._address_locks.get(address)
            if lock is None:
                lock = threading.Lock()
                self._address_locks[address] = lock
            return lock

    def _locked(self, pair: tuple[str, str]) -> AuthResult | None:
        now = self.clock()
        with self._lock:
            self._checks += 1
            if self._checks % PRUNE_EVERY == 0:
                self._prune(now)
            until = max(self._until(self._pairs.get(pair)),
                        self._until(self._addresses.get(pair[1])))
        if until > now:
            return AuthResult(False, "locked-out", until - now)
        return None

    @staticmethod
    def _until(failures: _Failures | None) -> float:
        return 0.0 if failures is None else failures.locked_until

    def _succeeded(self, pair: tuple[str, str]) -> None:
        # The address count stays: one valid account must not reset a spray from that address.
        with self._lock:
            self._pairs.pop(pair, None)

    def _failed(self, pair: tuple[str, str], user_name: str, address: str, way: str) -> None:
        now = self.clock()
        with self._lock:
            by_pair = self._count(self._pairs.setdefault(pair, _Failures()), now)
            by_address = self._count(self._addresses.setdefault(pair[1], _Failures()), now)
            locked = False
            for failures, limit in ((by_pair, self.max_failures),
                                    (by_address, self.address_max_failures)):
                if len(failures.times) >= limit:
                    self._lock_out(failures, now)
                    locked = True
        log.info("login failed for user %r from %s", user_name, address)
        if self.on_failure is not None:
            try:
                self.on_failure(user_name, address, way)
            except Exception:
                log.exception("failure hook failed")
        if locked:
            log.warning("login locked out for user %r from %s for %.0f s", user_name, address,
                        self.lockout_seconds)
            if self.on_lockout is not None:
                try:
                    self.on_lockout(user_name, address)
                except Exception:
                    log.exception("lockout hook failed")

    def _count(self, failures: _Failures, now: float) -> _Failures:
        failures.times.append(now)
        while failures.times and failures.times[0] <= now - self.window_seconds:
            failures.times.popleft()
        return failures

    def _lock_out(self, failures: _Failures, now: float) -> None:
        failures.times.clear()  # after the lock, a fresh count
        failures.locked_until = now + self.lockout_seconds

    def _prune(self, now: float) -> None:
        def stale(f: _Failures) -> bool:
            return f.locked_until <= now and (not f.times
                                              or f.times[-1] <= now - self.window_seconds)

        for pair in [k for k, f in self._pairs.items() if stale(f)]:
            del self._pairs[pair]
        for address in [k for k, f in self._addresses.items() if stale(f)]:
            del self._addresses[address]
        for account in [k for k, f in self._codes.items() if stale(f)]:
            del self._codes[account]
        for digest in [d for d, e in self._cache.items() if e.expires <= now]:
            del self._cache[digest]

"""Multi-factor login (TOTP, RFC 6238) and app passwords.

- `initialize` makes a new secret (shown once: as text, as an otpauth:// URI and as a QR code of
  it) that counts once `confirm` got a first valid code from the authenticator app; `confirm`
  answers ten one-time recovery codes (shown once, kept as digests). From then on a console login
  needs a code as well as the password; `disable` takes it away (an administrator resetting a
  user who lost the phone).
- A code is the one of the current 30-second step or of the step before or after (clocks
  drift), and each step's code is taken once: a code seen by someone else is worth nothing.
- App passwords: HTTP Basic and SMTP AUTH carry no second factor, so an account with MFA uses
  the Administration API and SMTP AUTH with app passwords, never with its own password. They
  are random (160 bits; a digest is as strong as a slow hash for them), named, revocable,
  shown once and kept as SHA-256 digests. Any account may have them; the console never takes
  them.
The secret is sealed under the master key, bound to the account's id, like every other secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import segno

from mailkeep.core.admin.secrets import open_text, seal_text, secret_key, secret_keys
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Conflict, Forbidden, InvalidArgument, NotFound
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.masterdb.accounts import AccountRow

PURPOSE = "mfa secrets"
ISSUER = "mailkeep"
STEP_S = 30
RECOVERY_CODES = 10
APP_PREFIX = "mkap-"  # app passwords start with this: no slow hash is spent on them
MAX_APP_PASSWORDS = 50
NAME_MAX = 100


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _aad(user_id: int) -> str:
    return f"mfa secret of user {user_id}"


def _recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 16 characters
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def _normalized_code(code: str) -> str:
    """As typed, whatever the case, spaces and dashes ("ABCD EFGH..." is "abcd-efgh-...")."""
    return "".join(code.split()).replace("-", "").lower()


class MultiFactor:
    def __init__(self, master: MasterDB, data_dir: Path | None,
                 clock: Callable[[], float] = time.time) -> None:
        """data_dir: where the master key is (None: only what needs no secret, as the
        authenticator's checks of app passwords and of whether a code is needed)."""
        self.master = master
        self.data_dir = data_dir
        self.clock = clock
        self.users = Users(master)

    def _account(self, user_name: str) -> AccountRow:
        row = self.users.account(user_name)
        if row is None:
            raise NotFound(f"User '{user_name}' does not exist.")
        return row

    def _dir(self) -> Path:
        assert self.data_dir is not None, "MultiFactor without its data directory"
        return self.data_dir

    def _secret(self, account: AccountRow, sealed: str) -> str:
        return open_text(secret_keys(self._dir(), PURPOSE), sealed, _aad(account.id))

    # -- TOTP ---------------------------------------------------------------------------------
    def required(self, user_name: str) -> bool:
        """Whether a console login of this account needs a code (False for unknown ones)."""
        account = self.users.account(user_name)
        row = self.master.mfa.get(account.id) if account is not None else None
        return row is not None and row.confirmed

    def initialize(self, user_name: str, current_code: str | None = None,
                   prove: bool = False) -> dict[str, Any]:
        """A new secret for the account, pending until `confirm`: a secret in force stays in
        force until then, so setting up again switches nothing off. prove: the account sets
        up its own MFA again while one is in force, so it must give a code of the one in
        force (or a recovery code): a session alone, stolen or left open, is not enough to
        replace the owner's authenticator."""
        account = self._account(user_name)
        if prove and self.required(account.user_name):
            if not current_code or not self.check_code(account.user_name, current_code):
                raise Forbidden("Setting up multi-factor login again needs currentCode: a code "
                                "of the authenticator in force, or a recovery code.")
        secret = pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends
        sealed = seal_text(secret_key(self._dir(), PURPOSE), secret, _aad(account.id))
        with self.master.tx():
            self.master.mfa.start(account.id, sealed, self.clock())
        uri = pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(
            name=account.user_name, issuer_name=ISSUER)
        qr = segno.make(uri, error="m")
        return {"userName": account.user_name, "secret": secret, "uri": uri,
                "qrCode": qr.svg_data_uri(scale=4), "issuer": ISSUER}

    def confirm(self, user_name: str, code: str) -> list[str]:
        """Put the secret set up in force with a first code from the app; the new recovery
        codes (shown once; the old ones are void)."""
        account = self._account(user_name)
        row = self.master.mfa.get(account.id)
        if row is None or row.pending is None:
            raise Conflict(f"User '{account.user_name}' has no MFA set up to confirm: call "
                           "InitializeMFA first.")
        step = self._matching_step(self._secret(account, row.pending), code, row.last_step)
        if step is None:
            raise InvalidArgument("The code does not match: give the code the authenticator "
                                  "app shows now.")
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        digests = [_digest(_normalized_code(c)) for c in codes]
        with self.master.tx():
            if not self.master.mfa.confirm(account.id, row.pending, step, digests):
                raise Conflict(f"MFA of user '{account.user_name}' was set up again meanwhile: "
                               "confirm with a code of the new secret.")
            self.users.new_generation(account.user_name)  # its password alone: cached no more
        return codes

    def disable(self, user_name: str) -> bool:
        account = self._account(user_name)
        with self.master.tx():
            gone = self.master.mfa.delete(account.id)
            self.users.new_generation(account.user_name)
        return gone

    def check_code(self, user_name: str, code: str) -> bool:
        """A console login's second factor: a code of the app (once per step) or a recovery
        code (once)."""
        account = self.users.account(user_name)
        row = self.master.mfa.get(account.id) if account is not None else None
        if account is None or row is None or row.secret is None or not isinstance(code, str) \
                or len(code) > 64:
            return False
        text = _normalized_code(code)
        if text.isascii() and text.isdigit():
            step = self._matching_step(self._secret(account, row.secret), text, row.last_step)
            return step is not None and self.master.mfa.use_step(account.id, step)
        return self.master.mfa.use_recovery(account.id, _digest(text))

    def _matching_step(self, secret: str, code: str, after: int) -> int | None:
        text = _normalized_code(code)
        if not (text.isascii() and text.isdigit() and len(text) == 6):
            return None
        totp = pyotp.TOTP(secret, interval=STEP_S)
        now = int(self.clock() // STEP_S)
        for step in (now, now - 1, now + 1):
            if step > after and hmac.compare_digest(totp.generate_otp(step), text):
                return step
        return None

    def reseal(self) -> int:
        """Seal every secret under the current master key (RenewMasterKey)."""
        key = secret_key(self._dir(), PURPOSE)
        done = 0
        keys = secret_keys(self._dir(), PURPOSE)

        def again(sealed: str | None, user_id: int) -> str | None:
            if sealed is None:
                return None
            return seal_text(key, open_text(keys, sealed, _aad(user_id)), _aad(user_id))

        with self.master.tx():
            for user_id, secret, pending in self.master.mfa.all_sealed():
                self.master.mfa.reseal(user_id, again(secret, user_id), again(pending, user_id))
                done += 1
        return done

    # -- app passwords ---------------------------------------------------------------------
    def create_app_password(self, user_name: str, name: str) -> dict[str, Any]:
        account = self._account(user_name)
        name = (name or "").strip()
        if not name or len(name) > NAME_MAX or any(ord(c) < 32 or c == "\x7f" for c in name):
            raise InvalidArgument(f"name: a label of 1 to {NAME_MAX} printable characters, "
                                  "e.g. 'monitoring script'.")
        password = APP_PREFIX + secrets.token_urlsafe(20)
        now = self.clock()
        with self.master.tx():
            existing = self.master.app_passwords.of(account.id)
            if any(p.name.lower() == name.lower() for p in existing):
                raise Conflict(f"User '{account.user_name}' has an app password named {name!r} "
                               "already.")
            if len(existing) >= MAX_APP_PASSWORDS:
                raise Conflict(f"User '{account.user_name}' has {MAX_APP_PASSWORDS} app "
                               "passwords: delete some first.")
            self.master.app_passwords.add(account.id, name, _digest(password), now)
        return {"userName": account.user_name, "name": name, "password": password,
                "createdAt": now}

    def app_passwords(self, user_name: str) -> list[dict[str, Any]]:
        account = self._account(user_name)
        return [{"name": p.name, "createdAt": p.created_at, "lastUsed": p.last_used}
                for p in self.master.app_passwords.of(account.id)]

    def delete_app_passwords(self, user_name: str, name: str | None = None) -> int:
        account = self._account(user_name)
        with self.master.tx():
            gone = self.master.app_passwords.delete(account.id, name)
            if gone:
                self.users.new_generation(account.user_name)  # cached logins check again
        if name is not None and not gone:
            raise NotFound(f"User '{account.user_name}' has no app password named {name!r}.")
        return gone

    def check_app_password(self, user_name: str, password: str) -> bool:
        if not password.startswith(APP_PREFIX) or len(password) > 100:
            return False
        found = self.master.app_passwords.find(_digest(password))
        account = self.users.account(user_name)
        if found is None or account is None or found.user_id != account.id:
            return False
        self.master.app_passwords.used(found.id, self.clock())
        return True

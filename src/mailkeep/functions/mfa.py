"""Multi-factor login and app passwords (core.admin.mfa has the rules).

InitializeMFA, DisableMFA and DeleteAppPasswords are the original's; ConfirmMFA,
CreateAppPassword and GetAppPasswords are mailkeep's (the original sets MFA up in its own
client). An account may manage its own MFA and app passwords from the console whatever its
role; an administrator manages anyone's, and only an administrator may switch MFA off.
"""

from __future__ import annotations

from typing import Any

from mailkeep.core.admin.mfa import MultiFactor
from mailkeep.core.admin.sessions import Sessions
from mailkeep.core.admin.users import ROLES, Users, name_key
from mailkeep.core.errors import Forbidden
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.invoke import SYSTEM_VIAS
from mailkeep.functions.registry import McRoute, function
from mailkeep.functions.users import USER


def _own(call: Call) -> str:
    """The account the call is about, if the caller may manage it: its own, or anyone's for
    an administrator (or the shell)."""
    target = str(call.arg("userName"))
    if call.caller.via in SYSTEM_VIAS or name_key(target) == name_key(call.caller.user):
        return target
    if not Users(call.master).is_administrator(call.caller.user):
        raise Forbidden(f"User {call.caller.user} may manage its own multi-factor login and "
                        "app passwords only.")
    return target


def _mfa(call: Call) -> MultiFactor:
    return MultiFactor(call.master, call.data_dir)


@function("InitializeMFA", "Set up multi-factor login (TOTP) for an account: a new secret, "
          "shown once as text, as an otpauth:// URI and as a QR code (an SVG data URI) for the "
          "authenticator app. It counts once ConfirmMFA got a first code; until then an "
          "authenticator already in force stays in force. An account setting up its own MFA "
          "again gives currentCode (mailkeep's): a code of the authenticator in force, or a "
          "recovery code.",
          '{"userName": str, "secret": str, "uri": str, "qrCode": str, "issuer": str}', USER,
          Field("currentCode", "string", True, "A code of the authenticator in force (setting "
                "up one's own MFA again).", secret=True, max_length=64),
          roles=ROLES, mcapi=McRoute("mfa/initialize", "POST"))
def initialize_mfa(call: Call) -> dict[str, Any]:
    user = _own(call)
    own = call.caller.via not in SYSTEM_VIAS and name_key(user) == name_key(call.caller.user)
    return _mfa(call).initialize(user, call.arg("currentCode"), prove=own)


@function("ConfirmMFA", "Switch on the multi-factor login InitializeMFA set up, with a first "
          "code from the authenticator app. Answers ten one-time recovery codes, shown once: "
          "each logs in once in place of a code. From then on the console asks for a code, and "
          "the Administration API and SMTP AUTH take app passwords only (CreateAppPassword).",
          '{"recoveryCodes": [str]}', USER,
          Field("code", "string", description="The six digits the app shows now.", secret=True),
          roles=ROLES, mcapi=McRoute("mfa/confirm", "POST"))
def confirm_mfa(call: Call) -> dict[str, Any]:
    user = _own(call)
    codes = _mfa(call).confirm(user, call.arg("code"))
    Sessions(call.master).end_user(user)  # sessions opened without a second factor end
    return {"recoveryCodes": codes}


@function("DisableMFA", "Switch an account's multi-factor login off (an administrator resetting "
          "a user who lost the authenticator): its password alone logs in again, and its "
          "recovery codes are void. App passwords stay.", "null", USER)
def disable_mfa(call: Call) -> None:
    user = str(call.arg("userName"))
    call.note(wasOn=_mfa(call).disable(user))
    Sessions(call.master).end_user(user)


@function("CreateAppPassword", "A new app password for an account: for the Administration API "
          "and SMTP AUTH (required there once the account has multi-factor login), never the "
          "console. Shown once; named so that it can be revoked alone.",
          '{"userName": str, "name": str, "password": str, "createdAt": float}', USER,
          Field("name", "string", description="A label, e.g. 'monitoring script'.",
                max_length=100),
          roles=ROLES, mcapi=McRoute("app-password/create", "POST"))
def create_app_password(call: Call) -> dict[str, Any]:
    return _mfa(call).create_app_password(_own(call), call.arg("name"))


@function("GetAppPasswords", "An account's app passwords: names and dates, never the "
          "passwords.", '[{"name": str, "createdAt": float, "lastUsed": float|null}]', USER,
          changes=False, roles=ROLES, mcapi=McRoute("app-password/list", "POST"))
def get_app_passwords(call: Call) -> list[dict[str, Any]]:
    return _mfa(call).app_passwords(_own(call))


@function("DeleteAppPasswords", "Revoke an account's app passwords: all of them, or the one "
          "named (mailkeep's name argument).", "null", USER,
          Field("name", "string", True, "Only the app password of this name."),
          roles=ROLES, mcapi=McRoute("app-password/delete", "POST"))
def delete_app_passwords(call: Call) -> None:
    call.note(deleted=_mfa(call).delete_app_passwords(_own(call), call.arg("name")))

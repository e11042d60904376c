"""The error-notification mail's settings and test mail, in the admin API and, from the same
declarations, the management console's mail/configuration/get|set|test."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from ..core.errors import MailkeepError
from ..notify.config import FIELDS, SECRET, NotificationConfig
from ..notify.connections import FIELDS as CONNECTION_FIELDS
from ..notify.connections import KINDS, Connections
from .call import Call
from .registry import ALL_ROLES, Arg, ArgType, McRoute, function

_TYPES: dict[str, ArgType] = {"bool": "bool", "int": "number"}
SETTINGS_ARGS = tuple(
    Arg(f.name, _TYPES.get(f.type, "string"), True, f.description) for f in FIELDS.values()
) + (Arg(SECRET, "string", True, "Password of userName (the OAuth2 access token for xoauth2); "
         "write-only: never returned. Absent: the stored one stays.", secret=True),)
SHAPE = ('{"connection": str} | {"serverName": str, "port": int, "useSmtpOverSsl": bool, '
         '"useStartTls": bool, "authenticationType": "SMTP"|"POP before SMTP"|"None", ...} '
         '(with fromMailAddress, toMailAddress, mailSubject, encoding; see docs/notification.md)')


class SendFailed(MailkeepError):
    """The mail could not be sent; the message says at which step and what the server said."""

    code = "send_failed"

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step
        self.details = f"send_failed:{step}"


def config(call: Call) -> NotificationConfig:
    return NotificationConfig(call.archive.data_dir)


@function("GetSmtpSettings", "The error-notification mail's settings, in the shape of how it "
          "authenticates: a named connection; \"POP before SMTP\"; \"SMTP\" (AUTH, with "
          "smtpAuthenticationType); or \"None\". The password is never returned.", SHAPE,
          changes=False, roles=ALL_ROLES,
          mcapi=McRoute("mail/configuration/get", "GET", result="configuration"))
def get_smtp_settings(call: Call) -> dict[str, Any]:
    return config(call).get()


@function("SetSmtpSettings", "Change the error-notification mail's settings. Only the "
          "arguments given change; the password stays unless given. The whole configuration "
          "is checked before anything is saved (addresses, ports, encodings, TLS flags: "
          "useSmtpOverSsl and useStartTls are never both true); giving authenticationType "
          "leaves connection mode, giving connection enters it. When authentication is used "
          "a password must be stored; it must be given again when serverName or "
          "pop3ServerName changes.", "null", *SETTINGS_ARGS,
          mcapi=McRoute("mail/configuration/set", "POST", body="configuration"))
def set_smtp_settings(call: Call) -> None:
    names = {c["name"] for c in Connections(call.archive.data_dir).all("smtp")}
    changed = config(call).set(dict(call.args), names)
    call.ctx.log(f"Changed: {', '.join(changed) or 'nothing'}")


@function("TestSmtpSettings", "Send a test mail with the saved settings to toMailAddress. The "
          "log says each step (POP login, connect, TLS, AUTH, sending); a failure says at "
          "which step and what the server replied.", '{"summary": str}',
          long_running=True, changes=False,
          mcapi=McRoute("mail/configuration/test", "POST", result=""))
def test_smtp_settings(call: Call) -> dict[str, str]:
    from ..notify.mailer import Mailer

    mailer = Mailer(call.archive.data_dir, log=call.ctx.log)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    summary = mailer.send(None, "This is a test of mailkeep's error-notification mail, sent "
                          f"from {socket.gethostname()} at {now}.\r\n\r\nIf you can read this, "
                          "notifications will reach you.\r\n")
    call.ctx.log(f"Sent: {summary}")
    return {"summary": summary}


# -- named connections ----------------------------------------------------------------------

CONNECTION_ARGS = tuple(
    Arg(f.name, _TYPES.get(f.type, "string"), True, f.description)
    for f in CONNECTION_FIELDS.values()
) + (Arg(SECRET, "string", True, "Password (write-only; absent: the stored one stays).",
         secret=True),)
CONNECTION_SHAPE = ('{"name": str, "type": "smtp"|"pop3", "serverName": str, "port": int, '
                    '"security": "none"|"implicit"|"starttls", "verifyCertificate": bool, '
                    '"caFile": str|null, "timeOut": int, "authentication": str, "userName": '
                    'str|null, "popBeforeSmtp": str|null, "pop3Interval": int, "hasPassword": '
                    'bool}')
NAME = Arg("name", "string", description="The connection's name.")


def _fields(call: Call) -> dict[str, Any]:
    return {k: v for k, v in call.args.items() if k not in ("name", "type")}


@function("GetConnections", "The named SMTP and POP3 connections (type: smtp or pop3, or all "
          "when absent). Passwords are never shown, only hasPassword.",
          f"{{\"connections\": [{CONNECTION_SHAPE}]}}",
          Arg("type", "string", True, "smtp or pop3; absent: both.", values=KINDS),
          changes=False, roles=ALL_ROLES, mcapi=McRoute("connection/list", "GET"))
def get_connections(call: Call) -> dict[str, Any]:
    return {"connections": Connections(call.archive.data_dir).all(call.arg("type"))}


@function("GetConnection", "One named connection (never its password).", CONNECTION_SHAPE,
          NAME, changes=False, roles=ALL_ROLES,
          mcapi=McRoute("connection/show", "GET", result="connection"))
def get_connection(call: Call) -> dict[str, Any]:
    return Connections(call.archive.data_dir).show(call.arg("name"))


@function("CreateConnection", "Create a named SMTP or POP3 connection. An smtp connection "
          "may name a pop3 connection in popBeforeSmtp.", CONNECTION_SHAPE, NAME,
          Arg("type", "string", description="smtp or pop3.", values=KINDS), *CONNECTION_ARGS,
          mcapi=McRoute("connection/create", "POST", result="connection"))
def create_connection(call: Call) -> dict[str, Any]:
    return Connections(call.archive.data_dir).create(call.arg("name"), call.arg("type"),
                                                     _fields(call))


@function("UpdateConnection", "Change a named connection: only the arguments given change; "
          "the password stays unless given (and must be given again when serverName "
          "changes).", CONNECTION_SHAPE, NAME, *CONNECTION_ARGS,
          mcapi=McRoute("connection/update", "POST", result="connection"))
def update_connection(call: Call) -> dict[str, Any]:
    return Connections(call.archive.data_dir).update(call.arg("name"), _fields(call))


@function("DeleteConnection", "Delete a named connection; refused while the notification mail "
          "or another connection uses it.", "null", NAME,
          mcapi=McRoute("connection/delete", "POST"))
def delete_connection(call: Call) -> None:
    conf, _secret = config(call).full()
    Connections(call.archive.data_dir).delete(call.arg("name"), conf.get("connection"))

"""The error-notification mail's settings and test mail, in the admin API and, from the same
declarations, the management console's mail/configuration/get|set|test."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mailkeep.core.admin import zones
from mailkeep.core.admin.users import ROLES
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import McRoute, function
from mailkeep.notify.config import FIELDS, SECRET, NotificationConfig, check_value
from mailkeep.notify.connections import FIELDS as CONNECTION_FIELDS
from mailkeep.notify.connections import KINDS, Connections
from mailkeep.notify.events import KINDS as EVENT_KINDS
from mailkeep.notify.mailer import Mailer

SHAPE = ('{"connection": str} | {"serverName": str, "port": int, "useSmtpOverSsl": bool, '
         '"useStartTls": bool, "authenticationType": "SMTP"|"POP before SMTP"|"None", ...} '
         '(with fromMailAddress, toMailAddress, mailSubject, encoding; see docs/notification.md)')




def config(call: Call) -> NotificationConfig:
    return NotificationConfig(call.archive.data_dir)


@function("GetSmtpSettings", "The error-notification mail's settings, in the shape of how it "
          "authenticates: a named connection; \"POP before SMTP\"; \"SMTP\" (AUTH, with "
          "smtpAuthenticationType); or \"None\". The password is never returned.", SHAPE,
          changes=False, roles=ROLES,
          mcapi=McRoute("mail/configuration/get", "GET", result="configuration"))
def get_smtp_settings(call: Call) -> dict[str, Any]:
    return config(call).get()


@function("SetSmtpSettings", "Change the error-notification mail's settings. settings is a "
          "JSON object with the fields GetSmtpSettings shows (and password): only the fields "
          "given change; the password stays unless given. The whole configuration is checked "
          "before anything is saved (addresses, ports, encodings, TLS flags: useSmtpOverSsl "
          "and useStartTls are never both true); giving authenticationType leaves connection "
          "mode, giving connection enters it. When authentication is used a password must be "
          "stored; it must be given again when serverName or pop3ServerName changes. Fields: "
          + "; ".join(f"{f.name}: {f.description}" for f in FIELDS.values())
          + "; password: write-only, never returned.", "null",
          Field("settings", "json", description="The fields to change, e.g. "
              '{"serverName": "smtp.example.org", "port": 587, "useStartTls": true}.',
              secret=True),
          mcapi=McRoute("mail/configuration/set", "POST", body="configuration",
                        arg="settings"))
def set_smtp_settings(call: Call) -> None:
    settings = call.arg("settings")
    if not isinstance(settings, dict):
        raise InvalidArgument("API argument settings must be a JSON object of settings.")
    names = {c["name"] for c in Connections(call.archive.data_dir).all("smtp")}
    changed = config(call).set(dict(settings), names)
    call.note(changed=changed)
    call.ctx.log(f"Changed: {', '.join(changed) or 'nothing'}")


@function("TestSmtpSettings", "Send a test mail with the saved settings to toMailAddress. The "
          "log says each step (POP login, connect, TLS, AUTH, sending); a failure says at "
          "which step and what the server replied.", '{"summary": str}',
          long_running=True, changes=False,
          mcapi=McRoute("mail/configuration/test", "POST", result=""))
def test_smtp_settings(call: Call) -> dict[str, str]:
    mailer = Mailer(call.archive.data_dir, log=call.ctx.log)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    summary = mailer.send(None, "This is a test of mailkeep's error-notification mail, sent "
                          f"from {socket.gethostname()} at {now}.\r\n\r\nIf you can read this, "
                          "notifications will reach you.\r\n")
    call.ctx.log(f"Sent: {summary}")
    return {"summary": summary}


# -- named connections ----------------------------------------------------------------------

# The connection's fields are the arguments: each optional (absent: as it is), no default.
CONNECTION_ARGS = tuple(
    replace(f, nullable=True, default=None) for f in CONNECTION_FIELDS.values()
) + (Field(SECRET, "string", True, "Password (write-only; absent: the stored one stays).",
           secret=True),)
CONNECTION_SHAPE = ('{"name": str, "type": "smtp"|"pop3", "serverName": str, "port": int, '
                    '"security": "none"|"implicit"|"starttls", "verifyCertificate": bool, '
                    '"caFile": str|null, "timeOut": int, "authentication": str, "userName": '
                    'str|null, "popBeforeSmtp": str|null, "pop3Interval": int, "hasPassword": '
                    'bool}')
NAME = Field("name", "string", description="The connection's name.")


def _fields(call: Call) -> dict[str, Any]:
    return {k: v for k, v in call.args.items() if k not in ("name", "type")}


@function("GetConnections", "The named SMTP and POP3 connections (type: smtp or pop3, or all "
          "when absent). Passwords are never shown, only hasPassword.",
          f"{{\"connections\": [{CONNECTION_SHAPE}]}}",
          Field("type", "string", True, "smtp or pop3; absent: both.", choices=KINDS),
          changes=False, roles=ROLES, mcapi=McRoute("connection/list", "GET"))
def get_connections(call: Call) -> dict[str, Any]:
    return {"connections": Connections(call.archive.data_dir).all(call.arg("type"))}


@function("GetConnection", "One named connection (never its password).", CONNECTION_SHAPE,
          NAME, changes=False, roles=ROLES,
          mcapi=McRoute("connection/show", "GET", result="connection"))
def get_connection(call: Call) -> dict[str, Any]:
    return Connections(call.archive.data_dir).show(call.arg("name"))


@function("CreateConnection", "Create a named SMTP or POP3 connection. An smtp connection "
          "may name a pop3 connection in popBeforeSmtp.", CONNECTION_SHAPE, NAME,
          Field("type", "string", description="smtp or pop3.", choices=KINDS), *CONNECTION_ARGS,
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


# -- status report ------------------------------------------------------------------------

TIMESPANS = ("today", "yesterday", "thisweek", "lastweek", "thismonth", "lastmonth")


def period(timespan: str, zone_id: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a timespan in a time zone ($Local: the server's own, with its daylight
    saving rules; an IANA or a Windows id)."""
    zone = zones.zone(zone_id)
    now = (now or datetime.now(UTC)).astimezone(zone)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    spans = {"today": (day, day + timedelta(days=1)),
             "yesterday": (day - timedelta(days=1), day),
             "thisweek": (week, week + timedelta(days=7)),
             "lastweek": (week - timedelta(days=7), week),
             "thismonth": (month, next_month), "lastmonth": (last_month, month)}
    start, end = spans[timespan]
    # Midnight in the zone, whatever the offset on that date (daylight saving time).
    return (start.replace(tzinfo=None).replace(tzinfo=zone),
            end.replace(tzinfo=None).replace(tzinfo=zone))


def status_report(call: Call, start: datetime, end: datetime) -> str:
    archive = call.archive
    lo, hi = start.timestamp(), end.timestamp()
    lines = [f"mailkeep status report for {socket.gethostname()}",
             f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({start.tzinfo})", "",
             "Archived"]
    total_n = total_b = 0
    for rec, store in archive.readable_stores():
        n, size = store.catalog.archived_between(int(lo), int(hi))
        total_n, total_b = total_n + n, total_b + size
        lines.append(f"  store {rec.name} (id {rec.id}): {n} messages, {size} bytes")
    for name, exc in archive.unavailable.items():
        lines.append(f"  store {name}: not readable: {exc.message}")
    lines += [f"  in all: {total_n} messages, {total_b} bytes", "", "Failed or cancelled"]
    failures = call.master.history.failures(lo, hi, 100)
    for f in failures:
        stamp = datetime.fromtimestamp(f["finished"], start.tzinfo).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {stamp} {f['name']} ({f['user']}) {f['outcome']}"
                     + (f": {f['error']}" if f["error"] else ""))
    events = call.master.outbox.counts(lo, hi)
    for kind, count in events:
        lines.append(f"  {EVENT_KINDS[kind]}: {count}")
    if not failures and not events:
        lines.append("  nothing")
    return "\r\n".join(lines) + "\r\n"


@function("SendStatusReport", "Mail a summary of a period to recipients (comma separated): "
          "messages archived per store, and the processes that failed or were cancelled and "
          "the notifications raised in it. timespan is today, yesterday, thisweek, lastweek "
          "(weeks start on Monday), thismonth or lastmonth, in timeZoneId ($Local, an IANA "
          "id such as Europe/Berlin (see GetTimeZones) or a Windows id). Sent with the "
          "notification mail's settings.", '{"summary": str}',
          Field("timespan", "string", description="today, yesterday, thisweek, lastweek, "
              "thismonth or lastmonth.", choices=TIMESPANS),
          Field("timeZoneId", "string", description="$Local, an IANA or a Windows time zone "
              "id."),
          Field("recipients", "string", description="Mail addresses, comma separated."))
def send_status_report(call: Call) -> dict[str, str]:
    recipients = check_value(FIELDS["toMailAddress"], str(call.arg("recipients")))
    if not recipients:
        raise InvalidArgument("API argument recipients must name at least one address.")
    start, end = period(call.arg("timespan"), call.arg("timeZoneId"))
    body = status_report(call, start, end)
    summary = Mailer(call.archive.data_dir, log=call.ctx.log).send(
        f"mailkeep status report: {call.arg('timespan')} ({start:%Y-%m-%d})", body, recipients)
    return {"summary": summary}

"""Status functions: the one call of a monitoring sensor, time zones, sessions."""

from __future__ import annotations

import socket
import time
import zoneinfo
from datetime import UTC, datetime
from typing import Any

from mailkeep import __version__
from mailkeep.core.admin.sessions import Sessions
from mailkeep.core.admin.users import ROLES
from mailkeep.core.errors import MailkeepError
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.notify.monitor import LOW_DISK, disk_low

LOCAL = "$Local"

LONG_PROCESS_S = 24 * 3600  # warn about a process that has run longer than this

STATUS_SHAPE = ('{"version": str, "machineName": str, "uptimeSeconds": int, "stores": [{"id": '
                'int, "name": str, "state": str, "ok": bool, "error": str|null}], "diskSpace": '
                '{"path": str, "totalBytes": int, "freeBytes": int}, "jobs": [{"function": str, '
                '"user": str, "startedAt": str, "runningSeconds": int, "percentProgress": '
                'int|null}], "unsentNotifications": {"count": int, "oldest": str|null}, '
                '"warnings": [str]}')
UNSENT_WARN_S = 3600  # warn about a notification waiting longer than this


@function("GetServiceStatus", "Everything a monitoring sensor checks, in one call: version, "
          "machine name, seconds since the server started, each store's state (ok is false "
          "when a store that is not disabled cannot be opened, with error saying why), the "
          "space on the data directory's disk, the server's unfinished processes (jobs, oldest "
          "first: the function, the user who started it, when (UTC, YYYY-MM-DDTHH:MM:SSZ), for "
          "how many seconds it has run and its percentage, null if unknown; never its token; "
          "this call itself is not listed, and the list is empty when called in-process from "
          "the CLI), and warnings: an empty list means all is well (warned: no current store, "
          "a store that cannot be opened, less than 10% of the disk free, a process running "
          "for more than 24 hours, a notification mail unsent for more than an hour). "
          "unsentNotifications: the events waiting in the notification outbox (oldest: when "
          "the first of them happened, UTC).", STATUS_SHAPE, changes=False, roles=ROLES)
def get_service_status(call: Call) -> dict[str, Any]:
    archive = call.archive
    warnings: list[str] = []
    stores: list[dict[str, Any]] = []
    records = archive.stores()
    for rec in records:
        error: str | None = None
        if rec.state != "disabled":
            try:
                archive.open_store(rec)
            except MailkeepError as exc:
                error = exc.message
                warnings.append(f"Store {rec.name} (id {rec.id}) is unavailable: {error}")
        stores.append({"id": rec.id, "name": rec.name, "state": rec.state,
                       "ok": error is None, "error": error})
    if not any(r.state == "current" for r in records):
        warnings.append("No store is current: new mail cannot be archived "
                        "(SetStoreRequestedState or CreateStore).")
    low, free, total = disk_low(archive.data_dir)
    if low:
        warnings.append(f"Less than {LOW_DISK:.0%} of the disk of {archive.data_dir} is free "
                        f"({free} of {total} bytes).")
    jobs = _jobs(call, warnings)
    unsent, oldest = call.master.outbox.unsent()
    if oldest is not None and time.time() - oldest > UNSENT_WARN_S:
        warnings.append(f"{unsent} notification(s) not mailed, the first since "
                        f"{_utc(oldest)} (see the notification mail settings and the log).")
    return {"version": __version__, "machineName": socket.gethostname(),
            "uptimeSeconds": int(time.monotonic() - call.services.started), "stores": stores,
            "diskSpace": {"path": str(archive.data_dir), "totalBytes": total,
                          "freeBytes": free},
            "jobs": jobs, "unsentNotifications": {
                "count": unsent, "oldest": None if oldest is None else _utc(oldest)},
            "warnings": warnings}


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jobs(call: Call, warnings: list[str]) -> list[dict[str, Any]]:
    """The unfinished processes, without their tokens (a token is its starter's to use)."""
    now = time.time()
    out: list[dict[str, Any]] = []
    for info in call.processes():
        seconds = max(0, int(now - info.started))
        out.append({"function": info.name, "user": info.user, "startedAt": _utc(info.started),
                    "runningSeconds": seconds, "percentProgress": info.percent})
        if seconds > LONG_PROCESS_S:
            warnings.append(f"Process {info.name} started by {info.user} at "
                            f"{_utc(info.started)} has been running for {seconds // 3600} hours.")
    return out


def _offset(zone: zoneinfo.ZoneInfo | None, now: datetime) -> str:
    delta = now.astimezone(zone).utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"(UTC{sign}{hours:02d}:{mins:02d})"


@function("GetTimeZones", "The time zones mailkeep knows: $Local (the server's own) first, "
          "then the IANA ids (e.g. Europe/Berlin) sorted. displayName is the id with its "
          "current offset from UTC, e.g. \"(UTC+01:00) Europe/Berlin\".",
          '[{"id": str, "displayName": str}]', changes=False, roles=ROLES)
def get_time_zones(call: Call) -> list[dict[str, str]]:
    now = datetime.now(UTC)
    local = now.astimezone()
    out = [{"id": LOCAL, "displayName": f"{_offset(None, now)} Local time of the server "
            f"({local.tzname() or 'unknown'})"}]
    for zone_id in sorted(zoneinfo.available_timezones()):
        try:
            zone = zoneinfo.ZoneInfo(zone_id)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
        out.append({"id": zone_id, "displayName": f"{_offset(zone, now)} {zone_id}"})
    return out


SESSION_SHAPE = ('[{"userName": str, "role": str, "address": str, "kind": "mcapi", '
                 '"loggedInAt": str, "lastActivity": str, "expiresAt": str}]')


@function("GetActiveSessions", "The live management-console sessions, oldest first: who, with "
          "which role, from which address, when they logged in, when they were last active "
          "(to within 15 seconds) and when the session expires if idle. Session ids are "
          "never shown.", SESSION_SHAPE, changes=False)
def get_active_sessions(call: Call) -> list[dict[str, Any]]:
    return [{"userName": s.user_name, "role": s.role, "address": s.address, "kind": "mcapi",
             "loggedInAt": _utc(s.created_at), "lastActivity": _utc(s.last_seen),
             "expiresAt": _utc(s.expires_at)}
            for s in Sessions(call.master).active()]

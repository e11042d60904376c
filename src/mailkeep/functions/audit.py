"""Reading the audit log (mailkeep extension; the console's audit page, and scripts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailkeep.core.admin.users import ROLES
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import McRoute, function


def _day(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.strptime(value.strip()[:10], "%Y-%m-%d")
                   .replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise InvalidArgument(f"{name} must be a date, YYYY-MM-DD (UTC).") from None


@function("GetAuditLog", "mailkeep extension: the audit log, newest first, one page at a time: "
          "who did what, when, with which details (secrets never recorded). Filters: a day "
          "range (UTC), part of the actor (e.g. mcapi:alice), the start of the action (e.g. "
          "Delete, store.).",
          '{"total": int, "records": [{"id": int, "at": "YYYY-MM-DDTHH:MM:SSZ", "actor": str, '
          '"action": str, "details": {}}]}',
          Field("fromIncluding", "string", required=False, nullable=True, description="First day, "
                "YYYY-MM-DD."),
          Field("toExcluding", "string", required=False, nullable=True,
                description="Day after the last, "
                "YYYY-MM-DD."),
          Field("actor", "string", required=False, default="", description="Part of the "
                "actor."),
          Field("action", "string", required=False, default="", description="Start of the "
                "action."),
          Field("offset", "int", required=False, default=0, low=0, high=1 << 40,
                description="Records to skip."),
          Field("limit", "int", required=False, default=100, low=1, high=1000,
                description="Records to return."),
          changes=False, roles=ROLES, mcapi=McRoute("audit/list", "POST"))
def get_audit_log(call: Call) -> dict[str, Any]:
    total, records = call.master.audit.find(
        _day(call.arg("fromIncluding"), "fromIncluding"),
        _day(call.arg("toExcluding"), "toExcluding"), call.arg("actor") or "",
        call.arg("action") or "", call.arg("limit"), call.arg("offset"))
    return {"total": total, "records": [
        {"id": r.id, "at": datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "actor": r.actor, "action": r.action, "details": r.details} for r in records]}

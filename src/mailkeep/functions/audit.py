"""Reading the audit log (mailkeep extension; the console's audit page, and scripts)."""

from __future__ import annotations

import re
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
          "Delete, store.), part of the details (the object: a message id, a user...). "
          "Details hold the interface (via), the remote address and user agent, the "
          "arguments (secrets masked) and the outcome.",
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
          Field("object", "string", required=False, default="", max_length=200,
                description="Part of the details: a message id, a user, a store, a folder."),
          Field("offset", "int", required=False, default=0, low=0, high=1 << 40,
                description="Records to skip."),
          Field("limit", "int", required=False, default=100, low=1, high=1000,
                description="Records to return."),
          changes=False, roles=ROLES, mcapi=McRoute("audit/list", "POST"))
def get_audit_log(call: Call) -> dict[str, Any]:
    total, records = call.master.audit.find(
        _day(call.arg("fromIncluding"), "fromIncluding"),
        _day(call.arg("toExcluding"), "toExcluding"), call.arg("actor") or "",
        call.arg("action") or "", call.arg("limit"), call.arg("offset"),
        call.arg("object") or "")
    return {"total": total, "records": [
        {"id": r.id, "at": datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "actor": r.actor, "action": r.action, "details": r.details} for r in records]}


@function("VerifyAuditLog", "mailkeep extension: walk the audit log's hash chain (each record "
          "holds SHA-256 over the previous record's link and itself). A changed record, or one "
          "removed from the middle, breaks the chain there and is named in problems. Removing "
          "the newest records or rewriting the whole chain is seen against a head noted "
          "earlier: give expectId and expectHash (lastId and head of an earlier answer). "
          "unchained: records written before the chain existed (not checked).",
          '{"ok": bool, "records": int, "unchained": int, "lastId": int, "head": str, '
          '"problems": [str]}',
          Field("expectId", "number", nullable=True, low=1, high=1 << 62,
                description="The lastId of an earlier answer."),
          Field("expectHash", "string", nullable=True,
                description="The head of that answer (64 hex digits)."),
          changes=False, roles=ROLES)
def verify_audit_log(call: Call) -> dict[str, Any]:
    rid, head = call.arg("expectId"), call.arg("expectHash")
    if (rid is None) != (head is None):
        raise InvalidArgument("Give expectId and expectHash together, or neither.")
    if head is not None and not re.fullmatch(r"[0-9a-f]{64}", head.strip().lower()):
        raise InvalidArgument("expectHash is 64 hexadecimal digits (a head of VerifyAuditLog).")
    report = call.master.audit.verify(
        None if rid is None else (int(rid), str(head).strip().lower()))
    return {"ok": not report.problems, "records": report.records,
            "unchained": report.unchained, "lastId": report.last_id, "head": report.head,
            "problems": report.problems}

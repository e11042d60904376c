"""Retention policies and four-eyes deletion (core/admin/retention.py)."""

from __future__ import annotations

import time
from typing import Any

from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.admin.users import ROLES, Users
from mailkeep.core.archive import parse_message_id
from mailkeep.core.errors import Conflict, InvalidArgument, NotFound
from mailkeep.core.fields import Field
from mailkeep.core.masterdb.retention import DeletionRequest
from mailkeep.core.retention import (
    Retention,
    applying,
    effect,
    process,
    utc,
)
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

SHAPE = ('{"policies": [{"name": str, "enabled": bool, "minimum": {"value": int, "unit": '
         '"days"|"months"|"years"}|null, "maximum": {...}|null, "referenceDate": '
         '"archived"|"sent", "scope": str, "deleteAutomatically": bool}], "fourEyes": bool}')
REQUEST_SHAPE = ('{"id": int, "messageId": str, "reason": str, "requestedBy": str, '
                 '"requestedAt": str, "state": "pending"|"approved"|"rejected"|"failed", '
                 '"decidedBy": str|null, "decidedAt": str|null, "note": str|null}')


@function("GetRetentionPolicies", "mailkeep extension: the retention policies and whether "
          "deleting a message needs a second administrator (fourEyes). A policy applies to "
          "the messages its scope finds (a search, e.g. folder:alice/Invoices or "
          "from:@bank.example; empty: all). A message's minimum is the longest of its "
          "policies' minimums, its maximum the shortest of their maximums (never before the "
          "minimum); the legal hold wins over both.", SHAPE, changes=False, roles=ROLES)
def get_retention_policies(call: Call) -> dict[str, Any]:
    return Retention(call.master).get()


@function("SetRetentionPolicies", "mailkeep extension: replace the retention policies "
          "(config.policies, the whole list) and/or config.fourEyes. Checked whole before "
          "anything is saved (names unique, periods 1 to 200 years, scopes valid searches); "
          "audited as RetentionPoliciesChange. Answers the new configuration.", SHAPE,
          Field("config", "json", description='E.g. {"policies": [{"name": "Invoices", '
                '"minimum": {"value": 10, "unit": "years"}, "referenceDate": "sent", '
                '"scope": "folder:alice/Invoices"}], "fourEyes": false}.'))
def set_retention_policies(call: Call) -> dict[str, Any]:
    return Retention(call.master).set(call.arg("config"), call.caller.actor)


@function("ProcessRetentionPolicies", "mailkeep extension: delete every message whose maximum "
          "retention has passed when the policy deciding its maximum says deleteAutomatically; "
          "each deletion is audited (MessageDelete, with the policy). Refused while the legal "
          "hold is on. Idempotent and resumable: each run looks at what is archived now. The "
          "bytes leave the stores at the next CompactStore. Run it as a scheduled job.",
          '{"examined": int, "deleted": int, "left": int}', long_running=True)
def process_retention_policies(call: Call) -> dict[str, Any]:
    return process(call.archive, call.caller.actor, call.ctx.log, call.ctx.progress,
                   call.ctx.check_cancelled).shown()


@function("GetMessageRetention", "mailkeep extension: what the retention policies make of one "
          "message: its reference dates, each policy that applies with the dates its minimum "
          "and maximum end, and the outcome: kept until (minimum), deleted from "
          "(maximum, if a policy deletes automatically), whether it may be deleted now.",
          '{"id": str, "sent": str, "archived": str, "policies": [{"name": str, '
          '"minimumUntil": str|null, "maximumUntil": str|null, "deleteAutomatically": bool}], '
          '"keepUntil": str|null, "keptBy": str|null, "maximumUntil": str|null, '
          '"maximumBy": str|null, "deletedAutomatically": bool, "legalHold": bool, '
          '"deletableNow": bool}',
          Field("id", "string", description="The message, <storeId>:<number>."),
          changes=False)  # what the policies find of a message: administrators', as GetMessages
def get_message_retention(call: Call) -> dict[str, Any]:
    message_id = str(call.arg("id"))
    _rec, store, number = call.archive.message(message_id)
    dates = store.catalog.entry_dates(number)
    if dates is None:
        raise NotFound(f"message {message_id} does not exist")
    policies = Retention(call.master).policies()
    e = effect(applying(store, number, policies), *dates)
    hold = bool(Compliance(call.master).get()["legalHold"]["enabled"])
    return {
        "id": message_id, "sent": utc(dates[0]), "archived": utc(dates[1]),
        "policies": [{"name": p.name, "minimumUntil": utc(lo), "maximumUntil": utc(hi),
                      "deleteAutomatically": p.delete_automatically}
                     for p, lo, hi in e.policies],
        "keepUntil": utc(e.minimum), "keptBy": e.minimum_by.name if e.minimum_by else None,
        "maximumUntil": utc(e.maximum), "maximumBy": e.maximum_by.name if e.maximum_by else None,
        "deletedAutomatically": e.deletes, "legalHold": hold,
        "deletableNow": not hold and (e.minimum is None or time.time() >= e.minimum)}


# -- four-eyes deletion ------------------------------------------------------------------------
def _shown(r: DeletionRequest) -> dict[str, Any]:
    return {"id": r.id, "messageId": r.message_id, "reason": r.reason,
            "requestedBy": r.requested_by, "requestedAt": utc(r.requested_at),
            "state": r.state, "decidedBy": r.decided_by, "decidedAt": utc(r.decided_at),
            "note": r.note}


def _account(call: Call) -> tuple[str, int | None]:
    """The account calling (a job calls as its owner): its name, and its id, which stays the
    same when the account is renamed (None for the machine's command line)."""
    row = Users(call.master).account(call.user)
    return (row.user_name, row.id) if row is not None else (call.user, None)


def _same(a: tuple[str, int | None], b: tuple[str, int | None]) -> bool:
    if a[1] is not None and b[1] is not None:
        return a[1] == b[1]
    return a[0].casefold() == b[0].casefold()


@function("RequestMessageDeletion", "mailkeep extension: ask for a message to be deleted "
          "(four-eyes deletion, see SetRetentionPolicies fourEyes): it is deleted only when "
          "a second administrator approves (ApproveMessageDeletion). The message's retention "
          "and the legal hold are checked now and again at approval.", REQUEST_SHAPE,
          Field("id", "string", description="The message, <storeId>:<number>."),
          Field("reason", "string", description="Why it should be deleted (kept, audited)."))
def request_message_deletion(call: Call) -> dict[str, Any]:
    message_id, reason = str(call.arg("id")).strip(), str(call.arg("reason")).strip()
    store_id, number = parse_message_id(message_id)
    message_id = f"{store_id}:{number}"  # one id for one message
    if not reason:
        raise InvalidArgument("A reason is required (it is kept in the audit log).")
    if len(reason) > 1000:
        raise InvalidArgument("The reason is at most 1000 characters.")
    call.archive.check_deletable(message_id)
    with call.master.tx():
        if call.master.deletion_requests.pending_for(message_id) is not None:
            raise Conflict(f"A deletion of {message_id} is already requested.")
        rid = call.master.deletion_requests.add(message_id, reason, call.caller.actor,
                                                time.time(), *_account(call))
        call.master.audit.write(call.caller.actor, "MessageDeletionRequested", id=message_id,
                                request=rid, reason=reason)
    got = call.master.deletion_requests.get(rid)
    assert got is not None
    return _shown(got)


def _pending(call: Call) -> DeletionRequest:
    rid = int(call.arg("requestId"))
    got = call.master.deletion_requests.get(rid)
    if got is None:
        raise NotFound(f"There is no deletion request {rid}.")
    if got.state != "pending":
        raise Conflict(f"Deletion request {rid} is {got.state} already.")
    if _same((got.requester, got.requester_id), _account(call)):
        raise Conflict("A second administrator must decide: the one who asked cannot "
                       "(through any interface, or a job of theirs).")
    return got


@function("ApproveMessageDeletion", "mailkeep extension: approve a pending deletion request "
          "of another administrator: the message is deleted now (DeleteMessage's checks "
          "apply: legal hold, retention minimum, store state). Answers the request.",
          REQUEST_SHAPE, Field("requestId", "number", low=1, high=1 << 62,
                               description="The request (see GetDeletionRequests)."))
def approve_message_deletion(call: Call) -> dict[str, Any]:
    got = _pending(call)
    reason = (f"{got.reason} (asked by {got.requested_by}, approved by "
              f"{call.caller.actor})")
    try:
        hit = call.archive.delete_message(got.message_id, reason)
    except (Conflict, NotFound) as exc:
        call.master.deletion_requests.decide(got.id, "failed", call.caller.actor, time.time(),
                                             exc.message)
        raise
    call.master.deletion_requests.decide(got.id, "approved", call.caller.actor, time.time(),
                                         None)
    call.note(id=got.message_id, request=got.id, requestedBy=got.requested_by,
              folder=f"{hit.owner}/{hit.folder}", subject=hit.subject)
    done = call.master.deletion_requests.get(got.id)
    assert done is not None
    return _shown(done)


@function("RejectMessageDeletion", "mailkeep extension: reject a pending deletion request of "
          "another administrator; nothing is deleted.", REQUEST_SHAPE,
          Field("requestId", "number", low=1, high=1 << 62, description="The request."),
          Field("note", "string", True, "Why (kept with the request)."))
def reject_message_deletion(call: Call) -> dict[str, Any]:
    got = _pending(call)
    note = (call.arg("note") or "").strip()[:1000] or None
    call.master.deletion_requests.decide(got.id, "rejected", call.caller.actor, time.time(),
                                         note)
    call.note(id=got.message_id, request=got.id)
    done = call.master.deletion_requests.get(got.id)
    assert done is not None
    return _shown(done)


@function("GetDeletionRequests", "mailkeep extension: the deletion requests of four-eyes "
          "deletion, newest first.", f"[{REQUEST_SHAPE}]",
          Field("state", "string", True, "Only these: pending, approved, rejected or failed.",
                choices=("pending", "approved", "rejected", "failed")),
          Field("limit", "int", required=False, default=100, low=1, high=1000,
                description="How many."),
          changes=False, roles=ROLES)
def get_deletion_requests(call: Call) -> list[dict[str, Any]]:
    return [_shown(r) for r in call.master.deletion_requests.find(call.arg("state"),
                                                                  call.arg("limit"))]


"""Retention policies over an archive with known dates: messages sent years ago and days ago,
in alice's Invoices and in admin's Inbox. The clock is the real one; the dates are set
relative to it, so each policy's outcome is known. Minimums refuse deletion through every
interface; maximums delete in processing (audited with the policy); the legal hold wins;
four-eyes deletion needs a second administrator."""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import audit_since, mk, mk_ok

DAY = 86400
NOW = time.time()


def write(root: Path, name: str, age_days: float, subject: str, sender: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.eml").write_bytes(
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Date: {formatdate(NOW - age_days * DAY)}\r\nMessage-ID: <{name}@example.org>\r\n"
        f"\r\n{subject}\r\n".encode())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    inv, inbox = tmp_path / "invoices", tmp_path / "inbox"
    write(inv, "inv-old", 11 * 365, "invoice 2015", "billing@bank.example")
    write(inv, "inv-new", 30, "invoice this month", "billing@bank.example")
    write(inbox, "chat-old", 3 * 365, "lunch three years ago", "friend@example.net")
    write(inbox, "chat-new", 2, "lunch this week", "friend@example.net")
    write(inbox, "bank-old", 4 * 365, "statement", "notices@bank.example")
    mk_ok(data, "call", "CreateUser", "userName=admin", "privileges=admin,login",
          "password=admin")
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login")
    mk_ok(data, "import", "--user", "alice", "--folder", "Invoices", str(inv))
    mk_ok(data, "import", "--folder", "Inbox", str(inbox))
    return data


def ids(data: Path) -> dict[str, str]:
    """subject -> message id, of what is archived now."""
    out: dict[str, str] = {}
    for user, folder in (("alice", "Invoices"), ("admin", "Inbox")):
        for m in json.loads(mk_ok(data, "call", "GetMessages", f"folder={user}/{folder}").stdout):
            out[m["subject"]] = m["id"]
    return out


def policies(data: Path, *items: dict[str, Any], four_eyes: bool = False) -> None:
    mk_ok(data, "call", "SetRetentionPolicies",
          "config=" + json.dumps({"policies": list(items), "fourEyes": four_eyes}))


INVOICES = {"name": "Invoices 10 years", "minimum": {"value": 10, "unit": "years"},
            "referenceDate": "sent", "scope": "folder:alice/Invoices"}
CHAT = {"name": "Chat 2 years", "maximum": {"value": 2, "unit": "years"},
        "referenceDate": "sent", "scope": "folder:admin/Inbox", "deleteAutomatically": True}
BANK = {"name": "Bank mail 5 years", "minimum": {"value": 5, "unit": "years"},
        "referenceDate": "sent", "scope": "from:bank.example"}


def test_a_minimum_refuses_deletion_naming_the_policy(data: Path) -> None:
    policies(data, INVOICES)
    by = ids(data)
    refused = mk(data, "call", "DeleteMessage", f"id={by['invoice this month']}",
                 "reason=tidy up")
    assert refused.exit_code != 0
    assert "Invoices 10 years" in refused.output and "keeps it until" in refused.output
    # past its minimum (sent 11 years ago): it may go
    mk_ok(data, "call", "DeleteMessage", f"id={by['invoice 2015']}", "reason=expired")
    assert set(ids(data)) == {"invoice this month", "lunch three years ago", "lunch this week",
                              "statement"}


def test_processing_deletes_past_the_maximum_and_audits_each_with_its_policy(
        data: Path) -> None:
    policies(data, INVOICES, CHAT, BANK)
    by = ids(data)
    view = json.loads(mk_ok(data, "call", "GetMessageRetention",
                            f"id={by['lunch three years ago']}").stdout)
    assert view["maximumBy"] == "Chat 2 years" and view["deletedAutomatically"]
    assert view["deletableNow"] is True
    # the bank statement is in the Inbox too, but a longer minimum wins over the maximum
    bank = json.loads(mk_ok(data, "call", "GetMessageRetention",
                            f"id={by['statement']}").stdout)
    assert {p["name"] for p in bank["policies"]} == {"Chat 2 years", "Bank mail 5 years"}
    assert bank["keptBy"] == "Bank mail 5 years" and bank["deletableNow"] is False
    assert bank["maximumUntil"] == bank["keepUntil"]

    before = audit_since(data)
    result = json.loads(mk_ok(data, "call", "ProcessRetentionPolicies").stdout)
    assert result["deleted"] == 1 and result["examined"] == 5
    assert set(ids(data)) == {"invoice 2015", "invoice this month", "lunch this week",
                              "statement"}
    deleted = [d for _actor, action, d in audit_since(data, len(before))
               if action == "MessageDelete"]
    assert deleted == [{"id": by["lunch three years ago"], "policy": "Chat 2 years",
                        "via": "retention", "folder": "admin/Inbox"}]
    # idempotent: a second run finds nothing more
    again = json.loads(mk_ok(data, "call", "ProcessRetentionPolicies").stdout)
    assert again["deleted"] == 0
    # the bytes leave at the next compaction, and the store's tree accounts for them
    mk_ok(data, "call", "CompactStore", "id=1")
    assert mk(data, "verify").exit_code == 0


def test_the_legal_hold_wins_over_a_maximum(data: Path) -> None:
    policies(data, CHAT)
    hold = {"legalHold": {"enabled": True, "reason": "Case 9"}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(hold)}")
    refused = mk(data, "call", "ProcessRetentionPolicies")
    assert refused.exit_code != 0 and "legal hold" in refused.output
    assert "lunch three years ago" in ids(data)
    view = json.loads(mk_ok(data, "call", "GetMessageRetention",
                            f"id={ids(data)['lunch three years ago']}").stdout)
    assert view["legalHold"] is True and view["deletableNow"] is False


def test_processing_runs_as_a_job(data: Path) -> None:
    policies(data, CHAT)
    mk_ok(data, "call", "CreateJob", "name=retention", "action=ProcessRetentionPolicies",
          "owner=admin", "timeZoneId=UTC")
    mk_ok(data, "call", "RunJobAsync", "id=1")
    [run] = json.loads(mk_ok(data, "call", "GetJobResults", "fromIncluding=2000-01-01",
                             "toExcluding=2100-01-01", "timeZoneId=UTC").stdout)
    assert run["result"] == "succeeded", run
    assert "lunch three years ago" not in ids(data)
    actors = {actor for actor, action, _d in audit_since(data) if action == "MessageDelete"}
    assert actors == {"job:retention"}


@pytest.mark.parametrize("bad,words", [
    ({"policies": [{"name": "x"}]}, "needs a minimum, a maximum or both"),
    ({"policies": [{"name": "x", "maximum": {"value": 0, "unit": "days"}}]}, "whole number"),
    ({"policies": [{"name": "x", "minimum": {"value": 1, "unit": "weeks"}}]}, "days, months"),
    ({"policies": [{"name": "x", "minimum": {"value": 1, "unit": "days"},
                    "deleteAutomatically": True}]}, "needs a maximum"),
    ({"policies": [INVOICES, INVOICES]}, "same name"),
    ({"policies": [{**INVOICES, "scope": "before:2024-13-40"}]}, "not a valid search"),
    ({"policies": [{**INVOICES, "name": "a\u202eb"}]}, "control or direction"),
    ({"policies": [], "extra": 1}, "nothing else"),
])
def test_a_bad_configuration_changes_nothing(data: Path, bad: dict[str, Any],
                                             words: str) -> None:
    policies(data, CHAT)
    got = mk(data, "call", "SetRetentionPolicies", "config=" + json.dumps(bad))
    assert got.exit_code != 0 and words in got.output, got.output
    now = json.loads(mk_ok(data, "call", "GetRetentionPolicies").stdout)
    assert [p["name"] for p in now["policies"]] == ["Chat 2 years"]


def test_four_eyes_deletion_needs_a_second_administrator(data: Path) -> None:
    policies(data, four_eyes=True)
    mk_ok(data, "call", "CreateUser", "userName=bob", "privileges=admin,login",
          "password=Bob-pass-12345")
    target = ids(data)["lunch this week"]
    refused = mk(data, "call", "DeleteMessage", f"id={target}", "reason=mine")
    assert refused.exit_code != 0 and "RequestMessageDeletion" in refused.output
    asked = json.loads(mk_ok(data, "call", "RequestMessageDeletion", f"id={target}",
                             "reason=sent to the wrong list").stdout)
    assert asked["state"] == "pending"
    # the one who asked cannot approve
    self_ok = mk(data, "call", "ApproveMessageDeletion", f"requestId={asked['id']}")
    assert self_ok.exit_code != 0 and "second administrator" in self_ok.output
    assert target in ids(data).values()
    # bob approves, through the Administration API
    from tests.apiclient import api_client, basic, decode, finish
    with api_client(data) as api:
        body, _log = finish(api, decode(api.post(
            "/api/invoke/ApproveMessageDeletion", data={"requestId": str(asked["id"])},
            headers=basic("bob", "Bob-pass-12345"))))
    assert body["statusCode"] == "succeeded", body
    assert body["result"]["state"] == "approved" and body["result"]["decidedBy"] == "api:bob"
    assert target not in ids(data).values()
    again = mk(data, "call", "RejectMessageDeletion", f"requestId={asked['id']}")
    assert again.exit_code != 0 and "approved already" in again.output


def test_four_eyes_cannot_be_met_by_one_person_through_a_job_or_a_new_name(data: Path) -> None:
    policies(data, four_eyes=True)
    mk_ok(data, "call", "CreateUser", "userName=bob", "privileges=admin,login",
          "password=Bob-pass-12345")
    target = ids(data)["lunch this week"]
    asked = json.loads(mk_ok(data, "call", "RequestMessageDeletion", f"id={target}",
                             "reason=mine").stdout)
    job = mk(data, "call", "CreateJob", "name=bob", "owner=bob", "timeZoneId=UTC",
             f"action=ApproveMessageDeletion requestId={asked['id']}")
    assert job.exit_code != 0 and "in person" in job.output
    # bob asks; renamed robert, he is still the account that must not decide
    from tests.apiclient import api_client, basic, decode, finish
    with api_client(data) as api:
        body, _log = finish(api, decode(api.post(
            "/api/invoke/RequestMessageDeletion", headers=basic("bob", "Bob-pass-12345"),
            data={"id": ids(data)["statement"], "reason": "bob's"})))
        assert body["statusCode"] == "succeeded", body
        mk_ok(data, "call", "RenameUser", "oldUserName=bob", "newUserName=robert")
        body, _log = finish(api, decode(api.post(
            "/api/invoke/ApproveMessageDeletion", headers=basic("robert", "Bob-pass-12345"),
            data={"requestId": str(body["result"]["id"])})))
    assert body["statusCode"] == "failed" and "second administrator" in body["error"]["message"]
    # one message, one id: 1:04 is not another name of 1:4
    odd = mk(data, "call", "RequestMessageDeletion", "id=1:04", "reason=again")
    assert odd.exit_code != 0 and "not of the form" in odd.output


def test_a_minimum_cannot_be_escaped_by_moving_or_detaching(data: Path) -> None:
    policies(data, INVOICES)
    moved = mk(data, "call", "MoveFolder", "fromFolder=alice/Invoices",
               "toFolder=alice/Old")
    assert moved.exit_code != 0 and "Invoices 10 years" in moved.output
    assert "invoice this month" in ids(data)
    detached = mk(data, "call", "DetachStore", "id=1")
    assert detached.exit_code != 0 and "minimum retention" in detached.output
    # the inbox is not under a scoped minimum: it moves
    mk_ok(data, "call", "MoveFolder", "fromFolder=admin/Inbox", "toFolder=admin/Old")


def test_a_scope_does_not_search_the_text(data: Path) -> None:
    got = mk(data, "call", "SetRetentionPolicies", "config=" + json.dumps(
        {"policies": [{**CHAT, "scope": "body:secretword"}]}))
    assert got.exit_code != 0 and "does not search the text" in got.output
    got = mk(data, "call", "SetRetentionPolicies", "config=" + json.dumps(
        {"policies": [{**CHAT, "scope": "secretword"}]}))
    assert got.exit_code != 0 and "a word" in got.output

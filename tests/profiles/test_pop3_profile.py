"""POP3 archiving profiles against a real Dovecot, through the in-process Administration API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from starlette.testclient import TestClient

from tests.profiles.conftest import archived, create, ok, run
from tests.sources.dovecot import PASSWORD, Dovecot, corpus_messages

MESSAGES = corpus_messages()


def pop3_props(dovecot: Dovecot, user: str, **kw: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"name": f"pop3 {user}", "type": "pop3", "userName": "alice",
                             "host": "127.0.0.1", "port": dovecot.pop3_port,
                             "security": "none", "login": user, "password": PASSWORD,
                             "timeout": 10}
    props.update(kw)
    return props


def on_server(admin: IMAPClient) -> list[bytes]:
    admin.select_folder("INBOX")
    got = admin.fetch(admin.search("ALL"), [b"BODY.PEEK[]"])
    return [v[b"BODY[]"] for _uid, v in sorted(got.items())]


def test_first_run_all_then_only_new(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:5]:
        admin.append("INBOX", m)
    prof = create(api, **pop3_props(dovecot, user))
    assert prof["properties"]["targetFolder"] == "Inbox"  # the POP3 default
    first = run(api, prof["id"])
    assert (first["result"], first["itemsArchived"], first["itemsDuplicate"]) == (
        "succeeded", 5, 0)
    got = archived(data)
    assert list(got) == ["Inbox"]
    assert [m for m, _f, _d in got["Inbox"]] == MESSAGES[:5]  # byte for byte, in order

    second = run(api, prof["id"])
    assert (second["itemsArchived"], second["itemsDuplicate"], second["itemsDeleted"]) == (
        0, 0, 0)

    admin.append("INBOX", MESSAGES[5])
    admin.append("INBOX", MESSAGES[6])
    third = run(api, prof["id"])
    assert (third["itemsArchived"], third["itemsDuplicate"]) == (2, 0)
    assert [m for m, _f, _d in archived(data)["Inbox"]] == MESSAGES[:7]
    assert on_server(admin) == MESSAGES[:7]  # nothing deleted without deleteAfterDays
    state = ok(api, "GetProfiles", raw=True)[0]["state"]
    assert len(state["uidls"]) == 7


def test_delete_after_zero_days_empties_the_server_after_archiving(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:3]:
        admin.append("INBOX", m)
    prof = create(api, **pop3_props(dovecot, user, deleteAfterDays=0, targetFolder="POP"))
    res = run(api, prof["id"])
    assert (res["result"], res["itemsArchived"], res["itemsDeleted"]) == ("succeeded", 3, 3)
    assert on_server(admin) == []
    assert [m for m, _f, _d in archived(data)["POP"]] == MESSAGES[:3]

    admin.append("INBOX", MESSAGES[3])
    again = run(api, prof["id"])
    assert (again["itemsArchived"], again["itemsDuplicate"], again["itemsDeleted"]) == (1, 0, 1)
    assert on_server(admin) == []
    assert [m for m, _f, _d in archived(data)["POP"]] == MESSAGES[:4]
    assert run(api, prof["id"])["itemsArchived"] == 0


def test_keeps_messages_younger_than_delete_after_days(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    """POP3 ages by when mailkeep first archived the message: nothing is 30 days old yet."""
    for m in MESSAGES[:2]:
        admin.append("INBOX", m)
    prof = create(api, **pop3_props(dovecot, user, deleteAfterDays=30))
    res = run(api, prof["id"])
    assert (res["itemsArchived"], res["itemsDeleted"]) == (2, 0)
    assert on_server(admin) == MESSAGES[:2]

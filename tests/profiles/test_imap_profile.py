"""IMAP archiving profiles against a real Dovecot, through the catalog functions over the
in-process Administration API (and once through the `mailkeep profile` commands)."""

from __future__ import annotations

import getpass
import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from starlette.testclient import TestClient

from mailkeep.core.masterdb import MasterDB
from mailkeep.profiles.store import Profiles
from tests.apiclient import postgres_rows
from tests.helpers import free_port, mk, mk_ok
from tests.profiles.conftest import (
    archived,
    call,
    counts,
    create,
    failed,
    ok,
    past,
    query,
    results,
    run,
)
from tests.sources.dovecot import PASSWORD, Dovecot, corpus_messages

MESSAGES = corpus_messages()

# Wire name (delimiter '.') -> the folder in the archive (under targetFolder).
FOLDERS = {"INBOX": "INBOX", "Entwürfe": "Entwürfe", "日本語": "日本語",
           "Lists.linux": "Lists/linux"}
FLAG_SETS = [
    ((b"\\Seen",), {"seen"}),
    ((b"\\Seen", b"\\Answered", b"\\Flagged"), {"seen", "answered", "flagged"}),
    ((), set()),
    ((b"\\Draft", b"$Forwarded"), {"draft", "forwarded"}),
]


def imap_props(dovecot: Dovecot, user: str, **kw: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"name": f"imap {user}", "type": "imap", "userName": "alice",
                             "host": "127.0.0.1", "port": dovecot.imap_port,
                             "security": "none", "login": user, "password": PASSWORD,
                             "timeout": 10}
    props.update(kw)
    return props


def when(days_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)


def fill(admin: IMAPClient) -> dict[str, list[tuple[bytes, frozenset[str], int]]]:
    """Three messages per folder, with flags and INTERNALDATEs; what the archive must hold."""
    expected: dict[str, list[tuple[bytes, frozenset[str], int]]] = {}
    i = 0
    for wire, name in FOLDERS.items():
        if wire != "INBOX":
            admin.create_folder(wire)
        for _ in range(3):
            raw_flags, flags = FLAG_SETS[i % len(FLAG_SETS)]
            date = datetime(2019, 3, 1 + i, 12, 30, 15, tzinfo=timezone(timedelta(hours=2)))
            admin.append(wire, MESSAGES[i], flags=raw_flags, msg_time=date)
            expected.setdefault(name, []).append(
                (MESSAGES[i], frozenset(flags), int(date.timestamp())))
            i += 1
    return expected


def server_bodies(admin: IMAPClient, folder: str) -> list[bytes]:
    admin.select_folder(folder)
    got = admin.fetch(admin.search("ALL"), [b"BODY.PEEK[]"])
    return [v[b"BODY[]"] for _uid, v in sorted(got.items())]


@pytest.mark.parametrize("target", ["", "Mail"])
def test_archives_every_folder_exactly_then_only_new(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient, target: str
) -> None:
    expected = fill(admin)
    prof = create(api, **imap_props(dovecot, user, targetFolder=target))
    first = run(api, prof["id"])
    assert first["result"] == "succeeded", first
    assert (first["itemsArchived"], first["itemsDuplicate"], first["itemsFailed"]) == (12, 0, 0)
    assert first["bytesRead"] == sum(len(m) for m in MESSAGES[:12])
    prefix = f"{target}/" if target else ""
    assert archived(data) == {prefix + name: msgs for name, msgs in expected.items()}

    again = run(api, prof["id"])
    assert (again["result"], again["itemsArchived"], again["itemsDuplicate"]) == (
        "succeeded", 0, 0)

    admin.append("日本語", MESSAGES[-1], flags=[b"\\Seen"])
    admin.append("INBOX", MESSAGES[-2])
    third = run(api, prof["id"])
    assert (third["itemsArchived"], third["itemsDuplicate"]) == (2, 0)
    got = archived(data)
    assert got[prefix + "日本語"][-1] == (MESSAGES[-1], frozenset({"seen"}),
                                        got[prefix + "日本語"][-1][2])
    assert got[prefix + "INBOX"][-1][0] == MESSAGES[-2]
    assert {k: len(v) for k, v in got.items()} == {
        prefix + "INBOX": 4, prefix + "Entwürfe": 3, prefix + "日本語": 4,
        prefix + "Lists/linux": 3}
    # BODY.PEEK: archiving marked nothing seen on the server.
    admin.select_folder("INBOX")
    assert b"\\Seen" not in admin.get_flags([4])[4]


def test_uidvalidity_change_archives_only_the_new_message(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.create_folder("Entwürfe")
    admin.append("Entwürfe", MESSAGES[0])
    admin.append("Entwürfe", MESSAGES[1])
    admin.append("INBOX", MESSAGES[2])
    prof = create(api, **imap_props(dovecot, user))
    assert run(api, prof["id"])["itemsArchived"] == 3
    before = ok(api, "GetProfiles", raw=True)[0]["state"]["folders"]["Entwürfe"]

    admin.delete_folder("Entwürfe")
    admin.create_folder("Entwürfe")
    for m in MESSAGES[:2] + [MESSAGES[3]]:
        admin.append("Entwürfe", m)
    second = run(api, prof["id"])
    assert (second["result"], second["itemsArchived"], second["itemsDuplicate"]) == (
        "succeeded", 1, 2)
    after = ok(api, "GetProfiles", raw=True)[0]["state"]["folders"]["Entwürfe"]
    assert after[0] != before[0] and after[1] == 3  # new UIDVALIDITY, read to its end
    assert counts(data) == {"Entwürfe": 3, "INBOX": 1}  # nothing doubled
    assert [m for m, _f, _d in archived(data)["Entwürfe"]] == MESSAGES[:2] + [MESSAGES[3]]
    assert run(api, prof["id"])["itemsArchived"] == 0


def test_delete_after_days_removes_only_old_archived_messages(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.create_folder("Alt")
    admin.append("INBOX", MESSAGES[0], msg_time=when(40))
    admin.append("INBOX", MESSAGES[1], msg_time=when(2))
    admin.append("INBOX", MESSAGES[2], msg_time=when(40))
    admin.append("Alt", MESSAGES[3], msg_time=when(40))
    admin.append("Alt", MESSAGES[4], msg_time=when(29))
    prof = create(api, **imap_props(dovecot, user, deleteAfterDays=30))
    res = run(api, prof["id"])
    assert (res["result"], res["itemsArchived"], res["itemsDeleted"]) == ("succeeded", 5, 3)
    assert server_bodies(admin, "INBOX") == [MESSAGES[1]]
    assert server_bodies(admin, "Alt") == [MESSAGES[4]]
    got = archived(data)
    assert [m for m, _f, _d in got["INBOX"]] == MESSAGES[:3]
    assert [m for m, _f, _d in got["Alt"]] == MESSAGES[3:5]
    report = ok(api, "GetWorkerResultReport", id=res["id"])
    assert "Deleted 3 archived message(s)" in report["log"]
    # The next run neither archives nor deletes anything again.
    again = run(api, prof["id"])
    assert (again["itemsArchived"], again["itemsDuplicate"], again["itemsDeleted"]) == (0, 0, 0)


def test_password_is_never_shown(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.append("INBOX", MESSAGES[0])
    answers: list[str] = []

    def seen(function_name: str, **args: Any) -> Any:
        body, log = call(api, function_name, **args)
        answers.append(json.dumps(body, ensure_ascii=False) + log)
        assert body["statusCode"] == "succeeded", body["error"]
        return body["result"]

    prof = seen("CreateProfile", properties=imap_props(dovecot, user), raw=False)
    assert prof["properties"]["hasPassword"] is True
    assert prof["properties"]["hasAccessToken"] is False
    assert "password" not in prof["properties"]
    shown = seen("GetProfiles", raw=True)[0]
    assert shown["properties"]["hasPassword"] is True and "password" not in shown["properties"]
    res = seen("RunProfile", id=prof["id"])
    assert res["result"] == "succeeded"
    seen("GetWorkerResults", fromIncluding="2000-01-01T00:00:00",
         toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")
    report = seen("GetWorkerResultReport", id=res["id"])
    assert report["log"]
    seen("UpdateProfile", id=prof["id"], properties={"timeout": 20})
    assert seen("GetProfiles", raw=False)[0]["properties"]["hasPassword"] is True
    for text in answers:
        assert PASSWORD not in text
    # The password in the profile is sealed, bound to the profile (not readable by a query).
    [(sealed,)] = query(data, "SELECT secrets FROM profiles")
    assert PASSWORD not in sealed and "password" in json.loads(sealed)


def test_password_not_in_master_database_files(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    """The master database (with its WAL) must not hold the password in clear anywhere: not in
    the profile, and not in the audit log of the CreateProfile/UpdateProfile calls."""
    admin.append("INBOX", MESSAGES[0])
    prof = create(api, **imap_props(dovecot, user))
    assert run(api, prof["id"])["result"] == "succeeded"
    ok(api, "UpdateProfile", id=prof["id"], properties={"password": PASSWORD})
    temporary = imap_props(dovecot, user, name="once")
    assert ok(api, "RunTemporaryProfile", properties=temporary, raw=False)["result"] == \
        "succeeded"
    secret = PASSWORD.encode()
    files = [p for p in (data / "mailkeep.db", data / "mailkeep.db-wal") if p.exists()]
    leaks = [p.name for p in files if secret in p.read_bytes()]
    if os.environ.get("MAILKEEP_DATABASE"):  # no such files: the rows in PostgreSQL
        leaks += ["PostgreSQL"] if PASSWORD in postgres_rows(data) else []
    audited = [action for action, details in query(data, "SELECT action, details FROM audit")
               if PASSWORD in details]
    assert leaks == [] and audited == [], (leaks, audited)


def test_temporary_profile_reads_everything_and_saves_nothing(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    for m in MESSAGES[:2]:
        admin.append("INBOX", m)
    props = imap_props(dovecot, user, targetFolder="Once")
    del props["name"]  # a temporary profile needs none
    first = ok(api, "RunTemporaryProfile", properties=props, raw=False)
    assert (first["result"], first["profileID"], first["itemsArchived"]) == ("succeeded", None, 2)
    assert first["profileName"] == "Temporary profile"
    admin.append("INBOX", MESSAGES[2])
    second = ok(api, "RunTemporaryProfile", properties=props, raw=False)
    assert (second["itemsArchived"], second["itemsDuplicate"]) == (1, 2)
    assert ok(api, "GetProfiles", raw=False) == []
    assert counts(data) == {"Once/INBOX": 3}
    assert [r["id"] for r in results(api)] == [first["id"], second["id"]]
    no_password = {k: v for k, v in props.items() if k != "password"}
    assert "password is required" in failed(api, "RunTemporaryProfile",
                                             properties=no_password, raw=False)


def test_wrong_password_fails_the_run_and_notifies(
    api: TestClient, data: Path, dovecot: Dovecot, user: str
) -> None:
    wrong = "wrong-Secr3t-9931"
    prof = create(api, **imap_props(dovecot, user, password=wrong))
    body, log = call(api, "RunProfile", id=prof["id"])
    assert body["statusCode"] == "failed" and body["result"] is None
    message = body["error"]["message"]
    assert "login" in message and wrong not in message and wrong not in log
    [row] = results(api, profileID=prof["id"])
    assert row["result"] == "failed" and row["itemsArchived"] == 0
    assert row["error"].startswith("login:") and wrong not in row["error"]
    report = ok(api, "GetWorkerResultReport", id=row["id"])
    assert "login" in report["log"] and wrong not in json.dumps(report)
    events = query(data, "SELECT kind, text FROM notify_events")
    assert [k for k, _t in events] == ["profile.failed"]
    assert prof["name"] in events[0][1] and "login" in events[0][1]
    assert wrong not in events[0][1]
    if os.environ.get("MAILKEEP_DATABASE"):  # no such file: the rows in PostgreSQL
        assert wrong not in postgres_rows(data)
    else:
        assert wrong.encode() not in (data / "mailkeep.db").read_bytes()
    assert ok(api, "GetProfiles", raw=False)[0]["lastResult"]["result"] == "failed"


def test_kept_password_still_logs_in_after_update(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.append("INBOX", MESSAGES[0])
    prof = create(api, **imap_props(dovecot, user))
    updated = ok(api, "UpdateProfile", id=prof["id"],
                 properties={"name": "renamed", "targetFolder": "Renamed"})
    assert updated["name"] == "renamed" and updated["properties"]["hasPassword"] is True
    res = run(api, prof["id"])
    assert (res["result"], res["itemsArchived"], res["profileName"]) == ("succeeded", 1,
                                                                          "renamed")
    assert counts(data) == {"Renamed/INBOX": 1}


def test_unreachable_port_fails_with_a_connect_error(
    api: TestClient, data: Path, user: str
) -> None:
    port = free_port()  # nothing listens there
    prof = create(api, name="nowhere", type="imap", userName="alice", host="127.0.0.1",
                  port=port, security="none", login=user, password=PASSWORD, timeout=5)
    message = failed(api, "RunProfile", id=prof["id"])
    assert message.startswith("Profile 'nowhere' failed: connect:"), message
    assert "refused" in message.lower(), message
    [row] = results(api, profileID=prof["id"])
    assert row["result"] == "failed" and row["error"].startswith("connect")


def test_refused_while_the_profile_is_locked(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    admin.append("INBOX", MESSAGES[0])
    prof = create(api, **imap_props(dovecot, user))
    master = MasterDB.of(data)
    try:
        profiles = Profiles(master, data)
        with profiles.lock(profiles.get(prof["id"])):
            assert ok(api, "GetProfiles", raw=False)[0]["running"] is True
            message = failed(api, "RunProfile", id=prof["id"])
            assert "running already" in message and prof["name"] in message
            assert "running already" in failed(api, "DeleteProfile", id=prof["id"])
    finally:
        master.close()
    assert results(api) == []  # a refused run leaves no worker result
    assert ok(api, "GetProfiles", raw=False)[0]["running"] is False
    assert run(api, prof["id"])["itemsArchived"] == 1  # the lock is free again


def test_worker_results_zones_filters_and_report(
    api: TestClient, data: Path, dovecot: Dovecot, user: str, admin: IMAPClient,
    tmp_path: Path
) -> None:
    ok(api, "CreateUser", userName="bob", privileges="login")
    for m in MESSAGES[:3]:
        admin.append("INBOX", m)
    imap = create(api, **imap_props(dovecot, user))
    first = run(api, imap["id"])
    admin.append("INBOX", MESSAGES[3])
    second = run(api, imap["id"])
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "good.eml").write_bytes(MESSAGES[5])
    past(drop / "good.eml")
    (drop / "bad.eml").symlink_to(drop / "missing.eml")  # a broken symlink: one failure
    files = create(api, name="bob drop", type="directory", userName="bob", path=str(drop))
    third = run(api, files["id"])
    assert third["result"] == "completedWithErrors"
    assert third["failures"] == [{"origin": str(drop / "bad.eml"), "reason": "broken symlink"}]

    berlin = results(api, "Europe/Berlin")
    windows = results(api, "W. Europe Standard Time")
    assert berlin == windows
    assert [(r["id"], r["profileID"], r["userName"], r["result"], r["itemsArchived"],
             r["itemsDuplicate"], r["itemsFailed"]) for r in berlin] == [
        (first["id"], imap["id"], "alice", "succeeded", 3, 0, 0),
        (second["id"], imap["id"], "alice", "succeeded", 1, 0, 0),
        (third["id"], files["id"], "bob", "completedWithErrors", 1, 0, 1)]
    for r in berlin:
        assert r["executionStartedBy"] == "admin"
        assert re.fullmatch(r".{19}\+0[12]:00", r["startTime"]), r["startTime"]
        assert r["completeTime"] >= r["startTime"]
        assert r["bytesRead"] > 0
    utc = results(api, "UTC")
    assert [r["startTime"][:19] for r in utc] != [r["startTime"][:19] for r in berlin]
    assert [datetime.fromisoformat(r["startTime"]) for r in utc] == [
        datetime.fromisoformat(r["startTime"]) for r in berlin]

    assert [r["id"] for r in results(api, profileID=imap["id"])] == [first["id"], second["id"]]
    assert [r["id"] for r in results(api, userName="bob")] == [third["id"]]
    assert results(api, userName="carol") == []
    assert results(api, profileID=files["id"], userName="alice") == []
    earlier = ok(api, "GetWorkerResults", fromIncluding="2001-01-01T00:00:00",
                 toExcluding="2001-01-02T00:00:00", timeZoneID="Europe/Berlin")
    assert earlier == []
    assert "time zone" in failed(api, "GetWorkerResults", fromIncluding="2001-01-01T00:00:00",
                                 toExcluding="2001-01-02T00:00:00", timeZoneID="Mars/Base")

    report = ok(api, "GetWorkerResultReport", id=third["id"])
    assert report["failures"] == third["failures"]
    assert "broken symlink" in report["log"] and "completedWithErrors" in report["log"]
    imap_report = ok(api, "GetWorkerResultReport", id=first["id"])
    assert "IMAP" in imap_report["log"] and "3 archived" in imap_report["log"]
    assert imap_report["failures"] == [] and imap_report["warnings"] == []
    assert "no worker result" in failed(api, "GetWorkerResultReport", id=9999)
    kinds = [k for (k,) in query(data, "SELECT kind FROM notify_events")]
    assert kinds == ["profile.errors"]


def test_cli_create_run_results_report(
    tmp_path: Path, dovecot: Dovecot, user: str, admin: IMAPClient
) -> None:
    data = tmp_path / "cli-data"
    admin.create_folder("Entwürfe")
    admin.append("INBOX", MESSAGES[0], flags=[b"\\Seen"])
    admin.append("Entwürfe", MESSAGES[1])
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login")
    props = tmp_path / "imap.json"
    props.write_text(json.dumps(imap_props(dovecot, user, targetFolder="Mail")))
    created = mk(data, "profile", "create", str(props))
    assert created.exit_code == 0, created.stderr
    shown = json.loads(created.stdout)
    assert shown["id"] == 1 and shown["properties"]["hasPassword"] is True
    assert PASSWORD not in created.stdout

    ran = mk(data, "profile", "run", "1")
    assert ran.exit_code == 0, ran.stderr
    res = json.loads(ran.stdout)
    assert (res["result"], res["itemsArchived"], res["executionStartedBy"]) == (
        "succeeded", 2, getpass.getuser())  # the shell's account
    got = archived(data)
    assert {k: [(m, f) for m, f, _d in v] for k, v in got.items()} == {
        "Mail/INBOX": [(MESSAGES[0], frozenset({"seen"}))],
        "Mail/Entwürfe": [(MESSAGES[1], frozenset())]}
    again = json.loads(mk(data, "profile", "run", "1").stdout)
    assert again["itemsArchived"] == 0

    rows = json.loads(mk(data, "profile", "results", "--json").stdout)
    assert [(r["result"], r["itemsArchived"]) for r in rows] == [("succeeded", 2),
                                                                  ("succeeded", 0)]
    report = mk(data, "profile", "report", str(rows[0]["id"]))
    assert report.exit_code == 0 and "archived 2" in report.stdout and "Log:" in report.stdout
    listing = mk(data, "profile", "show", "1")
    assert json.loads(listing.stdout)["lastResult"]["result"] == "succeeded"
    for text in (ran.stdout, ran.stderr, report.stdout, listing.stdout):
        assert PASSWORD not in text

    # A wrong password: exit code 1 and the login step named.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"password": "nope-Secr3t-1"}))
    mk_ok(data, "profile", "update", "1", str(bad))
    failing = mk(data, "profile", "run", "1")
    assert failing.exit_code != 0 and "login" in failing.stderr
    assert "nope-Secr3t-1" not in failing.stderr + failing.stdout

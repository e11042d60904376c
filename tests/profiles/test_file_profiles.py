"""Directory and Maildir archiving profiles, the validation of profile properties, DeleteProfile
and UpdateProfile, and cancelling a run, through the in-process Administration API."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.errors import Cancelled
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.writer import StoreWriter
from mailkeep.profiles.run import Runner
from mailkeep.profiles.store import Profiles
from tests.apiclient import fast_users, finish, invoke
from tests.profiles.conftest import (
    archived,
    cancel,
    counts,
    create,
    eml,
    failed,
    ok,
    past,
    query,
    results,
    run,
)
from tests.pstfile import Folder, write_pst
from tests.sources.test_pst import mail, parse


def write(path: Path, raw: bytes, age: float | None = 60.0) -> Path:
    """A file whose modification time is `age` seconds ago (None: now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    if age is not None:
        past(path, age)
    return path


@contextmanager
def profiles_of(data: Path) -> Iterator[Profiles]:
    master = MasterDB.of(data)
    try:
        yield Profiles(master, data)
    finally:
        master.close()


@pytest.fixture
def store(data: Path, api: TestClient) -> Iterator[Profiles]:
    """The profiles table of the running app's data directory, read directly."""
    with profiles_of(data) as profiles:
        yield profiles


# -- directory --------------------------------------------------------------------------------
def test_directory_recursive_delete_after_archive(
    api: TestClient, data: Path, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    a = write(drop / "a.eml", eml(1))
    b = write(drop / "b.eml", eml(2))
    c = write(drop / "sub" / "c.eml", eml(3))
    d = write(drop / "sub" / "deeper" / "d.eml", eml(4))
    note = write(drop / "note.txt", eml(5))  # not *.eml
    fresh = write(drop / "sub" / "fresh.eml", eml(6), age=None)  # may still be being written
    broken = drop / "broken.eml"
    broken.symlink_to(drop / "gone.eml")
    prof = create(api, name="drop", type="directory", userName="alice", path=str(drop),
                  targetFolder="Drop", deleteAfterArchive=True)
    assert prof["properties"]["pattern"] == "*.eml" and prof["properties"]["recursive"] is True

    first = run(api, prof["id"])
    assert first["result"] == "completedWithErrors"  # the broken symlink
    assert (first["itemsArchived"], first["itemsFailed"], first["itemsDeleted"]) == (4, 1, 4)
    assert first["failures"] == [{"origin": str(broken), "reason": "broken symlink"}]
    got = archived(data)
    assert {k: [m for m, _f, _d in v] for k, v in got.items()} == {
        "Drop": [eml(1), eml(2)], "Drop/sub": [eml(3)], "Drop/sub/deeper": [eml(4)]}
    assert not any(p.exists() for p in (a, b, c, d))  # exactly the archived files went
    assert note.exists() and fresh.exists() and broken.is_symlink()

    past(fresh)
    broken.unlink()
    second = run(api, prof["id"])
    assert (second["result"], second["itemsArchived"], second["itemsDeleted"]) == (
        "succeeded", 1, 1)
    assert not fresh.exists() and note.exists()
    assert counts(data) == {"Drop": 2, "Drop/sub": 2, "Drop/sub/deeper": 1}
    assert ok(api, "GetProfiles", raw=True)[0]["state"] == {"files": {}}  # nothing left to know


def test_directory_not_recursive_pattern_and_replaced_file(
    api: TestClient, data: Path, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    one = write(drop / "one.msg", eml(1))
    write(drop / "two.eml", eml(2))
    write(drop / "sub" / "three.msg", eml(3))
    prof = create(api, name="msg", type="directory", userName="alice", path=str(drop),
                  targetFolder="In", pattern="*.msg", recursive=False)
    assert run(api, prof["id"])["itemsArchived"] == 1
    assert archived(data) == {"In": [(eml(1), frozenset(), None)]}
    assert one.exists()  # deleteAfterArchive is off by default
    again = run(api, prof["id"])
    assert (again["itemsArchived"], again["itemsDuplicate"]) == (0, 0)  # not even read

    write(one, eml(1, extra=" - edited"), age=30)  # replaced: new content, new mtime
    third = run(api, prof["id"])
    assert (third["itemsArchived"], third["itemsDuplicate"]) == (1, 0)
    assert [m for m, _f, _d in archived(data)["In"]] == [eml(1), eml(1, extra=" - edited")]
    write(one, eml(1, extra=" - edited"), age=10)  # touched, same content: read, a duplicate
    fourth = run(api, prof["id"])
    assert (fourth["itemsArchived"], fourth["itemsDuplicate"]) == (0, 1)
    assert counts(data) == {"In": 2}


def test_a_vanished_directory_fails_the_run(api: TestClient, data: Path, tmp_path: Path
                                            ) -> None:
    drop = tmp_path / "drop"
    write(drop / "a.eml", eml(1))
    prof = create(api, name="gone", type="directory", userName="alice", path=str(drop))
    (drop / "a.eml").unlink()
    drop.rmdir()
    message = failed(api, "RunProfile", id=prof["id"])
    assert "gone" in message and str(drop) in message and "not a directory" in message
    [row] = results(api)
    assert row["result"] == "failed" and str(drop) in row["error"]
    assert [k for (k,) in query(data, "SELECT kind FROM notify_events")] == ["profile.failed"]


# -- maildir ----------------------------------------------------------------------------------
def test_maildir_folders_flags_and_moves(api: TestClient, data: Path, tmp_path: Path) -> None:
    md = tmp_path / "Maildir"
    for sub in ("", ".Lists.linux", ".Entw&APw-rfe"):
        for d in ("cur", "new", "tmp"):
            (md / sub / d).mkdir(parents=True, exist_ok=True)
    (md / ".Lists.linux" / "maildirfolder").touch()
    write(md / "cur" / "1.host:2,S", eml(1), age=3600)
    new = write(md / "new" / "2.host", eml(2), age=7200)
    write(md / ".Lists.linux" / "cur" / "3.host:2,FS", eml(3))
    write(md / ".Entw&APw-rfe" / "cur" / "4.host:2,RST", eml(4))
    write(md / "tmp" / "5.host", eml(5))  # being delivered: not a message yet
    prof = create(api, name="md", type="maildir", userName="alice", path=str(md),
                  targetFolder="MD")
    first = run(api, prof["id"])
    assert (first["result"], first["itemsArchived"]) == ("succeeded", 4)
    got = archived(data)
    assert {k: [(m, f) for m, f, _d in v] for k, v in got.items()} == {
        "MD": [(eml(1), frozenset({"seen"})), (eml(2), frozenset())],
        "MD/Lists/linux": [(eml(3), frozenset({"flagged", "seen"}))],
        "MD/Entwürfe": [(eml(4), frozenset({"answered", "seen", "deleted"}))]}
    # The internal date is the file's modification time.
    assert got["MD"][1][2] == int(new.stat().st_mtime)

    # The MUA reads message 2: new/ -> cur/ with the seen flag; and flags message 1.
    os.rename(new, md / "cur" / "2.host:2,S")
    os.rename(md / "cur" / "1.host:2,S", md / "cur" / "1.host:2,FS")
    second = run(api, prof["id"])
    assert (second["itemsArchived"], second["itemsDuplicate"]) == (0, 0)
    write(md / "new" / "6.host", eml(6))
    third = run(api, prof["id"])
    assert (third["itemsArchived"], third["itemsDuplicate"]) == (1, 0)
    assert counts(data) == {"MD": 3, "MD/Lists/linux": 1, "MD/Entwürfe": 1}


def test_maildir_delete_after_archive(api: TestClient, data: Path, tmp_path: Path) -> None:
    md = tmp_path / "md"
    for d in ("cur", "new", "tmp"):
        (md / d).mkdir(parents=True)
    files = [write(md / "cur" / f"{i}.host:2,S", eml(i)) for i in range(3)]
    prof = create(api, name="md", type="maildir", userName="alice", path=str(md),
                  targetFolder="MD", deleteAfterArchive=True)
    res = run(api, prof["id"])
    assert (res["itemsArchived"], res["itemsDeleted"]) == (3, 3)
    assert not any(f.exists() for f in files)
    assert counts(data) == {"MD": 3}


# -- validation -------------------------------------------------------------------------------
def test_invalid_properties_are_refused_and_nothing_is_saved(
    api: TestClient, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    good: dict[str, Any] = {"name": "d", "type": "directory", "userName": "alice",
                            "path": str(drop)}
    server = {"name": "s", "type": "imap", "userName": "alice", "host": "127.0.0.1",
              "login": "alice"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "bogus": 1}, "unknown field(s) for a directory profile: bogus"),
        ({**good, "recursive": "yes"}, "recursive must be true or false"),
        ({**good, "pattern": 5}, "pattern must be a string"),
        ({**good, "path": "relative/drop"}, "path must be absolute"),
        ({**good, "path": str(tmp_path / "missing")}, "is not a directory"),
        ({**good, "type": "maildir"}, "is not a Maildir"),
        ({k: v for k, v in good.items() if k != "userName"}, "userName is required"),
        ({**good, "userName": "nobody"}, "'nobody' is not a mailkeep user"),
        ({**good, "type": "ftp"}, "type must be one of imap, pop3, directory, maildir"),
        ({**good, "name": " d"}, "name must be"),
        ({**good, "targetFolder": "a//b"}, "targetFolder must be"),
        (server, "password is required"),
        ({**server, "password": "x", "port": 70000}, "port must be between 1 and 65535"),
        ({**server, "password": "x", "security": "ssl"}, "security must be one of"),
        ({**server, "password": "x", "timeout": "60"}, "timeout must be a whole number"),
        ({**server, "password": "x", "folders": "INBOX"}, "folders must be a list"),
        ({**server, "password": "x", "pattern": "*.eml"}, "unknown field(s) for a imap"),
    ]
    for props, expected in cases:
        message = failed(api, "CreateProfile", properties=props, raw=False)
        assert message.startswith("Invalid profile properties: ") and expected in message, (
            props, message)
    assert "a JSON object is expected" in failed(api, "CreateProfile", properties=[good],
                                                 raw=False)
    assert "not valid JSON" in failed(api, "CreateProfile", properties="{name: d}", raw=False)
    assert ok(api, "GetProfiles", raw=False) == []
    create(api, **good)
    assert "already exists" in failed(api, "CreateProfile", properties=good, raw=False)
    assert len(ok(api, "GetProfiles", raw=False)) == 1


def test_delete_profile_keeps_its_results(api: TestClient, data: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    write(drop / "a.eml", eml(1))
    prof = create(api, name="d", type="directory", userName="alice", path=str(drop),
                  targetFolder="D")
    res = run(api, prof["id"])
    assert ok(api, "DeleteProfile", id=prof["id"]) is None
    assert ok(api, "GetProfiles", raw=False) == []
    assert [r["id"] for r in results(api)] == [res["id"]]  # the worker result stays
    assert ok(api, "GetWorkerResultReport", id=res["id"])["profileName"] == "d"
    assert "There is no profile with id" in failed(api, "DeleteProfile", id=prof["id"])
    assert "There is no profile with id" in failed(api, "RunProfile", id=prof["id"])
    assert counts(data) == {"D": 1}  # the archive stays too


def test_update_keeps_the_password_unless_given(
    api: TestClient, data: Path, store: Profiles, tmp_path: Path
) -> None:
    prof = create(api, name="s", type="imap", userName="alice", host="127.0.0.1",
                  login="alice", password="first-Secr3t", security="none")
    pid = prof["id"]
    store.save_state(pid, {"folders": {"INBOX": [7, 42]}})

    renamed = ok(api, "UpdateProfile", id=pid, properties={"name": "renamed", "timeout": 30})
    assert renamed["name"] == "renamed" and renamed["properties"]["timeout"] == 30
    assert renamed["properties"]["hasPassword"] is True
    assert renamed["properties"]["host"] == "127.0.0.1"  # not given: kept
    assert store.secrets(store.get(pid)) == {"password": "first-Secr3t"}
    assert store.get(pid).state == {"folders": {"INBOX": [7, 42]}}  # same mailbox: kept

    message = failed(api, "UpdateProfile", id=pid, properties={"host": "localhost"})
    assert "password" in message and "host, login" in message
    # Nor does it go to the same server less protected, or to another port.
    for weaker in ({"verifyCertificate": False}, {"port": 1143}):
        message = failed(api, "UpdateProfile", id=pid, properties=weaker)
        assert "give password" in message and "first-Secr3t" not in message, weaker
    assert store.secrets(store.get(pid)) == {"password": "first-Secr3t"}
    message = failed(api, "UpdateProfile", id=pid, properties={"login": "bob"})
    assert "password" in message
    assert ok(api, "GetProfiles", raw=False)[0]["properties"]["host"] == "127.0.0.1"
    assert "type cannot be changed" in failed(api, "UpdateProfile", id=pid,
                                              properties={"type": "pop3"})
    assert "unknown field" in failed(api, "UpdateProfile", id=pid, properties={"path": "/"})

    moved = ok(api, "UpdateProfile", id=pid, properties={"host": "localhost",
                                                         "password": "second-Secr3t"})
    assert moved["properties"]["host"] == "localhost" and moved["properties"]["hasPassword"]
    assert store.secrets(store.get(pid)) == {"password": "second-Secr3t"}
    assert store.get(pid).state == {}  # another server: the UIDs mean nothing there
    assert "There is no profile" in failed(api, "UpdateProfile", id=99, properties={})

    drop = tmp_path / "drop"
    drop.mkdir()
    files = create(api, name="d", type="directory", userName="alice", path=str(drop))
    assert "path must be absolute" in failed(api, "UpdateProfile", id=files["id"],
                                             properties={"path": "rel"})
    assert "already exists" in failed(api, "UpdateProfile", id=files["id"],
                                      properties={"name": "renamed"})
    shown = ok(api, "GetProfiles", raw=False)[1]["properties"]
    assert shown["path"] == str(drop) and shown["name"] == "d" and "hasPassword" not in shown


# -- cancel -----------------------------------------------------------------------------------
def test_cancel_a_run_then_the_rerun_archives_the_rest(
    api: TestClient, data: Path, tmp_path: Path
) -> None:
    total = 4000
    drop = tmp_path / "many"
    drop.mkdir()
    then = time.time() - 60
    for i in range(total):
        path = drop / f"{i:05d}.eml"
        path.write_bytes(eml(i, "cancel"))
        os.utime(path, (then, then))
    prof = create(api, name="many", type="directory", userName="alice", path=str(drop),
                  targetFolder="Many")

    body = invoke(api, "RunProfile", id=str(prof["id"]))
    assert body["statusCode"] == "running" and body["token"], (
        "the run ended within the grace period: make the set bigger")
    answer = cancel(api, body["token"])
    assert answer["statusCode"] in ("running", "cancelled")
    end, _log = finish(api, answer)
    assert end["statusCode"] == "cancelled" and end["result"] is None

    [first] = results(api)
    assert first["result"] == "cancelled" and first["completeTime"] is not None
    assert 0 < first["itemsArchived"] < total, first
    assert counts(data) == {"Many": first["itemsArchived"]}
    report = ok(api, "GetWorkerResultReport", id=first["id"])
    assert "cancelled:" in report["log"]

    second = run(api, prof["id"])
    assert second["result"] == "succeeded"
    assert first["itemsArchived"] + second["itemsArchived"] == total, (first, second)
    print(f"cancelled run: {first['itemsArchived']} archived; rerun: "
          f"{second['itemsArchived']} archived, {second['itemsDuplicate']} duplicates")
    assert second["itemsDuplicate"] == 0, second
    assert counts(data) == {"Many": total}  # each file exactly once
    assert run(api, prof["id"])["itemsArchived"] == 0


class CancelAfter:
    """A process context that cancels the run at its (n+1)th check."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.checks = 0

    def progress(self, percent: int | None, text: str | None = None) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def check_cancelled(self) -> None:
        self.checks += 1
        if self.n is not None and self.checks > self.n:
            raise Cancelled()


@pytest.mark.parametrize("kind", ["directory", "maildir"])
def test_delete_after_archive_also_removes_what_a_cancelled_run_archived(
    tmp_path: Path, kind: str
) -> None:
    """deleteAfterArchive: a run cancelled after archiving some files leaves them (it deletes
    only at its end); the next run must delete them, since it will not read them again."""
    data = tmp_path / "data"
    users = fast_users(data)
    users.create("alice", "login")
    users.master.close()
    src = tmp_path / "src"
    if kind == "maildir":
        for d in ("cur", "new", "tmp"):
            (src / d).mkdir(parents=True)
    files = [write(src / ("cur" if kind == "maildir" else "") / f"{i:02d}.eml", eml(i))
             for i in range(10)]
    with profiles_of(data) as profiles:
        prof = profiles.create({"name": "p", "type": kind, "userName": "alice",
                                "path": str(src), "targetFolder": "P",
                                "deleteAfterArchive": True})
        with StoreWriter(data, profiles.master) as writer:
            with pytest.raises(Cancelled):
                Runner(profiles, writer, CancelAfter(4)).run(profiles.get(prof.id),
                                                             prof.properties, {}, "test")
            [first] = profiles.results(0, time.time() + 1, prof.id, None)
            assert (first["result"], first["archived"], first["deleted"]) == (
                "cancelled", 4, 0)
            assert all(f.exists() for f in files)  # a cancelled run deletes nothing
            res = Runner(profiles, writer, CancelAfter(None)).run(
                profiles.get(prof.id), prof.properties, {}, "test")
            assert (res.result, res.archived, res.duplicates) == ("succeeded", 6, 0)
            assert counts(data) == {"P": 10}
            left = sorted(f.name for f in files if f.exists())
            assert left == [], f"archived but never deleted: {left}"
            assert res.deleted == 10


# -- pst ----------------------------------------------------------------------------------------
def test_a_pst_profile_reads_the_file_again_only_when_it_changed(
        api: TestClient, data: Path, tmp_path: Path) -> None:
    pst = tmp_path / "shared" / "bob.pst"
    pst.parent.mkdir()
    write_pst(pst, [Folder("Inbox", [mail("first")])])
    past(pst)
    prof = create(api, name="bob's pst", type="pst", userName="alice", path=str(pst),
                  targetFolder="Outlook")
    first = run(api, prof["id"])
    assert (first["result"], first["itemsArchived"]) == ("succeeded", 1)
    second = run(api, prof["id"])  # unchanged: not even opened
    assert (second["itemsArchived"], second["itemsDuplicate"]) == (0, 0)
    write_pst(pst, [Folder("Inbox", [mail("first"), mail("second")])])  # Outlook added one
    past(pst)
    third = run(api, prof["id"])
    assert (third["itemsArchived"], third["itemsDuplicate"]) == (1, 1)
    assert counts(data) == {"Outlook/Inbox": 2}
    assert [parse(raw)["Subject"] for raw, _f, _d in archived(data)["Outlook/Inbox"]] == [
        "first", "second"]

"""The audit log's hash chain, tampered with as an insider with write access to the master
database would: a record changed, one removed from the middle, the newest removed, the whole
chain recomputed after a change, a record slipped in without a link. Each is found, by
`mailkeep audit verify` (and `mailkeep verify`), the last two only against a head noted
earlier. Writers in several processes at once keep the chain whole."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from mailkeep.core.masterdb import MasterDB
from mailkeep.core.masterdb.audit import link
from tests.helpers import master_sql, mk, mk_ok


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for i in range(6):
        mk_ok(data, "call", "CreateStore", f"name=S{i}")
    return data


def sql(data: Path, statement: str, *params: object) -> None:
    with master_sql(data) as conn:
        conn.execute(statement, params)


def head(data: Path) -> str:
    report = json.loads(mk_ok(data, "audit", "verify", "--json").stdout)
    assert report["ok"], report
    return f"{report['lastId']}:{report['head']}"


def broken(data: Path, *args: str) -> str:
    result = mk(data, "audit", "verify", *args)
    assert result.exit_code == 1, result.output
    return result.output


def test_an_intact_chain_verifies(data: Path) -> None:
    report = json.loads(mk_ok(data, "audit", "verify", "--json").stdout)
    assert report["ok"] and report["records"] == 6 and report["unchained"] == 0
    assert "hash chain ok" in mk_ok(data, "verify").stdout
    mk_ok(data, "audit", "verify", "--expect", head(data))


def test_a_changed_record_is_found(data: Path) -> None:
    sql(data, "UPDATE audit SET actor = 'cli:someone-else' WHERE id = 3")
    assert "record 3 (CreateStore by cli:someone-else) does not match" in broken(data)
    assert mk(data, "verify").exit_code == 1


def test_a_record_removed_from_the_middle_is_found(data: Path) -> None:
    sql(data, "DELETE FROM audit WHERE id = 4")
    out = broken(data)
    assert "records 4 to 4 are missing" in out and "record 5" in out


def test_the_newest_removed_is_found_against_a_noted_head(data: Path) -> None:
    noted = head(data)
    sql(data, "DELETE FROM audit WHERE id >= 6")
    mk_ok(data, "audit", "verify")  # the chain alone cannot tell
    assert "noted earlier, is gone" in broken(data, "--expect", noted)


def test_a_recomputed_chain_is_found_against_a_noted_head(data: Path) -> None:
    noted = head(data)
    with master_sql(data) as conn:
        conn.execute("UPDATE audit SET details = '{\"args\": {\"name\": \"innocent\"}}' "
                     "WHERE id = 2")
        prev = ""
        for rid, at, actor, action, details in conn.execute(
                "SELECT id, at, actor, action, details FROM audit ORDER BY id").fetchall():
            prev = link(prev, rid, at, actor, action, details)
            conn.execute("UPDATE audit SET chain = ? WHERE id = ?", (prev, rid))
    mk_ok(data, "audit", "verify")  # consistent in itself
    assert "not the one noted" in broken(data, "--expect", noted)


def test_a_record_slipped_in_without_a_link_is_found(data: Path) -> None:
    sql(data, "INSERT INTO audit (id, at, actor, action, details) VALUES "
        "(7, 0, 'system', 'user.create', '{}')")
    assert "record 7 (user.create by system) is not linked" in broken(data)


@pytest.mark.sqlite_master  # a file of an older schema, migrated
def test_records_from_before_the_chain_are_counted_not_checked(tmp_path: Path) -> None:
    """A master database from before the chain (version 4: no chain column) is migrated; its
    records are counted as unchained and the chain starts after them."""
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "mailkeep.db")
    conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT "
                 "NOT NULL, action TEXT NOT NULL, details TEXT NOT NULL)")
    conn.execute("INSERT INTO audit (at, actor, action, details) VALUES (1, 'system', 'old', "
                 "'{}')")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    mk_ok(data, "call", "CreateStore", "name=New")
    report = json.loads(mk_ok(data, "audit", "verify", "--json").stdout)
    assert report["ok"] and report["unchained"] == 1 and report["records"] >= 2


def _writer(path: str, n: int) -> None:
    master = MasterDB.of(Path(path))
    try:
        for i in range(n):
            master.audit.write(f"cli:w{n}", "test.write", i=i)
    finally:
        master.close()


def test_writers_in_several_processes_keep_the_chain(data: Path) -> None:
    procs = [multiprocessing.get_context("spawn").Process(target=_writer,
                                                          args=(str(data.resolve()), n))
             for n in (200, 201, 202)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = json.loads(mk_ok(data, "audit", "verify", "--json").stdout)
    assert report["ok"], report["problems"][:3]
    assert report["records"] == 6 + 603


def test_list_exports_csv_and_json_lines(data: Path) -> None:
    master = MasterDB.of(data.resolve())
    try:
        master.audit.write("=HYPERLINK(\"http://evil.example\")", "@SUM(A1)", note="-2+3")
    finally:
        master.close()
    rows = list(csv.reader(io.StringIO(mk_ok(data, "audit", "list", "--format", "csv")
                                       .stdout)))
    assert rows[0] == ["id", "at", "actor", "action", "details"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, 8)]  # oldest first
    assert rows[-1][2] == "'=HYPERLINK(\"http://evil.example\")" and rows[-1][3] == "'@SUM(A1)"
    lines = mk_ok(data, "audit", "list", "--format", "jsonl", "--action", "CreateStore"
                  ).stdout.splitlines()
    assert [json.loads(x)["details"]["args"]["name"] for x in lines] == [
        f"S{i}" for i in range(6)]


def test_what_an_attack_slipped_past_is_found(data: Path) -> None:
    """Records with ids mailkeep never writes (0, negative), every link removed (a database
    that had the chain from its start has no unchained records), and values mailkeep never
    writes (not UTF-8, a blob): each a problem of its record, and the listing still works."""
    sql(data, "INSERT INTO audit VALUES (0, 1800000000, 'mcapi:alice', 'DeleteMessage', "
        "'{}', NULL)")
    assert "record 0: mailkeep never writes such an id" in broken(data)
    sql(data, "DELETE FROM audit WHERE id = 0")
    sql(data, "UPDATE audit SET chain = NULL")
    assert "record 1 (CreateStore by cli:root) is not linked" in broken(data)
    assert mk(data, "verify", "--json").exit_code == 1


@pytest.mark.sqlite_master  # values only SQLite's loose typing lets in
def test_bad_values_name_their_record(data: Path) -> None:
    sql(data, "UPDATE audit SET actor = CAST(x'ff41' AS TEXT) WHERE id = 2")
    sql(data, "UPDATE audit SET details = x'00ff' WHERE id = 3")
    out = broken(data)
    assert "record 2 holds values mailkeep never writes" in out
    assert "record 3 holds values mailkeep never writes" in out
    listed = mk_ok(data, "audit", "list", "--format", "jsonl").stdout.splitlines()
    assert len(listed) == 6 and "unreadable" in listed[2]


def test_exports_show_control_characters_as_text(data: Path) -> None:
    master = MasterDB.of(data.resolve())
    try:
        master.audit.write("api:\x1b[2J\x1b]0;pwned\x07=1+1", "login.failed", c1="\x9b31m")
    finally:
        master.close()
    text = mk_ok(data, "audit", "list", "--format", "csv").stdout
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "\\x1b[2J" in text
    lines = mk_ok(data, "audit", "list", "--format", "jsonl").stdout
    assert all(ord(c) < 128 for c in lines) and "\x1b" not in lines
    assert json.loads(lines.splitlines()[-1])["actor"].startswith("api:\x1b[2J")

"""`mailkeep search` past many matches: totals counted up to a bound and estimated past it,
and searches kept to folders (the ways a catalog plans them), on 500 messages spread over the
years.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_search import message, searched, utc
from tests.helpers import mk, mk_ok

# (MAILKEEP_TEST_ENGINE=postgresql: one database for the module, its archive fixture too)
SHARED_DATABASE = True


# -- totals: counted up to a bound, estimated past it ----------------------------------------
@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 messages holding "common", one every 3 days and 15 hours from 2016 on, 31 of them
    also "scarce"; 100 more in a folder of their own, "common" too."""
    top = tmp_path_factory.mktemp("spread")
    for folder, count in (("mail", 400), ("side", 100)):
        (top / folder).mkdir()
        for i in range(count):
            when = utc(2016, 1, 1) + timedelta(hours=87 * i + (7 if folder == "side" else 0))
            body = b"common words\r\n" + (b"scarce\r\n" if folder == "mail" and i % 13 == 0
                                          else b"")
            (top / folder / f"{i:03}.eml").write_bytes(message(f"{folder} {i}", when, body))
    data = top / "data"
    assert mk(data, "import", str(top / "mail")).exit_code == 0
    assert mk(data, "import", "--folder", "Side", str(top / "side")).exit_code == 0
    return data


def test_past_the_bound_a_total_is_an_estimate_said_as_such(
        spread: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search counts its matches one by one up to COUNT_EXACT (10,000; 100 here); past
    that its total is estimated from slices of its date range, to two figures, and said to be
    one: `about` on the command line, totalExact false in JSON and from SearchArchive. --exact
    (exactTotal) counts them all. Totals under the bound stay exact."""
    from mailkeep.core.storage import catalog_search
    monkeypatch.setattr(catalog_search, "COUNT_EXACT", 100)  # and the slices' matches with it:
    monkeypatch.setattr(catalog_search, "SAMPLE_ENOUGH", 10)  # 200 for 10,000
    got = searched(spread, "common")
    assert got["totalExact"] is False
    assert 400 <= got["total"] <= 600 and float(f"{got['total']:.2g}") == got["total"], got
    assert len(got["messages"]) == 20  # the page itself is whole
    assert searched(spread, "--exact", "common")["total"] == 500
    assert searched(spread, "--exact", "common")["totalExact"] is True
    dated = searched(spread, "common", "after:2018-01-01")  # 500 - those before 2018
    before = sum(1 for i in range(400) if utc(2016, 1, 1) + timedelta(hours=87 * i)
                 < utc(2018, 1, 1)) + sum(1 for i in range(100) if utc(2016, 1, 1) + timedelta(
                     hours=87 * i + 7) < utc(2018, 1, 1))
    assert dated["totalExact"] is False and 0.6 * (500 - before) <= dated["total"] <= 1.4 * (
        500 - before), (dated["total"], 500 - before)
    assert searched(spread, "scarce") | {"messages": []} == {
        "total": 31, "totalExact": True, "offset": 0, "unavailable": {}, "messages": []}
    assert searched(spread, "folder:Side", "common")["total"] == 100  # at the bound: exact
    table = mk(spread, "search", "common").stdout
    assert "about " in table.splitlines()[-1], table
    api = json.loads(mk_ok(spread, "call", "SearchArchive", "query=common").stdout)
    assert api["totalExact"] is False and api["total"] == got["total"]
    api = json.loads(mk_ok(spread, "call", "SearchArchive", "query=common",
                           "exactTotal=true").stdout)
    assert (api["total"], api["totalExact"]) == (500, True)


@pytest.mark.sqlite_catalog
def test_a_count_that_would_take_long_is_estimated_instead(
        spread: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count also stops after COUNT_STEPS of SQLite's work (a search that reads many rows
    to find few): the total is then an estimate, whatever the number of matches."""
    from mailkeep.core.storage import catalog_search
    monkeypatch.setattr(catalog_search, "TICK", 100)
    monkeypatch.setattr(catalog_search, "COUNT_STEPS", 100)
    got = searched(spread, "common", "-scarce")
    assert got["totalExact"] is False and len(got["messages"]) == 20
    assert got["total"] >= 20
    monkeypatch.setattr(catalog_search, "COUNT_STEPS", 10 ** 9)
    assert searched(spread, "common", "-scarce") | {"messages": []} == {
        "total": 469, "totalExact": True, "offset": 0, "unavailable": {}, "messages": []}


@pytest.mark.sqlite_catalog
def test_a_search_that_looks_up_each_find_reads_a_bounded_number_of_them(
        spread: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search whose finds in the index are each looked up in entries (here a word outside
    a folder) counts its matches among the index's oldest SCAN_ROWS (10,000; 100 here)
    finds, and estimates the rest from slices of the dates above them, reading SCAN_ROWS
    finds at most; with fewer finds than that, its total is exact."""
    from mailkeep.core.storage import catalog_search
    assert searched(spread, "common", "-folder:Side") | {"messages": []} == {
        "total": 400, "totalExact": True, "offset": 0, "unavailable": {}, "messages": []}
    monkeypatch.setattr(catalog_search, "SCAN_ROWS", 100)
    got = searched(spread, "common", "-folder:Side")
    assert got["totalExact"] is False and len(got["messages"]) == 20
    assert 0.6 * 400 <= got["total"] <= 1.4 * 400, got["total"]
    assert searched(spread, "--exact", "common", "-folder:Side")["total"] == 400
    got = searched(spread, "scarce", "-folder:Side")  # 31 finds: all of them read
    assert (got["total"], got["totalExact"]) == (31, True)
    read: list[int] = []  # the finds read for one search, each of them looked up
    real = catalog_search.Plan.oldest_finds

    def counted(plan: Any, rows: int, lo: Any = None, hi: Any = None) -> Any:
        read.append(rows)
        return real(plan, rows, lo, hi)
    monkeypatch.setattr(catalog_search.Plan, "oldest_finds", counted)
    searched(spread, "common", "-folder:Side")
    assert read and read[0] == 101 and sum(read[1:]) <= 2 * 100, read


@pytest.mark.sqlite_catalog
@pytest.mark.parametrize("few", [True, False])
def test_a_search_kept_to_folders_goes_through_them_when_they_hold_few(
        spread: Path, monkeypatch: pytest.MonkeyPatch, few: bool) -> None:
    """folder: (and a caller's scope) finds its folders first. Holding at most FEW_ENTRIES
    entries, the search checks the index's matches against their keys, or, without words,
    goes through them by the folder index; holding more, each match is looked up. Either
    way it finds the same messages."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage import catalog_search
    from mailkeep.core.storage.query import compile_query
    monkeypatch.setattr(catalog_search, "FEW_ENTRIES", 1000 if few else 10)
    with Archive(spread) as archive:
        [(_rec, store)] = archive.readable_stores()
        plans = {}
        for query in ("folder:Side common", "folder:Side"):
            q = compile_query(query)
            sql, params = store.catalog._plan(q, index_only=q.match is not None).sql()
            plans[query] = " ".join(str(r[3]) for r in store.catalog.conn.execute(
                f"EXPLAIN QUERY PLAN SELECT count(*) FROM {sql}", params))
        totals = {q: archive.search(q, exact=True).total
                  for q in ("folder:Side common", "folder:Side", "folder:Side scarce",
                            "folder:Side has:attachment", "-folder:Side common")}
    assert totals == {"folder:Side common": 100, "folder:Side": 100, "folder:Side scarce": 0,
                      "folder:Side has:attachment": 0, "-folder:Side common": 400}
    if few:
        assert "entries_folder (folder_id=?)" in plans["folder:Side common"], plans
        assert "SEARCH e USING INTEGER PRIMARY KEY" not in plans["folder:Side common"]
        assert "entries_folder (folder_id=?)" in plans["folder:Side"], plans
    else:
        assert "SEARCH e USING INTEGER PRIMARY KEY" in plans["folder:Side common"], plans
        assert "folder_id=?" not in " ".join(plans.values()), plans


def test_folders_hold_for_every_use_of_a_search(spread: Path) -> None:
    """A search kept to folders is kept to them wherever it is used: an export's messages
    (iter_numbers), a message's check (matches), a caller's scope as much as folder:."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage.query import compile_query
    from mailkeep.functions.reading import Scope, scoped_query
    with Archive(spread) as archive:
        [(_rec, store)] = archive.readable_stores()
        side = set(store.catalog.iter_numbers(compile_query("folder:Side common")))
        everything = set(store.catalog.iter_numbers(compile_query("common")))
        assert len(side) == 100 and len(everything) == 500
        scope = Scope((("admin", "Side"),))
        assert set(store.catalog.iter_numbers(scoped_query("common", scope))) == side
        assert set(store.catalog.iter_numbers(scoped_query("", Scope(())))) == set()
        outside = min(everything - side)
        assert not store.catalog.matches(scoped_query("common", scope), outside)
        assert store.catalog.matches(scoped_query("common", scope), min(side))
        assert archive.search_compiled(scoped_query("common", scope), 5).total == 100


@pytest.mark.sqlite_catalog  # (PgCatalog: its search is one REPEATABLE READ snapshot)
def test_a_folder_moved_while_a_search_runs_brings_nothing_else_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search finds its scope's folders first and uses their ids after. Another writer
    moves the folder to someone else at that very point (the search stopped there): the
    search sees the catalog as it was when it began, so everything it lists is still inside
    its scope."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage import catalog_search
    from mailkeep.functions.reading import Scope, scoped_query
    mail = tmp_path / "mail"
    mail.mkdir()
    for i in range(30):
        (mail / f"{i}.eml").write_bytes(message(f"Moved {i}", utc(2020, 1, 1 + i), b"ledger\r\n"))
    data = tmp_path / "data"
    assert mk(data, "import", "--user", "alice", "--folder", "Books", str(mail)).exit_code == 0
    found = catalog_search.Searching._folder_set

    def then_moved(self: Any, q: Any) -> Any:
        got = found(self, q)
        with sqlite3.connect(self.file) as other:  # the administrator's move, committed
            other.execute("UPDATE folders SET owner = 'bob' WHERE path = 'Books'")
        return got

    monkeypatch.setattr(catalog_search.Searching, "_folder_set", then_moved)
    with Archive(data) as archive:
        res = archive.search_compiled(scoped_query("ledger", Scope((("alice", ""),))), 50)
    assert res.total == 30 and {h.hit.owner for h in res.hits} == {"alice"}


def test_either_way_through_few_folders_finds_the_same(
        spread: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through folders holding few messages, the index is asked for each of them, or its
    matches are checked against them, whichever the cost model finds cheaper (here forced
    one way, then the other): the same pages, in the same order, with exact totals."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage import catalog_search
    queries = ("folder:Side common", 'folder:Side "common words"', "folder:Side scarce",
               "folder:Side common after:2016-06-01", "folder:Side common -scarce")
    found = []
    for lookup_us in (0.0, 1e9):
        monkeypatch.setattr(catalog_search, "LOOKUP_US", lookup_us)
        monkeypatch.setattr(catalog_search, "LOOKUP_US_PER_SEGMENT", lookup_us)
        with Archive(spread) as archive:
            found.append({q: (archive.search(q, 7, 3).total, archive.search(q, 7, 3).exact,
                              [(h.hit.number, h.hit.date) for h in archive.search(q, 7, 3).hits])
                          for q in queries})
    assert found[0] == found[1]
    got = found[0]
    assert [got[q][0] for q in queries] == [100, 100, 0, got[queries[3]][0], 100]
    assert 20 < got[queries[3]][0] < 80 and all(got[q][1] for q in queries)
    for q in queries:
        dates = [d for _n, d in got[q][2]]
        assert dates == sorted(dates, reverse=True) and len(dates) == (0 if "scarce" in q
                                                                       and "-" not in q else 7)


@pytest.mark.sqlite_catalog
def test_a_scope_of_every_folder_searches_as_one_of_none(spread: Path) -> None:
    """A scope (or folder:) that takes every folder of a store keeps nothing out, so the
    search goes as an unscoped one does: from the index alone, with the same answer."""
    from mailkeep.core.archive import Archive
    from mailkeep.core.storage.query import compile_query
    from mailkeep.functions.reading import Scope, scoped_query
    with Archive(spread) as archive:
        [(_rec, store)] = archive.readable_stores()
        everyone = scoped_query("common", Scope((("admin", ""),)))
        assert store.catalog._folder_set(everyone) is None
        assert store.catalog._folder_set(scoped_query("common", Scope((("admin", "Side"),))))
        sql, _params = store.catalog._plan(everyone, index_only=True).sql()
        assert "entries" not in sql and "folder" not in sql, sql
        plain = archive.search("common", 30)
        scoped = archive.search_compiled(everyone, 30)
        assert [h.message_id for h in scoped.hits] == [h.message_id for h in plain.hits]
        assert (scoped.total, scoped.exact) == (plain.total, plain.exact) == (500, True)
        assert archive.search_compiled(scoped_query("common", Scope((("bob", ""),))),
                                       30).total == 0
        assert store.catalog._folder_set(compile_query("user:nobody common")) == ("", 0)


def test_a_prefix_through_few_folders_finds_its_matches(spread: Path) -> None:
    """A prefix (comm*) through folders holding few messages is read for its matches, never
    looked up message by message: the same messages as the whole word, an exact total."""
    from mailkeep.core.archive import Archive
    with Archive(spread) as archive:
        prefix, word = archive.search("folder:Side comm*", 30), archive.search(
            "folder:Side common", 30)
    assert (prefix.total, prefix.exact) == (100, True)
    assert [h.message_id for h in prefix.hits] == [h.message_id for h in word.hits]

"""The same search finds the same messages in a catalog in SQLite (FTS5) and in PostgreSQL
(tsvector and GIN, core/storage/catalog_pg.py): the real mail of the corpus's tricky set and
of a year of linux-mips, and messages written here for what the corpus lacks (CJK, accents,
attachments, folders of several users, dates), filed alike in both, then a battery of queries
of every kind the syntax has."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator

import pytest

from mailkeep.core.storage.catalog import Catalog
from mailkeep.core.storage.catalog_pg import PgCatalog, index_vectors, term_query
from mailkeep.core.storage.packing import blob_info, index_fields
from mailkeep.core.storage.query import compile_query
from tests.helpers import BULK, TRICKY

OWN = [
    ("alice", "Inbox", b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
     b"Subject: Quarterly budget meeting\r\nDate: Mon, 03 Feb 2020 10:00:00 +0000\r\n\r\n"
     b"The quarterly budget meeting is moved to Friday.\r\n"),
    ("alice", "Inbox/Invoices", b"From: billing@shop.example\r\nTo: alice@example.org\r\n"
     b"Subject: Invoice 2024-117\r\nDate: Tue, 05 Mar 2024 08:30:00 +0100\r\n"
     b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     b"Content-Type: text/plain\r\n\r\nPlease find the invoice attached.\r\n--b\r\n"
     b"Content-Type: text/plain; name=rechnung-maerz.txt\r\n"
     b"Content-Disposition: attachment; filename=rechnung-maerz.txt\r\n\r\n"
     b"Gesamtbetrag zahlbar innerhalb von vierzehn Tagen\r\n--b--\r\n"),
    ("bob", "Archive", "From: Jürgen Groß <juergen@example.de>\r\nTo: bob@example.net\r\n"
     "Subject: Grüße aus Köln\r\nDate: Wed, 10 Jun 2015 12:00:00 +0200\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n\r\n"
     "Die Größe der Übergabe: der Bürgermeister lädt zur Sitzung ein. Café au lait.\r\n"
     .encode()),
    ("bob", "Japan", "From: tanaka@example.jp\r\nTo: bob@example.net\r\n"
     "Subject: 会議の議事録\r\nDate: Thu, 11 Jun 2015 09:00:00 +0900\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n\r\n"
     "東京で会議を開催します。予算について議論しましょう。\r\n".encode()),
    ("carol", "Inbox", b"From: carol@example.com\r\nTo: dave@example.com, erin@example.com\r\n"
     b"Cc: frank@example.com\r\nSubject: re: release-candidate 3.1.4 cache flush\r\n"
     b"Date: Sat, 01 Jan 2022 00:00:01 +0000\r\n\r\n"
     b"Flush the cache before the release. x+y=z, see https://example.com/a_b?c=d\r\n"),
]

QUERIES = [
    "the", "budget", "Budget meeting", '"budget meeting"', '"meeting budget"', "budget -friday",
    "quarterly OR invoice", "invoice OR Größe OR 会議", "größe", "GROSSE", "grosse", "Übergabe",
    "bürgermeister", "cafe", "café", "東京", "会議", "議", "予算", "議事録", "東京で会議を開催",
    "subject:budget", "subject:friday", "from:alice", "from:example.org", "to:dave", "cc:frank",
    "body:cache", "subject:cache", "attachment:rechnung", "filename:maerz", "attachment:vierzehn",
    "gesamtbetrag", "has:attachment", "-has:attachment cache", "has:attachment invoice",
    "folder:Inbox", "folder:alice/Inbox", "folder:inbox/invoices", "-folder:Inbox budget",
    "user:bob", "user:alice invoice", "after:2020-01-01", "before:2016", "on:2015-06-10",
    "-on:2015-06-10 bob", "after:2015 before:2016 -japan", "release-candidate", "3.1.4",
    "x+y", "https://example.com", "re:", "cach*", "bud*", "f*", "mips", "kernel", "linux mips",
    '"linux mips"', "patch -kernel", "Ralf", "from:ralf", "subject:re", "ioctl OR syscall",
    "-the", "mips -linux -kernel", "___", "*", '""', "subject:", "zzzznotthere",
]


def corpus() -> Iterator[tuple[str, str, bytes]]:
    yield from OWN
    for path in sorted(p for p in TRICKY.rglob("*") if p.is_file() and p.suffix in (".eml",
                                                                                     ".msg"))[:150]:
        yield "tricky", path.parent.name, path.read_bytes()
    with gzip.open(BULK / "linux-mips-1997.mbox.gz") as fh:
        raw = fh.read()
    for i, chunk in enumerate(raw.split(b"\nFrom ")[:400]):
        body = chunk if i == 0 else b"From " + chunk
        yield "lists", "linux-mips", body.split(b"\n", 1)[1] if body.startswith(b"From ") \
            else body


def fill(catalogs: list[Catalog | PgCatalog]) -> int:
    count = 0
    for number, (owner, folder, raw) in enumerate(corpus(), start=1):
        fields = index_fields(raw, len(raw), documents=True)
        info = blob_info(fields, 1_600_000_000 + number)
        cid = hashlib.sha256(raw).digest()
        for cat in catalogs:
            cat.begin()
            blob = cat.find_blob(cid)
            if blob is None:
                blob = cat.add_blob(cid, 1, number * 100, len(raw), len(raw), info)
            fid = cat.folder_id(owner, folder)
            if not cat.has_entry(blob, fid):
                cat.add_entry(number, blob, fid, ["seen"] if number % 3 else [], None,
                              1_700_000_000 + number, 1, number * 100 + 50, info.date,
                              info.index)
            cat.commit()
        count += 1
    return count


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory, postgres_server: object
             ) -> Iterator[tuple[Catalog, PgCatalog]]:
    from tests.peers.postgres import Postgres
    assert isinstance(postgres_server, Postgres)
    url = postgres_server.new_database()
    sq = Catalog(tmp_path_factory.mktemp("parity") / "catalog.sqlite")
    pg = PgCatalog(url, "0123456789abcdef0123456789abcdef")
    try:
        assert fill([sq, pg]) > 400
        pg.conn.execute("ANALYZE")
        yield sq, pg
    finally:
        sq.close()
        pg.close()
        postgres_server.drop_database(url)


@pytest.mark.parametrize("text", QUERIES)
def test_the_same_search_finds_the_same_messages(catalogs: tuple[Catalog, PgCatalog],
                                                 text: str) -> None:
    sq, pg = catalogs
    q = compile_query(text)
    lite = sq.search(q, 1000, exact=True)
    post = pg.search(compile_query(text), 1000, exact=True)
    assert [h.number for h in post[2]] == [h.number for h in lite[2]]
    assert post[0] == lite[0]


@pytest.mark.parametrize("sort", ["date", "from", "subject", "size"])
@pytest.mark.parametrize("ascending", [False, True])
def test_pages_and_orders_agree(catalogs: tuple[Catalog, PgCatalog], sort: str,
                                ascending: bool) -> None:
    sq, pg = catalogs
    for offset in (0, 20, 380):
        lite = sq.search(compile_query("mips"), 20, offset, sort=sort, ascending=ascending)
        post = pg.search(compile_query("mips"), 20, offset, sort=sort, ascending=ascending)
        assert [h.number for h in post[2]] == [h.number for h in lite[2]], (sort, offset)


def test_matched_attachments_agree(catalogs: tuple[Catalog, PgCatalog]) -> None:
    sq, pg = catalogs
    for text in ("rechnung", "vierzehn", "invoice", "maerz OR gesamtbetrag"):
        q = compile_query(text)
        numbers = [h.number for h in sq.search(q, 100)[2]]
        assert pg.matched_attachments(compile_query(text), numbers) == \
            sq.matched_attachments(q, numbers), text
    assert sq.matched_attachments(compile_query("vierzehn"), [2]) == {2: ["rechnung-maerz.txt"]}


def test_folders_counts_and_entries_agree(catalogs: tuple[Catalog, PgCatalog]) -> None:
    sq, pg = catalogs
    assert pg.folders() == sq.folders()
    assert pg.counts() == sq.counts()
    assert pg.entry(3) is not None and repr(pg.entry(3)) == repr(sq.entry(3))
    assert list(pg.iter_numbers(compile_query("mips"))) == \
        list(sq.iter_numbers(compile_query("mips")))


def test_words_and_queries_are_fts5_s_own() -> None:
    """The words of the PostgreSQL index are those FTS5 makes of the same text."""
    head, body, att = index_vectors(("Grüße aus Köln", "Jürgen <j@x.de>", "", "東京 京で Straße",
                                     "a.txt"))
    assert "'gruße':1A" in head and "'koln':3A" in head and "'jurgen':4101B" in head
    assert "'東京':1" in body and "'straße':3" in body
    assert term_query("Café au", prefix=True) == "'cafe' <-> 'au':*"
    assert term_query("___", prefix=False) is None

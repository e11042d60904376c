"""`mailkeep search` on a small archive of hand-written messages: decoding, CJK, query syntax.

The messages are written by the tests (one .eml file each, in folders), imported with the CLI,
and found again with the CLI; each message is known by the id `import --jsonl` reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import catalog_rows, mk

# (MAILKEEP_TEST_ENGINE=postgresql: one database for the module, its archive fixtures too)
SHARED_DATABASE = True


# -- building messages ------------------------------------------------------------------------
def b_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def q_word(text: str, charset: str) -> str:
    out = []
    for byte in text.encode(charset):
        ch = chr(byte)
        if byte == 0x20:
            out.append("_")
        elif 0x21 <= byte <= 0x7E and ch not in "=?_":
            out.append(ch)
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def rfc2822(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S %z")


def message(subject: str, when: datetime, body: bytes, *, sender: str = "Zed <zed@example.com>",
            to: str = "Bob <bob@example.org>", cc: str | None = None,
            ctype: str = "text/plain; charset=utf-8", cte: str = "8bit") -> bytes:
    head = [f"From: {sender}", f"To: {to}"] + ([f"Cc: {cc}"] if cc else []) + [
        f"Subject: {subject}", f"Date: {rfc2822(when)}",
        f"Message-ID: <{hashlib.sha1(head_id(subject, when)).hexdigest()[:16]}@test.example>",
        "MIME-Version: 1.0"]
    if ctype:
        head.append(f"Content-Type: {ctype}")
    if cte:
        head.append(f"Content-Transfer-Encoding: {cte}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def head_id(subject: str, when: datetime) -> bytes:
    return f"{subject} {when.isoformat()}".encode()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        offset_hours: int = 0) -> datetime:
    """A UTC time, shown in the zone `offset_hours` from UTC."""
    when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return when.astimezone(timezone(timedelta(hours=offset_hours)))


ATTACHMENT = (
    b"--XyZ\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    b"Please find the figures in the file.\r\n"
    b"--XyZ\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment;\r\n"
    b" filename*=UTF-8''Quarterly%20Bericht%20%C3%9Cbersicht.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"%PDF-1.4 not really a pdf\n" * 20).replace(b"\n", b"\r\n")
    + b"--XyZ--\r\n")

HTML = (b"<html><head><title>ignoredtitle</title><style>p {color: red}</style></head>"
        b"<body><p>Hello <b>Wor</b>ld from the <i>markup</i> only message</p>"
        b"<script>var hiddenscripttoken = 1;</script></body></html>\r\n")

# key: (user, folder, date (UTC), message bytes)
MESSAGES: dict[str, tuple[str, str, datetime, bytes]] = {}


def _add(key: str, user: str, folder: str, when: datetime, raw: bytes) -> None:
    MESSAGES[key] = (user, folder, when.astimezone(UTC), raw)


_add("b_utf8", "admin", "Inbox", utc(2024, 1, 5, 9, 0, 0),
     message(b_word("Résumé du projet Zéphyr", "utf-8"), utc(2024, 1, 5, 9, 0, 0),
             b"Plain text, nothing special.\r\n", sender="Alice Martin <alice@example.com>"))
_add("q_utf8", "admin", "Inbox", utc(2024, 1, 20, 12),
     message(q_word("Café au lait — réunion hebdomadaire", "utf-8"), utc(2024, 1, 20, 12),
             b"See you there.\r\n"))
_add("jis_b", "admin", "Inbox", utc(2024, 2, 3, 8),
     message(b_word("異常時通知メール", "iso-2022-jp"), utc(2024, 2, 3, 8, offset_hours=9),
             "サーバーで障害を検知しました。\r\n".encode("iso-2022-jp"),
             ctype="text/plain; charset=ISO-2022-JP", cte="7bit"))
_add("jis_q", "admin", "Inbox", utc(2024, 2, 10, 8),
     message(q_word("定期点検のお知らせ", "iso-2022-jp"), utc(2024, 2, 10, 8),
             b"Maintenance window notice.\r\n"))
_add("zh", "admin", "Inbox", utc(2024, 2, 29, 16),
     message("Meeting in Beijing", utc(2024, 2, 29, 16),
             "我们明天在北京开会，讨论明年的预算。\r\n".encode("gb2312"),
             ctype="text/plain; charset=gb2312"))
_add("ko", "admin", "Inbox", utc(2024, 3, 15, 1),
     message("Weekly schedule", utc(2024, 3, 15, 1),
             "다음 주 회의 일정을 알려드립니다.\r\n".encode("euc-kr"),
             ctype="text/plain; charset=euc-kr"))
_add("sjis", "admin", "Inbox", utc(2024, 3, 31, 23, 30),
     message("Invoice", utc(2024, 3, 31, 23, 30),
             "請求書を添付いたしました。ご確認ください。\r\n".encode("shift_jis"),
             ctype="text/plain; charset=Shift_JIS"))
# Local date April 1st, UTC date March 31st: dates are UTC.
_add("koi8", "admin", "Inbox", utc(2024, 3, 31, 22, 30),
     message("Report", utc(2024, 3, 31, 22, 30, offset_hours=2),
         "Привет! Это отчёт о продажах за квартал.\r\n".encode("koi8-r"),
         ctype="text/plain; charset=koi8-r"))
_add("attach", "admin", "Work", utc(2023, 11, 11, 11),
     message("Figures", utc(2023, 11, 11, 11), ATTACHMENT,
             ctype='multipart/mixed; boundary="XyZ"', cte=""))
_add("qp", "admin", "Work/Projects", utc(2023, 12, 1, 10),
     message("Greetings", utc(2023, 12, 1, 10),
             b"Gr=C3=BC=C3=9Fe aus M=C3=BCnchen! Der Schwarzwald=\r\nkuchen war k=C3=B6stlich.\r\n",
             cte="quoted-printable"))
_add("b64", "admin", "Work/Projects", utc(2023, 12, 24, 18),
     message("Secret", utc(2023, 12, 24, 18),
             base64.encodebytes(b"The secret codeword is xylophone.\n").replace(b"\n", b"\r\n"),
             cte="base64"))
_add("html", "admin", "Workshop", utc(2023, 10, 31, 20),
     message("Markup", utc(2023, 10, 31, 20), HTML, ctype="text/html; charset=utf-8"))
_add("phrase1", "admin", "Inbox", utc(2023, 6, 1, 7),
     message("Fox one", utc(2023, 6, 1, 7), b"the quick brown fox jumps over the lazy dog\r\n"))
_add("phrase2", "admin", "Inbox", utc(2023, 6, 2, 7),
     message("Fox two", utc(2023, 6, 2, 7), b"a brown quick fox never jumps\r\n"))
_add("people", "admin", "Inbox", utc(2023, 7, 7, 7),
     message("Who is who", utc(2023, 7, 7, 7), b"Addresses only.\r\n",
             sender='"Carol Jones" <carol@example.net>', to="dave@example.com",
             cc="Erin <erin@example.com>"))
_add("alice1", "alice", "Inbox", utc(2023, 5, 5, 5),
     message("Alice inbox", utc(2023, 5, 5, 5), b"For alice only.\r\n"))
_add("alice2", "alice", "Archive/2022", utc(2022, 12, 31, 23, 59, 59),
     message("Alice archive", utc(2022, 12, 31, 23, 59, 59), b"Old news for alice.\r\n"))

ADMIN = {k for k, (user, *_rest) in MESSAGES.items() if user == "admin"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The data directory and message key -> message id."""
    root = tmp_path_factory.mktemp("search")
    origin_to_key: dict[str, str] = {}
    for key, (user, folder, _when, raw) in MESSAGES.items():
        path = root / "mail" / user / folder / f"{key}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        origin_to_key[str(path)] = key
    data = root / "data"
    ids: dict[str, str] = {}
    for user in ("admin", "alice"):
        res = mk(data, "import", "--jsonl", "--user", user, str(root / "mail" / user))
        assert res.exit_code == 0, res.output
        for line in res.stdout.splitlines():
            rec = json.loads(line)
            if "summary" in rec:
                continue
            assert rec["status"] == "archived", rec
            ids[origin_to_key[rec["origin"]]] = rec["id"]
    assert set(ids) == set(MESSAGES)
    return data, ids


def search(archive: tuple[Path, dict[str, str]], query: str, *extra: str) -> dict[str, Any]:
    data, _ = archive
    # "--": a query may start with "-" (an exclusion), which is not an option
    res = mk(data, "search", "--json", "--limit", "100", *extra, "--", query)
    assert res.exit_code == 0, (query, res.output)
    parsed: dict[str, Any] = json.loads(res.stdout)
    return parsed


def found(archive: tuple[Path, dict[str, str]], query: str) -> set[str]:
    """The keys of the messages a query finds (and the total agrees)."""
    _, ids = archive
    by_id = {v: k for k, v in ids.items()}
    res = search(archive, query)
    keys = [by_id[m["id"]] for m in res["messages"]]
    assert res["total"] == len(keys), (query, res)
    assert len(set(keys)) == len(keys), (query, keys)
    return set(keys)


def searched(data: Path, *args: str) -> dict[str, Any]:
    return json.loads(mk(data, "search", "--json", *args).stdout)


def newest_first(keys: set[str]) -> list[str]:
    return sorted(keys, key=lambda k: MESSAGES[k][2], reverse=True)


# -- decoding and text ------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "expected"), [
    # RFC 2047 B and Q, UTF-8 and ISO-2022-JP
    ("subject:Zéphyr", {"b_utf8"}),
    ("zephyr", {"b_utf8"}),  # diacritics are folded
    ("Résumé", {"b_utf8"}),
    ("réunion", {"q_utf8"}),
    ("subject:hebdomadaire", {"q_utf8"}),
    ("異常", {"jis_b"}),
    ("通知", {"jis_b"}),
    ("subject:通知", {"jis_b"}),
    ("異常時通知メール", {"jis_b"}),
    ("障害", {"jis_b"}),  # the ISO-2022-JP body
    ("点検", {"jis_q"}),
    ("subject:お知らせ", {"jis_q"}),
    # bodies in other charsets
    ("北京", {"zh"}),
    ("预算", {"zh"}),
    ("회의", {"ko"}),
    ("일정", {"ko"}),
    ("請求書", {"sjis"}),
    ("確認", {"sjis"}),
    ("продажах", {"koi8"}),
    ("ПРИВЕТ", {"koi8"}),
    # RFC 2231 attachment file name
    ("attachment:Bericht", {"attach"}),
    ("attachment:Übersicht", {"attach"}),
    ("Quarterly", {"attach"}),
    ("attachment:Quarterly", {"attach"}),
    ("subject:Quarterly", set()),
    ("figures", {"attach"}),
    # transfer encodings
    ("München", {"qp"}),
    ("Schwarzwaldkuchen", {"qp"}),  # joined across a soft line break
    ("köstlich", {"qp"}),
    ("xylophone", {"b64"}),
    ("codeword", {"b64"}),
    # HTML only: visible text found, hidden parts and markup not
    ("World", {"html"}),
    ("markup", {"html"}),
    ("hiddenscripttoken", set()),
    ("ignoredtitle", set()),
])
def test_decoded_text_is_found(archive: tuple[Path, dict[str, str]], query: str,
                               expected: set[str]) -> None:
    assert found(archive, query) == expected


# -- query syntax -----------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "expected"), [
    ("from:alice", {"b_utf8"}),
    ("from:carol", {"people"}),
    ('from:"Carol Jones"', {"people"}),
    ("to:dave", {"people"}),
    ("cc:erin", {"people"}),
    ("from:erin", set()),
    ("from:dave", set()),
    ("subject:Fox", {"phrase1", "phrase2"}),
    ("quick brown", {"phrase1", "phrase2"}),
    ('"quick brown"', {"phrase1"}),
    ('"brown quick"', {"phrase2"}),
    ('"quick fox"', {"phrase2"}),
    ('"fox quick"', set()),
    ("xylophone OR Schwarzwaldkuchen", {"b64", "qp"}),
    ("fox OR xylophone", {"phrase1", "phrase2", "b64"}),
    ("fox -lazy", {"phrase2"}),
    ("fox -subject:two", {"phrase1"}),
    ("-fox user:admin", ADMIN - {"phrase1", "phrase2"}),
    ("folder:Work", {"attach", "qp", "b64"}),  # subfolders, but not Workshop
    ("folder:Work/Projects", {"qp", "b64"}),
    ("folder:Workshop", {"html"}),
    ("folder:Inbox", {k for k, v in MESSAGES.items() if v[1] == "Inbox"}),
    ("folder:Archive", {"alice2"}),
    ("-folder:Work user:admin", ADMIN - {"attach", "qp", "b64"}),
    ("folder:Inbox -folder:Inbox", set()),
    ("user:alice", {"alice1", "alice2"}),
    ("user:alice folder:Inbox", {"alice1"}),
    ("-user:alice", ADMIN),
    ("user:nobody", set()),
    ("has:attachment", {"attach"}),
    ("-has:attachment", set(MESSAGES) - {"attach"}),
    ("has:attachment figures", {"attach"}),
    ("has:attachment xylophone", set()),
])
def test_query_syntax(archive: tuple[Path, dict[str, str]], query: str,
                      expected: set[str]) -> None:
    assert found(archive, query) == expected


def test_folder_filter_is_consistent(archive: tuple[Path, dict[str, str]]) -> None:
    work = found(archive, "folder:Work")
    # A trailing slash names the same folder, with its subfolders.
    assert found(archive, "folder:Work/") == work
    # Whether folder names match case-sensitively or not, a folder and its subfolders are
    # matched alike: "work" finds all of Work or nothing of it.
    assert found(archive, "folder:work") in (set(), work)


def _in_range(lo: datetime | None, hi: datetime | None) -> set[str]:
    return {k for k, (_u, _f, when, _r) in MESSAGES.items()
            if (lo is None or when >= lo) and (hi is None or when < hi)}


def _day(y: int, m: int = 1, d: int = 1) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(("query", "expected"), [
    ("on:2024-01-05", _in_range(_day(2024, 1, 5), _day(2024, 1, 6))),
    ("on:2024-03-31", {"sjis", "koi8"}),  # koi8 is April 1st in its own zone: dates are UTC
    ("on:2024-04-01", set()),
    ("on:2024-02", {"jis_b", "jis_q", "zh"}),
    ("on:2024-02-29", {"zh"}),
    ("on:2022", {"alice2"}),
    ("after:2024-03", _in_range(_day(2024, 3), None)),
    ("after:2024-03-16", {"sjis", "koi8"}),
    ("before:2023", {"alice2"}),
    ("before:2023-06-02", _in_range(None, _day(2023, 6, 2))),
    ("after:2024 before:2024-02", {"b_utf8", "q_utf8"}),
    ("after:2023-12-01 before:2023-12-25", {"qp", "b64"}),
    ("-on:2024-03-31 after:2024-03", {"ko"}),
    ("-after:2023-06-02", _in_range(None, _day(2023, 6, 2))),
    ("-before:2024-03-16", {"sjis", "koi8"}),
    ("fox after:2023-06-02", {"phrase2"}),
    ("fox on:2023-06-01", {"phrase1"}),
])
def test_date_filters(archive: tuple[Path, dict[str, str]], query: str,
                      expected: set[str]) -> None:
    assert found(archive, query) == expected


def test_results_newest_first_with_total_limit_offset_and_json(
        archive: tuple[Path, dict[str, str]]) -> None:
    _, ids = archive
    order = [ids[k] for k in newest_first(ADMIN)]
    everything = search(archive, "user:admin")
    assert everything["total"] == len(ADMIN)
    assert [m["id"] for m in everything["messages"]] == order

    page = search(archive, "user:admin", "--limit", "4")
    assert page["total"] == len(ADMIN)
    assert [m["id"] for m in page["messages"]] == order[:4]
    page = search(archive, "user:admin", "--limit", "4", "--offset", "4")
    assert page["total"] == len(ADMIN) and page["offset"] == 4
    assert [m["id"] for m in page["messages"]] == order[4:8]
    page = search(archive, "user:admin", "--limit", "4", "--offset", str(len(ADMIN) - 1))
    assert [m["id"] for m in page["messages"]] == order[-1:]
    page = search(archive, "user:admin", "--offset", "1000")
    assert page["total"] == len(ADMIN) and page["messages"] == []

    # The text output: the table and the total.
    res = mk(archive[0], "search", "user:admin", "--limit", "3")
    assert res.exit_code == 0
    assert f"{len(ADMIN)} messages match" in res.stdout
    assert sum(line.split()[0] in order[:3] for line in res.stdout.splitlines() if line.strip()
               ) == 3

    # The JSON shape of one hit.
    hit = search(archive, "subject:Zéphyr")["messages"][0]
    assert set(hit) >= {"id", "date", "from", "to", "subject", "folder", "user", "size",
                        "hasAttachment"}
    assert hit["id"] == ids["b_utf8"]
    assert hit["date"] == "2024-01-05T09:00:00+00:00"
    assert hit["from"] == "Alice Martin <alice@example.com>"
    assert hit["to"] == "Bob <bob@example.org>"
    assert hit["subject"] == "Résumé du projet Zéphyr"
    assert hit["folder"] == "Inbox" and hit["user"] == "admin"
    assert hit["size"] == len(MESSAGES["b_utf8"][3])
    assert hit["hasAttachment"] is False
    hit = search(archive, "異常")["messages"][0]
    assert hit["subject"] == "異常時通知メール"
    assert hit["date"] == "2024-02-03T08:00:00+00:00"  # written as 17:00 +0900
    hit = search(archive, "продажах")["messages"][0]
    assert hit["date"] == "2024-03-31T22:30:00+00:00"  # written as 00:30 +0200 on April 1st
    hit = search(archive, "attachment:Bericht")["messages"][0]
    assert hit["hasAttachment"] is True and hit["folder"] == "Work"


def test_bad_date_is_a_clear_usage_error(archive: tuple[Path, dict[str, str]]) -> None:
    for query in ("after:2024-13-45", "before:2024-02-30", "on:20x4"):
        res = mk(archive[0], "search", "--", query)
        assert res.exit_code == 2, (query, res.output)
        assert "error:" in res.stderr and query.split(":", 1)[1] in res.stderr
        assert "Traceback" not in res.output
    res = mk(archive[0], "search", "has:nothing")
    assert res.exit_code == 2 and "has:nothing" in res.stderr


@pytest.mark.parametrize("query", [
    "!!!", "...", '"', '""', "-", "--", "*", "()", "(((", "^", ":", "-:", "OR", "OR OR",
    "? , ; !", '"!!!" -"???"', "subject:!!!", "from:", "NEAR(", "AND", "NOT", "'", "\\",
])
def test_punctuation_only_queries_do_not_crash(archive: tuple[Path, dict[str, str]],
                                               query: str) -> None:
    res = search(archive, query)  # exit code 0 and JSON
    assert isinstance(res["total"], int) and res["total"] == len(res["messages"])


def test_single_cjk_character_and_prefix(archive: tuple[Path, dict[str, str]]) -> None:
    assert found(archive, "異") == {"jis_b"}
    assert found(archive, "xyloph*") == {"b64"}


@pytest.mark.usefixtures("own_database")
def test_search_across_two_stores(tmp_path: Path) -> None:
    mail1, mail2 = tmp_path / "one", tmp_path / "two"
    mail1.mkdir()
    mail2.mkdir()
    dates1 = [utc(2020, 1, 1), utc(2022, 1, 1), utc(2024, 1, 1)]
    dates2 = [utc(2021, 1, 1), utc(2023, 1, 1), utc(2025, 1, 1)]
    for i, when in enumerate(dates1):
        (mail1 / f"{i}.eml").write_bytes(message(f"Common first {i}", when, b"shared word\n"))
    for i, when in enumerate(dates2):
        (mail2 / f"{i}.eml").write_bytes(message(f"Common second {i}", when, b"shared word\n"))
    data = tmp_path / "data"
    assert mk(data, "import", str(mail1)).exit_code == 0
    res = mk(data, "store", "create", "Second")
    assert res.exit_code == 0, res.output
    assert mk(data, "store", "state", "Second", "current").exit_code == 0
    assert mk(data, "import", str(mail2)).exit_code == 0
    stores = json.loads(mk(data, "store", "list", "--json").stdout)
    ids = {s["name"]: s["id"] for s in stores}
    assert set(ids) == {"Default", "Second"} and ids["Default"] != ids["Second"]
    assert [s["messages"] for s in stores] == [3, 3]

    res = json.loads(mk(data, "search", "shared", "--json").stdout)
    assert res["total"] == 6
    subjects = [m["subject"] for m in res["messages"]]
    assert subjects == ["Common second 2", "Common first 2", "Common second 1",
                        "Common first 1", "Common second 0", "Common first 0"]
    for m in res["messages"]:
        store = ids["Second"] if "second" in m["subject"] else ids["Default"]
        assert m["id"].split(":")[0] == str(store)
        assert int(m["id"].split(":")[1]) >= 1
    dates = [m["date"] for m in res["messages"]]
    assert dates == sorted(dates, reverse=True)

    # Paging over the merged result.
    page = json.loads(mk(data, "search", "shared", "--json", "--limit", "2", "--offset", "3"
                          ).stdout)
    assert page["total"] == 6
    assert [m["subject"] for m in page["messages"]] == subjects[3:5]
    # Each store's ids point at its own messages.
    for m in res["messages"]:
        shown = mk(data, "show", m["id"])
        assert shown.exit_code == 0 and m["subject"] in shown.stdout


# -- the catalog's entry keys -----------------------------------------------------------------
OLD_FTS = ("CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(\n"
           "    subject, sender, recipients, body, attachments,\n"
           "    content='', tokenize='unicode61 remove_diacritics 2');")


@pytest.mark.sqlite_catalog
def test_a_catalog_made_with_the_first_keys_searches_as_one_made_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose catalog was made before the keys were shifted by 8 bits (20 then, the
    body its fourth column, no key_shift in meta) and one made now, searched together: the
    same dates filter, the same dates are shown, and both merge newest first."""
    from mailkeep.core.storage import catalog

    old_mail, new_mail = tmp_path / "old", tmp_path / "new"
    old_mail.mkdir()
    new_mail.mkdir()
    dates = {"old": [utc(2020, 3, 1, 23, 59, 59), utc(2020, 3, 2), utc(2021, 7, 4, 12)],
             "new": [utc(2020, 3, 1, 12), utc(2020, 3, 2, 0, 0, 1), utc(2022, 1, 1)]}
    for (name, whens), folder in zip(dates.items(), (old_mail, new_mail), strict=True):
        for i, when in enumerate(whens):
            (folder / f"{i}.eml").write_bytes(
                message(f"Keyed {name} {i}", when, b"lighthouse keeper\r\n"))
    data = tmp_path / "data"
    schema = catalog.SCHEMA
    assert "    body, subject, sender, recipients, attachments," in schema
    start = schema.index("CREATE VIRTUAL TABLE IF NOT EXISTS fts")
    with monkeypatch.context() as m:
        m.setattr(catalog, "SCHEMA", schema[:start] + OLD_FTS + "\n")
        m.setattr(catalog, "KEY_SHIFT", 20)
        assert mk(data, "import", str(old_mail)).exit_code == 0
    old_db = next((data / "stores").glob("*/catalog.sqlite"))
    with sqlite3.connect(old_db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'key_shift'")  # as catalogs were made
        keys = [k for (k,) in conn.execute("SELECT key FROM entries ORDER BY key")]
        assert [k >> 20 for k in keys] == [int(w.timestamp()) for w in dates["old"]]
        cols = [r[1] for r in conn.execute("PRAGMA table_info(fts)")]
        assert cols[:4] == ["subject", "sender", "recipients", "body"]
    assert mk(data, "store", "create", "Now").exit_code == 0
    assert mk(data, "store", "state", "Now", "current").exit_code == 0
    assert mk(data, "import", str(new_mail)).exit_code == 0
    new_db = next(p for p in (data / "stores").glob("*/catalog.sqlite") if p != old_db)
    with sqlite3.connect(new_db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'key_shift'").fetchone() == ("8",)
        keys = [k for (k,) in conn.execute("SELECT key FROM entries ORDER BY key")]
        assert [k >> 8 for k in keys] == [int(w.timestamp()) for w in dates["new"]]

    def subjects(query: str) -> list[str]:
        res = json.loads(mk(data, "search", "--json", "--", query).stdout)
        assert res["total"] == len(res["messages"])
        return [m["subject"] for m in res["messages"]]

    everything = sorted(((w, f"Keyed {n} {i}") for n, ws in dates.items()
                         for i, w in enumerate(ws)), reverse=True)
    assert subjects("lighthouse") == [s for _, s in everything]
    res = json.loads(mk(data, "search", "--json", "lighthouse").stdout)
    assert [m["date"] for m in res["messages"]] == [w.isoformat() for w, _ in everything]
    assert subjects("on:2020-03-01 lighthouse") == ["Keyed old 0", "Keyed new 0"]
    assert subjects("on:2020-03-02") == ["Keyed new 1", "Keyed old 1"]
    assert subjects("-on:2020-03-02 after:2020-03-02 lighthouse") == ["Keyed new 2",
                                                                     "Keyed old 2"]
    assert subjects("before:2020-03-02") == ["Keyed old 0", "Keyed new 0"]
    assert subjects("-after:2020-03-02 lighthouse") == ["Keyed old 0", "Keyed new 0"]
    assert subjects("-before:2021 lighthouse") == ["Keyed new 2", "Keyed old 2"]


@pytest.mark.usefixtures("own_database")
def test_more_messages_dated_one_second_than_its_keys_are_all_found(tmp_path: Path) -> None:
    """600 messages dated the same second (a catalog has 256 keys for each second) and one a
    second later: every one is archived, found by its day, shown with its own date, and the
    flood takes the keys right after its second rather than scattering."""
    mail = tmp_path / "mail"
    mail.mkdir()
    noon = utc(2019, 8, 8, 12)
    for i in range(600):
        (mail / f"{i:03}.eml").write_bytes(message(f"Flood {i}", noon, f"wave {i}\r\n".encode()))
    (mail / "late.eml").write_bytes(message("Late", noon + timedelta(seconds=1), b"wave\r\n"))
    data = tmp_path / "data"
    res = mk(data, "import", str(mail))
    assert res.exit_code == 0 and "601 archived" in res.output, res.output
    day = json.loads(mk(data, "search", "--json", "--limit", "1000", "on:2019-08-08").stdout)
    assert day["total"] == 601
    assert {m["date"] for m in day["messages"] if m["subject"] != "Late"} == {noon.isoformat()}
    assert len({m["id"] for m in day["messages"]}) == 601
    assert json.loads(mk(data, "search", "--json", "after:2019-08-09").stdout)["total"] == 0
    assert json.loads(mk(data, "search", "--json", "wave 599").stdout)["total"] == 1
    [store] = (data / "stores").iterdir()
    [(lo, hi)] = catalog_rows(store, "SELECT min(key), max(key) FROM entries")
    assert lo >= int(noon.timestamp()) << 8
    assert hi < (int(noon.timestamp()) << 8) + 601 + 256



@pytest.mark.sqlite_catalog
def test_a_catalog_made_before_entries_said_which_have_attachments(
        archive: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """has:attachment on a catalog made before entries had their column `attached` (and its
    index): read as it is, the catalog finds what one made now finds; opened to write, it has
    the column added and filled from its messages, once."""
    from mailkeep.core.storage.catalog import Catalog
    from mailkeep.core.storage.query import compile_query

    data, ids = archive
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    queries = ("has:attachment", "-has:attachment", "has:attachment figures",
               "-has:attachment fox", "has:attachment xylophone")
    want = {q: found(archive, q) for q in queries}
    assert want["has:attachment"] == {"attach"} and want["-has:attachment fox"] == {
        "phrase1", "phrase2"}
    db = next((copy / "stores").glob("*/catalog.sqlite"))
    with sqlite3.connect(db) as conn:  # as catalogs were made
        conn.execute("DROP INDEX entries_attached")
        conn.execute("ALTER TABLE entries DROP COLUMN attached")
    by_number = {int(v.rsplit(":", 1)[1]): k for k, v in ids.items()}
    old = Catalog(db, readonly=True)
    try:
        assert not old.has_attached_column()
        for q in queries:
            total, exact, hits = old.search(compile_query(q), 100)
            assert ({by_number[h.number] for h in hits}, total, exact) == (
                want[q], len(want[q]), True), q
    finally:
        old.close()
    Catalog(db).close()  # opened to write: the column comes back
    with sqlite3.connect(db) as conn:
        attached = conn.execute("SELECT number FROM entries WHERE attached = 1").fetchall()
        assert [by_number[n] for (n,) in attached] == ["attach"]
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name ="
                            " 'entries_attached'").fetchone() == (1,)
    for q in queries:
        assert found((copy, ids), q) == want[q], q



@pytest.mark.sqlite_catalog
def test_an_import_that_made_much_of_a_store_leaves_its_index_in_one_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each commit of an import writes a segment of the full-text index, which FTS5 merges
    four at a time, and each segment costs a search's every lookup more. An import that made
    a quarter or more of its store's messages and left more than MERGE_SEGMENTS (8; 1 here)
    merges them into one; a smaller import into a store much larger leaves them to the
    nightly upkeep. Searches find the same either way."""
    from mailkeep.core import ingest
    from mailkeep.core.storage.catalog import Catalog
    monkeypatch.setattr(ingest, "COMMIT_MESSAGES", 10)  # a segment for each commit
    monkeypatch.setattr(ingest, "MERGE_SEGMENTS", 1)
    for folder, count in (("first", 120), ("later", 30)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            when = utc(2021, 1, 1) + timedelta(days=i)
            (tmp_path / folder / f"{i:03}.eml").write_bytes(
                message(f"{folder} {i}", when, f"harbour {folder} number{i}\r\n".encode()))
    data = tmp_path / "data"

    def segments() -> int:
        catalog = Catalog(next((data / "stores").glob("*/catalog.sqlite")), readonly=True)
        try:
            return catalog.index_segments()
        finally:
            catalog.close()
    monkeypatch.setattr(ingest, "MERGE_AFTER", 10 ** 6)  # first as if it were small
    assert mk(data, "import", str(tmp_path / "first")).exit_code == 0
    assert segments() > 1
    monkeypatch.setattr(ingest, "MERGE_AFTER", 25)
    assert mk(data, "import", str(tmp_path / "later")).exit_code == 0  # 30 of 150: small
    left = segments()
    assert left > 1
    for query, total in (("harbour", 150), ("later", 30), ("number7", 2), ("first number119", 1)):
        assert searched(data, "--exact", query)["total"] == total, query
    shutil.rmtree(data)
    assert mk(data, "import", str(tmp_path / "first")).exit_code == 0  # all of a new store
    assert segments() == 1
    db = next((data / "stores").glob("*/catalog.sqlite"))
    with sqlite3.connect(db) as conn:  # the replaced segments' pages are given back
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
    assert mk(data, "import", str(tmp_path / "later")).exit_code == 0
    assert segments() > 1  # the small import's own
    for query, total in (("harbour", 150), ("later", 30), ("number7", 2), ("first number119", 1)):
        assert searched(data, "--exact", query)["total"] == total, query

"""extract() and describe(): never raising, and decoding what a user would search for."""

from __future__ import annotations

import base64
import email
import os
import random
import re
import sqlite3
from contextlib import closing

import pytest

from mailkeep.core.mime.parse import IndexFields, describe, extract
from mailkeep.core.mime.text import cjk_segment, query_tokens
from tests.helpers import TRICKY


def tricky(path: str) -> bytes:
    return (TRICKY / path).read_bytes()


def searchable(text: str, term: str) -> bool:
    """Whether an FTS5 phrase search for `term` finds `text`, the way mailkeep indexes it."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(b, tokenize='unicode61 remove_diacritics 2')")
        db.execute("INSERT INTO t VALUES (?)", (cjk_segment(text),))
        query = '"' + " ".join(query_tokens(term)) + '"'
        return bool(db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query,)).fetchone()[0])


# --- the whole tricky corpus ----------------------------------------------------------------

_SUBJECT = re.compile(rb"^subject:[ \t]*\S", re.IGNORECASE | re.MULTILINE)


def test_never_raises_on_the_tricky_corpus() -> None:
    paths = sorted(p for p in TRICKY.rglob("*") if p.is_file())
    assert len(paths) > 1300
    missing_subjects = []
    for path in paths:
        raw = path.read_bytes()
        fields = extract(raw)
        view = describe(raw)
        assert isinstance(fields, IndexFields)
        assert not [w for w in fields.warnings + view.warnings if "failed" in w], path
        assert "\x00" not in fields.body + fields.subject + view.text, path
        head = re.split(rb"\r?\n\r?\n|\r\r", raw, maxsplit=1)[0]
        if _SUBJECT.search(head) and not fields.subject:
            missing_subjects.append(path)
    # Subject lines that follow a line ending the header block do not count as headers.
    assert len(missing_subjects) <= 3, missing_subjects


# --- real messages, real charsets -------------------------------------------------------------


def test_iso_2022_jp_bounce() -> None:
    fields = extract(tricky("sisimai-set-of-emails/maildir/bsd/lhost-mfilter-01.eml"))
    assert "送信できませんでした" in fields.body
    assert "550 unknown user <kijitora@example.com>" in fields.body
    assert searchable(fields.body, "送信") and searchable(fields.body, "メールサーバー")


def test_iso_2022_jp_with_cp932_extensions() -> None:
    # "№" is a NEC extension that Python's strict ISO-2022-JP codecs refuse.
    fields = extract(tricky("php-mime-mail-parser/issue116"))
    assert fields.subject == "ЖД№41 от 28.09.2016"
    assert fields.warnings == []


def test_same_bounce_with_crlf_and_cr_line_ends() -> None:
    maildir = "sisimai-set-of-emails/maildir"
    expected = extract(tricky(f"{maildir}/bsd/lhost-mfilter-01.eml"))
    for copy in ("dos", "mac"):
        fields = extract(tricky(f"{maildir}/{copy}/lhost-mfilter-01.eml"))
        assert fields.subject == expected.subject
        assert fields.date == expected.date
        assert "送信できませんでした" in fields.body


def test_koi8_r_attachment_name() -> None:
    fields = extract(tricky("mime4j/mimetools-testmsgs/russian.msg"))
    assert fields.attachments == "Список.doc"
    assert fields.has_attachment
    assert fields.body == ""  # a text/plain part with a file name is an attachment


def test_windows_1251_encoded_words_across_lines() -> None:
    fields = extract(tricky("php-mime-mail-parser/m0021"))
    assert fields.subject == (
        "occurs when divided into an array, and the last e of the array! Путін хуйло!!!!!!"
    )
    assert "mail3@exemple2.com" in fields.recipients


def test_shift_jis_body() -> None:
    fields = extract(tricky("ruby-mail/multi_charset/japanese_shift_jis.eml"))
    assert "このメールはテスト用のメールです。" in fields.body
    assert searchable(fields.body, "テスト用")


def test_gb2312_subject_sender_and_body() -> None:
    fields = extract(tricky("spamscope-mail-parser/mail_test_12"))
    assert fields.subject == "代开各地增值税发票"
    assert fields.sender == "张先生 <baoguan@hotmail.com>"
    assert "增值税发票" in fields.body
    assert searchable(fields.subject, "增值税")


def test_rfc2231_file_names() -> None:
    fields = extract(tricky("ruby-mail/multi_charset/japanese_attachment_long_name.eml"))
    assert fields.attachments == "かきくけこ" * 5 + ".txt"  # filename*0*= and filename*1*=
    latin1 = extract(tricky("mime4j/mimetools-testmsgs/attachment-filename-encoding-Latin1.msg"))
    assert latin1.attachments == "attachment.äöü"  # filename*=ISO-8859-1''...
    assert latin1.body == "Attachment Test\n"


def test_rfc2047_subject_and_addresses() -> None:
    fields = extract(tricky("stalwart-mail-parser/eml/legacy/002.eml"))
    assert fields.subject == "Die Hasen und die Frösche"
    assert fields.recipients == "Heinz Müller <mueller@example.com>"
    assert fields.sender == "Doug Sauder <dwsauder@example.com>"
    assert fields.message_id == "4.2.0.58.20000519003052.00a89c40@pop.example.com"
    assert fields.date == 958710660.0  # 2000-05-19 04:31:00 UTC


def test_html_only_message_becomes_searchable_text() -> None:
    fields = extract(tricky("stalwart-mail-parser/eml/legacy/002.eml"))
    assert "Die Hasen klagten einst über" in fields.body
    assert "<" not in fields.body and "&quot;" not in fields.body
    assert searchable(fields.body, "frosche")  # remove_diacritics 2 folds ö
    assert describe(tricky("stalwart-mail-parser/eml/legacy/002.eml")).text == fields.body
    chinese = extract(tricky("spamscope-mail-parser/mail_test_9"))  # base64 GB2312 HTML
    assert searchable(chinese.body, "镜头")


def test_base64_root_part_is_an_attachment() -> None:
    raw = tricky("nodemailer-mailparser/base64encodedroot.eml")
    fields = extract(raw)
    assert fields.attachments == "screenshot.png" and fields.has_attachment
    png = email.message_from_bytes(raw).get_payload(decode=True)
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")
    assert describe(raw).attachments == [("screenshot.png", "image/png", len(png))]


def test_base64_encoded_forwarded_message() -> None:
    fields = extract(tricky("php-mime-mail-parser/issue274.eml"))
    assert "test-localhost.eml" in fields.attachments.split("\n")
    assert "j'ai été invité à déjeûner" in fields.body  # inside the base64 message/rfc822
    assert "UmV0dXJuLVBhdGg6" not in fields.body


def test_message_without_headers() -> None:
    fields = extract(tricky("mime4j/testmsgs/malformedHeader-noheader.msg"))
    assert fields.subject == "" and fields.sender == "" and fields.date is None
    assert fields.body.startswith("This is a simple message not having headers.")


def test_binary_file_is_not_indexed() -> None:
    fields = extract(tricky("spamscope-mail-parser/mail_outlook_1"))  # an Outlook .msg file
    assert fields.body == "" and fields.warnings


def test_delivery_status_and_forwarded_headers_are_body_text() -> None:
    fields = extract(tricky("sisimai-set-of-emails/maildir/bsd/lhost-biglobe-01.eml"))
    assert 'From: "Kijitora Neko" <kijitora@mx.example.com>\nSubject: Cats' in fields.body
    assert "Nyaa" in fields.body


# --- synthetic messages -----------------------------------------------------------------------


def test_random_bytes_and_degenerate_inputs() -> None:
    rng = random.Random(20240601)
    samples = [b"", b"\n", b"\r\n\r\n", b"\x00" * 100, b"Subject", b"Subject:", b": x\n\n"]
    samples += [rng.randbytes(rng.randrange(1, 5000)) for _ in range(200)]
    samples += [os.urandom(64 * 1024)]
    base = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nx\n--b--\n"
    )
    samples += [base[:n] for n in range(len(base))]  # every truncation of a MIME message
    for raw in samples:
        assert isinstance(extract(raw), IndexFields)
        assert describe(raw).headers is not None


def test_encoded_words_glued_split_and_broken() -> None:
    # One UTF-8 character split over two words, words glued without space, Q underscores.
    split = base64.b64encode("é".encode()[:1]).decode(), base64.b64encode("é".encode()[1:]).decode()
    raw = (
        f"Subject: =?utf-8?B?{split[0]}?= =?utf-8?B?{split[1]}?=t=?UTF-8?Q?=C3=A9_d?="
        "=?iso-8859-1?q?=E9t=E9?=\nFrom: =?x-unknown-cs?Q?Jos=E9?= <jose@example.com>\n\nbody\n"
    ).encode()
    fields = extract(raw)
    assert fields.subject == "été dété"
    assert fields.sender == "José <jose@example.com>"  # unknown charset: UTF-8, else cp1252
    assert "unknown charset 'x-unknown-cs'" in fields.warnings


def test_raw_8bit_headers() -> None:
    utf8 = "Subject: Grüße aus Köln\nFrom: Jürgen <j@example.de>\n\nx".encode()
    assert extract(utf8).subject == "Grüße aus Köln"
    latin1 = "Subject: Grüße\nContent-Type: text/plain\n\nx".encode("latin-1")
    assert extract(latin1).subject == "Grüße"
    sjis = "Subject: 会議の件\nContent-Type: text/plain; charset=x-sjis\n\n本文".encode("cp932")
    assert extract(sjis).subject == "会議の件" and extract(sjis).body == "本文"
    jis = "Subject: 会議\n\nx".encode("iso2022_jp")  # raw ISO-2022-JP, no encoded-word
    assert extract(jis).subject == "会議"


@pytest.mark.parametrize(
    ("charset", "text", "codec"),
    [
        ("ks_c_5601-1987", "한국어 메일", "cp949"),
        ("gb2312", "中文邮件 𠀋", "gb18030"),  # GB18030-only character under a GB2312 label
        ("big5", "中文郵件", "big5"),
        ("shift-jis", "①番の件", "cp932"),
        ("utf-7", "Hi Mom -☺-!", "utf-7"),
        ("koi8-r", "Привет", "koi8-r"),
        ("windows-1251", "Привет", "cp1251"),
        ("unknown-8bit", "Grüße", "utf-8"),
        ("us-ascii", "Grüße", "cp1252"),  # an 8-bit body under a US-ASCII label
        ("iso-8859-1", "“Grüße”", "cp1252"),  # labelled Latin-1, written by Windows
        ("iso-8859-1", "Grüße", "utf-8"),  # mislabelled UTF-8, common on mailing lists
        ('"UTF-8"', "ok ✓", "utf-8"),
    ],
)
def test_body_charsets(charset: str, text: str, codec: str) -> None:
    raw = f"Content-Type: text/plain; charset={charset}\n\n".encode() + text.encode(codec)
    fields = extract(raw)
    assert fields.body == text
    assert fields.warnings == []


def test_iso_2022_jp_fallbacks() -> None:
    nec = b"\x1b$B-!\x1b(B"  # circled digit one, a CP932 extension inside ISO-2022-JP
    raw = b"Content-Type: text/plain; charset=ISO-2022-JP\n\n" + nec + "会議".encode("iso2022_jp")
    assert extract(raw).body == "①会議"
    utf8 = b"Content-Type: text/plain; charset=iso-2022-jp\n\n" + "会議".encode()
    assert extract(utf8).body == "会議"


def test_transfer_encodings() -> None:
    qp = b"Content-Transfer-Encoding: quoted-printable\nContent-Type: text/plain; charset=utf-8\n"
    assert extract(qp + b"\ncaf=C3=A9 soft=\nbreak\n").body == "café softbreak\n"
    b64 = b"Content-Transfer-Encoding: BASE64\n\n" + base64.b64encode(b"hello world")
    assert extract(b64).body == "hello world"
    bad = extract(b"Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ")  # no padding
    assert bad.body == "hello world"
    no_charset = extract("Subject: x\n\ncafé ünd €".encode("cp1252"))
    assert no_charset.body == "café ünd €"


def test_multipart_alternative_nested_and_attachments() -> None:
    raw = b"""From: A <a@example.com>
To: B <b@example.com>, c@example.com
Cc: D <d@example.org>
Bcc: e@example.net
Subject: parts
Date: Tue, 1 Mar 2022 10:00:00 +0100
Message-ID: <id-1@example.com>
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

plain version
--inner
Content-Type: text/html; charset=utf-8

<p>html <b>version</b></p>
--inner--
--outer
Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer
Content-Type: message/rfc822

From: Fwd Sender <fwd@example.com>
Subject: forwarded subject

forwarded body
--outer
Content-Type: text/x-patch; name="fix.patch"
Content-Disposition: inline; filename="fix.patch"

-old line
+new line
--outer--
epilogue
"""
    fields = extract(raw)
    assert fields.subject == "parts"
    assert fields.sender == "A <a@example.com>"
    assert fields.recipients == (
        "B <b@example.com>, c@example.com, D <d@example.org>, e@example.net"
    )
    assert fields.date == 1646125200.0
    assert fields.message_id == "id-1@example.com"
    assert fields.attachments == "résumé.pdf\nfix.patch"
    assert fields.has_attachment
    for text in (
        "plain version",
        "html version",
        "Fwd Sender",
        "forwarded subject",
        "forwarded body",
        "+new line",
    ):
        assert text in fields.body
    assert "preamble" not in fields.body and "epilogue" not in fields.body
    view = describe(raw)
    assert view.headers == [
        ("Date", "Tue, 1 Mar 2022 10:00:00 +0100"),
        ("From", "A <a@example.com>"),
        ("To", "B <b@example.com>, c@example.com"),
        ("Cc", "D <d@example.org>"),
        ("Subject", "parts"),
        ("Message-ID", "<id-1@example.com>"),
    ]
    assert "plain version" in view.text and "html version" not in view.text
    assert ("résumé.pdf", "application/pdf", 9) in view.attachments


def test_dates() -> None:
    def date(value: str) -> float | None:
        return extract(f"Date: {value}\n\nx".encode()).date

    assert date("Thu, 01 Jan 1970 00:00:00 +0000") == 0.0
    assert date("Sun, 2 Jan 2005 19:46:30 +0200") == 1104687990.0
    assert date("2 Jan 2005 17:46:30") == 1104687990.0  # no zone: read as UTC
    assert date("Mon, 30 Jun 3609 15:33:50 +0600") is None  # out of range
    assert date("yesterday") is None
    assert date("") is None
    assert extract(b"Subject: x\n\ny").date is None


def test_body_cap_and_huge_messages() -> None:
    fields = extract(b"Subject: long\n\n" + b"word " * 100_000, max_body_chars=1000)
    assert len(fields.body) == 1000 and "body text truncated" in fields.warnings
    parts = b"".join(b"--x\n\npart %d\n" % i for i in range(100))
    many = b"Content-Type: multipart/mixed; boundary=x\n\n" + parts + b"--x--\n"
    assert extract(many, max_body_chars=50).body == "\n\n".join(f"part {i}" for i in range(8))[:50]
    huge = b"Subject: huge\nContent-Type: text/plain\n\n" + b"line of text\n" * 1_500_000
    fields = extract(huge)  # 19.5 MB
    assert fields.subject == "huge"
    assert any("partially" in w for w in fields.warnings)
    assert 0 < len(fields.body) <= 4 << 20


def test_message_id_and_nul_bytes() -> None:
    fields = extract(b"Message-ID:\n <abc@x.example>\nSubject: a\x00b\n\nc\x00d")
    assert fields.message_id == "abc@x.example"
    assert fields.subject == "a b" and fields.body == "c d"
    assert extract(b"Message-ID: \n\nx").message_id is None


# --- what email.parser needs help with, and the caps -------------------------------------------


def test_header_blocks_broken_the_known_ways_are_mended() -> None:
    raw = b"""Subject : spaced before the colon
From: a@example.com
Content-Type: multipart/mixed;
boundary="outer"

--outer
Content-Type: multipart/alternative;
boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

inner text
--inner--
--outer--
"""
    fields = extract(raw)
    assert fields.subject == "spaced before the colon"
    assert fields.sender == "a@example.com"
    assert fields.body == "inner text"
    assert "boundary" not in fields.body


def test_folded_boundary_and_delimiters_with_text_after_them() -> None:
    folded = b'Content-Type: multipart/mixed; boundary="simple\n boundary"\n\n'
    folded += b"--simple boundary\n\nfirst\n--simple boundary--\n"
    assert extract(folded).body == "first"
    trailing = b"Content-Type: multipart/mixed; boundary=b\n\n--b ignored text\n\nsecond\n"
    trailing += b"--b-- more ignored text\nepilogue\n"
    assert extract(trailing).body == "second"


def test_parameters() -> None:
    raw = (
        "Content-Type: text/plain; name=\"Grüße.txt\"\n"
        "Content-Disposition: attachment; filename=\"fallback.txt\"; "
        "filename*=UTF-8''r%C3%A9el.txt\n\nx"
    ).encode()
    assert extract(raw).attachments == "réel.txt"  # RFC 2231 form preferred to the plain one
    raw_8bit = "Content-Type: text/plain; name=\"Grüße.txt\"\n\nx"
    assert extract(raw_8bit.encode()).attachments == "Grüße.txt"  # raw UTF-8 in a parameter
    assert extract(raw_8bit.encode("latin-1")).attachments == "Grüße.txt"
    odd = b"Content-Type: text/plain; name*=x; name*0=y; name*1*=z\n\nbody"  # odd section numbers
    assert extract(odd).body == "body"
    assert "unreadable content-type parameters" in extract(odd).warnings


def test_transfer_encodings_spelled_loosely_and_base64_stdlib_gives_up_on() -> None:
    for cte in (b"Base64 ", b'"base64"', b"base64; x=y"):
        raw = b"Content-Transfer-Encoding: " + cte + b"\n\n" + base64.b64encode(b"hello world")
        assert extract(raw).body == "hello world", cte
    dangling = extract(b"Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQhx")  # 17 chars
    assert dangling.body == "hello world!" and "bad base64 padding" in dangling.warnings


def test_delivery_status_fields_are_body_text() -> None:
    raw = b"""Content-Type: multipart/report; report-type=delivery-status; boundary=r

--r
Content-Type: text/plain

Delivery failed.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; =?utf-8?q?caf=C3=A9?=@example.org
Action: failed
Status: 5.1.1
--r--
"""
    body = extract(raw).body
    assert "Delivery failed." in body
    assert "Reporting-MTA: dns; mx.example.org" in body
    assert "Final-Recipient: rfc822; café@example.org\nAction: failed\nStatus: 5.1.1" in body


def test_a_failing_part_loses_only_that_part(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(doc: str) -> str:
        raise ValueError("html_to_text broke")

    monkeypatch.setattr("mailkeep.core.mime.parse.html_to_text", broken)
    raw = b"""Subject: two parts
Content-Type: multipart/mixed; boundary=x

--x
Content-Type: text/html

<p>lost</p>
--x
Content-Type: text/plain

kept
--x--
"""
    for result in (extract(raw), describe(raw)):
        assert any("MIME part failed: ValueError" in w for w in result.warnings)
    fields = extract(raw)
    assert fields.subject == "two parts" and fields.body == "kept"


def test_deep_nesting_keeps_the_header_fields() -> None:
    for depth in (40, 2_000):  # 2,000 levels exceed email.parser's recursion
        opens = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
                         for i in range(depth))
        raw = b"Subject: deep\n" + opens + b"\ntext\n"
        fields = extract(raw)
        assert fields.subject == "deep"
        assert any("nesting too deep" in w for w in fields.warnings), depth
        assert describe(raw).headers == [("Subject", "deep")]
    nested = b"Subject: deep\n" + b"Content-Type: message/rfc822\n\n" * 2_000 + b"x"
    fields = extract(nested)  # RecursionError in email.parser: parsed again, headers only
    assert fields.subject == "deep" and "MIME nesting too deep: body not indexed" in fields.warnings


def test_work_is_capped_on_pathological_input() -> None:
    lines = extract(b"Subject: lines\n\n" + b"x\n" * 300_000)  # ~1 us a line in email.parser
    assert lines.subject == "lines"
    assert any("lines: body indexed partially" in w for w in lines.warnings)
    assert 0 < len(lines.body) < 300_000
    html = b"Content-Type: text/html\n\n" + (b"<p>word</p>" * 100 + b"\n") * 3_000  # 3.3 MB
    fields = extract(html)
    assert fields.warnings == ["HTML indexed from its first 2 MiB"]
    assert 0 < fields.body.count("word") < 300_000 * 2 // 3


def test_odd_labels_found_by_fuzzing() -> None:
    cases = [
        b"Content-Disposition: attachment; filename*=utf\xe4''abc.txt\n\nx",  # 8-bit charset label
        b"Content-Type: text/plain; charset*=utf-8''utf-8\n\ncaf\xc3\xa9",  # RFC 2231 charset
        b"Content-Type: text/plain; charset=\"utf\xe4\"\n\ncaf\xc3\xa9",
        b"Content-Type: text/plain; charset=\"utf\x00\"\n\ncaf\xc3\xa9",
    ]
    for raw in cases:
        for result in (extract(raw), describe(raw)):
            assert not [w for w in result.warnings if "failed" in w], raw
    assert extract(cases[0]).attachments == "abc.txt"
    assert extract(cases[1]).body == "café"


def test_a_header_of_many_thousands_of_encoded_words_is_decoded_whole() -> None:
    """The hostile case of a journal: a Subject of 80,000 encoded-words folded over as many
    lines (1.3 MB). Decoded in one pass, every word is there, adjacent words' characters join
    (a UTF-8 character split over two words survives), and the text is found by its words.
    (What it costs is measured by bench/extract_speed.py, not asserted here.)"""
    words = ["=?utf-8?q?a?="] * 40_000 + ["=?utf-8?b?w6k=?="] * 40_000
    raw = ("From: a@example.org\r\nSubject: " + "\r\n ".join(words)
           + "\r\n\r\nbody\r\n").encode()
    fields = extract(raw)
    assert fields.subject == "a" * 40_000 + "é" * 40_000
    split = extract(b"Subject: =?utf-8?b?ww==?= =?utf-8?b?qQ==?= x\r\n\r\n")  # \xc3 | \xa9
    assert split.subject == "é x"


@pytest.mark.parametrize(("header", "expected"), [
    ("=?iso-8859-1?Q?J=FCrgen?= =?iso-8859-1?Q?_Schm=FCrgen?= <j@example.com>",
     "Jürgen Schmürgen <j@example.com>"),  # space between words goes, before text stays
    ("Re: TEST =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", "Re: TEST テスト"),
    ("=?iso-8859-1?Q?Fr\u00f6sche_raw?=", "Frösche raw"),  # an 8-bit character left raw
    ("=?utf-8?q?broken", "=?utf-8?q?broken"),  # not a word: kept as it is
    ("=?x-unknown?q?abc?=", "abc"),
])
def test_encoded_words_as_rfc_2047_reads_them(header: str, expected: str) -> None:
    from mailkeep.core.mime.charsets import encoded_words

    assert " ".join(encoded_words(header, []).split()) == expected

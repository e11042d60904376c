"""Property-based fuzzing of the MIME parser and text extraction, seeded from the mail corpus.

Real messages of the corpus (SEED_FILES: multipart, encoded-words, odd charsets, HTML, bounces,
broken ones) are mutated the ways mail arrives broken or hostile: flipped bytes, truncation,
lines duplicated or deleted, header lines spliced in from another message or repeated
thousands of times, floods of encoded-words, deep nesting, mangled boundaries and parameters,
NULs and control bytes, lone CRs, 8-bit bytes in headers. Whatever comes in:
- extract() and describe() return, and no last resort of theirs caught anything (a warning
  saying something "failed" would hide a bug);
- every text they return is a str that UTF-8 can encode (what SQLite and a terminal need), and
  the fields have no NUL;
- a real store gives back exactly the bytes it was given (fewer examples: it is slower).
The time they take per byte is measured by bench/mime_fuzz.py, not asserted here.
Each run draws the same examples (tests/conftest.py); FUZZ_RANDOM=1 draws new ones, and
MAILKEEP_FUZZ_EXAMPLES=10000 makes a longer hunt (the default, 500, keeps this file to ~10 s).
"""

from __future__ import annotations

import email.header
import email.message
import gzip
import io
import itertools
import math
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from mailkeep.core.archive import Archive
from mailkeep.core.ingest import Importer, Outcome
from mailkeep.core.message import RawMessage
from mailkeep.core.mime.params import split_params
from mailkeep.core.mime.parse import describe, extract
from mailkeep.core.mime.text import cjk_segment, html_to_text, query_tokens
from tests.helpers import BULK, TRICKY

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

EXAMPLES = int(os.environ.get("MAILKEEP_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
STORE_FUZZ = settings(FUZZ, max_examples=max(1, EXAMPLES // 10))

SEED_FILES = [
    # multipart, nested, digests, forwarded messages
    "cpython-test_email/msg_02.txt", "cpython-test_email/msg_16.txt",
    "cpython-test_email/msg_38.txt", "cpython-test_email/msg_46.txt",
    "mime4j/mimetools-testmsgs/multi-nested.msg", "mime4j/mimetools-testmsgs/multi-digest.msg",
    "mime4j/mimetools-testmsgs/mp-msg-rfc822.msg", "nodemailer-mailparser/nested.eml",
    "ruby-mail/mime_emails/raw_email_encoded_stack_level_too_deep.eml",
    # broken boundaries and headers
    "cpython-test_email/msg_41.txt", "mime4j/mimetools-testmsgs/badbound.msg",
    "mime4j/mimetools-testmsgs/multi-weirdspace.msg", "mime4j/mimetools-testmsgs/hdr-fakeout.msg",
    "mime4j/mimetools-testmsgs/double-semicolon.msg",
    "mime4j/testmsgs/malformedHeader-noheader.msg",
    "flanker/missing-boundaries.eml", "flanker/false-multipart.eml",
    "flanker/dashed-boundaries.eml", "flanker/mailformed-headers.eml",
    "flanker/enclosed-broken.eml", "flanker/torture-part.eml",
    "ruby-mail/mime_emails/raw_email_with_illegal_boundary.eml",
    "ruby-mail/mime_emails/email_with_similar_boundaries.eml",
    "ruby-mail/error_emails/multiple_content_types.eml",
    "stalwart-mail-parser/eml/malformed/012.eml", "stalwart-mail-parser/eml/malformed/016.eml",
    "stalwart-mail-parser/eml/malformed/019.eml", "stalwart-mail-parser/eml/malformed/021.eml",
    # encoded-words, RFC 2231 parameters, odd charsets
    "stalwart-mail-parser/eml/legacy/001.eml",  # UTF-7
    "php-mime-mail-parser/m0021",  # windows-1251 encoded-words across lines
    "php-mime-mail-parser/issue116",  # ISO-2022-JP with CP932 extensions
    "spamscope-mail-parser/mail_test_12",  # GB2312
    "mime4j/mimetools-testmsgs/russian.msg",  # KOI8-R file name
    "mime4j/mimetools-testmsgs/attachment-filename-encoding-Latin1.msg",
    "ruby-mail/multi_charset/japanese_shift_jis.eml",
    "ruby-mail/multi_charset/japanese_attachment_long_name.eml",
    "ruby-mail/multi_charset/ks_c_5601-1987.eml",
    "ruby-mail/error_emails/encoding_madness.eml", "ruby-mail/error_emails/bad_encoded_subject.eml",
    "ruby-mail/error_emails/content_transfer_encoding_x_uuencode.eml",
    # HTML, base64
    "stalwart-mail-parser/eml/legacy/002.eml", "spamscope-mail-parser/mail_test_9",
    "nodemailer-mailparser/base64encodedroot.eml", "flanker/message-external-body.eml",
    # bounces; the same one with CRLF and with CR-only line ends; NUL bytes
    "sisimai-set-of-emails/maildir/bsd/lhost-mfilter-01.eml",
    "sisimai-set-of-emails/maildir/dos/lhost-mfilter-01.eml",
    "sisimai-set-of-emails/maildir/mac/lhost-mfilter-01.eml",
    "sisimai-set-of-emails/maildir/bsd/lhost-biglobe-01.eml",
    "sisimai-set-of-emails/maildir/bsd/lhost-outlook-08.eml",
    "sisimai-set-of-emails/maildir/bsd/lhost-x2-04.eml",
    "stalwart-mail-parser/eml/thirdparty/005.eml",
]


def bulk_messages(count: int) -> list[bytes]:
    """The first messages of the linux-mips list (plain-text posts), mboxrd escaping kept."""
    with gzip.open(BULK / "linux-mips-1996.mbox.gz") as fh:
        head = fh.read(64 * 1024)
    return head.split(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n")[1 : count + 1]


# A missing file fails the collection of this module: the corpus is required, not optional.
SEEDS = [(name, (TRICKY / name).read_bytes()) for name in SEED_FILES]
SEEDS += [(f"linux-mips-1996 #{i}", raw) for i, raw in enumerate(bulk_messages(3), 1)]

# --- mutations: each draws what it needs and returns the new bytes ------------------------------

Draw = st.DrawFn
MAX_GROWTH = 400_000  # bytes a mutation may add, so that an example stays quick


def head_end(raw: bytes) -> int:
    """Where the header block ends (the blank line), or the end of the bytes."""
    m = re.search(rb"\r?\n\r?\n|\r\r", raw)
    return m.start() if m else len(raw)


def lines_of(raw: bytes) -> list[bytes]:
    return raw.splitlines(keepends=True) or [b""]


def flip_bytes(draw: Draw, raw: bytes) -> bytes:
    data = bytearray(raw or b"\n")
    for _ in range(draw(st.integers(1, 16))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def truncate(draw: Draw, raw: bytes) -> bytes:
    return raw[: draw(st.integers(0, len(raw)))]


def duplicate_or_delete_line(draw: Draw, raw: bytes) -> bytes:
    lines = lines_of(raw)
    i = draw(st.integers(0, len(lines) - 1))
    lines[i : i + 1] = [lines[i]] * draw(st.sampled_from([0, 2, 3]))
    return b"".join(lines)


def splice_header_lines(draw: Draw, raw: bytes) -> bytes:
    """Header lines of another corpus message, put into this one's header block."""
    other = draw(st.sampled_from(SEEDS))[1]
    donor = lines_of(other[: head_end(other) + 1])
    start = draw(st.integers(0, len(donor) - 1))
    taken = donor[start : start + draw(st.integers(1, 8))]
    lines = lines_of(raw)
    at = draw(st.integers(0, len(lines_of(raw[: head_end(raw)]))))
    return b"".join(lines[:at] + taken + lines[at:])


def repeat_header_line(draw: Draw, raw: bytes) -> bytes:
    lines = lines_of(raw)
    i = draw(st.integers(0, len(lines_of(raw[: head_end(raw)])) - 1))
    times = min(draw(st.sampled_from([10, 100, 1000, 20_000])), MAX_GROWTH // len(lines[i] or b"x"))
    return b"".join(lines[:i] + [lines[i]] * times + lines[i + 1 :])


WORDS = [
    b"=?utf-8?q?caf=C3=A9?=", b"=?utf-8?b?w6k=?=", b"=?utf-8?b?ww==?=", b"=?utf-8?q?=E2=82?=",
    b"=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", b"=?iso-8859-1?q?J=FCrgen?=", b"=?utf-7?q?+AOk-?=",
    b"=?x-unknown?q?a?=", b"=?utf-8*en?q?a?=", b"=?utf-8?b?!!!?=", b"=?gb2312?b?1tDOxA==?=",
    b"=?utf-16be?b?2D0=?=", b"=?utf-8?q?=00?=", b"=??q??=", b"=?", b"?=", b"=?\xe9?q?\xe9?=",
]


def encoded_word_flood(draw: Draw, raw: bytes) -> bytes:
    name = draw(st.sampled_from([b"Subject: ", b"From: ", b"To: ", b"X-Flood: ",
                                 b'Content-Type: text/plain; name="']))
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    sep = draw(st.sampled_from([b" ", b"", b"\n ", b"\r\n\t", b" x "]))
    count = draw(st.sampled_from([1, 3, 50, 2_000, 20_000]))
    value = sep.join(itertools.islice(itertools.cycle(words), count))[:MAX_GROWTH]
    return name + value + (b'"' if name.endswith(b'"') else b"") + b"\n" + raw


def nest(draw: Draw, raw: bytes) -> bytes:
    """The message inside `depth` multiparts (closed or not) or message/rfc822 parts."""
    depth = draw(st.integers(1, 80))
    kind = draw(st.sampled_from(["boundary", "BoUnDaRy", "rfc822"]))
    closed = draw(st.booleans())
    head, tail = b"", b""
    for i in range(depth):
        if kind == "rfc822":
            head += b"Content-Type: message/rfc822\n\n"
            continue
        head += b"Content-Type: multipart/mixed; %s=n%d\n\n--n%d\n" % (kind.encode(), i, i)
        if closed:
            tail = b"\n--n%d--\n" % i + tail
    return head + raw + tail


def many_parts(draw: Draw, raw: bytes) -> bytes:
    count = min(draw(st.integers(2, 200)), MAX_GROWTH // (len(raw) + 10))
    delimiter = draw(st.sampled_from([b"--m\n", b"--m junk\n", b"--M\n", b"--m--\n"]))
    return b"Content-Type: multipart/mixed; boundary=m\n\n" + (delimiter + raw + b"\n") * count


def control_bytes(draw: Draw, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 24))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from([b"\x00", b"\r", b"\n", b"\x1b", b"\x7f", b"\x0b",
                                            b"\x0c", b"\x85", b"\xff", b"\xc3", b"\t", b"\x1c"]))
    return bytes(data)


def line_ends(draw: Draw, raw: bytes) -> bytes:
    old = draw(st.sampled_from([b"\n", b"\r\n"]))
    new = draw(st.sampled_from([b"\r", b"\r\n", b"\n\r", b"\r\r\n", b"\n", b"\x00\n"]))
    return raw.replace(old, new, draw(st.sampled_from([1, 5, -1])))


def eight_bit_header(draw: Draw, raw: bytes) -> bytes:
    at = draw(st.integers(0, head_end(raw)))
    junk = draw(st.binary(min_size=1, max_size=12).map(lambda b: bytes(x | 0x80 for x in b)))
    return raw[:at] + junk + raw[at:]


_BOUNDARY = re.compile(rb'boundary\*?=\s*"?([^";\r\n]*)', re.IGNORECASE)


def mangle_boundary(draw: Draw, raw: bytes) -> bytes:
    m = _BOUNDARY.search(raw)
    if m is None or not m.group(1):
        return raw
    old = m.group(1)
    how = draw(st.sampled_from(["declared", "unclosed", "text after", "drop delimiters"]))
    if how == "declared":
        new: bytes = draw(st.sampled_from([old[:-1], old + b"x", old.upper(), b"", b"-" + old]))
        return raw[: m.start(1)] + new + raw[m.end(1) :]
    if how == "unclosed":
        return raw.replace(b"--" + old + b"--", b"--" + old)
    if how == "text after":
        return raw.replace(b"--" + old + b"\n", b"--" + old + b" trailing text\n")
    first = raw.find(b"--" + old)
    return raw[: first + 1] + raw[first + 1 :].replace(b"--" + old, b"")


PARAMS = [
    b'; name="a;b;c"', b'; name="' + b";" * 5_000 + b'"', b'; x="\\"; y=1', b'; charset="utf\xe4"',
    b"; charset=utf-7", b"; charset=iso-2022-jp", b"; charset=unknown-8bit", b"; charset*=''",
    b"; charset=\x00", b"; boundary*0=a; boundary*1=b", b'; boundary=""', b"; boundary",
    b"; filename*=utf-8''%E2%82", b"; filename*0*=utf-8''%E2; filename*1*=%82%AC",
    b"; name*=x; name*0=y; name*1*=z", b";;;;", b"; =", b'; name="=?utf-8?q?=E2=82?="',
    b"; name*0=a" * 2_000,
]


def odd_parameters(draw: Draw, raw: bytes) -> bytes:
    m = re.search(rb"^content-(?:type|disposition):[^\r\n]*", raw, re.IGNORECASE | re.MULTILINE)
    extra = b"".join(draw(st.lists(st.sampled_from(PARAMS), min_size=1, max_size=3)))
    if m is None:
        return b"Content-Type: text/plain" + extra + b"\n" + raw
    return raw[: m.end()] + extra + raw[m.end() :]


HEADERS = [
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode", b"Content-Transfer-Encoding: 8bit ",
    b"Content-Type: message/rfc822", b"Content-Type: message/delivery-status",
    b"Content-Type: message/partial; id=x; number=1", b"Content-Type: text/html; charset=utf-8",
    b"Content-Type: multipart/mixed", b'Content-Type: multipart/alternative; boundary="=_x"',
    b"Content-Type: multipart/digest; BoUnDaRy=d", b"Content-Type: text/\xe9; name=a",
    b"Content-Disposition: attachment", b"Content-Disposition: inline; filename=a.txt",
    b"Subject : spaced name", b" a folded line first", b"no colon here",
    b"Date: Mon, 30 Jun 3609 15:33:50 +0600", b"Date: Thu, 1 Jan 1970 00:00:00 +9999",
    b"Message-ID: <<<>>>", b"From: =?utf-8?q?=00?= <a@b>", b"Subject: \xff\xfe\x00",
]


def hostile_header(draw: Draw, raw: bytes) -> bytes:
    lines = lines_of(raw)
    at = draw(st.integers(0, len(lines_of(raw[: head_end(raw)]))))
    return b"".join(lines[:at] + [draw(st.sampled_from(HEADERS)) + b"\n"] + lines[at:])


HTML_BITS = [b"<p>", b"</p>", b"<b>", b"<script>", b"</script>", b"<!--", b"-->", b"<head>",
             b"<body>", b"<title>", b"&amp;", b"&#xD800;", b"&#0;", b"<", b">", b"<br/>", b"word ",
             b"\xe2\x80\x8b", b"<style>", b"<a href='x'>", b"</a>", b"\xe9"]


def html_body(draw: Draw, raw: bytes) -> bytes:
    soup = b"".join(draw(st.lists(st.sampled_from(HTML_BITS), min_size=1, max_size=20)))
    times = min(draw(st.sampled_from([1, 10, 1_000])), MAX_GROWTH // len(soup))
    head = raw[: head_end(raw)]
    return b"Content-Type: text/html; charset=utf-8\n" + head + b"\n\n" + soup * times


def random_bytes(draw: Draw, raw: bytes) -> bytes:
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(st.binary(max_size=300)) + raw[at:]


MUTATIONS: list[Callable[[Draw, bytes], bytes]] = [
    flip_bytes, truncate, duplicate_or_delete_line, splice_header_lines, repeat_header_line,
    encoded_word_flood, nest, many_parts, control_bytes, line_ends, eight_bit_header,
    mangle_boundary, odd_parameters, hostile_header, html_body, random_bytes,
]


@st.composite
def corpus_messages(draw: Draw) -> bytes:
    """A corpus message with up to three mutations."""
    name, raw = draw(st.sampled_from(SEEDS))
    applied = draw(st.lists(st.sampled_from(MUTATIONS), max_size=3))
    note(f"seed {name}; mutations {[m.__name__ for m in applied]}")
    for mutation in applied:
        raw = mutation(draw, raw)
    return raw


messages = st.one_of(corpus_messages(), st.binary(max_size=2_000))

# --- the properties -----------------------------------------------------------------------------


def check_text(text: object, fields: bool) -> None:
    assert isinstance(text, str)
    text.encode("utf-8")  # no lone surrogate: SQLite and a terminal would refuse it
    assert not (fields and "\x00" in text), text[:200]


def check_parsing(raw: bytes) -> None:
    result = extract(raw)
    view = describe(raw)
    failed = [w for w in result.warnings + view.warnings if "failed" in w]
    assert not failed, failed  # a last resort caught something: a bug it would hide
    for text in (result.subject, result.sender, result.recipients, result.body,
                 result.attachments, result.message_id or ""):
        check_text(text, fields=True)
    assert result.date is None or math.isfinite(result.date)
    for name, value in view.headers:
        check_text(name, fields=True)
        check_text(value, fields=True)
    check_text(view.text, fields=True)
    for filename, ctype, size in view.attachments:
        check_text(filename, fields=True)
        check_text(ctype, fields=False)
        assert isinstance(size, int) and size >= 0
    for warning in result.warnings + view.warnings:
        check_text(warning, fields=False)


@FUZZ
@given(messages)
# what fuzzing found (each has a plain test below too)
@example(b'Content-Type: text/plain; name="' + b";" * 3_000 + b'"\n\nx\n')
@example(b"Subject: deep\n" + b"".join(b"Content-Type: multipart/mixed; BoUnDaRy=b%d\n\n--b%d\n"
                                       % (i, i) for i in range(300)) + b"text\n" * 2_000)
@example(b"Content-Type: multipart/mixed; boundary=o\n\n"
         + b"".join(b"--o\nContent-Type: multipart/mixed; boundary=b%d\n\nx\n" % i
                    for i in range(300)) + b"--o--\n")
@example(b"Content-Type: message/rfc822\nContent-Disposition: attachment\n\nSubject: "
         + b"a " * 3_000 + b"\n\nbody\n")
@example(b"Subject: a\x00b\nFrom: =?utf-8?q?=00?= <a@b>\n\nx")
@example(b"Content-Type: text/\xe9; name=a\n\nx")
@example(b"Subject: =?utf\x008?q?caf\xc3\xa9?=\n\nx")
def test_extract_and_describe_hold_on_mutated_corpus_messages(raw: bytes) -> None:
    check_parsing(raw)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    with Archive(tmp_path_factory.mktemp("fuzz") / "data") as archive:
        yield archive


_FOLDERS = itertools.count()


@STORE_FUZZ
@given(raw=messages, streamed=st.booleans())
@example(raw=b"", streamed=False)
@example(raw=b"\r", streamed=True)
@example(raw=b"From x\n\nno final newline\r", streamed=False)
def test_store_gives_back_the_bytes_it_was_given(archive: Archive, raw: bytes,
                                                 streamed: bool) -> None:
    """Imported (as bytes in memory, or as a stream like a large file), then read back
    through a fresh Archive: the same bytes. A new folder each time: no duplicates."""
    outcomes: list[Outcome] = []
    message = (RawMessage(folder="", origin="fuzz", stream=io.BytesIO(raw), size=len(raw))
               if streamed else RawMessage(folder="", origin="fuzz", data=raw))
    Importer(archive, base_folder=f"fuzz/{next(_FOLDERS)}", workers=1,
             on_outcome=outcomes.append).run([message])
    [outcome] = outcomes
    assert outcome.status == "archived" and outcome.message_id is not None, outcome
    assert not [w for w in outcome.warnings if "failed" in w], outcome.warnings
    with Archive(archive.data_dir) as fresh:
        _rec, store, number = fresh.message(outcome.message_id)
        assert store.read(number) == raw


# --- text.py on its own: HTML to text, CJK bigrams --------------------------------------------

html_soup = st.lists(st.sampled_from([bit.decode("utf-8", "replace") for bit in HTML_BITS])
                     | st.text(max_size=6), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(html_soup)
def test_html_to_text_gives_text_with_its_white_space_collapsed(doc: str) -> None:
    text = html_to_text(doc)
    assert text == text.strip()
    assert re.search(r"\s\s", text) is None, text  # runs of blanks and blank lines are one
    assert set(filter(str.isspace, text)) <= {" ", "\n"}


cjk_chars = st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # Han
                      st.characters(min_codepoint=0x3041, max_codepoint=0x3096),  # Hiragana
                      st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3))  # Hangul


@settings(max_examples=200, deadline=None)
@given(before=st.text(cjk_chars | st.sampled_from("ab .,"), max_size=8),
       term=st.text(cjk_chars, min_size=1, max_size=6),
       after=st.text(cjk_chars | st.sampled_from("ab .,"), max_size=8))
def test_a_cjk_word_standing_alone_is_found_by_its_query_tokens(before: str, term: str,
                                                                 after: str) -> None:
    """What cjk_segment indexes, FTS5 finds with the phrase query_tokens gives (one character:
    as a prefix, as query_tokens documents)."""
    tokens = query_tokens(term)
    query = f'"{tokens[0]}"*' if len(term) == 1 else '"' + " ".join(tokens) + '"'
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(b, tokenize='unicode61 remove_diacritics 2')")
        db.execute("INSERT INTO t VALUES (?)", (cjk_segment(f"{before} {term} {after}"),))
        assert db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query,)).fetchone()[0] == 1


# --- the linear parameter splitter is the standard library's, piece for piece -------------------


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=';"\\= aB\t\x85\udce9', max_size=16))
def test_parameters_split_as_the_standard_library_splits_them(value: str) -> None:
    assert split_params(value) == email.message._parseparam(value)  # type: ignore[attr-defined]


# --- what fuzzing found, one plain test each ----------------------------------------------------


def test_parameters_never_reach_the_quadratic_splitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """email.message._parseparam rescans a parameter's quotes at every ";" inside them: a
    Content-Type of 40,000 quoted semicolons took a second, and time grew as its square."""

    def quadratic(value: str) -> list[str]:
        raise AssertionError("email.message._parseparam was called")

    monkeypatch.setattr(email.message, "_parseparam", quadratic)
    semicolons = b'; x="' + b";" * 40_000 + b'"'
    raw = (b"Content-Type: multipart/mixed; boundary=b" + semicolons + b"\n\n--b\n"
           b"Content-Type: text/plain; charset=iso-8859-1" + semicolons + b"\n"
           b'Content-Disposition: attachment; filename="a;b.txt"' + semicolons + b"\n\n"
           b"caf\xe9\n--b--\n")
    assert extract(raw).attachments == "a;b.txt"
    assert describe(raw).attachments == [("a;b.txt", "text/plain", 4)]


def test_boundaries_in_any_case_count_against_the_line_budget() -> None:
    """email.parser checks each line against every enclosing boundary, so the lines parsed are
    capped by the boundaries seen. "BoUnDaRy" names one too; uncounted, 800 of them nested with
    100,000 lines below took seconds."""

    def nested(name: bytes) -> bytes:
        return b"Subject: deep\n" + b"".join(
            b"Content-Type: multipart/mixed; %s=b%d\n\n--b%d\n" % (name, i, i) for i in range(800)
        ) + b"text\n" * 20_000

    lower, mixed = extract(nested(b"boundary")), extract(nested(b"BoUnDaRy"))
    assert "message over 2500 lines: body indexed partially" in lower.warnings
    assert mixed.warnings == lower.warnings


def test_delimiters_with_text_after_them_are_mended_in_one_pass() -> None:
    """Each multipart whose delimiter lines have text after them was mended by a pass of its
    own over the whole message: 700 of them in 3.5 MB took 12 s."""
    raw = b"Content-Type: multipart/mixed; boundary=o\n\n" + b"".join(
        b"--o\nContent-Type: multipart/mixed; boundary=b%d\n\n--b%d junk\n\npart %d\n--b%d--\n"
        % (i, i, i, i) for i in range(300)) + b"--o--\n"
    passes = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal passes
        if event == "c_call" and getattr(arg, "__qualname__", "") == "Pattern.sub":
            passes += 1

    profiler = sys.getprofile()
    sys.setprofile(count)
    try:
        result = extract(raw)
    finally:
        sys.setprofile(profiler)
    assert result.body == "\n\n".join(f"part {i}" for i in range(300))
    assert passes < 20  # not one per boundary


def test_attached_message_sizes_do_not_fold_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """describe() writes an attached message back to learn its size; compat32 folded its
    headers through email.header, quadratic in a header's length (40 KB: 9 s)."""

    def quadratic(*args: object, **kwargs: object) -> str:
        raise AssertionError("email.header folding was used")

    monkeypatch.setattr(email.header.Header, "encode", quadratic)
    inner = b"Subject: " + b"word " * 8_000 + b"\nTo: " + b"a@example.org, " * 3_000 + b"\n\nbody\n"
    raw = (b"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n"
           b"Content-Disposition: attachment; filename=fwd.eml\n\n" + inner + b"--o--\n")
    assert describe(raw).attachments == [("fwd.eml", "message/rfc822", len(inner) - 1)]


def test_odd_rfc_2231_sections_leave_the_boundary_readable() -> None:
    """A parameter given with and without section numbers makes decode_params raise; raised
    while email.parser asked a multipart for its boundary, it lost the whole structure."""
    raw = (b"Content-Type: multipart/mixed; boundary=b; name*=x; name*0=y; name*1*=z\n\n"
           b"--b\nContent-Type: text/plain\n\nfirst\n--b\n\nsecond\n--b--\n")
    result = extract(raw)
    assert result.body == "first\n\nsecond"
    assert result.warnings == ["unreadable content-type parameters"]


def test_an_encoded_word_with_a_nul_in_its_charset() -> None:
    """Raw 8-bit text in a word goes back to bytes in the word's charset; a NUL in that label
    made str.encode raise ValueError, which only extract()'s last resort caught."""
    result = extract(b"Subject: =?utf\x008?q?caf\xc3\xa9?=\n\nx")
    assert result.subject == "café"
    assert result.warnings == ["unknown charset 'utf\\x008'"]

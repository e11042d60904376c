"""compose() and check_encodable(): the bytes of the notification mail in each charset."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header

import pytest

from mailkeep.notify import ENCODINGS, Outgoing, check_encodable, compose

LONG_JA = "異常時通知メール：アーカイブの取り込みで重大なエラーが発生しました（フォルダ：受信箱）"


def mail(encoding: str, **kw: object) -> Outgoing:
    fields: dict[str, object] = {
        "sender": "mailkeep <mailkeep@archive.test>",
        "recipients": ("admin@example.org",),
        "subject": "import failed",
        "body": "line 1\nline 2\n",
        "encoding": encoding,
    }
    fields.update(kw)
    return Outgoing(**fields)  # type: ignore[arg-type]


def headers(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n[ \t]", " ", head)
    return dict(line.split(": ", 1) for line in unfolded.split("\r\n"))


def test_encodings_constant() -> None:
    assert ENCODINGS == ("us-ascii", "utf-8", "iso-2022-jp", "shift_jis")


@pytest.mark.parametrize(
    ("text", "encoding", "char", "position"),
    [
        ("abc①", "iso-2022-jp", "①", 3),
        ("通知ｱ", "iso-2022-jp", "ｱ", 2),  # half-width katakana is not in ISO-2022-JP
        ("café", "us-ascii", "é", 3),
        ("x😀", "shift_jis", "😀", 1),
    ],
)
def test_check_encodable_names_the_first_misfit(
    text: str, encoding: str, char: str, position: int
) -> None:
    with pytest.raises(ValueError) as err:
        check_encodable(text, encoding)
    message = str(err.value)
    assert repr(char) in message and f"U+{ord(char):04X}" in message
    assert f"position {position}" in message and encoding in message


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_check_encodable_accepts_what_fits(encoding: str) -> None:
    check_encodable("plain ASCII ~ text", encoding)
    if encoding != "us-ascii":
        check_encodable(LONG_JA, encoding)


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'latin-9'"):
        compose(mail("latin-9"))


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("subject", "Störung", "subject"),
        ("body", "Störung\n", "body"),
        ("sender", "Störung <a@example.org>", "sender"),
    ],
)
def test_us_ascii_refuses_non_ascii(field: str, value: str, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        compose(mail("us-ascii", **{field: value}))
    assert needle in str(err.value) and "'ö'" in str(err.value)


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="single line"):
        compose(mail("utf-8", subject="hello\r\nBcc: victim@example.org"))


def test_address_must_be_ascii_and_an_address() -> None:
    with pytest.raises(ValueError, match="ASCII address"):
        compose(mail("utf-8", recipients=("admin@exämple.org",)))
    with pytest.raises(ValueError, match="not a mail address"):
        compose(mail("utf-8", recipients=("admin",)))
    with pytest.raises(ValueError, match="no recipients"):
        compose(mail("utf-8", recipients=()))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_headers_crlf_and_seven_bit(encoding: str) -> None:
    body = "line 1\nline 2\r\nline 3\rlast\n" if encoding == "us-ascii" else LONG_JA + "\n二行目\n"
    subject = "import failed" if encoding == "us-ascii" else LONG_JA
    when = datetime(2025, 4, 1, 9, 30, tzinfo=UTC)
    raw = compose(mail(encoding, subject=subject, body=body), date=when,
                  message_id_domain="mx.archive.test")
    assert all(byte < 0x80 for byte in raw)
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"))
    found = headers(raw)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                 "Content-Transfer-Encoding"):
        assert name in found, name
    assert found["Date"] == "Tue, 01 Apr 2025 09:30:00 +0000"
    assert found["Message-ID"].endswith("@mx.archive.test>")
    assert found["MIME-Version"] == "1.0"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg["Subject"] == subject
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    assert msg.get_content().replace("\r\n", "\n") == expected


def test_utf8_body_is_quoted_printable_or_base64() -> None:
    raw = compose(mail("utf-8", subject="Störung", body="Die Archivierung ist gestört.\n"))
    found = headers(raw)
    assert found["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert found["Subject"].lower().startswith("=?utf-8?")


def test_ascii_subject_in_japanese_charset_stays_readable() -> None:
    assert headers(compose(mail("iso-2022-jp")))["Subject"] == "import failed"


def test_long_iso_2022_jp_subject_words_are_self_contained() -> None:
    raw = compose(mail("iso-2022-jp", subject=LONG_JA * 2))
    subject = headers(raw)["Subject"]
    words = subject.split(" ")
    assert len(words) > 1
    for word in words:
        assert len(word) <= 75
        assert re.fullmatch(r"=\?ISO-2022-JP\?B\?[A-Za-z0-9+/=]+\?=", word)
        # each word decodes on its own and ends back in ASCII mode
        piece = decode_header(word)[0][0]
        assert isinstance(piece, bytes) and piece.endswith(b"\x1b(B")
        piece.decode("iso-2022-jp")
    assert str(make_header(decode_header(subject))) == LONG_JA * 2


def test_shift_jis_uses_b_words_and_base64() -> None:
    raw = compose(mail("shift_jis", subject="異常時通知メール", body="本文\n"))
    found = headers(raw)
    assert found["Subject"].startswith("=?Shift_JIS?B?")
    assert found["Content-Type"] == 'text/plain; charset="Shift_JIS"'
    assert found["Content-Transfer-Encoding"] == "base64"


def test_iso_2022_jp_overlong_line_falls_back_to_base64() -> None:
    body = "長" * 600 + "\n"  # 1,200 octets of JIS in one line: too long for 7bit
    raw = compose(mail("iso-2022-jp", body=body))
    assert headers(raw)["Content-Transfer-Encoding"] == "base64"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg.get_content().replace("\r\n", "\n") == body


def test_only_line_ends_split_lines() -> None:
    body = "page one\fpage two\n"  # a form feed is text, not a line end
    raw = compose(mail("iso-2022-jp", body=body))
    assert b"page one\x0cpage two\r\n" in raw


def test_display_names() -> None:
    raw = compose(mail("iso-2022-jp", sender='"Keep, Mail" <mk@archive.test>',
                       recipients=("管理者 <admin@example.org>", "ops@example.org")))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"].addresses[0].display_name == "Keep, Mail"
    assert [a.display_name for a in msg["To"].addresses] == ["管理者", ""]
    assert [a.addr_spec for a in msg["To"].addresses] == ["admin@example.org", "ops@example.org"]

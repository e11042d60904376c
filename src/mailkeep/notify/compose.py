"""Compose the error-notification mail: RFC 5322 bytes in the charset the configuration names.

us-ascii and utf-8 go through the standard `email` package; ISO-2022-JP (RFC 1468) and Shift_JIS
are written here, because the package's encoded-word and transfer-encoding choices for them are
not the ones Japanese mail software expects. `send.py` hands the bytes to the SMTP server.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailkeep.notify.send import Outgoing

ENCODINGS = ("us-ascii", "utf-8", "iso-2022-jp", "shift_jis")

# Python codec and the MIME charset name written into the mail.
_CODECS = {
    "us-ascii": ("ascii", "us-ascii"),
    "utf-8": ("utf-8", "utf-8"),
    "iso-2022-jp": ("iso2022_jp", "ISO-2022-JP"),
    "shift_jis": ("shift_jis", "Shift_JIS"),
}
_LINE_END = re.compile(r"\r\n|\r|\n")
_MAX_LINE = 998  # octets per line, RFC 5322 2.1.1
_WORD_MAX = 75  # characters per encoded word, RFC 2047 2
_SEVEN_BIT_POLICY = policy.SMTP.clone(cte_type="7bit")


def _codec(encoding: str) -> tuple[str, str]:
    try:
        return _CODECS[encoding.lower()]
    except KeyError:
        raise ValueError(
            f"unknown encoding {encoding!r}: use one of {', '.join(ENCODINGS)}"
        ) from None


def check_encodable(text: str, encoding: str) -> None:
    """Raise ValueError naming the first character of `text` that `encoding` cannot carry."""
    codec, _ = _codec(encoding)
    try:
        text.encode(codec)
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        raise ValueError(
            f"character {ch!r} (U+{ord(ch):04X}) at position {exc.start} cannot be "
            f"encoded in {encoding}"
        ) from None


def _check_field(what: str, text: str, encoding: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"the {what} must be a single line")
    try:
        check_encodable(text, encoding)
    except ValueError as exc:
        raise ValueError(f"the {what} cannot be sent as {encoding}: {exc}") from None


def _check_address(what: str, value: str, encoding: str) -> tuple[str, str]:
    """(display name, addr-spec); the addr-spec must be plain ASCII (no SMTPUTF8)."""
    _check_field(what, value, encoding)
    name, addr = parseaddr(value)
    if not addr or "@" not in addr:
        raise ValueError(f"the {what} {value!r} is not a mail address")
    if not addr.isascii():
        raise ValueError(f"the {what} {addr!r} must be an ASCII address")
    return name, addr


def envelope_address(value: str) -> str:
    """The addr-spec of a From/To value such as 'Admin <admin@example.org>'."""
    return parseaddr(value)[1]


def compose(
    message: Outgoing, *, date: datetime | None = None, message_id_domain: str | None = None
) -> bytes:
    """The RFC 5322 bytes (CRLF line ends) for `message` in its encoding.

    Raises ValueError with a clear message when the subject, body or an address cannot be
    carried by that encoding.
    """
    encoding = message.encoding.lower()
    _codec(encoding)
    if not message.recipients:
        raise ValueError("the mail has no recipients")
    sender = _check_address("sender", message.sender, encoding)
    recipients = [_check_address("recipient", r, encoding) for r in message.recipients]
    _check_field("subject", message.subject, encoding)
    try:
        check_encodable(message.body, encoding)
    except ValueError as exc:
        raise ValueError(f"the body cannot be sent as {encoding}: {exc}") from None
    when = format_datetime(date if date is not None else datetime.now(UTC))
    domain = message_id_domain or sender[1].rpartition("@")[2]
    msgid = make_msgid(domain=domain)
    if encoding in ("us-ascii", "utf-8"):
        return _compose_email_package(message, encoding, sender, recipients, when, msgid)
    return _compose_japanese(message, encoding, sender, recipients, when, msgid)


def _compose_email_package(
    message: Outgoing,
    encoding: str,
    sender: tuple[str, str],
    recipients: list[tuple[str, str]],
    when: str,
    msgid: str,
) -> bytes:
    msg = EmailMessage(policy=_SEVEN_BIT_POLICY)
    msg["From"] = _address(*sender)
    msg["To"] = [_address(*r) for r in recipients]
    msg["Subject"] = message.subject
    msg["Date"] = when
    msg["Message-ID"] = msgid
    # cte_type 7bit makes the package pick 7bit, quoted-printable or base64, never 8bit.
    msg.set_content(_lines(message.body, "\n"), charset=encoding)
    return msg.as_bytes()


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def _split_lines(body: str) -> list[str]:
    # Only CR, LF and CRLF end a line (str.splitlines would also split on form feeds etc.).
    lines = _LINE_END.split(body)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _lines(body: str, sep: str) -> str:
    return "".join(line + sep for line in _split_lines(body))


def _compose_japanese(
    message: Outgoing,
    encoding: str,
    sender: tuple[str, str],
    recipients: list[tuple[str, str]],
    when: str,
    msgid: str,
) -> bytes:
    codec, charset = _codec(encoding)
    # Each line is encoded on its own so that ISO-2022-JP lines end in ASCII (RFC 1468).
    lines = [line.encode(codec) for line in _split_lines(message.body)]
    if encoding == "iso-2022-jp" and all(len(line) <= _MAX_LINE for line in lines):
        cte = "7bit"
        body = b"".join(line + b"\r\n" for line in lines)
    else:
        cte = "base64"
        raw = b"".join(line + b"\r\n" for line in lines)
        encoded = base64.encodebytes(raw).decode("ascii")
        body = encoded.replace("\n", "\r\n").encode("ascii")
    headers = [
        ("From", _encoded_address(sender, codec, charset)),
        ("To", ",\r\n ".join(_encoded_address(r, codec, charset) for r in recipients)),
        ("Subject", _encoded_words(message.subject, codec, charset, len("Subject: "))),
        ("Date", when),
        ("Message-ID", msgid),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'text/plain; charset="{charset}"'),
        ("Content-Transfer-Encoding", cte),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("ascii") + b"\r\n" + body


_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")


def _encoded_address(address: tuple[str, str], codec: str, charset: str) -> str:
    name, addr = address
    if not name:
        return addr
    if name.isascii():
        shown = name if _ATOM.match(name) else '"' + name.replace("\\", "\\\\").replace(
            '"', '\\"'
        ) + '"'
    else:
        shown = _encoded_words(name, codec, charset, 0)
    return f"{shown} <{addr}>"


def _encoded_words(text: str, codec: str, charset: str, used: int) -> str:
    """RFC 2047 B encoded words, each a complete, self-contained piece of `text`."""
    if text.isascii() and all(len(word) <= _WORD_MAX for word in text.split(" ")):
        return text
    words: list[str] = []
    start = 0
    overhead = len(f"=?{charset}?B??=")
    while start < len(text):
        end = start + 1
        # Grow the piece while its encoded word still fits on the line.
        while end < len(text) and _word_length(text[start : end + 1], codec, overhead) <= (
            _WORD_MAX - (used if not words else 1)
        ):
            end += 1
        piece = base64.b64encode(text[start:end].encode(codec)).decode("ascii")
        words.append(f"=?{charset}?B?{piece}?=")
        start = end
    return "\r\n ".join(words)


def _word_length(piece: str, codec: str, overhead: int) -> int:
    return overhead + 4 * ((len(piece.encode(codec)) + 2) // 3)

"""Outlook items (from a PST/OST file or an MSG file) as RFC 5322 messages.

Outlook keeps a message as MAPI properties, not as MIME, so mailkeep builds the message the
properties describe, the same way every time (the same PST imported twice gives the same bytes,
which the archive then stores once):

- Headers: the transport headers Outlook kept for received mail (PR_TRANSPORT_MESSAGE_HEADERS),
  exactly as they are, without their MIME fields (Content-Type and the rest, which described the
  original body's structure); then MIME-Version and the new structure. Fields they lack (mail
  that was sent, drafts) come from the properties: From (and Sender when someone sent on
  another's behalf), To, Cc and Bcc from the recipient table, Subject (without Outlook's prefix
  marker), Date (submit time, else delivery or creation time), Message-ID, In-Reply-To,
  References, Importance, Sensitivity, Thread-Topic and Thread-Index. An Exchange address
  without an SMTP one is written as Exchange writes it for the Internet (IMCEAEX, in the
  .invalid domain).
- Body: text/plain (PR_BODY), text/html (PR_HTML in its own charset, or, when only the RTF body
  exists and it is encapsulated HTML, the HTML recovered from it); a plain RTF body is kept as a
  text/rtf alternative. Inline images (content id or MHTML reference) go with the HTML in a
  multipart/related.
- Attachments: bytes as they are, with their long file name, MIME type, content id and location;
  embedded messages as message/rfc822 parts built the same way (at most MAX_DEPTH levels);
  OLE objects as application/octet-stream; attachments by reference (a path on the sender's
  disk) are not carried: a note says so.
- S/MIME: a signed message keeps its original multipart/signed entity, byte for byte (Outlook
  stores it as the item's only attachment), so its signature can still be checked; an encrypted
  one keeps its application/pkcs7-mime body.
- Flags: read -> seen, unsent -> draft, follow-up flag -> flagged, last verb reply -> answered,
  forward -> forwarded. The internal date is the delivery time.

What cannot be carried over is in docs/import.md: categories, reminders, the follow-up flag's
dates, read receipts' state, Reply-To built from entry ids only, and named properties.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import mimetypes
import re
import struct
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import quote

# Property types (the low 16 bits of a tag).
PT_SHORT = 0x0002
PT_LONG = 0x0003
PT_BOOLEAN = 0x000B
PT_I8 = 0x0014
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_SYSTIME = 0x0040
PT_BINARY = 0x0102
PT_OBJECT = 0x000D

# Property ids (the high 16 bits).
IMPORTANCE = 0x0017
MESSAGE_CLASS = 0x001A
SENSITIVITY = 0x0036
SUBJECT = 0x0037
CLIENT_SUBMIT_TIME = 0x0039
SENT_REPRESENTING_NAME = 0x0042
SENT_REPRESENTING_ADDRTYPE = 0x0064
SENT_REPRESENTING_EMAIL = 0x0065
CONVERSATION_TOPIC = 0x0070
CONVERSATION_INDEX = 0x0071
TRANSPORT_HEADERS = 0x007D
SENDER_NAME = 0x0C1A
SENDER_ADDRTYPE = 0x0C1E
SENDER_EMAIL = 0x0C1F
RECIPIENT_TYPE = 0x0C15
DISPLAY_TO = 0x0E04
MESSAGE_DELIVERY_TIME = 0x0E06
MESSAGE_FLAGS = 0x0E07
BODY = 0x1000
RTF_COMPRESSED = 0x1009
HTML = 0x1013
INTERNET_MESSAGE_ID = 0x1035
INTERNET_REFERENCES = 0x1039
IN_REPLY_TO = 0x1042
LAST_VERB_EXECUTED = 0x1081
FLAG_STATUS = 0x1090
DISPLAY_NAME = 0x3001
ADDRTYPE = 0x3002
EMAIL_ADDRESS = 0x3003
CREATION_TIME = 0x3007
LAST_MODIFICATION_TIME = 0x3008
ATTACH_DATA = 0x3701
ATTACH_FILENAME = 0x3704
ATTACH_METHOD = 0x3705
ATTACH_LONG_FILENAME = 0x3707
ATTACH_MIME_TAG = 0x370E
ATTACH_CONTENT_ID = 0x3712
ATTACH_CONTENT_LOCATION = 0x3713
ATTACH_FLAGS = 0x3714
SMTP_ADDRESS = 0x39FE
MESSAGE_CODEPAGE = 0x3FFD
INTERNET_CPID = 0x3FDE
SENDER_SMTP_ADDRESS = 0x5D01
SENT_REPRESENTING_SMTP_ADDRESS = 0x5D02

ATTACH_BY_VALUE = 1
BY_REFERENCE = (2, 3, 4, 7)  # attachment methods that point to a file elsewhere
ATTACH_EMBEDDED_MSG = 5
ATTACH_OLE = 6
MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
ATT_MHTML_REF = 0x4

MAX_DEPTH = 8  # embedded messages inside embedded messages
MAX_ATTACHMENTS = 2000  # per message
MAX_PARTS = 10_000  # attachments and embedded messages of one item, at every depth together
MAX_MESSAGE = 512 * 1024 * 1024  # bytes of one built message
MAX_RTF = 16 * 1024 * 1024  # bytes of a decompressed RTF body
MAX_RTF_COMPRESSED = 4 * 1024 * 1024  # bytes of a compressed RTF body read (about 4 s)
MAX_RTF_HTML = 256 * 1024  # RTF read for its encapsulated HTML (RTFDE: about 3 s, 120 MB)
MAX_EMBEDDED = 200  # embedded messages of one item, at every depth together
ITEM_S = 30.0  # reading one item's attachments: no further attachment is read after this

# Message classes archived as mail; everything else (contacts, appointments, tasks, notes,
# journal entries, distribution lists) is counted and skipped.
MAIL_CLASSES = ("ipm.note", "ipm.schedule.meeting", "report.ipm", "ipm.post",
                "ipm.outlook.recall", "ipm.recall", "ipm.sharing", "ipm.voicenotes", "ipm.fax")

_MIME_FIELDS = ("content-", "mime-version")
_CODEPAGES = {65001: "utf-8", 20127: "ascii", 1200: "utf-16-le", 1201: "utf-16-be",
              28591: "latin-1", 50220: "iso2022_jp", 50221: "iso2022_jp", 50222: "iso2022_jp",
              51932: "euc_jp", 936: "gbk", 54936: "gb18030", 950: "big5", 949: "cp949",
              932: "cp932", 20866: "koi8_r", 21866: "koi8_u", 65000: "utf-7"}
_CHARSET_NAMES = {"utf-8": "utf-8", "ascii": "us-ascii", "latin-1": "iso-8859-1",
                  "iso2022_jp": "iso-2022-jp", "euc_jp": "euc-jp", "gbk": "gbk",
                  "gb18030": "gb18030", "big5": "big5", "cp949": "ks_c_5601-1987",
                  "cp932": "shift_jis", "koi8_r": "koi8-r", "koi8_u": "koi8-u"}
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class OutlookError(Exception):
    """An item that cannot be made into a message (too large, too deep)."""


class Budget:
    """What one item may hold at every depth together: a file can point many attachments at
    the same embedded message, which without a bound is work that grows exponentially."""

    def __init__(self, file_size: int | None = None) -> None:
        self.parts = MAX_PARTS
        self.embedded = MAX_EMBEDDED
        self.until = time.monotonic() + ITEM_S
        # what an item's attachments hold cannot exceed the file they are in, unless the file
        # points many attachments at the same data
        self.bytes = min(MAX_MESSAGE * 3 // 4, file_size if file_size else MAX_MESSAGE)

    def next_attachment(self) -> str:
        """Why no further attachment of the item is read ("" when the next one may be):
        too many in all, or past the item's time (a file that makes its reader work through
        the same data again and again is read no further)."""
        self.parts -= 1
        if self.parts < 0:
            return f"more than {MAX_PARTS} attachments and embedded messages in all: the rest " \
                "not read"
        if time.monotonic() > self.until:
            return f"reading its attachments took more than {ITEM_S:g} s: the rest not read"
        return ""

    def embedded_problem(self, depth: int) -> str:
        """Why an embedded message at `depth` is not read ("" when it may be)."""
        if depth >= MAX_DEPTH:
            return "embedded messages nested too deep"
        self.embedded -= 1
        return f"more than {MAX_EMBEDDED} embedded messages in all: not read" \
            if self.embedded < 0 else ""

    def data_problem(self, size: int) -> str:
        """Why `size` more bytes of attachment data are not read ("" when they may be)."""
        self.bytes -= max(size, 0)
        return f"{size} bytes, more than the message may hold ({MAX_MESSAGE >> 20} MB in all)" \
            if self.bytes < 0 else ""


@dataclass
class Attachment:
    props: dict[int, Any]
    data: bytes | None = None
    embedded: Item | None = None
    problem: str = ""  # why the content could not be read, if it could not


@dataclass
class Item:
    """One Outlook item: its properties by tag (id << 16 | type, values decoded), its
    recipients' and its attachments'."""

    props: dict[int, Any]
    recipients: list[dict[int, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not carried over, and why

    def get(self, pid: int, *types: int) -> Any:
        return get(self.props, pid, *types)

    @property
    def message_class(self) -> str:
        return str(self.get(MESSAGE_CLASS, PT_UNICODE, PT_STRING8) or "IPM.Note")


def get(props: dict[int, Any], pid: int, *types: int) -> Any:
    """The value of property `pid` in the first of `types` present (all types when none)."""
    for t in types or (PT_UNICODE, PT_STRING8, PT_BINARY, PT_LONG, PT_SYSTIME, PT_BOOLEAN,
                       PT_I8, PT_SHORT):
        value = props.get(pid << 16 | t)
        if value is not None:
            return value
    return None


def is_mail(message_class: str) -> bool:
    mc = message_class.lower()
    return mc == "ipm" or any(mc == c or mc.startswith(c + ".") for c in MAIL_CLASSES)


# -- decoding properties ------------------------------------------------------------------------
def codec_for(codepage: int | None) -> str:
    """The Python codec of a Windows code page (cp1252 when unknown)."""
    if not codepage:
        return "cp1252"
    name = _CODEPAGES.get(codepage, f"cp{codepage}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "cp1252"


def filetime(raw: bytes) -> datetime | None:
    if len(raw) < 8:
        return None
    ticks = struct.unpack_from("<Q", raw)[0]
    if ticks == 0 or ticks >= 0x7FFFFFFFFFFFFFFF:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def decode_value(ptype: int, raw: bytes, codec: str) -> Any:
    """A property's value from its bytes as PST and MSG files keep them."""
    if ptype == PT_UNICODE:
        return raw.decode("utf-16-le", "replace").rstrip("\0")
    if ptype == PT_STRING8:
        return raw.rstrip(b"\0").decode(codec, "replace")
    if ptype in (PT_LONG, PT_SHORT):
        if len(raw) >= 4:
            return struct.unpack_from("<i", raw)[0]
        return struct.unpack_from("<h", raw)[0] if len(raw) >= 2 else None
    if ptype == PT_BOOLEAN:
        return bool(raw and raw[0])
    if ptype == PT_I8:
        return struct.unpack_from("<q", raw)[0] if len(raw) >= 8 else None
    if ptype == PT_SYSTIME:
        return filetime(raw)
    if ptype == PT_BINARY:
        return raw
    return None  # multi-valued, floating point, GUIDs...: not used to build the message


# -- building the message -----------------------------------------------------------------------
def flags_of(item: Item) -> frozenset[str]:
    flags: set[str] = set()
    mflags = item.get(MESSAGE_FLAGS, PT_LONG) or 0
    if mflags & MSGFLAG_READ:
        flags.add("seen")
    if mflags & MSGFLAG_UNSENT:
        flags.add("draft")
    if item.get(FLAG_STATUS, PT_LONG) == 2:
        flags.add("flagged")
    verb = item.get(LAST_VERB_EXECUTED, PT_LONG)
    if verb in (102, 103):
        flags.add("answered")
    elif verb == 104:
        flags.add("forwarded")
    return frozenset(flags)


def internal_date(item: Item) -> float | None:
    for pid in (MESSAGE_DELIVERY_TIME, CLIENT_SUBMIT_TIME, CREATION_TIME):
        value = item.get(pid, PT_SYSTIME)
        if isinstance(value, datetime):
            return value.timestamp()
    return None


def build(item: Item) -> bytes:
    """The RFC 5322 message `item` describes (CRLF line ends); OutlookError if it cannot be."""
    data = _Builder().message(item, 0)
    if len(data) > MAX_MESSAGE:
        raise OutlookError(f"the message would be larger than {MAX_MESSAGE >> 20} MB")
    return data


def _clean(text: str) -> str:
    """One header line: no control characters (a folded or injected line is not possible)."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                   for c in text).strip()


def _header(name: str, value: str) -> bytes:
    value = _clean(value)
    if value.isascii():
        h = Header(value, "us-ascii", header_name=name)
    else:
        h = Header(value, "utf-8", header_name=name)
    return f"{name}: {h.encode(linesep=chr(13) + chr(10))}\r\n".encode("ascii")


_MSG_IDS = re.compile(r"<[!-;=?-~]{1,250}>(?:[ \t]*<[!-;=?-~]{1,250}>){0,200}")
_ADDR_SPEC = re.compile(r"[^\s<>,;:\"()\[\]\\@]{1,64}@[^\s<>,;:\"()\[\]\\@]{1,255}")


def _address(name: str, addr: str, addrtype: str) -> str:
    name, addr = _clean(name), _clean(addr)
    if addr and "@" in addr and not _ADDR_SPEC.fullmatch(addr):
        # not an address a header can carry as it is: shown in the name, never as more
        # addresses
        name = f"{name} ({addr})" if name else addr
        addr = ""
    if addr and addrtype.upper() not in ("", "SMTP") and "@" not in addr:
        # An Exchange (or other) address the Internet cannot use: encapsulated as Exchange
        # does, in a domain that cannot resolve.
        enc = re.sub(r"[^A-Za-z0-9!#$%&'*+\-=?^_`{|}~]", lambda m: f"+{ord(m.group()):02X}"
                     if ord(m.group()) < 256 else "_", addr.replace("/", "_"))
        addr = f"IMCEA{addrtype.upper()}-{enc}@unknown.invalid"[:320]
    if not addr:
        return formataddr((name, "unknown@unknown.invalid"), charset="utf-8") if name else ""
    try:
        return formataddr((name, addr), charset="utf-8")
    except (UnicodeError, ValueError):
        return addr


def _strip_subject_prefix(subject: str) -> str:
    # A subject starting with U+0001 has the length of its prefix ("RE: ") in the next
    # character; the rest is the subject as shown.
    if subject.startswith("\x01") and len(subject) >= 2:
        return subject[2:]
    return subject


def _field_name(line: bytes) -> str:
    return line.split(b":", 1)[0].strip().decode("latin-1").lower()


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELD = re.compile(r"[!-9;-~]{1,200}:")


def transport_fields(headers: str) -> list[bytes]:
    """The header block Outlook kept, as folded fields (CRLF), without its MIME fields and
    without what is not a header (a leading From_ line, a line that is no field, control
    characters no header may hold, text after the blank line)."""
    text = headers.replace("\r\n", "\n").replace("\r", "\n")
    block = _CONTROL.sub("", text.split("\n\n", 1)[0])
    fields: list[list[str]] = []
    for line in block.split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if fields:
                fields[-1].append(line)
        elif _FIELD.match(line):
            fields.append([line])
    out = []
    for f in fields:
        raw = "\r\n".join(f).encode("utf-8", "replace") + b"\r\n"
        if not _field_name(raw).startswith(_MIME_FIELDS) and len(raw) <= 65536:
            out.append(raw)
    return out


@dataclass
class _Part:
    headers: list[bytes]
    body: bytes = b""
    parts: list[_Part] = field(default_factory=list)

    def render(self, boundary_seed: bytes) -> bytes:
        if not self.parts:
            return b"".join(self.headers) + b"\r\n" + self.body
        rendered = [p.render(boundary_seed + i.to_bytes(4, "big"))
                    for i, p in enumerate(self.parts)]
        digest = hashlib.sha256(boundary_seed)
        for r in rendered:
            digest.update(hashlib.sha256(r).digest())
        boundary = "=_mk_" + digest.hexdigest()[:32]
        ctype = self.headers[0].rstrip(b"\r\n") + f';\r\n\tboundary="{boundary}"\r\n'.encode()
        out = [ctype, *self.headers[1:], b"\r\n"]
        for r in rendered:
            out += [b"--", boundary.encode(), b"\r\n", r, b"\r\n"]
        out += [b"--", boundary.encode(), b"--\r\n"]
        return b"".join(out)


def _multipart(subtype: str, parts: list[_Part]) -> _Part:
    return _Part([f"Content-Type: multipart/{subtype}\r\n".encode()], parts=parts)


def _b64(data: bytes) -> bytes:
    return b"".join(binascii.b2a_base64(data[i:i + 57]).replace(b"\n", b"\r\n")
                    for i in range(0, len(data), 57))


def _text_part(subtype: str, data: bytes, charset: str) -> _Part:
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if all(len(line) < 990 for line in lines) and data.isascii() and b"\0" not in data:
        cte, body = "7bit", b"\r\n".join(lines)
    elif charset.lower() in ("utf-8", "iso-8859-1", "us-ascii", "windows-1252"):
        cte = "quoted-printable"
        body = b"\r\n".join(binascii.b2a_qp(line, istext=False).replace(b"=\n", b"=\r\n")
                            for line in lines)
    else:
        cte, body = "base64", _b64(data)
    return _Part([f"Content-Type: text/{subtype}; charset=\"{charset}\"\r\n".encode(),
                  f"Content-Transfer-Encoding: {cte}\r\n".encode()], body)


_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,127}")


def _mime_type(value: str) -> str | None:
    """A MIME type as a Content-Type may hold it, or None."""
    value = value.strip().lower()
    return value if _MIME_TYPE.fullmatch(value) else None


def _looks_like_message(data: bytes) -> bool:
    """Bytes that start with a header field: a message (an attached .eml)."""
    return re.match(rb"[!-9;-~]{1,76}:", data[:80]) is not None


def _param(name: str, value: str) -> str:
    """A Content-Type/Disposition parameter; RFC 2231 for a value that is not plain ASCII."""
    value = _clean(value)[:255]
    if value.isascii() and '"' not in value and "\\" not in value:
        return f'{name}="{value}"'
    return f"{name}*=utf-8''{quote(value, safe='')}"


class _Builder:
    def __init__(self) -> None:
        self.size = 0

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > MAX_MESSAGE:
            raise OutlookError(f"the message would be larger than {MAX_MESSAGE >> 20} MB")

    def message(self, item: Item, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise OutlookError(f"embedded messages nested deeper than {MAX_DEPTH} levels")
        headers = self._headers(item)
        smime = self._smime(item)
        if smime is not None:
            return b"".join(headers) + b"MIME-Version: 1.0\r\n" + smime
        body = self._body(item, depth)
        seed = hashlib.sha256(b"".join(headers)).digest()
        return b"".join(headers) + b"MIME-Version: 1.0\r\n" + body.render(seed)

    # headers ---------------------------------------------------------------------------------
    def _headers(self, item: Item) -> list[bytes]:
        kept = transport_fields(str(item.get(TRANSPORT_HEADERS, PT_UNICODE, PT_STRING8) or ""))
        have = {_field_name(f) for f in kept}
        out = list(kept)

        def add(name: str, value: str | None) -> None:
            if value and name.lower() not in have:
                out.append(_header(name, value))
                have.add(name.lower())

        def party(pid_name: int, pid_type: int, pid_email: int, pid_smtp: int) -> str:
            addrtype = str(item.get(pid_type, PT_UNICODE, PT_STRING8) or "")
            smtp = str(item.get(pid_smtp, PT_UNICODE, PT_STRING8) or "")
            email = str(item.get(pid_email, PT_UNICODE, PT_STRING8) or "")
            name = str(item.get(pid_name, PT_UNICODE, PT_STRING8) or "")
            if smtp:
                return _address(name, smtp, "SMTP")
            return _address(name, email, addrtype) if (name or email) else ""

        sender = party(SENDER_NAME, SENDER_ADDRTYPE, SENDER_EMAIL, SENDER_SMTP_ADDRESS)
        representing = party(SENT_REPRESENTING_NAME, SENT_REPRESENTING_ADDRTYPE,
                             SENT_REPRESENTING_EMAIL, SENT_REPRESENTING_SMTP_ADDRESS)
        add("From", representing or sender)
        if representing and sender and representing != sender:
            add("Sender", sender)
        kinds: dict[int, list[str]] = {1: [], 2: [], 3: []}
        for r in item.recipients:
            kind = get(r, RECIPIENT_TYPE, PT_LONG) or 1
            smtp = str(get(r, SMTP_ADDRESS, PT_UNICODE, PT_STRING8) or "")
            addr = smtp or str(get(r, EMAIL_ADDRESS, PT_UNICODE, PT_STRING8) or "")
            addrtype = "SMTP" if smtp else str(get(r, ADDRTYPE, PT_UNICODE, PT_STRING8) or "")
            text = _address(str(get(r, DISPLAY_NAME, PT_UNICODE, PT_STRING8) or ""), addr,
                            addrtype)
            if text and kind & 0xF in kinds:
                kinds[kind & 0xF].append(text)
        for kind, name in ((1, "To"), (2, "Cc"), (3, "Bcc")):
            if kinds[kind]:
                add(name, ", ".join(kinds[kind]))
        subject = item.get(SUBJECT, PT_UNICODE, PT_STRING8)
        if subject is not None:
            add("Subject", _strip_subject_prefix(str(subject)))
        for pid in (CLIENT_SUBMIT_TIME, MESSAGE_DELIVERY_TIME, CREATION_TIME,
                    LAST_MODIFICATION_TIME):
            when = item.get(pid, PT_SYSTIME)
            if isinstance(when, datetime):
                add("Date", format_datetime(when.astimezone(UTC)))
                break
        for pid, name in ((INTERNET_MESSAGE_ID, "Message-ID"), (IN_REPLY_TO, "In-Reply-To"),
                          (INTERNET_REFERENCES, "References")):
            value = str(item.get(pid, PT_UNICODE, PT_STRING8) or "").strip()
            if value and _MSG_IDS.fullmatch(value):
                add(name, value)
        importance = item.get(IMPORTANCE, PT_LONG)
        if importance in (0, 2):
            add("Importance", "low" if importance == 0 else "high")
        sensitivity = item.get(SENSITIVITY, PT_LONG)
        if sensitivity in (1, 2, 3):
            add("Sensitivity", ("Personal", "Private", "Company-Confidential")[sensitivity - 1])
        topic = item.get(CONVERSATION_TOPIC, PT_UNICODE, PT_STRING8)
        if topic:
            add("Thread-Topic", str(topic))
        index = item.get(CONVERSATION_INDEX, PT_BINARY)
        if index:
            add("Thread-Index", base64.b64encode(index[:1024]).decode())
        if "draft" in flags_of(item):
            add("X-Unsent", "1")
        for h in out:
            self._count(len(h))
        return out

    # S/MIME ----------------------------------------------------------------------------------
    def _smime(self, item: Item) -> bytes | None:
        mc = item.message_class.lower()
        if not mc.startswith("ipm.note.smime") or len(item.attachments) != 1:
            return None
        att = item.attachments[0]
        if att.data is None:
            return None
        tag = str(get(att.props, ATTACH_MIME_TAG, PT_UNICODE, PT_STRING8) or "").lower()
        if mc.startswith("ipm.note.smime.multipartsigned") and tag.startswith("multipart/signed") \
                and att.data.lstrip()[:13].lower() == b"content-type:":
            # The original entity: its own Content-Type header, a blank line, the parts.
            self._count(len(att.data))
            return att.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if tag.startswith("application/pkcs7-mime") or tag.startswith("application/x-pkcs7"):
            self._count(len(att.data))
            return (b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n'
                    b'\tname="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\n'
                    b'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
                    + _b64(att.data))
        return None

    # body ------------------------------------------------------------------------------------
    def _body(self, item: Item, depth: int) -> _Part:
        codec = codec_for(item.get(INTERNET_CPID, PT_LONG) or item.get(MESSAGE_CODEPAGE,
                                                                        PT_LONG))
        charset = _CHARSET_NAMES.get(codec, codec.replace("_", "-"))
        plain = item.get(BODY, PT_UNICODE, PT_STRING8)
        html = item.get(HTML, PT_BINARY)
        if html is None and item.get(HTML, PT_UNICODE, PT_STRING8) is not None:
            html = str(item.get(HTML, PT_UNICODE, PT_STRING8)).encode("utf-8")
            codec, charset = "utf-8", "utf-8"
        rtf_part: _Part | None = None
        if html is None and item.get(RTF_COMPRESSED, PT_BINARY) is not None:
            html, rtf_part, rtf_plain = self._from_rtf(item)
            if html is not None:
                codec, charset = "utf-8", "utf-8"
            if not plain and rtf_plain:
                plain = rtf_plain
        alternatives: list[_Part] = []
        if plain is not None:
            data = str(plain).encode("utf-8")
            self._count(len(data))
            alternatives.append(_text_part("plain", data, "utf-8"))
        if rtf_part is not None:
            alternatives.append(rtf_part)
        html_part: _Part | None = None
        if html is not None:
            html = bytes(html).rstrip(b"\0")
            self._count(len(html))
            html_part = _text_part("html", html, charset)
        inline: list[_Part] = []
        attached: list[_Part] = []
        html_text = html.decode(codec, "replace") if html is not None else ""
        if len(item.attachments) > MAX_ATTACHMENTS:
            item.notes.append(f"more than {MAX_ATTACHMENTS} attachments: the first "
                              f"{MAX_ATTACHMENTS} kept")
        for att in item.attachments[:MAX_ATTACHMENTS]:
            cid = str(get(att.props, ATTACH_CONTENT_ID, PT_UNICODE, PT_STRING8) or "").strip("<>")
            flags = get(att.props, ATTACH_FLAGS, PT_LONG) or 0
            is_inline = html_part is not None and att.embedded is None and bool(
                (cid and f"cid:{cid}".lower() in html_text.lower()) or flags & ATT_MHTML_REF)
            part = self._attachment(item, att, depth, is_inline)
            if part is not None:
                (inline if is_inline else attached).append(part)
        if html_part is not None:
            if inline:
                html_part = _multipart("related", [html_part, *inline])
            alternatives.append(html_part)
        if not alternatives:
            alternatives.append(_text_part("plain", b"", "utf-8"))
        body = alternatives[0] if len(alternatives) == 1 else _multipart("alternative",
                                                                         alternatives)
        if attached:
            body = _multipart("mixed", [body, *attached])
        return body

    def _from_rtf(self, item: Item) -> tuple[bytes | None, _Part | None, str | None]:
        """(HTML recovered from an encapsulated-HTML RTF body, or a text/rtf part for a real
        RTF body; the plain text of the RTF when the item has no plain body)."""
        compressed = item.get(RTF_COMPRESSED, PT_BINARY)
        if len(compressed) > MAX_RTF_COMPRESSED:
            item.notes.append(f"RTF body of {len(compressed)} bytes compressed not read (limit "
                              f"{MAX_RTF_COMPRESSED})")
            return None, None, None
        if len(compressed) >= 16:
            raw_size = struct.unpack_from("<I", compressed, 4)[0]
            if raw_size > MAX_RTF:
                item.notes.append(f"RTF body of {raw_size} bytes not read (limit {MAX_RTF})")
                return None, None, None
        try:
            import compressed_rtf
            rtf = bytes(compressed_rtf.decompress(compressed))[:MAX_RTF]
        except Exception as exc:  # a damaged body: the rest of the item is still archived
            item.notes.append(f"RTF body cannot be decompressed: {type(exc).__name__}")
            return None, None, None
        head = rtf[:1024]
        if b"\\fromhtml1" in head and len(rtf) <= MAX_RTF_HTML:
            try:
                from RTFDE.deencapsulate import DeEncapsulator
                rtf_obj = DeEncapsulator(rtf)
                rtf_obj.deencapsulate()
                if rtf_obj.content_type == "html":
                    content = rtf_obj.html
                    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
                    return data, None, None
            except Exception as exc:  # the parser refuses damaged RTF in many ways
                item.notes.append(f"HTML cannot be recovered from the RTF body: "
                                  f"{type(exc).__name__}")
        plain = None
        if b"\\fromtext" not in head:
            try:
                from striprtf.striprtf import rtf_to_text
                plain = str(rtf_to_text(rtf.decode("latin-1"), errors="ignore"))  # type: ignore[no-untyped-call]
            except Exception:
                plain = None
        self._count(len(rtf))
        part = _Part([b"Content-Type: text/rtf\r\n", b"Content-Transfer-Encoding: base64\r\n"],
                     _b64(rtf))
        if b"\\fromtext" in head:
            return None, None, None  # the plain body is the same text
        return None, part, plain

    def _attached_message(self, name: str, data: bytes) -> _Part:
        """An attached .eml, kept byte for byte as a message/rfc822 part (which may not be
        base64-encoded)."""
        self._count(len(data))
        headers = [b"Content-Type: message/rfc822\r\n"]
        lines = data.split(b"\n")
        if b"\0" in data or any(len(line) > 998 for line in lines):
            headers.append(b"Content-Transfer-Encoding: binary\r\n")
        elif not data.isascii():
            headers.append(b"Content-Transfer-Encoding: 8bit\r\n")
        disp = "Content-Disposition: attachment"
        if name:
            disp += f"; {_param('filename', name)}"
        headers.append((disp + "\r\n").encode())
        return _Part(headers, data)

    def _attachment(self, item: Item, att: Attachment, depth: int, inline: bool
                    ) -> _Part | None:
        props = att.props
        method = get(props, ATTACH_METHOD, PT_LONG) or ATTACH_BY_VALUE
        name = str(get(props, ATTACH_LONG_FILENAME, PT_UNICODE, PT_STRING8)
                   or get(props, ATTACH_FILENAME, PT_UNICODE, PT_STRING8)
                   or get(props, DISPLAY_NAME, PT_UNICODE, PT_STRING8) or "")
        if att.problem:
            item.notes.append(f"attachment {name or '(no name)'}: {att.problem}")
            return None
        if att.embedded is not None:
            inner = self.message(att.embedded, depth + 1)
            self._count(len(inner))  # copied into this message: counted again
            item.notes.extend(f"in embedded message: {n}" for n in att.embedded.notes)
            headers = [b"Content-Type: message/rfc822\r\n"]
            if name:
                headers.append(f"Content-Disposition: attachment; {_param('filename', name)}"
                               "\r\n".encode())
            return _Part(headers, inner)
        if att.data is None:
            if method in BY_REFERENCE:
                item.notes.append(f"attachment {name or '(no name)'} is a reference to a file "
                                  "outside the message: not carried")
            return None
        self._count(len(att.data) * 4 // 3)
        mime = _mime_type(str(get(props, ATTACH_MIME_TAG, PT_UNICODE, PT_STRING8) or ""))
        if mime is None or mime.startswith("multipart/") or method == ATTACH_OLE:
            mime = (_mime_type(mimetypes.guess_type(_clean(name))[0] or "")
                    if name and method != ATTACH_OLE else None) or "application/octet-stream"
        if mime.startswith("message/"):
            if mime == "message/rfc822" and _looks_like_message(att.data):
                return self._attached_message(name, att.data)
            mime = "application/octet-stream"  # base64 is not allowed for message/* types
        ctype = f"Content-Type: {mime}"
        if name:
            ctype += f"; {_param('name', name)}"
        headers = [(ctype + "\r\n").encode(), b"Content-Transfer-Encoding: base64\r\n"]
        cid = str(get(props, ATTACH_CONTENT_ID, PT_UNICODE, PT_STRING8) or "").strip().strip("<>")
        if cid and re.fullmatch(r"[\x21-\x3b=\x3f-\x7e]{1,250}", cid):
            headers.append(f"Content-ID: <{cid}>\r\n".encode())
        location = str(get(props, ATTACH_CONTENT_LOCATION, PT_UNICODE, PT_STRING8) or "")
        if location and location.isascii():
            headers.append(_header("Content-Location", location))
        disp = f"Content-Disposition: {'inline' if inline else 'attachment'}"
        if name:
            disp += f"; {_param('filename', name)}"
        headers.append((disp + "\r\n").encode())
        return _Part(headers, _b64(att.data))


def summary(notes: Iterable[str], limit: int = 5) -> str:
    notes = list(dict.fromkeys(notes))
    more = f" (and {len(notes) - limit} more)" if len(notes) > limit else ""
    return "; ".join(notes[:limit]) + more


def folder_part(name: str) -> str:
    """An Outlook folder name as one archive folder level: without control characters, a "/"
    (which would start a new level) shown as U+2215, "." and ".." kept from meaning a way up."""
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp",
                                                                      "Cs")).strip()
    name = name.replace("/", "\u2215")[:200]
    if name in (".", ".."):
        name = name.replace(".", "_")
    return name or "_"


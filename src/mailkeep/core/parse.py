"""Raw message bytes to decoded text: the fields to index (extract) and a view to show (describe).

Headers and MIME parts are split here, not by email.parser (ten times slower on the import hot
path); so is all decoding: RFC 2047/2231, charsets, transfer encodings. Nothing here raises.
"""

from __future__ import annotations

import binascii
import calendar
import codecs
import functools
import re
from dataclasses import dataclass, field
from email.utils import parsedate_tz
from urllib.parse import unquote_to_bytes

from mailkeep.core.text import html_to_text

_HUGE_BYTES = 16 << 20  # above this, only the first _PARTIAL_BYTES are parsed
_PARTIAL_BYTES = 4 << 20
_HEAD_SCAN_BYTES = 1 << 20  # a header block longer than this is cut
_MAX_DEPTH = 30
_MAX_WARNINGS = 30
_VIEW_TEXT_CHARS = 1_000_000

_Headers = dict[str, list[bytes]]  # lower-case name -> unfolded raw values, in order
_WANTED = frozenset(
    "subject from sender to cc bcc date message-id content-type content-disposition "
    "content-transfer-encoding".split()
)
_WANTED_BYTES = frozenset(name.encode() for name in _WANTED)


@dataclass
class IndexFields:
    """Decoded text of one message, ready for the FTS5 columns (not yet CJK-segmented)."""

    subject: str = ""
    sender: str = ""  # From (Sender if no From), display names and addresses as written
    recipients: str = ""  # To, Cc and Bcc, comma-separated
    body: str = ""  # text parts, HTML parts as text, forwarded messages' From/Subject and text
    attachments: str = ""  # attachment file names, newline-separated
    date: float | None = None  # epoch seconds UTC from Date; a date without a zone is read as UTC
    message_id: str | None = None  # without the angle brackets
    has_attachment: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class MessageView:
    """What `mailkeep show` prints: chosen headers, the readable text, the attachments."""

    headers: list[tuple[str, str]]  # (name, decoded value): Date, From, To, Cc, Subject, Message-ID
    text: str  # the plain-text parts, or the HTML parts as text when there is no plain part
    attachments: list[tuple[str, str, int]]  # (filename or "", content type, decoded bytes)
    warnings: list[str] = field(default_factory=list)


# --- charsets -------------------------------------------------------------------------------

_GUESS = ""  # no usable label: UTF-8, else cp1252, else Latin-1
_JIS = "iso2022_jp"  # ISO-2022-JP and its variants
_JIS_CP932 = "7-bit JIS read as CP932"  # a step of the ISO-2022-JP plan, see _jis_as_cp932
_ALIAS_GROUPS = {
    "cp932": "x-sjis sjis shift-jis ms-kanji windows-31j csshiftjis x-ms-cp932 ms932",
    "cp949": "ks-c-5601-1987 ks-c-5601 ksc5601 ksc-5601 euc-kr windows-949 x-windows-949 korean",
    "gb18030": "gb2312 gbk x-gbk euc-cn x-euc-cn cp936 windows-936 gb-2312-80 csgb2312 chinese",
    "cp950": "big5 big-5 x-x-big5 cn-big5 csbig5 x-big5",
    _JIS: "iso-2022-jp iso-2022-jp-1 iso-2022-jp-2 iso-2022-jp-3 iso-2022-jp-ext "
    "iso-2022-jp-2004 csiso2022jp x-iso-2022-jp",
    # US-ASCII labels on 8-bit text are common, and "UTF-8" text that is not is usually cp1252.
    _GUESS: "us-ascii ascii ansi-x3.4-1968 iso-646-us x-unknown unknown unknown-8bit "
    "x-user-defined 8bit binary default default-charset none utf-8 utf8 utf8mb4",
    "cp1252": "iso-8859-1 latin1 latin-1 iso8859-1 l1 windows-1252",  # as browsers do
    "iso8859-8": "iso-8859-8-i iso-8859-8-e",
    "iso8859-6": "iso-8859-6-i iso-8859-6-e",
    "mac-roman": "x-mac-roman",
    "utf-7": "x-unicode-2-0-utf-7 unicode-2-0-utf-7 unicode-1-1-utf-7 x-utf-7",
    "euc_jp": "x-euc-jp x-euc",
}
_ALIASES = {label: codec for codec, labels in _ALIAS_GROUPS.items() for label in labels.split()}
# Text codecs that are not charsets a mail could honestly be in.
_REFUSED = frozenset(["undefined", "unicode-escape", "raw-unicode-escape", "punycode", "idna"])
_EXTRA_TRIES = {"cp932": ("shift_jis_2004",), "euc_jp": ("euc_jis_2004",), "cp950": ("big5hkscs",)}
_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.lru_cache(maxsize=256)
def _plan(label: str) -> tuple[tuple[str, ...], str, bool]:
    """(codecs to try strictly, codec to use with replacement, label known) for a label."""
    name = label.strip().strip("\"'").lower().replace("_", "-").split(";")[0].strip()
    codec = _ALIASES.get(name) if name else _GUESS
    if codec is None:
        for candidate in (
            name,
            re.sub(r"^(?:x-|windows-|cp-|ibm-?)(?=\d)", "cp", name),
            name.removeprefix("x-"),
        ):
            try:
                info = codecs.lookup(candidate)
            except LookupError:
                continue
            if info._is_text_encoding and info.name not in _REFUSED:
                codec = _ALIASES.get(info.name.replace("_", "-"), info.name)
                break
    if codec is None or codec == _GUESS:
        return ("utf-8", "cp1252", "latin-1"), "latin-1", codec is not None
    if codec == _JIS:  # 8-bit "ISO-2022-JP" is UTF-8 or Shift_JIS in the wild
        strict = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", _JIS_CP932, "utf-8", "cp932")
        return strict, "cp932", True
    if codec == "cp1252":
        return ("utf-8", "cp1252", "latin-1"), "latin-1", True
    if _single_byte(codec):  # cannot fail, so mislabelled UTF-8 must be tried first
        return ("utf-8", codec), codec, True
    return (codec, *_EXTRA_TRIES.get(codec, ()), "utf-8"), codec, True


def _single_byte(codec: str) -> bool:
    """An ASCII-compatible one-byte-per-character codec (ISO-8859-x, KOI8-R, cp125x...)."""
    try:
        return bytes(range(128)).decode(codec) == "".join(map(chr, range(128))) and (
            len(bytes(range(128, 256)).decode(codec, "replace")) == 128
        )
    except (UnicodeError, LookupError):
        return False


def _decode(data: bytes, label: str | None, warnings: list[str]) -> str:
    """Bytes in a declared charset (or none) to text; falls back rather than failing."""
    strict, last, known = _plan(label or "")
    if not known:
        warnings.append(f"unknown charset {label[:40]!r}" if label else "unknown charset")
    for codec in strict:
        if codec == _JIS_CP932:
            if data.isascii():
                return _jis_as_cp932(data)
            continue
        try:
            text = data.decode(codec)
        except (UnicodeError, LookupError):
            continue
        return _SURROGATE.sub("\ufffd", text) if codec == "utf-7" else text
    warnings.append(f"undecodable bytes in {(label or 'unlabelled')[:40]} text")
    return _SURROGATE.sub("\ufffd", data.decode(last, "replace"))


_JIS_ESCAPE = re.compile(rb"\x1b(\$[@B]|\$\(D|\([BJIH])")


def _jis_as_cp932(data: bytes) -> str:
    # Japanese mailers put CP932 extras (circled digits, NEC/IBM kanji) inside ISO-2022-JP;
    # Python's strict codecs refuse them, so JIS X 0208 pairs are moved to Shift_JIS here.
    out: list[str] = []
    mode, pos = b"(B", 0
    for m in _JIS_ESCAPE.finditer(data):
        out.append(_jis_chunk(data[pos : m.start()], mode))
        mode, pos = m.group(1), m.end()
    out.append(_jis_chunk(data[pos:], mode))
    return "".join(out)


def _jis_chunk(chunk: bytes, mode: bytes) -> str:
    if mode == b"(I":
        return bytes(b | 0x80 if 0x21 <= b <= 0x5F else b for b in chunk).decode("cp932", "replace")
    if mode not in (b"$@", b"$B"):
        return chunk.decode("euc_jp" if mode == b"$(D" else "latin-1", "replace")
    sjis = bytearray()
    i = 0
    while i < len(chunk):
        j1 = chunk[i]
        j2 = chunk[i + 1] if i + 1 < len(chunk) else 0
        if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
            sjis.append(j1 if j1 < 0x80 else 0x3F)
            i += 1
            continue
        sjis.append(((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0))
        sjis.append(j2 + (0x7E if not j1 & 1 else 0x1F if j2 <= 0x5F else 0x20))
        i += 2
    return sjis.decode("cp932", "replace")


# --- headers --------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?]*)\?=")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _base64(data: bytes, warnings: list[str]) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    clean = _NOT_BASE64.sub(b"", data)
    clean = clean[: len(clean) - (len(clean) % 4 == 1)]
    warnings.append("bad base64 padding")
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


def _raw_header_text(value: bytes, fallback: str | None, warnings: list[str]) -> str:
    """A header's bytes as text: ASCII, RFC 6532 UTF-8, raw JIS, or the body's charset."""
    if value.isascii():
        if b"\x1b" in value:
            return _decode(value, "iso-2022-jp", warnings)
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return _decode(value, fallback, warnings)


def _decode_words(text: str, warnings: list[str]) -> str:
    """Decode RFC 2047 encoded-words, also when glued together or split mid-character."""
    out: list[str] = []
    run: list[bytes] = []  # bytes of adjacent words in one charset, decoded together
    run_charset = ""
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        charset, kind, payload = m.group(1).lower(), m.group(2), m.group(3)
        gap = text[pos : m.start()]
        adjacent = bool(run) and (not gap or gap.isspace())  # the gap is then dropped
        if run and (not adjacent or charset != run_charset):
            out.append(_decode(b"".join(run), run_charset, warnings))
            run = []
        if not adjacent:
            out.append(gap)
        raw = payload.encode("utf-8", "replace")
        run.append(_base64(raw, warnings) if kind in "Bb" else binascii.a2b_qp(raw, header=True))
        run_charset, pos = charset, m.end()
    if run:
        out.append(_decode(b"".join(run), run_charset, warnings))
    out.append(text[pos:])
    return "".join(out)


def _header(value: bytes, fallback: str | None, warnings: list[str]) -> str:
    text = _raw_header_text(value, fallback, warnings)
    if "=?" in text:
        text = _decode_words(text, warnings)
    return " ".join(text.split())


# --- parameters (Content-Type, Content-Disposition) -------------------------------------------

_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _params(value: bytes, warnings: list[str]) -> tuple[str, dict[str, str]]:
    """(lower-case main value, parameters) with RFC 2231 parameters joined and decoded."""
    text = _raw_header_text(value, None, warnings)
    main = text.split(";", 1)[0].strip().lower()
    params: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for m in _PARAM.finditer(text, len(main)):
        key = m.group(1).lower()
        quoted = m.group(2)
        val = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else m.group(3).strip()
        name, star, section = key.partition("*")
        if not star:
            params.setdefault(key, val)
            continue
        number = section.rstrip("*")
        encoded = key.endswith("*")
        extended.setdefault(name, []).append((int(number) if number.isdigit() else 0, encoded, val))
    for name, sections in extended.items():
        params[name] = _join_rfc2231(sections, warnings)  # preferred to the plain form
    return main.split()[0] if main else "", params


def _join_rfc2231(sections: list[tuple[int, bool, str]], warnings: list[str]) -> str:
    sections.sort(key=lambda s: s[0])
    charset = None
    chunks: list[bytes] = []
    for i, (_, encoded, val) in enumerate(sections):
        if encoded and i == 0 and val.count("'") >= 2:
            charset, _lang, val = val.split("'", 2)
        chunks.append(unquote_to_bytes(val) if encoded else val.encode("utf-8", "replace"))
    return _decode(b"".join(chunks), charset, warnings)


def _content_type(
    headers: _Headers, default: str, warnings: list[str]
) -> tuple[str, dict[str, str]]:
    values = headers.get("content-type")
    if not values:
        return default, {}
    ctype, params = _params(values[0], warnings)
    return (ctype if "/" in ctype else "text/plain"), params


def _disposition(
    headers: _Headers, ctype_params: dict[str, str], warnings: list[str]
) -> tuple[str, str]:
    """(disposition, decoded file name or "") of a part."""
    disposition, params = "", dict[str, str]()
    if values := headers.get("content-disposition"):
        disposition, params = _params(values[0], warnings)
    name = params.get("filename") or ctype_params.get("name") or ""
    if "=?" in name:
        name = _decode_words(name, warnings)
    return disposition, " ".join(name.replace("\x00", " ").split())


def _cte(headers: _Headers) -> bytes:
    values = headers.get("content-transfer-encoding")
    return values[0].split(b";")[0].strip(b" \t\"'").lower() if values else b""


def _transfer_decode(headers: _Headers, payload: bytes, warnings: list[str]) -> bytes:
    cte = _cte(headers)
    if cte == b"base64":
        return _base64(payload, warnings)
    if cte == b"quoted-printable":
        return binascii.a2b_qp(payload)
    return payload  # 7bit, 8bit, binary, and unknown encodings (uuencode included) as they are


# --- the header block -----------------------------------------------------------------------

_HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_FIELD_START = re.compile(rb"\n(?![ \t])")  # a line end not followed by a folded line


def _unfold(value: bytes) -> bytes:
    return value.replace(b"\r", b"").replace(b"\n", b"").strip()


def _split_head(data: bytes, warnings: list[str], mbox: bool = True) -> tuple[_Headers, bytes]:
    """The wanted headers of a message or part, and its body; much faster than email.parser."""
    if data.find(b"\n", 0, _HEAD_SCAN_BYTES) < 0 and data.find(b"\r", 0, _HEAD_SCAN_BYTES) >= 0:
        data = data.replace(b"\r", b"\n")  # old Mac line ends
    start = data.find(b"\n") + 1 if mbox and data.startswith(b"From ") else 0  # mbox From_ line
    if data.startswith((b"\n", b"\r\n"), start):
        return {}, data[data.index(b"\n", start) + 1 :]
    m = _BLANK_LINE.search(data, start, start + _HEAD_SCAN_BYTES)
    end, body_at = (m.start(), m.end()) if m else (start + _HEAD_SCAN_BYTES,) * 2
    headers: _Headers = {}
    fields = _FIELD_START.split(data[start:end])
    key: str | None = None
    for i, field_ in enumerate(fields):
        name = _HEADER_NAME.match(field_)
        if name is not None:
            raw_key = name.group(1).lower()
            key = raw_key.decode() if raw_key in _WANTED_BYTES else None
            if key is not None:
                headers.setdefault(key, []).append(_unfold(field_[name.end() :]))
        elif i > 0 and fields[i - 1].rstrip().endswith(b";"):
            # Parameters continued on an unindented line: seen in real bounces, easy to spot.
            if key is not None:
                headers[key][-1] += b" " + _unfold(field_)
        elif i == 0 and field_[:1] in (b" ", b"\t"):
            warnings.append("header block starts with a folded line")
        else:
            warnings.append("no header block" if i == 0 else "header block not ended")
            body_at = start + sum(len(f) + 1 for f in fields[:i])
            break
    return headers, data[body_at:]


def _split_multipart(body: bytes, boundary: str, warnings: list[str]) -> list[bytes] | None:
    """The parts between boundary lines (RFC 2046), or None if the body has none."""
    if not boundary:
        warnings.append("multipart without boundary")
        return None
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    parts: list[bytes] = []
    part_start, pos, closed = -1, 0, False
    while (found := body.find(delimiter, pos)) >= 0:
        pos = found + len(delimiter)
        closing = body.startswith(b"--", pos)
        line_end = body.find(b"\n", pos)
        line_end = len(body) if line_end < 0 else line_end
        rest = body[pos + 2 * closing : line_end].rstrip(b"\r")
        # RFC 2046 lets text follow a delimiter; a longer boundary sharing the prefix is not one.
        if (found > 0 and body[found - 1] != 0x0A) or rest[:1] not in (b"", b" ", b"\t"):
            continue
        if part_start >= 0:
            end = max(part_start, found - 1)  # the line break before a delimiter belongs to it
            parts.append(body[part_start : end - (body[end - 1 : end] == b"\r")])
        if closing:
            closed = True
            break
        part_start = pos = line_end + 1
    if part_start < 0:
        warnings.append("multipart boundary not found")
        return None
    if not closed:
        warnings.append("multipart not closed")
        parts.append(body[part_start:])
    return parts


# --- walking the parts ----------------------------------------------------------------------

_NESTED = frozenset(["message/rfc822", "message/global", "message/news", "message/partial"])


class _Walker:
    """Collects the text and the attachments of a message's parts, in order."""

    def __init__(self, max_chars: int, sizes: bool, warnings: list[str]) -> None:
        self.texts: list[tuple[str, str]] = []  # (kind: plain, html or meta, text)
        self.attachments: list[tuple[str, str, int]] = []
        self.room = max_chars
        self.sizes = sizes  # describe() wants decoded sizes; extract() skips that work
        self.warnings = warnings

    def add(self, kind: str, text: str) -> None:
        if len(text) > self.room:
            self.warnings.append("body text truncated")
            text = text[: max(self.room, 0)]
        if text:
            self.texts.append((kind, text))
            self.room -= len(text) + 2  # and the blank line that will join it to the next

    def walk(self, headers: _Headers, body: bytes, default: str, depth: int) -> None:
        ctype, params = _content_type(headers, default, self.warnings)
        if depth > _MAX_DEPTH:
            self.warnings.append("MIME nesting too deep")
            return
        if ctype.startswith("multipart/"):
            parts = _split_multipart(body, params.get("boundary", ""), self.warnings)
            if parts is not None:
                child = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                for part in parts:
                    part_headers, part_body = _split_head(part, self.warnings, mbox=False)
                    self.walk(part_headers, part_body, child, depth + 1)
                return
            ctype = "text/plain"  # no usable boundary: what is there is shown as text
        if ctype in _NESTED:
            self.forwarded(headers, body, ctype, params, depth)
        else:
            self.leaf(headers, body, ctype, params)

    def leaf(self, headers: _Headers, payload: bytes, ctype: str, params: dict[str, str]) -> None:
        disposition, name = _disposition(headers, params, self.warnings)
        maintype = ctype.partition("/")[0]
        if disposition == "attachment" or name:
            data = _transfer_decode(headers, payload, self.warnings) if self.sizes else b""
            self.attachments.append((name, ctype, len(data)))
            # Text explicitly inline (patches sent from Thunderbird) is read in the mail itself.
            if disposition != "inline" or maintype != "text":
                return
        if self.room <= 0 or maintype not in ("text", "message"):
            return
        html = ctype == "text/html"
        data = _transfer_decode(headers, payload, self.warnings)
        data = _cut(data, self.room * (16 if html else 4))  # HTML has more markup than text
        text = _decode(data, params.get("charset"), self.warnings)
        # message/delivery-status and other reports are header-like text: shown with any body
        kind = "html" if html else "meta" if maintype == "message" else "plain"
        self.add(kind, html_to_text(text) if html else text)

    def forwarded(
        self, headers: _Headers, body: bytes, ctype: str, params: dict[str, str], depth: int
    ) -> None:
        """A message/rfc822 part: its From and Subject, then its parts, go in the body."""
        disposition, name = _disposition(headers, params, self.warnings)
        inner = _transfer_decode(headers, body, self.warnings)  # base64 here is wrong but seen
        if disposition == "attachment" or name:
            self.attachments.append((name, ctype, len(inner)))
        inner_headers, inner_body = _split_head(inner, self.warnings)
        lines = [
            f"{label}: {_header(value, None, self.warnings)}"
            for label, key in (("From", "from"), ("Subject", "subject"))
            for value in inner_headers.get(key, [])[:1]
        ]
        self.add("meta", "\n".join(lines))
        self.walk(inner_headers, inner_body, "text/plain", depth + 1)


def _cut(data: bytes, limit: int) -> bytes:
    """At most about `limit` bytes, cut after a line end so no character is split."""
    if len(data) <= limit:
        return data
    newline = data.rfind(b"\n", max(0, limit - 4096), limit)
    return data[: newline + 1 if newline >= 0 else limit]


def _walk(raw: bytes, max_chars: int, sizes: bool) -> tuple[_Headers, _Walker, str | None]:
    """Split and walk a message; returns its headers, the walker and its declared charset."""
    warnings: list[str] = []
    if len(raw) > _HUGE_BYTES:
        warnings.append(f"message over {_HUGE_BYTES >> 20} MiB: body indexed partially")
        raw = raw[:_PARTIAL_BYTES]
    headers, body = _split_head(raw, warnings)
    walker = _Walker(max_chars, sizes, warnings)
    if not headers and b"\x00" in body[:8192]:
        warnings.append("binary data, not a message: not indexed")
        return headers, walker, None
    walker.walk(headers, body, "text/plain", 0)
    return headers, walker, _content_type(headers, "text/plain", warnings)[1].get("charset")


# --- the two entry points -------------------------------------------------------------------

_ANGLE_ADDR = re.compile(r"<([^<>]*)>")


def _date(value: str) -> float | None:
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        stamp = calendar.timegm(parts[:6]) - (parts[9] or 0)
    except Exception:  # parsedate_tz and timegm raise assorted errors on odd input
        return None
    return float(stamp) if -2208988800 <= stamp <= 7258118400 else None  # 1900 to 2200


def _finish(warnings: list[str]) -> list[str]:
    return list(dict.fromkeys(warnings))[:_MAX_WARNINGS]


def extract(raw: bytes, max_body_chars: int = 1_000_000) -> IndexFields:
    """The decoded fields to index for one raw message. Never raises."""
    try:
        return _extract(raw, max_body_chars)
    except Exception as exc:  # a last resort: the import must go on
        return IndexFields(warnings=[f"extraction failed: {type(exc).__name__}: {exc}"[:200]])


def _extract(raw: bytes, max_body_chars: int) -> IndexFields:
    headers, walker, charset = _walk(raw, max_body_chars, sizes=False)
    warnings = walker.warnings

    def text(*names: str, every: bool = False) -> str:
        values = [value for name in names for value in headers.get(name, [])]
        texts = [_header(value, charset, warnings) for value in values[: None if every else 1]]
        return ", ".join(t for t in texts if t).replace("\x00", " ")

    message_id = text("message-id")
    angle = _ANGLE_ADDR.search(message_id)
    message_id = (angle.group(1) if angle else message_id).strip()
    names = [name for name, _, _ in walker.attachments if name]
    return IndexFields(
        subject=text("subject"),
        sender=text("from") or text("sender"),
        recipients=text("to", "cc", "bcc", every=True),
        body="\n\n".join(t for _, t in walker.texts)[:max_body_chars].replace("\x00", " "),
        attachments="\n".join(names),
        date=_date(text("date")) if "date" in headers else None,
        message_id=message_id or None,
        has_attachment=bool(walker.attachments),
        warnings=_finish(warnings),
    )


_VIEW_HEADERS = (
    ("Date", "date"),
    ("From", "from"),
    ("To", "to"),
    ("Cc", "cc"),
    ("Subject", "subject"),
    ("Message-ID", "message-id"),
)


def describe(raw: bytes) -> MessageView:
    """Decoded headers, readable text and attachment list for `mailkeep show`. Never raises."""
    try:
        headers, walker, charset = _walk(raw, _VIEW_TEXT_CHARS, sizes=True)
        warnings = walker.warnings
        shown = [
            (label, _header(value, charset, warnings))
            for label, key in _VIEW_HEADERS
            for value in headers.get(key, [])
        ]
        wanted = {"meta", "plain" if any(k == "plain" for k, _ in walker.texts) else "html"}
        texts = [text for kind, text in walker.texts if kind in wanted]
        text = "\n\n".join(texts).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", " ")
        return MessageView(shown, text, walker.attachments, _finish(warnings))
    except Exception as exc:
        return MessageView([], "", [], [f"parsing failed: {type(exc).__name__}: {exc}"[:200]])

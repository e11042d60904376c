"""Raw message bytes to decoded text: the fields to index (extract) and a view to show (describe).

The MIME structure comes from the standard library's email package (compat32 policy): the header
block, multipart boundaries, nested messages, transfer encodings, RFC 2047 encoded-words and
RFC 2231 parameters. What it has no answer for is done here or in charsets.py: mislabelled and
unknown charsets, raw 8-bit headers, base64 it gives up on, and caps on pathological input.
Nothing here raises.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import errors
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import parsedate_tz
from io import BytesIO

from mailkeep.core.mime import charsets
from mailkeep.core.mime.documents import attachment_text
from mailkeep.core.mime.params import ParamsMessage
from mailkeep.core.mime.text import html_to_text

_PARTIAL_BYTES = 4 << 20  # above this, only the first _PARTIAL_BYTES are parsed
_CR_SCAN_BYTES = 1 << 20  # no LF in this many bytes but a CR: old Mac line ends
# email.parser reads line by line (~1 us a line, ~3 in headers), checking each line against the
# boundary of every enclosing multipart: cap the lines, and the lines times the boundaries.
_MAX_LINES = 100_000
_MAX_LINE_CHECKS = 2_000_000
_MAX_DEPTH = 30
_MAX_WARNINGS = 30
_VIEW_TEXT_CHARS = 1_000_000
_HTML_BYTES = 2 << 20  # HTML handed to html_to_text, per message


MAX_DOCUMENT_CHARS = 4_000_000  # of attachment text indexed for one message


@dataclass
class IndexFields:
    """Decoded text of one message, ready for the FTS5 columns (not yet CJK-segmented)."""

    subject: str = ""
    sender: str = ""  # From (Sender if no From), display names and addresses as written
    recipients: str = ""  # To, Cc and Bcc, comma-separated
    body: str = ""  # text parts, HTML parts as text, forwarded messages' From/Subject and text
    attachments: str = ""  # attachment file names, newline-separated
    documents: str = ""  # the text inside the attachments (extract(documents=True))
    date: float | None = None  # epoch seconds UTC from Date; a date without a zone is read as UTC
    message_id: str | None = None  # without the angle brackets
    has_attachment: bool = False
    warnings: list[str] = field(default_factory=list)
    columns: tuple[str, str, str, str, str] | None = None  # the FTS5 columns, once segmented


@dataclass
class MessageView:
    """What `mailkeep show` prints: chosen headers, the readable text, the attachments."""

    headers: list[tuple[str, str]]  # (name, decoded value): Date, From, To, Cc, Subject, Message-ID
    text: str  # the plain-text parts, or the HTML parts as text when there is no plain part
    attachments: list[tuple[str, str, int]]  # (filename or "", content type, decoded bytes)
    warnings: list[str] = field(default_factory=list)


# --- parsing --------------------------------------------------------------------------------


class _RawHeaders(Compat32):
    """compat32, with header values unfolded (RFC 5322 2.2.3) and returned as parsed.

    Unfolded, a parameter folded inside its quotes (boundary="simple\n boundary") is read right.
    compat32 hands back a header with 8-bit bytes as a Header object whose text has U+FFFD for
    them; here they stay surrogate escapes, turned back into bytes for charsets.header_text.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        # Compat32.header_source_parse, but removing every line break
        name, value = sourcelines[0].split(":", 1)
        value = value.lstrip(" \t") + "".join(sourcelines[1:])
        return name, value.replace("\r", "").replace("\n", "")

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value

    def fold_binary(self, name: str, value: str) -> bytes:
        # Written back as read (only _flatten writes): compat32 folds through email.header,
        # whose time grows with the square of a header's length.
        return f"{name}: {value}{self.linesep}".encode("utf-8", "surrogateescape")


_POLICY = _RawHeaders()
_PARSER = BytesParser(ParamsMessage, policy=_POLICY)
_HEADER_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")
_BLANK_LINE = re.compile(rb"\n\r?\n")  # where a header block ends


def _prepare(raw: bytes, warnings: list[str], limit: int = _PARTIAL_BYTES,
             max_lines: int = _MAX_LINES, max_checks: int = _MAX_LINE_CHECKS,
             cut: str = "body indexed partially") -> bytes:
    """The bytes to parse: cut to what email.parser gets through in bounded time; CR to LF.
    (The defaults are indexing's; the console's view of one message allows more.)"""
    if len(raw) > limit:
        warnings.append(f"message over {limit >> 20} MiB: {cut}")
        raw = raw[:limit]
    if raw.find(b"\n", 0, _CR_SCAN_BYTES) < 0 and raw.find(b"\r", 0, _CR_SCAN_BYTES) >= 0:
        raw = raw.replace(b"\r", b"\n")  # so the text reads as it would with other line ends
    lines = max(raw.count(b"\n"), raw.count(b"\r"))
    boundaries = raw.lower().count(b"boundary")  # at least the nesting depth; in any case
    budget = min(max_lines, max_checks // max(1, boundaries))
    if lines > budget:
        warnings.append(f"message over {budget} lines: {cut}")
        while lines > budget:  # cut in proportion until it fits; the lines may not be even
            raw = raw[: len(raw) * budget // lines]
            lines = max(raw.count(b"\n"), raw.count(b"\r"))
    return raw


def _parse(data: bytes, warnings: list[str], mend: bool = True) -> Message:
    """email.parser's tree of a message; its header fields alone if it cannot build one."""
    try:
        # Most mail is one part: its headers-only parse is already the whole tree and costs
        # far less (no boundary checks per line); only a structured message is parsed again.
        # email.parser reads a body line by line even for headersonly, so it is handed the
        # header block alone and the body is attached as it would have attached it.
        end = _BLANK_LINE.search(data)
        if end is not None:
            msg = _PARSER.parsebytes(data[: end.start() + 1], headersonly=True)
            if not msg.defects and msg.get_content_maintype() not in ("multipart", "message"):
                msg.set_payload(data[end.end():].decode("ascii", "surrogateescape"))
                return msg
        msg = _PARSER.parsebytes(data)
    except RecursionError:  # a few hundred nested multiparts
        warnings.append("MIME nesting too deep: body not indexed")
    except Exception as exc:  # it records defects, but decode_params can raise on a boundary
        warnings.append(f"MIME parsing failed: {type(exc).__name__}: {exc}"[:200])
    else:
        try:
            mended = _mend(data, msg) if mend else None
        except Exception:  # RecursionError from Message.walk on the deepest messages
            mended = None
        return msg if mended is None else _parse(mended, warnings, mend=False)
    try:
        msg = _PARSER.parsebytes(data, headersonly=True)
        msg.set_payload("")
    except Exception:
        msg = ParamsMessage(_POLICY)
    return msg


_PARAM_LINE = re.compile(rb";[ \t]*\r?\n(?=[A-Za-z][\w.*-]*[ \t]*=)")  # "x;" then "name=..."
_SPACED_NAME = re.compile(rb"([!-9;-~]+)[ \t]+:")


def _mend(data: bytes, msg: Message) -> bytes | None:
    """The message with the breakage mailers are known for mended, if email.parser met some.

    Header blocks end at the first line that is not a header: mended are parameters continued
    on an unindented line after a ";" (seen in bounces), and a space before the colon in the
    top header block ("Subject : x", obsolete syntax). A multipart whose delimiter lines have
    text after them (RFC 2046 allows only white space) gets the text dropped.
    """
    unended = top_unended = False
    boundaries: set[str] = set()
    for i, part in enumerate(msg.walk()):
        for defect in part.defects:
            if isinstance(defect, errors.MissingHeaderBodySeparatorDefect):
                unended, top_unended = True, top_unended or i == 0
            elif isinstance(defect, errors.StartBoundaryNotFoundDefect):
                boundaries.add(part.get_boundary() or "")
    mended = data
    if unended:
        for _ in range(5):  # one line of parameters at a time
            indented = _PARAM_LINE.sub(functools.partial(_indent_param, mended), mended)
            if indented == mended:
                break
            mended = indented
    if top_unended:
        mended = _mend_top_names(mended)
    if boundaries - {""}:  # one pass for all (a pass each cost boundaries times the bytes)
        names = sorted((_raw(b) for b in boundaries - {""}), key=len, reverse=True)
        alternatives = b"|".join(re.escape(name) for name in names)
        ending = re.compile(rb"^(--(?:" + alternatives + rb")(?:--)?)[ \t]+\S[^\r\n]*", re.M)
        mended = ending.sub(rb"\1", mended)
    return None if mended == data else mended


def _indent_param(data: bytes, m: re.Match[bytes]) -> bytes:
    """Indents the line after the match if the line of the match is a header or continued one."""
    line = data[data.rfind(b"\n", 0, m.start()) + 1 : m.start()]
    return m.group() + b"\t" if line[:1] in (b" ", b"\t") or _HEADER_NAME.match(line) else m.group()


def _mend_top_names(data: bytes) -> bytes:
    end = min((i for i in (data.find(b"\n\n"), data.find(b"\r\n\r\n")) if i >= 0), default=-1)
    head = data[: end if end >= 0 else _CR_SCAN_BYTES]
    lines = head.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line[:1] in (b" ", b"\t") or (i == 0 and line.startswith(b"From ")):
            continue
        if (m := _SPACED_NAME.match(line)) is None:
            if _HEADER_NAME.match(line) is None:
                break
            continue
        lines[i] = m.group(1) + line[m.end() - 1 :]
    return b"".join(lines) + data[len(head) :]


def _raw(value: str) -> bytes:
    """The bytes email.parser read as `value` (8-bit bytes are surrogate escapes in it)."""
    return value.encode("utf-8", "surrogateescape")


# --- headers and parameters -----------------------------------------------------------------


def _header(value: str, fallback: str | None, warnings: list[str]) -> str:
    """A header value decoded; `fallback` is the charset for raw 8-bit bytes."""
    return charsets.header(_raw(value), fallback, warnings)


_Params = dict[str, object]  # name -> value (str), or (charset, language, value) for RFC 2231


def _params(part: Message, header: str, warnings: list[str]) -> _Params:
    """A header's parameters; an RFC 2231 form is preferred to the plain form of the name."""
    try:
        found: Sequence[tuple[str, object]] = part.get_params([], header=header)
    except Exception:  # decode_params trips over odd RFC 2231 section numbers
        warnings.append(f"unreadable {header} parameters")
        return {}
    params: _Params = {}
    for key, value in found[1:]:
        key = key.lower()
        if isinstance(value, tuple) or key not in params:
            params[key] = value
    return params


def _param_text(value: object, warnings: list[str]) -> str:
    if isinstance(value, tuple) and len(value) == 3:
        charset, _language, text = value
        try:
            data = str(text).encode("latin-1", "surrogateescape")  # %-decoded bytes as Latin-1
        except UnicodeEncodeError:
            data = _raw(str(text))
        return charsets.decode(data, charset, warnings)
    if isinstance(value, str):
        return charsets.header_text(_raw(value), None, warnings)
    return ""


def _disposition(part: Message, ctype_params: _Params, warnings: list[str]) -> tuple[str, str]:
    """(disposition, decoded file name or "") of a part."""
    disposition = (part.get_content_disposition() or "").split()
    name = _param_text(_params(part, "content-disposition", warnings).get("filename"), warnings)
    name = name or _param_text(ctype_params.get("name"), warnings)
    if "=?" in name:
        name = charsets.encoded_words(name, warnings)
    return disposition[0] if disposition else "", " ".join(name.replace("\x00", " ").split())


def _cte(part: Message) -> str:
    value = part.get("content-transfer-encoding")
    return "" if value is None else value.split(";")[0].strip(" \t\"'").lower()


def _payload(part: Message, warnings: list[str]) -> bytes:
    """A leaf part's payload, transfer-decoded by email.message."""
    cte = _cte(part)
    if cte != (part.get("content-transfer-encoding") or "").lower():  # "base64 " is base64 too
        part.replace_header("content-transfer-encoding", cte)
    seen = len(part.defects)
    data = part.get_payload(decode=True)
    found = {type(d) for d in part.defects[seen:]}
    if errors.InvalidBase64LengthDefect in found and isinstance(data, bytes):
        data = charsets.lenient_base64(data)  # email.message returned it undecoded
    if found & {errors.InvalidBase64PaddingDefect, errors.InvalidBase64LengthDefect}:
        warnings.append("bad base64 padding")
    return data if isinstance(data, bytes) else b""


def _flatten(msg: Message) -> bytes:
    """A parsed message as bytes again (for its size): close to, not always, the original."""
    out = BytesIO()
    try:
        BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(msg)
    except Exception:
        pass
    return out.getvalue()


# --- walking the parts ----------------------------------------------------------------------

_NESTED = frozenset(["message/rfc822", "message/global", "message/news", "message/partial"])
_DEFECT_WARNINGS: dict[type[errors.MessageDefect], str] = {
    errors.MissingHeaderBodySeparatorDefect: "header block not ended",
    errors.FirstHeaderLineIsContinuationDefect: "header block starts with a folded line",
    errors.NoBoundaryInMultipartDefect: "multipart without boundary",
    errors.StartBoundaryNotFoundDefect: "multipart boundary not found",
    errors.CloseBoundaryNotFoundDefect: "multipart not closed",
}


class _Walker:
    """Collects the text and the attachments of a message's parts, in order."""

    def __init__(self, max_chars: int, sizes: bool, warnings: list[str],
                 documents: bool = False) -> None:
        self.texts: list[tuple[str, str]] = []  # (kind: plain, html or meta, text)
        self.attachments: list[tuple[str, str, int]] = []
        self.documents = documents  # read the text inside attachments (core/mime/documents)
        self.document_texts: list[str] = []
        self.document_room = MAX_DOCUMENT_CHARS
        self.room = max_chars
        self.html_room = _HTML_BYTES
        self.sizes = sizes  # describe() wants decoded sizes; extract() skips that work
        self.warnings = warnings
        self._params: dict[int, tuple[Message, _Params]] = {}  # by id(part), part kept alive

    def params(self, part: Message) -> _Params:
        """The part's Content-Type parameters, parsed once."""
        if (known := self._params.get(id(part))) is None:
            known = self._params[id(part)] = part, _params(part, "content-type", self.warnings)
        return known[1]

    def add(self, kind: str, text: str) -> None:
        if len(text) > self.room:
            self.warnings.append("body text truncated")
            text = text[: max(self.room, 0)]
        if text:
            self.texts.append((kind, text))
            self.room -= len(text) + 2  # and the blank line that will join it to the next

    def walk(self, part: Message, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.warnings.append("MIME nesting too deep")
            return
        for defect in part.defects:
            if warning := _DEFECT_WARNINGS.get(type(defect)):
                no_head = warning == "header block not ended" and not part.keys()
                self.warnings.append("no header block" if no_head else warning)
        try:
            self.part(part, depth)
        except Exception as exc:  # only this part is lost
            self.warnings.append(f"MIME part failed: {type(exc).__name__}: {exc}"[:200])

    def part(self, part: Message, depth: int) -> None:
        # Only get_payload(decode=True) for leaves: without it, 8-bit text is decoded with the
        # declared charset, which can raise.
        ctype = part.get_content_type()
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            if ctype in _NESTED:
                self.forwarded(part, ctype, payload, depth)
            elif ctype.startswith("message/"):  # delivery-status, feedback-report...
                self.report(part, ctype, payload)
            else:
                for child in payload:
                    if isinstance(child, Message):
                        self.walk(child, depth + 1)
            return
        if ctype.startswith("multipart/"):
            ctype = "text/plain"  # no usable boundary: what is there is shown as text
        self.leaf(part, ctype)

    def attachment(self, part: Message, ctype: str, params: _Params) -> bool:
        """Lists the part if it is an attachment; whether it is not to be read as text too."""
        disposition, name = _disposition(part, params, self.warnings)
        if disposition != "attachment" and not name:
            return False
        size = 0
        if self.sizes and part.is_multipart():  # a message/* part: its message as bytes
            size = sum(len(_flatten(m)) for m in part.get_payload() if isinstance(m, Message))
        elif self.sizes:
            size = len(_payload(part, self.warnings))
        # the type as email.parser read it: 8-bit bytes in it are surrogate escapes
        self.attachments.append((name, charsets.header_text(_raw(ctype), None, []), size))
        if self.documents and not part.is_multipart() and self.document_room > 0:
            text, warnings = attachment_text(name, ctype, _payload(part, self.warnings))
            self.warnings.extend(warnings)
            # each attachment's name with its text: a search can tell which one matched
            entry = document_entry(name, text)[: self.document_room]
            self.document_texts.append(entry)
            self.document_room -= len(entry) + 1
        # Text explicitly inline (patches sent from Thunderbird) is read in the mail itself.
        return disposition != "inline" or not ctype.startswith("text/")

    def leaf(self, part: Message, ctype: str) -> None:
        params = self.params(part)
        if self.attachment(part, ctype, params):
            return
        maintype = ctype.partition("/")[0]
        if self.room <= 0 or maintype not in ("text", "message"):
            return
        html = ctype == "text/html"
        data = _payload(part, self.warnings)
        if html:  # HTML has more markup than text, and html_to_text is not fast
            if len(data) > self.html_room:
                self.warnings.append(f"HTML indexed from its first {_HTML_BYTES >> 20} MiB")
            data = _cut(data, min(self.room * 16, self.html_room))
            self.html_room -= len(data)
        else:
            data = _cut(data, self.room * 4)
        text = charsets.decode(data, _param_text(params.get("charset"), self.warnings) or None,
                               self.warnings)
        kind = "html" if html else "meta" if maintype == "message" else "plain"
        self.add(kind, html_to_text(text) if html else text)

    def forwarded(
        self, part: Message, ctype: str, payload: list[Message | str], depth: int
    ) -> None:
        """A message/rfc822 part: its From and Subject, then its parts, go in the body."""
        inner = payload[0] if payload else None
        if not isinstance(inner, Message):
            return
        cte = _cte(part)
        if cte in ("base64", "quoted-printable") and not inner.keys():  # wrong, but seen
            inner["Content-Transfer-Encoding"] = cte
            inner = _parse(_payload(inner, self.warnings), self.warnings)
            part.set_payload([inner])
        self.attachment(part, ctype, self.params(part))  # read too
        lines = [
            f"{label}: {_header(value, None, self.warnings)}"
            for label, key in (("From", "from"), ("Subject", "subject"))
            if (value := inner.get(key)) is not None
        ]
        self.add("meta", "\n".join(lines))
        self.walk(inner, depth + 1)

    def report(self, part: Message, ctype: str, payload: list[Message | str]) -> None:
        """message/delivery-status and the like: blocks of fields, shown as they are."""
        params = self.params(part)
        if self.attachment(part, ctype, params):
            return
        charset = _param_text(params.get("charset"), self.warnings) or None
        blocks = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            lines = [f"{k}: {_header(v, charset, self.warnings)}" for k, v in block.items()]
            body = None if block.is_multipart() else block.get_payload(decode=True)
            if isinstance(body, bytes) and body.strip():
                lines.append(charsets.decode(body, charset, self.warnings))
            blocks.append("\n".join(lines))
        self.add("meta", "\n\n".join(blocks))


def _cut(data: bytes, limit: int) -> bytes:
    """At most about `limit` bytes, cut after a line end so no character is split."""
    if len(data) <= limit:
        return data
    newline = data.rfind(b"\n", max(0, limit - 4096), limit)
    return data[: newline + 1 if newline >= 0 else max(limit, 0)]


_Headers = dict[str, list[str]]  # lower-case name -> values, in order
_WANTED = frozenset(["subject", "from", "sender", "to", "cc", "bcc", "date", "message-id"])


HEADER_BYTES = 256 << 10  # the header section read when the text could not be extracted
HEADERS_ONLY = "text not indexed ("  # how the warning of a message indexed so begins


def header_section(raw: bytes, limit: int = HEADER_BYTES) -> bytes:
    """The header section of a message (up to the first empty line), at most `limit` bytes and
    cut at a line's end."""
    head = raw[:limit]
    for blank in (b"\r\n\r\n", b"\n\n"):
        at = head.find(blank)
        if at >= 0:
            return head[:at + len(blank)]
    cut = head.rfind(b"\n")
    return head[:cut + 1] if len(raw) > limit and cut >= 0 else head


DOCUMENT_START = "\x1c"  # before an attachment's name in IndexFields.documents
DOCUMENT_TEXT = "\x1d"  # between its name and its text


def document_entry(name: str, text: str) -> str:
    """One attachment in IndexFields.documents: separators no name or text holds (the tokenizer
    reads them as spaces), the name, the text."""
    clean = name.replace(DOCUMENT_START, " ").replace(DOCUMENT_TEXT, " ")
    return DOCUMENT_START + clean + DOCUMENT_TEXT + text.replace(DOCUMENT_START, " ").replace(
        DOCUMENT_TEXT, " ")


def document_entries(documents: str) -> list[tuple[str, str]]:
    """(name, text) of each attachment in IndexFields.documents; [] for text kept before
    attachments were named in it."""
    if not documents.startswith(DOCUMENT_START):
        return []
    out = []
    for entry in documents.split(DOCUMENT_START)[1:]:
        name, _, text = entry.partition(DOCUMENT_TEXT)
        out.append((name.rstrip("\n"), text.rstrip("\n")))
    return out


def _walk(raw: bytes, max_chars: int, sizes: bool, documents: bool = False
          ) -> tuple[_Headers, _Walker, str | None]:
    """Parse and walk a message; returns its headers, the walker and its declared charset."""
    warnings: list[str] = []
    data = _prepare(raw, warnings)
    walker = _Walker(max_chars, sizes, warnings, documents)
    if b"\x00" in data[:8192] and not _PARSER.parsebytes(data[:8192], headersonly=True).keys():
        warnings.append("binary data, not a message: not indexed")
        return {}, walker, None
    msg = _parse(data, warnings)
    walker.walk(msg, 0)
    headers: _Headers = {}
    for name, value in msg.items():  # one pass: Message.get_all scans all headers every time
        if (key := name.lower()) in _WANTED:
            headers.setdefault(key, []).append(value)
    charset = _param_text(walker.params(msg).get("charset"), warnings)
    return headers, walker, charset or None


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


def extract(raw: bytes, max_body_chars: int = 1_000_000, documents: bool = False
            ) -> IndexFields:
    """The decoded fields to index for one raw message (with `documents`, the text inside its
    attachments too: only where a deadline bounds it, the extraction workers). Never
    raises."""
    try:
        return _extract(raw, max_body_chars, documents)
    except Exception as exc:  # a last resort: the import must go on
        return IndexFields(warnings=[f"extraction failed: {type(exc).__name__}: {exc}"[:200]])


def _extract(raw: bytes, max_body_chars: int, documents: bool = False) -> IndexFields:
    headers, walker, charset = _walk(raw, max_body_chars, sizes=False, documents=documents)
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
        documents="\n".join(walker.document_texts).replace("\x00", " "),
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
            (label, _header(value, charset, warnings).replace("\x00", " "))
            for label, key in _VIEW_HEADERS
            for value in headers.get(key, [])
        ]
        wanted = {"meta", "plain" if any(k == "plain" for k, _ in walker.texts) else "html"}
        texts = [text for kind, text in walker.texts if kind in wanted]
        text = "\n\n".join(texts).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", " ")
        return MessageView(shown, text, walker.attachments, _finish(warnings))
    except Exception as exc:
        return MessageView([], "", [], [f"parsing failed: {type(exc).__name__}: {exc}"[:200]])

"""Bytes in a declared (often wrongly declared) mail charset to text; never raises.

Also header text: raw 8-bit headers and RFC 2047 encoded-words (split by email.header).

Python's codecs know the charsets but not how mail mislabels them: an alias table maps the labels
seen in the wild to the codec that decodes them (x-sjis to CP932, ks_c_5601 to CP949, GB2312 to
GB18030...), each label gets a plan of codecs to try in turn, and ISO-2022-JP with the CP932
(NEC/IBM) extensions that Python's strict codecs refuse is read by moving it to Shift_JIS.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re

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
            except (LookupError, UnicodeError, ValueError):  # 8-bit or NUL in the label too
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


def decode(data: bytes, label: str | None, warnings: list[str]) -> str:
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


def header_text(value: bytes, fallback: str | None, warnings: list[str]) -> str:
    """A header's raw bytes as text: ASCII, raw ISO-2022-JP, RFC 6532 UTF-8, else `fallback`.

    `fallback` is the charset of the message's body, which 8-bit headers are usually in.
    """
    if value.isascii():
        if b"\x1b" in value:
            return decode(value, "iso-2022-jp", warnings)
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return decode(value, fallback, warnings)


def header(value: bytes, fallback: str | None, warnings: list[str]) -> str:
    """A header value as one line of text: raw bytes decoded, then RFC 2047 encoded-words."""
    text = header_text(value, fallback, warnings)
    if "=?" in text:
        text = encoded_words(text, warnings)
    return " ".join(text.split())


_WORD = re.compile(r"=\?([^?\s]*)\?([BbQq])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def encoded_words(text: str, warnings: list[str]) -> str:
    """RFC 2047 encoded-words decoded, in one pass over the text (time linear in its length:
    a header of a million words costs what its bytes cost, not their square, as the standard
    library's decode_header does).

    Adjacent words in one charset are decoded together, so a character split over two words
    survives; white space between two words goes (RFC 2047 6.2); words glued to text or to
    each other are found too; base64 is taken whatever its padding.
    """
    out: list[str] = []
    run: list[bytes] = []  # the payloads of adjacent words in one charset
    run_charset = ""
    pos = 0

    def flush() -> None:
        if run:
            out.append(decode(b"".join(run), run_charset, warnings))
            run.clear()

    for m in _WORD.finditer(text):
        between = text[pos:m.start()]
        charset = m.group(1).partition("*")[0]  # RFC 2231 language
        if between and not (run and between.isspace()):
            flush()
            out.append(between)
        elif run and charset.lower() != run_charset.lower():
            flush()
        payload = _payload(m.group(3), charset)
        if m.group(2) in "Bb":
            try:
                run.append(lenient_base64(payload))
            except binascii.Error:
                warnings.append("bad base64 in encoded-word")
                run.append(b"")
        else:
            run.append(_Q_ESCAPE.sub(lambda q: bytes([int(q.group(1), 16)]),
                                     payload.replace(b"_", b" ")))
        run_charset = charset
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _payload(text: str, charset: str) -> bytes:
    """An encoded-word's text as bytes. It should be ASCII; 8-bit characters that a mailer put
    in it raw were decoded with the header already, so they go back in the word's charset."""
    if text.isascii():
        return text.encode("ascii")
    try:
        return text.encode(charset)
    except (LookupError, UnicodeError, ValueError):  # ValueError: a NUL in the label
        return text.encode("utf-8", "replace")


def lenient_base64(data: bytes) -> bytes:
    """Base64 decoded whatever its padding: a lone last character, which holds no byte, goes."""
    clean = _NOT_BASE64.sub(b"", data)
    clean = clean[: len(clean) - (len(clean) % 4 == 1)]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


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

"""Pure text helpers for indexing: CJK bigram segmentation and HTML-to-text.

parse.py uses html_to_text; the indexer and the search code use cjk_segment and query_tokens.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Han (BMP, extension A, compatibility, extensions B-G), the ideographic marks 々〆〇〻,
# Hiragana and Katakana (with ー and the iteration marks, without the punctuation ゠ and ・),
# Katakana extensions, half-width Katakana (without ･), Bopomofo, and Hangul syllables and jamo.
_CJK_CHARS = (
    "\u1100-\u11ff\u3005-\u3007\u303b\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3100-\u312f\u3131-\u318e\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")
_CJK_LEAD_BYTES = bytes(b in (0xE1, 0xEF, 0xF0) or 0xE3 <= b <= 0xED for b in range(256))
# Half-width kana, combining kana voicing marks and conjoining jamo: NFKC folds them into the
# characters people type, so "ﾃｽﾄ" and "テスト" give the same bigrams.
_NEEDS_NFKC = re.compile("[\u1100-\u11ff\u3099\u309a\uff66-\uff9f\ua960-\ua97f\ud7b0-\ud7ff]")


def _bigrams(run: str) -> str:
    if _NEEDS_NFKC.search(run):
        run = unicodedata.normalize("NFKC", run)
    if len(run) < 2:
        return run
    return " ".join([run[i : i + 2] for i in range(len(run) - 1)])


def _segment_match(m: re.Match[str]) -> str:
    text, start, end = m.string, m.start(), m.end()
    out = _bigrams(m.group())
    # A CJK run glued to Latin letters ("Windows版") would otherwise stay one FTS5 token.
    if start > 0 and not text[start - 1].isspace():
        out = " " + out
    if end < len(text) and not text[end].isspace():
        out += " "
    return out


def _may_have_cjk(text: str) -> bool:
    # A regex scan costs ~6 ns a character; this is ~1. It looks for the UTF-8 lead bytes of
    # the code point blocks that hold CJK (skipping E2, the common punctuation and symbols).
    return text.encode("utf-8", "surrogatepass").translate(_CJK_LEAD_BYTES).find(1) >= 0


def cjk_segment(text: str) -> str:
    """Rewrite each run of CJK characters into space-separated overlapping bigrams.

    FTS5's unicode61 tokenizer keeps a CJK run as one token, so a word inside it could not be
    found. `異常時通知` becomes `異常 常時 時通 通知`; a one-character run stays as it is. A run
    touching non-space text gets a space on that side. Other text is returned unchanged.
    """
    if text.isascii() or not _may_have_cjk(text):
        return text
    return _CJK_RUN.sub(_segment_match, text)


def query_tokens(term: str) -> list[str]:
    """The tokens to search, as one FTS5 phrase, for a user's search term.

    `異常時` gives ["異常", "常時"], matching what cjk_segment indexed. A term that is one CJK
    character gives [that character]: the caller must search it as a prefix (`異*`), since that
    character is indexed inside bigrams such as `異常` (a character that only ends runs is found
    only where it also starts a bigram or stands alone). A term without CJK gives [term].
    """
    if not _CJK_RUN.search(term):
        return [term]
    return cjk_segment(term).split()


# Elements whose content is not visible text. Unclosed script/style/comment hide the rest of the
# document, as in a browser; an unclosed head or title only loses its tag.
_HIDDEN_OPEN = re.compile(r"<(?:(!--)|(script|style|head|title)\b)", re.IGNORECASE)
_HIDDEN_CLOSE = {
    "!--": re.compile(r"--!?>"),
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "head": re.compile(r"</head\s*>|<body\b", re.IGNORECASE),
    "title": re.compile(r"</title\s*>", re.IGNORECASE),
}
_TO_END = frozenset({"!--", "script", "style"})
# Inline tags vanish ("wo<b>rd</b>" is one word), block tags break lines, other tags are spaces;
# "[^<>]*" keeps a stray "<" from swallowing the text after it.
_INLINE_TAG = re.compile(
    r"</?(?:a|abbr|b|big|code|em|font|i|mark|q|s|small|span|strike|strong|sub|sup|tt|u|wbr)"
    r"\b[^<>]*>",
    re.IGNORECASE,
)
_BLOCK_TAG = re.compile(
    r"</?(?:address|article|blockquote|br|center|dd|div|dl|dt|footer|form|h[1-6]|header|hr"
    r"|li|ol|p|pre|section|table|td|th|tr|ul)\b[^<>]*>",
    re.IGNORECASE,
)
_ANY_TAG = re.compile(r"<[a-zA-Z/!?][^<>]*>")
_INVISIBLE = re.compile("[\u00ad\u034f\u200b\u2060\ufeff]")
_HSPACE = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" ?\n\s*")


def _drop_hidden(doc: str) -> str:
    # A loop rather than one regex: "<script>.*?</script>" goes quadratic on unclosed tags.
    kept: list[str] = []
    pos = search = 0
    unclosed: set[str] = set()
    while (m := _HIDDEN_OPEN.search(doc, search)) is not None:
        kind = (m.group(1) or m.group(2)).lower()
        close = None if kind in unclosed else _HIDDEN_CLOSE[kind].search(doc, m.end())
        if close is None:
            if kind in _TO_END:
                kept.append(doc[pos : m.start()])
                return "".join(kept)
            unclosed.add(kind)  # no closer after here means none after any later opener
            search = m.end()  # the tag itself goes with the ordinary tags
            continue
        kept.append(doc[pos : m.start()])
        kept.append(" ")
        keep_body_tag = kind == "head" and not close.group().startswith("</")
        pos = search = close.start() if keep_body_tag else close.end()
    kept.append(doc[pos:])
    return "".join(kept)


def html_to_text(doc: str) -> str:
    """The visible text of an HTML document or fragment; never raises on broken HTML.

    Drops comments and script/style/head/title contents and all tags (block tags become line
    breaks), unescapes entities, and collapses whitespace (runs of blank lines to one newline).
    """
    if "<" in doc:
        doc = _drop_hidden(doc)
        doc = _INLINE_TAG.sub("", doc)
        doc = _BLOCK_TAG.sub("\n", doc)
        doc = _ANY_TAG.sub(" ", doc)
    if "&" in doc:
        doc = html.unescape(doc)
    if not doc.isascii():
        doc = _INVISIBLE.sub("", doc)
    doc = _HSPACE.sub(" ", doc)
    return _NEWLINES.sub("\n", doc).strip()

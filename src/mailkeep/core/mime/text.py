"""HTML to text for indexing (parse.py); CJK segmentation is in cjk.py, with a re-export
here for the extraction code that uses both."""

from __future__ import annotations

import html
import re

from mailkeep.core.mime.cjk import cjk_segment, query_tokens

__all__ = ["cjk_segment", "html_to_text", "query_tokens"]

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

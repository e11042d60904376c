"""A message as the console shows it: decoded headers, its text, its HTML body made harmless,
and its parts (attachments, inline images) to list and to download.

Archived HTML is written by whoever sent the mail. `safe_html` keeps layout and drops the
rest with nh3 (the Rust sanitizer ammonia): no script, style sheet, form, frame, SVG or MathML;
links only to http, https and mailto, opened in a new window without a referrer; `cid:`
images replaced by the message's own inline images as `data:` URIs (a bounded total); remote
images removed unless the reader asked for them; a style attribute that could load anything
(`url(`, `@import`, `expression(`, escapes) dropped whole. The page shows the result in a
sandboxed frame under its own Content-Security-Policy (web/console.py), so each layer holds
on its own. The archived bytes are never changed: this runs at every view.

A message is parsed whole up to VIEW_BYTES (indexing stops at 4 MiB), so that a large
attachment downloads complete; one such large message is parsed at a time, whoever asks. Past
VIEW_BYTES the parts that may have been cut are not listed (the original has them).
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from email.message import Message

import nh3

from mailkeep.core.mime import charsets, parse

IMAGE_TYPES = frozenset(["image/png", "image/jpeg", "image/gif", "image/webp"])
INLINE_BYTES = 5 << 20  # of cid: images put into one message's HTML as data: URIs
HTML_CHARS = 4 << 20  # of HTML sanitized per view
VIEW_BYTES = 64 << 20  # of a message parsed to show it and its parts
VIEW_LINES = 1_500_000  # lines of it, and lines times enclosing boundaries (see parse.py)
VIEW_LINE_CHECKS = 30_000_000
_LARGE = threading.BoundedSemaphore(1)  # messages over parse._PARTIAL_BYTES parsed at once

TAGS = frozenset("""a abbr address b bdi bdo big blockquote br caption center cite code col
colgroup dd del dfn div dl dt em font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q rp
rt ruby s samp small span strike strong sub sup table tbody td tfoot th thead time tr tt u ul
var wbr""".split())
_COMMON = {"align", "bgcolor", "border", "class", "color", "dir", "height", "lang", "style",
           "title", "valign", "width"}
ATTRIBUTES = {
    "*": _COMMON,
    "a": {"href", "name"},
    "img": {"src", "alt"},
    "font": {"face", "size"},
    "table": {"cellpadding", "cellspacing", "summary"},
    "td": {"colspan", "rowspan", "nowrap"},
    "th": {"colspan", "rowspan", "nowrap", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "li": {"value"},
    "time": {"datetime"},
}
_RISKY_STYLE = re.compile(r"url\s*\(|@import|expression\s*\(|\\|behavior|-moz-binding|image-set"
                          r"|image\s*\(|src\s*\(", re.IGNORECASE)
_CID_SRC = re.compile(r'<img src="cid:([^"]*)"')
MAX_DEPTH = 400  # elements nested in each other: sanitizing costs the square of the depth
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
# elements that hold no others, or that the next of their kind closes: they add no depth
_FLAT = frozenset("""area base br col embed hr img input link meta param source track wbr p li
td th tr dd dt option thead tbody tfoot colgroup""".split())


def nesting(html: str) -> int:
    """How deep elements nest, about (one pass over the tags; unclosed ones count)."""
    depth = deepest = 0
    for m in _TAG.finditer(html):
        if m.group(2).lower() in _FLAT:
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


@dataclass
class Part:
    index: int  # its place among the message's leaf parts, for part_bytes()
    name: str  # decoded file name, "" if it has none
    content_type: str
    size: int  # decoded bytes
    content_id: str = ""  # without angle brackets
    attachment: bool = True  # listed as an attachment (else an inline image only)


@dataclass
class ConsoleView:
    headers: list[tuple[str, str]]
    text: str
    html: str | None  # the first HTML body part, decoded (not yet sanitized)
    parts: list[Part]
    warnings: list[str] = field(default_factory=list)
    leaves: list[tuple[Part, Message]] = field(default_factory=list, repr=False)


class _ViewWalker(parse._Walker):
    """The walker of `mailkeep show`, also keeping the HTML source and every leaf part."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.html: str | None = None
        self.leaves: list[tuple[Part, Message]] = []

    def leaf(self, part: Message, ctype: str) -> None:
        params = self.params(part)
        disposition, name = parse._disposition(part, params, self.warnings)
        cid = (part.get("content-id") or "").strip().strip("<>").strip()
        listed = disposition == "attachment" or bool(name)
        if listed or (cid and ctype in IMAGE_TYPES):
            data = parse._payload(part, self.warnings)
            self.leaves.append((Part(len(self.leaves), name, ctype, len(data), cid,
                                     listed), part))
        if ctype == "text/html" and not listed and self.html is None:
            data = parse._payload(part, self.warnings)[: HTML_CHARS]
            charset = parse._param_text(params.get("charset"), self.warnings) or None
            self.html = charsets.decode(data, charset, self.warnings)
        super().leaf(part, ctype)


def _walked(raw: bytes) -> tuple[list[tuple[str, str]], _ViewWalker]:
    if len(raw) <= parse._PARTIAL_BYTES:
        return _walk_view(raw)
    with _LARGE:
        return _walk_view(raw)


def _walk_view(raw: bytes) -> tuple[list[tuple[str, str]], _ViewWalker]:
    warnings: list[str] = []
    data = parse._prepare(raw, warnings, VIEW_BYTES, VIEW_LINES, VIEW_LINE_CHECKS,
                          "the parts after that are not shown (the original has them)")
    walker = _ViewWalker(parse._VIEW_TEXT_CHARS, True, warnings)
    msg = parse._parse(data, warnings)
    walker.walk(msg, 0)
    if len(data) < len(raw) and walker.leaves:
        walker.leaves.pop()  # it may have been cut: not offered as if it were whole
    found: dict[str, list[str]] = {}
    for name, value in msg.items():
        found.setdefault(name.lower(), []).append(value)
    charset = parse._param_text(walker.params(msg).get("charset"), warnings) or None
    headers = [(label, parse._header(value, charset, warnings).replace("\x00", " "))
               for label, key in parse._VIEW_HEADERS for value in found.get(key, [])]
    return headers, walker


def view(raw: bytes) -> ConsoleView:
    """What the console shows of a message. Never raises."""
    try:
        headers, walker = _walked(raw)
    except Exception as exc:
        return ConsoleView([], "", None, [], [f"parsing failed: {type(exc).__name__}"])
    wanted = {"meta", "plain" if any(k == "plain" for k, _ in walker.texts) else "html"}
    text = "\n\n".join(t for kind, t in walker.texts if kind in wanted)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", " ")
    return ConsoleView(headers, text, walker.html, [p for p, _ in walker.leaves],
                       parse._finish(walker.warnings), walker.leaves)


def part_bytes(raw: bytes, index: int) -> tuple[Part, bytes] | None:
    """One leaf part (as view() numbered it) and its decoded bytes; None if there is none."""
    try:
        _headers, walker = _walked(raw)
    except Exception:
        return None
    if not 0 <= index < len(walker.leaves):
        return None
    part, message = walker.leaves[index]
    return part, parse._payload(message, [])


def safe_html(raw: bytes, html: str, remote_images: bool, shown: ConsoleView | None = None
              ) -> str:
    """The HTML body of `raw` with nothing that can run or reach out (see above). A body
    nested deeper than MAX_DEPTH is shown as its text (its sanitizing would take minutes).
    `shown`: view(raw), whose parts are then not parsed again."""
    html = html[:HTML_CHARS]
    if nesting(html) > MAX_DEPTH:
        from html import escape

        from mailkeep.core.mime.text import html_to_text

        return (f"<p><em>This HTML body nests more than {MAX_DEPTH} elements deep: it is "
                f"shown as text.</em></p><pre>{escape(html_to_text(html))}</pre>")
    inline: dict[str, str] = {}
    budget = INLINE_BYTES
    try:
        leaves = shown.leaves if shown is not None else _walked(raw)[1].leaves
        for part, message in leaves:
            if part.content_id and part.content_type in IMAGE_TYPES and part.size <= budget:
                data = parse._payload(message, [])
                budget -= len(data)
                inline[part.content_id.lower()] = (
                    f"data:{part.content_type};base64,{base64.b64encode(data).decode()}")
    except Exception:
        inline = {}

    def attribute(tag: str, name: str, value: str) -> str | None:
        if name == "style" and _RISKY_STYLE.search(value):
            return None
        if tag == "img" and name == "src":
            scheme = value.strip().partition(":")[0].lower()
            if scheme == "cid" or (remote_images and scheme == "https"):
                return value
            return None
        return value

    cleaned = nh3.clean(
        html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto", "cid"}, link_rel="noopener noreferrer",
        strip_comments=True, attribute_filter=attribute,
        set_tag_attribute_values={"a": {"target": "_blank"}})

    room = INLINE_BYTES  # in the output: an image named a thousand times counts a thousand

    def embed(m: re.Match[str]) -> str:
        nonlocal room
        found = inline.get(m.group(1).strip().lower())
        if found is None or len(found) > room:
            return '<img alt=""'
        room -= len(found)
        return f'<img src="{found}"'

    return _CID_SRC.sub(embed, cleaned)

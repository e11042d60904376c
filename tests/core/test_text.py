"""CJK bigrams (checked against SQLite's own unicode61 tokenizer) and HTML-to-text."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest

from mailkeep.core.mime import text
from mailkeep.core.mime.text import cjk_segment, html_to_text, query_tokens

TOKENIZER = "'unicode61 remove_diacritics 2'"  # as in mailkeep's index


def fts_tokens(text: str) -> list[str]:
    """The tokens FTS5 stores for `text`, with mailkeep's tokenizer settings."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize={TOKENIZER})")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        db.execute("INSERT INTO t VALUES (?)", (text,))
        return [row[0] for row in db.execute("SELECT term FROM v ORDER BY offset")]


def fts_match(text: str, query: str) -> bool:
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize={TOKENIZER})")
        db.execute("INSERT INTO t VALUES (?)", (cjk_segment(text),))
        return bool(db.execute("SELECT count(*) FROM t WHERE t MATCH ?", (query,)).fetchone()[0])


def phrase(term: str) -> str:
    return '"' + " ".join(query_tokens(term)) + '"'


def test_japanese_run_becomes_bigrams() -> None:
    assert cjk_segment("異常時通知") == "異常 常時 時通 通知"
    segmented = cjk_segment("異常時通知メール")
    assert "異常" in segmented.split()
    assert "異常" in fts_tokens(segmented)
    assert "ール" in segmented.split()  # the long-vowel mark stays inside the run


def test_latin_words_stay_intact() -> None:
    assert cjk_segment("Error 異常 report") == "Error 異常 report"
    assert fts_tokens(cjk_segment("Error異常時report")) == ["error", "異常", "常時", "report"]
    assert cjk_segment("plain ASCII text") == "plain ASCII text"
    assert cjk_segment("déjà vu — “quotes” €5") == "déjà vu — “quotes” €5"


def test_korean_chinese_and_marks() -> None:
    assert cjk_segment("한국어 텍스트") == "한국 국어 텍스 스트"
    assert cjk_segment("中文分词") == "中文 文分 分词"
    assert cjk_segment("人々") == "人々"
    assert cjk_segment("時々刻々") == "時々 々刻 刻々"
    assert cjk_segment("a 字 b") == "a 字 b"  # a one-character run stays as it is


def test_half_width_katakana_matches_full_width() -> None:
    assert cjk_segment("ﾃｽﾄ") == cjk_segment("テスト") == "テス スト"
    assert query_tokens("ﾃｽﾄ") == ["テス", "スト"]


def test_query_tokens() -> None:
    assert query_tokens("異常時") == ["異常", "常時"]
    assert query_tokens("異") == ["異"]
    assert query_tokens("torvalds") == ["torvalds"]
    assert query_tokens("café") == ["café"]


def test_queries_find_words_inside_runs() -> None:
    text = "件名: 異常時通知メール from monitor"
    assert fts_match(text, phrase("異常"))
    assert fts_match(text, phrase("時通知"))
    assert fts_match(text, phrase("通知メール"))
    assert not fts_match(text, phrase("通知異常"))
    assert fts_match(text, "異*")  # one character: a prefix query, as query_tokens documents
    assert fts_match(text, "monitor")
    assert fts_match("서버 장애 알림", phrase("장애"))


def test_text_without_cjk_is_returned_as_is() -> None:
    # The quick check returns the very same object: no regex pass over the text.
    text = "Ünïcode but no CJK, with “typographic” punctuation, emoji 🙂 and Ελληνικά. " * 1000
    assert cjk_segment(text) is text


def test_html_to_text_basics() -> None:
    doc = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<p>Hello&nbsp;<b>wor</b>ld &amp; <a href='x'>friends</a></p><!-- hidden -->"
        "<script>var x = '<p>no</p>';</script><div>caf&eacute; &lt;tag&gt; &#x263A;</div>"
        "</body></html>"
    )
    assert html_to_text(doc) == "Hello world & friends\ncafé <tag> ☺"


@pytest.mark.parametrize(
    "doc",
    [
        "<p>unclosed <script> alert(1)",
        "<!-- never closed",
        "a < b > c",
        "<<<>>>&&&;#",
        "<div class='x' " * 1000,
        "<title>only a title",
        "&#xD800; &#0; &bogus; &#99999999;",
        "",
    ],
)
def test_html_to_text_survives_broken_html(doc: str) -> None:
    assert isinstance(html_to_text(doc), str)


class _CountingSearch:
    """A closing-tag pattern of text.py that counts the searches finding nothing."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.misses = 0

    def search(self, doc: str, pos: int = 0) -> re.Match[str] | None:
        found = self.pattern.search(doc, pos)
        self.misses += found is None
        return found


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("<script>" * 5_000 + "x" * 100, ""),
        ("<style>" * 5_000 + "x" * 100, ""),
        ("<!--" * 5_000 + "x" * 100, ""),
        ("<head>" * 5_000 + "x" * 100, "x" * 100),
        ("<title>" * 5_000 + "x" * 100, "x" * 100),
        ("<head><title>" * 2_000 + "x" * 100 + "<script>", "x" * 100),
    ],
)
def test_html_to_text_looks_for_a_missing_closer_once(
    doc: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A search for a closing tag that is not there runs to the end of the document; one per
    # unclosed opener made this quadratic (minutes). Counted, not timed: bench/ has the timings.
    counters = [_CountingSearch(pattern) for pattern in text._HIDDEN_CLOSE.values()]
    for kind, counter in zip(list(text._HIDDEN_CLOSE), counters, strict=True):
        monkeypatch.setitem(text._HIDDEN_CLOSE, kind, counter)
    assert html_to_text(doc) == expected
    assert all(counter.misses <= 1 for counter in counters)


def test_html_to_text_keeps_text_of_unclosed_head() -> None:
    assert html_to_text("<head><title>x</title><body>visible") == "visible"
    assert html_to_text("<head><meta charset=utf-8>visible") == "visible"
    assert html_to_text("<HEAD><TITLE>x</TITLE><BODY>Visible</BODY>") == "Visible"

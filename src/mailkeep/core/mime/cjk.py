"""CJK bigram segmentation: what the indexer writes (cjk_segment) and what a search looks
for (query_tokens), so that a word inside a run of Chinese, Japanese or Korean text is found."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

# Han (BMP, extension A, compatibility, extensions B-G), the ideographic marks 々〆〇〻,
# Hiragana and Katakana (with ー and the iteration marks, without the punctuation ゠ and ・),
# Katakana extensions, half-width Katakana (without ･), Bopomofo, and Hangul syllables and jamo.
_CJK_CHARS = (
    "\u1100-\u11ff\u3005-\u3007\u303b\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3100-\u312f\u3131-\u318e\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
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


@cache
def _cjk_run() -> re.Pattern[str]:
    # compiled when first needed (~2 ms): a search for Latin words never needs it
    return re.compile(f"[{_CJK_CHARS}]+")


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
    return _cjk_run().sub(_segment_match, text)


def query_tokens(term: str) -> list[str]:
    """The tokens to search, as one FTS5 phrase, for a user's search term.

    `異常時` gives ["異常", "常時"], matching what cjk_segment indexed. A term that is one CJK
    character gives [that character]: the caller must search it as a prefix (`異*`), since that
    character is indexed inside bigrams such as `異常` (a character that only ends runs is found
    only where it also starts a bigram or stands alone). A term without CJK gives [term].
    """
    if term.isascii() or not _may_have_cjk(term) or not _cjk_run().search(term):
        return [term]
    return cjk_segment(term).split()

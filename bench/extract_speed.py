"""Time parse.extract() per message, and html_to_text on hostile HTML; prints figures.

Usage: .venv/bin/python bench/extract_speed.py [MBOX_GZ] [COUNT]. Times extract on the first
messages of a linux-mips mbox (mboxrd unescaping is skipped: it does not change the cost), then
on the multipart messages of the tricky corpus (a multipart-heavy sample: top-level Content-Type
multipart/*), then html_to_text on documents that once made it quadratic, a Subject of ever more
encoded-words (once quadratic too), and cjk_segment on the extracted fields, for the indexer.
"""

from __future__ import annotations

import gzip
import statistics
import sys
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path

from mailkeep.core.mime.parse import extract
from mailkeep.core.mime.text import cjk_segment, html_to_text

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_MBOX = CORPUS / "bulk" / "linux-mips" / "linux-mips-2005.mbox.gz"
TRICKY = CORPUS / "tricky"
SEPARATOR = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"
HOSTILE_HTML = {
    "<script> x 50,000": "<script>" * 50_000,
    "<head> x 50,000": "<head>" * 50_000,
    "<title> x 50,000": "<title>" * 50_000,
    "<!-- x 50,000": "<!--" * 50_000,
    "'<' x 1,000,000": "<" * 1_000_000,
}


def load(path: Path, count: int) -> list[bytes]:
    with gzip.open(path) as f:
        data = f.read()
    return [m for m in data.split(SEPARATOR) if m.strip()][:count]


def multipart_sample() -> list[bytes]:
    """The tricky corpus files whose top-level Content-Type is multipart/*."""
    parser = BytesParser(policy=policy.compat32)
    sample = []
    for path in sorted(p for p in TRICKY.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        if parser.parsebytes(raw, headersonly=True).get_content_maintype() == "multipart":
            sample.append(raw)
    return sample


def timed(name: str, messages: list[bytes], run: Callable[[bytes], object]) -> None:
    for m in messages[:50]:  # warm-up: codec imports, regex and lru caches
        run(m)
    rounds = []
    for _ in range(3):
        times = []
        for m in messages:
            start = time.perf_counter()
            run(m)
            times.append(time.perf_counter() - start)
        rounds.append(times)
    best = min(rounds, key=sum)
    best.sort()
    mean, median = sum(best) / len(best), best[len(best) // 2]
    p99, worst = best[int(len(best) * 0.99)], best[-1]
    print(
        f"{name}: mean {mean * 1e6:.0f} us, median {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us,"
        f" max {worst * 1e3:.1f} ms (best of {len(rounds)} rounds)"
    )


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MBOX
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    messages = load(path, count)
    sizes = [len(m) for m in messages]
    print(
        f"{path.name}: {len(messages)} messages, mean {statistics.mean(sizes):.0f} B, "
        f"median {statistics.median(sizes):.0f} B"
    )
    timed("extract", messages, extract)
    if TRICKY.is_dir():
        sample = multipart_sample()
        sizes = [len(m) for m in sample]
        print(
            f"tricky multipart sample: {len(sample)} messages, mean {statistics.mean(sizes):.0f} B,"
            f" median {statistics.median(sizes):.0f} B"
        )
        timed("extract", sample, extract)
        small = [m for m in sample if len(m) < 100_000]
        timed(f"extract, the {len(small)} under 100 kB", small, extract)
    for name, doc in HOSTILE_HTML.items():
        start = time.perf_counter()
        html_to_text(doc + "x" * 100_000)
        print(f"html_to_text {name} + 100,000 x: {(time.perf_counter() - start) * 1e3:.0f} ms")
    # A Subject of n encoded-words folded over n lines, as a hostile sender journals it: the
    # time should grow as n does (linear), not as n squared.
    last = None
    for words in (10_000, 20_000, 40_000, 80_000):
        raw = ("From: a@example.org\r\nSubject: " + "\r\n ".join(["=?utf-8?q?a?="] * words)
               + "\r\n\r\nbody\r\n").encode()
        start = time.perf_counter()
        extract(raw)
        took = time.perf_counter() - start
        ratio = f" ({took / last:.1f}x the half)" if last else ""
        print(f"extract, Subject of {words:,} encoded-words ({len(raw) / 1e6:.2f} MB): "
              f"{took * 1e3:.0f} ms{ratio}")
        last = took
    fields = [extract(m) for m in messages]
    start = time.perf_counter()
    for f in fields:
        for text in (f.subject, f.sender, f.recipients, f.body, f.attachments):
            cjk_segment(text)
    per = (time.perf_counter() - start) / len(fields)
    print(f"cjk_segment over the five text fields: mean {per * 1e6:.1f} us per message")


if __name__ == "__main__":
    main()

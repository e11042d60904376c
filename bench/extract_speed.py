"""Time parse.extract() per message on the first messages of a linux-mips mbox; prints figures.

Usage: .venv/bin/python bench/extract_speed.py [MBOX_GZ] [COUNT]. mboxrd unescaping is skipped:
it does not change the cost. Also times cjk_segment on the extracted fields, for the indexer.
"""

from __future__ import annotations

import gzip
import statistics
import sys
import time
from pathlib import Path

from mailkeep.core.parse import extract
from mailkeep.core.text import cjk_segment

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DEFAULT_MBOX = CORPUS / "bulk" / "linux-mips" / "linux-mips-2005.mbox.gz"
SEPARATOR = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"


def load(path: Path, count: int) -> list[bytes]:
    with gzip.open(path) as f:
        data = f.read()
    return [m for m in data.split(SEPARATOR) if m.strip()][:count]


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MBOX
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    messages = load(path, count)
    sizes = [len(m) for m in messages]
    print(
        f"{path.name}: {len(messages)} messages, mean {statistics.mean(sizes):.0f} B, "
        f"median {statistics.median(sizes):.0f} B"
    )
    for m in messages[:50]:  # warm-up: codec imports, regex and lru caches
        extract(m)
    rounds = []
    for _ in range(3):
        times = []
        for m in messages:
            start = time.perf_counter()
            extract(m)
            times.append(time.perf_counter() - start)
        rounds.append(times)
    best = min(rounds, key=sum)
    best.sort()
    mean, median = sum(best) / len(best), best[len(best) // 2]
    p99, worst = best[int(len(best) * 0.99)], best[-1]
    print(
        f"extract: mean {mean * 1e6:.0f} us, median {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us,"
        f" max {worst * 1e3:.1f} ms (best of {len(rounds)} rounds)"
    )
    fields = [extract(m) for m in messages]
    start = time.perf_counter()
    for f in fields:
        for text in (f.subject, f.sender, f.recipients, f.body, f.attachments):
            cjk_segment(text)
    per = (time.perf_counter() - start) / len(fields)
    print(f"cjk_segment over the five text fields: mean {per * 1e6:.1f} us per message")


if __name__ == "__main__":
    main()

"""Time per byte of parse.extract() (and describe()) on hostile inputs of growing size.

Usage: .venv/bin/python bench/mime_fuzz.py [--only WORD] [--no-describe]

Each shape is built at size n, 2n, 4n and 8n; a line gives the times at n and 8n, the time per
byte at 8n, and the ratio of each size's time to the half size's: about 2.0 is linear, 4.0
quadratic. Shapes whose caps apply (parse.py bounds the lines parsed, the MIME depth walked and
the bytes of HTML) flatten once the cap is reached; the ratio then falls below 2. For scale,
the first line is ordinary mail: the linux-mips list of 1996. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import re
import time
from collections.abc import Callable
from pathlib import Path

from mailkeep.core.mime.parse import describe, extract

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ORDINARY = CORPUS / "bulk" / "linux-mips" / "linux-mips-1996.mbox.gz"


def fwd(inner: bytes) -> bytes:
    """`inner` as a forwarded message: an attachment of type message/rfc822."""
    return (b"Subject: fwd\nContent-Type: multipart/mixed; boundary=o\n\n--o\n"
            b"Content-Type: message/rfc822\nContent-Disposition: attachment\n\n"
            + inner + b"\n\nforwarded body\n--o--\n")


def nested(depth: int, name: bytes = b"boundary", body_lines: int = 0) -> bytes:
    opens = b"".join(b"Content-Type: multipart/mixed; %s=b%d\n\n--b%d\n" % (name, i, i)
                     for i in range(depth))
    closes = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return b"Subject: deep\n" + opens + b"\ntext\n" + b"line\n" * body_lines + closes


Shape = tuple[str, int, Callable[[int], bytes]]  # name, n, n -> message
SHAPES: list[Shape] = [
    ("encoded-words in one Subject, folded", 10_000,
     lambda n: b"Subject: " + b"\r\n ".join([b"=?utf-8?q?caf=C3=A9?="] * n) + b"\r\n\r\nx"),
    ("encoded-words glued, base64, 3 charsets", 10_000,
     lambda n: b"Subject: " + b"".join([b"=?utf-8?b?w6k=?=", b"=?iso-8859-1?q?=E9?=",
                                        b"=?iso-2022-jp?b?GyRCJCIbKEI=?="] * (n // 3)) + b"\n\nx"),
    ("header lines", 5_000,
     lambda n: b"".join(b"X-Header-%d: value %d\n" % (i, i) for i in range(n)) + b"\nbody\n"),
    ("one header folded over many lines", 10_000,
     lambda n: b"Subject: start\n" + b" more words\n" * n + b"\nbody\n"),
    ("long header line, no space", 256_000,
     lambda n: b"Subject: " + b"x" * n + b"\n\nbody\n"),
    ("nested multiparts, depth n", 100, lambda n: nested(n)),
    ("nested multiparts, depth n, 100n lines in", 50, lambda n: nested(n, body_lines=100 * n)),
    ("same, BoUnDaRy in mixed case", 50, lambda n: nested(n, b"BoUnDaRy", body_lines=100 * n)),
    ("nested message/rfc822 (depth n)", 25,
     lambda n: b"Content-Type: message/rfc822\n\n" * n + b"Subject: x\n\n" + b"line\n" * 1_000),
    ("one long boundary, never found", 50_000,
     lambda n: b"Content-Type: multipart/mixed; boundary=" + b"x" * n + b"\n\n--y\n\nbody\n"),
    ("parts in one multipart", 2_500,
     lambda n: b"Content-Type: multipart/mixed; boundary=o\n\n"
     + b"--o\nContent-Type: text/plain\n\npart\n" * n + b"--o--\n"),
    ("multiparts, text after their delimiters", 100,
     lambda n: b"Content-Type: multipart/mixed; boundary=o\n\n" + b"".join(
         b"--o\nContent-Type: multipart/mixed; boundary=b%d\n\n--b%d junk\n\n%s\n--b%d--\n"
         % (i, i, b"x" * 1_000, i) for i in range(n)) + b"--o--\n"),
    ("delivery-status blocks", 5_000,
     lambda n: b"Content-Type: message/delivery-status\n\n" + b"Action: failed\n\n" * n),
    ("delivery-status, blank lines", 10_000,
     lambda n: b"Content-Type: message/delivery-status\n\n" + b"\n" * n),
    ("long body line", 256_000, lambda n: b"Subject: x\n\n" + b"word " * (n // 5)),
    ("HTML with many tags", 4_000,
     lambda n: b"Content-Type: text/html\n\n"
     + b"<div class=x><span>a</span> <b>bold</b> <a href='y'>link</a>&amp;</div>\n" * n),
    ("HTML, unclosed openers", 20_000,
     lambda n: b"Content-Type: text/html\n\n" + b"<script <!-- <title <a " * n),
    ("base64 garbage", 256_000,
     lambda n: b"Content-Transfer-Encoding: base64\n\n" + b"!@#$%^&*()QUJD====\n" * (n // 19)),
    ("quoted-printable garbage", 256_000,
     lambda n: b"Content-Transfer-Encoding: quoted-printable\n\n" + b"=Z=\n=3D=C3=\n" * (n // 12)),
    ("quoted semicolons in a parameter", 10_000,
     lambda n: b'Content-Type: text/plain; name="' + b";" * n + b'"\n\nx\n'),
    ("parameters", 10_000, lambda n: b"Content-Type: text/plain" + b"; a=b" * n + b"\n\nx\n"),
    ("RFC 2231 sections", 5_000,
     lambda n: b"Content-Type: text/plain" + b"".join(b"; name*%d*=a" % i for i in range(n))
     + b"\n\nx\n"),
    ("forwarded message, long header of words", 4_000,
     lambda n: fwd(b"Subject: " + b"word " * n + b"\nTo: " + b"a@example.org, " * (n // 4))),
]


def seconds(run: Callable[[], object]) -> float:
    """The best of three timings, each the mean of enough calls to take about 50 ms. The re
    module's cache is emptied before each call: email.parser and parse.py compile patterns from
    a message's boundaries, and real mail does not repeat them."""
    re.purge()
    start = time.perf_counter()
    run()  # warm-up: codec imports, caches of charset labels
    once = time.perf_counter() - start
    calls = max(1, int(0.05 / max(once, 1e-6)))
    best = once
    for _ in range(3):
        took = 0.0
        for _ in range(calls):
            re.purge()
            start = time.perf_counter()
            run()
            took += time.perf_counter() - start
        best = min(best, took / calls)
    return best


def size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def duration(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 0.1 else f"{t * 1e3:,.0f} ms"


def ordinary() -> None:
    with gzip.open(ORDINARY) as fh:
        data = fh.read()
    messages = [m for m in data.split(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n") if m.strip()]
    took = sum(seconds(functools.partial(extract, m)) for m in messages[:200])
    total = sum(len(m) for m in messages[:200])
    print(f"ordinary mail ({ORDINARY.name}, first 200 messages, {size(total)}): "
          f"{took / total * 1e6:.3f} us/B")


def row(name: str, n: int, build: Callable[[int], bytes], run: Callable[[bytes], object]
        ) -> str:
    sizes, times = [], []
    for k in (1, 2, 4, 8):
        raw = build(n * k)
        sizes.append(len(raw))
        times.append(seconds(functools.partial(run, raw)))
    ratios = " ".join(f"{b / a:4.1f}" for a, b in zip(times, times[1:], strict=False))
    return (f"{name:42} {size(sizes[0]):>7} -> {size(sizes[-1]):>7}  {duration(times[0]):>9}"
            f"  {duration(times[-1]):>9}  {times[-1] / sizes[-1] * 1e6:7.3f}   {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only the shapes whose name holds this word")
    parser.add_argument("--no-describe", action="store_true", help="time extract() only")
    args = parser.parse_args()
    shapes = [s for s in SHAPES if not args.only or args.only.lower() in s[0].lower()]
    ordinary()
    runs: list[tuple[str, Callable[[bytes], object]]] = [("extract", extract)]
    if not args.no_describe:
        runs.append(("describe", describe))
    for label, run in runs:
        print(f"\n{label}()")
        print(f"{'shape':42} {'size n -> 8n':>18}  {'time at n':>9}  {'at 8n':>9}  "
              f"{'us/B 8n':>7}   ratio per doubling (2.0 = linear)")
        for name, n, build in shapes:
            print(row(name, n, build, run), flush=True)


if __name__ == "__main__":
    main()

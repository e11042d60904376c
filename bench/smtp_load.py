"""SMTP journal receiver load: many concurrent SMTP clients journal real messages to a running
`mailkeep serve --smtp-port`; prints messages/s, latency to the 250 (median, p95) and whether
every acknowledged message is in the archive. Prints figures; asserts nothing.

    .venv/bin/python bench/smtp_load.py [--clients 32] [--messages 5000]

Messages are taken from the bulk corpus (linux-mips, the first year files) when it is there,
else generated at about 4 KB each.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import mailbox
import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAILKEEP = str(Path(sys.executable).with_name("mailkeep"))
BULK = ROOT.parent / "shared" / "corpus" / "bulk" / "linux-mips"


TARGET_RATE = 600  # messages/s, in every run (the speed issue)
TARGET_P95_MS = 100.0

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def corpus(n: int, tmp: Path) -> list[bytes]:
    out: list[bytes] = []
    for gz in sorted(BULK.glob("*.mbox.gz")) if BULK.is_dir() else []:
        plain = tmp / gz.stem
        plain.write_bytes(gzip.open(gz).read())
        for msg in mailbox.mbox(str(plain)):
            out.append(msg.as_bytes().replace(b"\n", b"\r\n"))
            if len(out) >= n:
                return out
    i = len(out)
    while len(out) < n:
        out.append((f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: load {i}\r\n"
                     f"Message-ID: <l{i}@example.org>\r\n\r\n" + "word " * 800).encode())
        i += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--messages", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        msgs = corpus(args.messages, tmp)
        sizes = [len(m) for m in msgs]
        data = tmp / "data"
        port, smtp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKEEP_")}
        proc = subprocess.Popen([MAILKEEP, "--data", str(data), "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--smtp-port", str(smtp_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", smtp_port), 1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            latencies: list[float] = []
            acked: set[str] = set()
            lock = threading.Lock()
            todo = list(enumerate(msgs))

            def client() -> None:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
                    while True:
                        with lock:
                            if not todo:
                                return
                            _i, raw = todo.pop()
                        t0 = time.perf_counter()
                        smtp.sendmail("mta@example.org", ["journal@example.org"], raw)
                        dt = time.perf_counter() - t0
                        with lock:
                            latencies.append(dt)
                            acked.add(hashlib.sha256(raw).hexdigest())

            start = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        from mailkeep.core.archive import Archive

        with Archive(data) as archive:
            present = set()
            for _rec, store in archive.readable_stores():
                for (n,) in store.catalog.conn.execute("SELECT number FROM entries"):
                    present.add(hashlib.sha256(store.read(n)).hexdigest())
        latencies.sort()
        rate = len(latencies) / seconds
        kind = "corpus" if BULK.is_dir() else "generated"
        print(f"machine: {os.cpu_count()} cores; {len(msgs)} messages, median size "
              f"{statistics.median(sizes) / 1024:.1f} KB ({kind})")
        print(f"{args.clients} concurrent SMTP clients, one connection each, to "
              f"`mailkeep serve --smtp-port`:")
        p95 = latencies[int(0.95 * len(latencies))] * 1000
        print(f"  {len(latencies)} messages acknowledged in {seconds:.1f} s: {rate:,.0f} "
              f"messages/s; target >= {TARGET_RATE}/s: "
              f"{'PASS' if rate >= TARGET_RATE else 'MISS'}")
        print(f"  latency to the 250: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"p95 {p95:.1f} ms; target p95 < {TARGET_P95_MS:.0f} ms: "
              f"{'PASS' if p95 < TARGET_P95_MS else 'MISS'}")
        distinct = len({hashlib.sha256(m).hexdigest() for m in msgs})
        print(f"  acknowledged and in the archive: {len(acked & present)} of {len(acked)} "
              f"distinct ({distinct} distinct sent); lost: {len(acked - present)}")


if __name__ == "__main__":
    main()

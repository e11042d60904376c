"""Does one sender's costly message hold up everyone else's? A running `mailkeep serve` takes
ordinary mail from a few SMTP clients, first alone, then while hostile clients send, over and
over, messages that are costly to read: a Subject of 1.6 MB of RFC 2047 encoded words folded
over 100,000 lines, and a message of 20,000 small MIME parts. Prints the ordinary messages'
latency to the 250 (median, p95, max) in both phases and their ratio, and how long the hostile
ones took. Prints figures; asserts nothing.

    .venv/bin/python bench/journal_stall.py [--clients 4] [--messages 400] [--hostile 2]
"""

from __future__ import annotations

import argparse
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

MAILKEEP = str(Path(sys.executable).with_name("mailkeep"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ordinary(i: int) -> bytes:
    return (f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: ordinary {i}\r\n"
            f"Message-ID: <o{i}@example.org>\r\n\r\n" + "word " * 800).encode()


def encoded_subject(i: int) -> bytes:
    return (f"From: x{i}@example.net\r\nTo: b@example.org\r\nMessage-ID: <h{i}@example.net>\r\n"
            "Subject: ").encode() + b"\r\n ".join([b"=?utf-8?q?a?="] * 100_000) + (
        b"\r\n\r\nhello\r\n")


def many_parts(i: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nwords in a part\r\n"
    return (f"From: y{i}@example.net\r\nTo: b@example.org\r\nMessage-ID: <p{i}@example.net>\r\n"
            "Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            ).encode() + part * 20_000 + b"--b--\r\n"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def phase(port: int, clients: int, messages: int, first: int,
          hostile: int) -> tuple[list[float], list[float]]:
    """Ordinary latencies (s) of `messages` spread over `clients`, while `hostile` clients send
    costly messages until the ordinary ones are done; and the hostile ones' latencies."""
    todo = list(range(first, first + messages))
    lock = threading.Lock()
    done = threading.Event()
    normal: list[float] = []
    costly: list[float] = []

    def client() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                t0 = time.perf_counter()
                smtp.sendmail("mta@example.org", ["b@example.org"], ordinary(i))
                with lock:
                    normal.append(time.perf_counter() - t0)

    def attacker(k: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
            n = 0
            while not done.is_set():
                raw = (encoded_subject if n % 2 == 0 else many_parts)(first * 10 + k * 1000 + n)
                n += 1
                t0 = time.perf_counter()
                smtp.sendmail("mta@example.org", ["b@example.org"], raw)
                with lock:
                    costly.append(time.perf_counter() - t0)

    attackers = [threading.Thread(target=attacker, args=(k,)) for k in range(hostile)]
    for t in attackers:
        t.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in attackers:
        t.join()
    return normal, costly


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--hostile", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port, smtp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKEEP_")}
        subprocess.run([MAILKEEP, "--data", str(data), "settings", "set", "smtp.max_size",
                        str(64 << 20)], check=True, env=env, stdout=subprocess.DEVNULL)
        proc = subprocess.Popen([MAILKEEP, "--data", str(data), "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--smtp-port", str(smtp_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", smtp_port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            phase(smtp_port, args.clients, 50, 10**6, 0)  # warm up: pool and store open
            calm, _ = phase(smtp_port, args.clients, args.messages, 0, 0)
            stormy, costly = phase(smtp_port, args.clients, args.messages, args.messages,
                                   args.hostile)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    print(f"machine: {os.cpu_count()} cores; {args.clients} clients x ordinary 4 KB messages "
          f"({args.messages} per phase)")
    for name, lat in (("alone", calm), (f"with {args.hostile} hostile clients", stormy)):
        print(f"  {name:>24}: median {statistics.median(lat) * 1000:7.1f} ms, p95 "
              f"{pct(lat, 0.95):7.1f} ms, max {pct(lat, 1.0):7.1f} ms")
    print(f"  p95 ratio (hostile / alone): {pct(stormy, 0.95) / pct(calm, 0.95):.2f}")
    if costly:
        print(f"  {len(costly)} costly messages (1.6 MB encoded-word Subject, 20,000 parts): "
              f"median {statistics.median(costly) * 1000:.0f} ms, max {pct(costly, 1.0):.0f} ms "
              f"to their 250")


if __name__ == "__main__":
    main()

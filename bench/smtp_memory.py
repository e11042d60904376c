"""How much memory does large journaled mail take? A running `mailkeep serve` with its SMTP
receiver takes `--clients` messages of `--mib` MiB each, all sent at once, each from its own
session; prints the server's peak resident memory (the kernel's high-water mark, VmHWM), the
time until the last 250, and whether every message was acknowledged. Prints figures; asserts
nothing.

    .venv/bin/python bench/smtp_memory.py [--clients 30] [--mib 48] [--git-ref REF]

`--git-ref` runs the server from another commit's src/ (the figures before a change).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handshake_flood import free_port, wait_port  # noqa: E402
from soak import machine, snapshot  # noqa: E402


def status(pid: int, key: str) -> int:
    """A figure of /proc/PID/status in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def body(mib: int) -> bytes:
    """Text lines of 76 octets (the shape of base64 attachments), `mib` MiB of them."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    return line * ((mib << 20) // len(line))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--mib", type=int, default=48)
    ap.add_argument("--git-ref", default=None)
    opts = ap.parse_args()
    print(machine(opts.git_ref))
    content = body(opts.mib)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = snapshot(work, opts.git_ref)
        data = work / "data"
        https, smtp_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "mailkeep", "--data", str(data)]
        server = subprocess.Popen(cmd + ["serve", "--host", "127.0.0.1", "--port", str(https),
                                         "--smtp-port", str(smtp_port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acknowledged: list[float] = []
        failed: list[str] = []
        try:
            wait_port(smtp_port, time.monotonic() + 60)
            rss_idle = status(server.pid, "VmRSS")
            start = threading.Barrier(opts.clients)
            t0 = time.monotonic()

            def client(i: int) -> None:
                msg = (f"From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: large {i}\r\n"
                       f"Message-ID: <m{i}.{t0}@example.org>\r\n\r\n").encode() + content
                try:
                    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=600) as smtp:
                        start.wait()
                        smtp.sendmail("mta@example.org", ["b@example.org"], msg)
                    acknowledged.append(time.monotonic() - t0)
                except (OSError, smtplib.SMTPException) as exc:
                    failed.append(f"{type(exc).__name__}: {exc}"[:200])

            threads = [threading.Thread(target=client, args=(i,)) for i in range(opts.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            peak = status(server.pid, "VmHWM")
            rss_after = status(server.pid, "VmRSS")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
    total = opts.clients * opts.mib
    print(f"{opts.clients} sessions at once, each a message of {opts.mib} MiB ({total} MiB in "
          f"all): {len(acknowledged)} acknowledged, {len(failed)} failed"
          + (f" ({failed[0]})" if failed else ""))
    if acknowledged:
        print(f"  last 250 after {max(acknowledged):.1f} s ({total / max(acknowledged):.1f} "
              f"MiB/s)")
    print(f"  server memory: {rss_idle / 1024:.0f} MB idle, peak {peak / 1024:.0f} MB, "
          f"{rss_after / 1024:.0f} MB after")
    print(f"  ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

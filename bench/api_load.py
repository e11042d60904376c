"""Administration API load: GetServerInfo requests/s over keep-alive HTTPS with Basic auth, and
1,000 concurrent get-status long polls on one process. Prints figures; asserts nothing.

    .venv/bin/python bench/api_load.py [--seconds 10] [--pollers 1000] [--clients 16]

It starts `mailkeep serve --enable-api` on a free loopback port over a fresh data directory
with a few thousand generated messages (so that VerifyStore runs long enough to be watched).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAILKEEP = [str(Path(sys.executable).with_name("mailkeep"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def prepare(data: Path, messages: int) -> None:
    mail = data.parent / "mail"
    mail.mkdir()
    for i in range(messages):
        (mail / f"{i}.eml").write_bytes(
            f"From: a{i % 50}@example.org\r\nSubject: load {i}\r\n\r\n{'body ' * 200}\r\n"
            .encode())
    subprocess.run([*MAILKEEP, "--data", str(data), "import", str(mail)], check=True,
                   capture_output=True)


async def requests_per_second(base: str, ctx: ssl.SSLContext, seconds: float,
                              clients: int) -> tuple[float, float]:
    auth = httpx.BasicAuth("admin", "admin")
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=30) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = await c.post("/api/invoke/GetServerInfo")
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.monotonic() - start
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def long_polls(base: str, ctx: ssl.SSLContext, pollers: int) -> dict[str, float]:
    auth = httpx.BasicAuth("admin", "admin")
    limits = httpx.Limits(max_connections=pollers + 10, max_keepalive_connections=pollers + 10)
    async with httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=120,
                                 limits=limits) as c:
        r = await c.post("/api/invoke/VerifyStore", data={"id": "1", "includeIndexes": "true"})
        body = json.loads(r.content.decode("utf-8-sig"))
        token, version = body["token"], body["statusVersion"]
        if token is None:
            return {"error": 1.0}

        # Every poller first opens its own connection (TLS handshake, auth) and learns the
        # current version; then all long-poll at once and wait for the next change.
        clients = [httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=120)
                   for _ in range(pollers)]

        async def warm(cl: httpx.AsyncClient) -> int:
            r = await cl.post("/api/get-status", data={
                "token": token, "lastKnownStatusVersion": "-1", "millisecondsTimeout": "0"})
            return int(json.loads(r.content.decode("utf-8-sig"))["statusVersion"])

        sem = asyncio.Semaphore(50)

        async def warm_limited(cl: httpx.AsyncClient) -> int:
            async with sem:
                return await warm(cl)

        known = max(await asyncio.gather(*(warm_limited(cl) for cl in clients)))

        async def poll(cl: httpx.AsyncClient) -> tuple[float, int]:
            r = await cl.post("/api/get-status", data={
                "token": token, "lastKnownStatusVersion": str(known),
                "millisecondsTimeout": "30000"})
            got = json.loads(r.content.decode("utf-8-sig"))
            return time.perf_counter(), int(got["statusVersion"])

        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(poll(cl) for cl in clients))
        finally:
            await asyncio.gather(*(cl.aclose() for cl in clients))
        version = known
    times = sorted(t for t, _ in results)
    newer = sum(1 for _, v in results if v > version)
    return {"answered": len(results), "newer": newer,
            "spread_ms": (times[-1] - times[0]) * 1000,
            "first_after_ms": (times[0] - started) * 1000,
            "last_after_ms": (times[-1] - started) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pollers", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=20000)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"preparing {opts.messages} messages ...", flush=True)
        prepare(data, opts.messages)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKEEP_")}
        proc = subprocess.Popen([*MAILKEEP, "--data", str(data), "serve", "--enable-api",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            base = f"https://127.0.0.1:{port}"
            ctx = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
            rps, median_ms = asyncio.run(requests_per_second(base, ctx, opts.seconds,
                                                             opts.clients))
            rss_after_rps = rss_mb(proc.pid)
            polls = asyncio.run(long_polls(base, ctx, opts.pollers))
            rss_after_polls = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"GetServerInfo over keep-alive HTTPS + Basic auth, {opts.clients} clients, "
          f"{opts.seconds:.0f} s: {rps:,.0f} requests/s (median {median_ms:.1f} ms); "
          f"target >= 2,000/s: {'PASS' if rps >= 2000 else 'MISS'}")
    print(f"{opts.pollers} concurrent get-status long polls on one VerifyStore process: "
          f"{polls.get('answered', 0):.0f} answered, {polls.get('newer', 0):.0f} with a newer "
          f"status; spread between first and last answer {polls.get('spread_ms', 0):.0f} ms "
          f"(target < 250 ms: {'PASS' if polls.get('spread_ms', 1e9) < 250 else 'MISS'}); "
          f"last answer {polls.get('last_after_ms', 0):.0f} ms after the polls were sent")
    print(f"server RSS: {rss_after_rps:.0f} MB after the request run, "
          f"{rss_after_polls:.0f} MB after the long polls")


if __name__ == "__main__":
    main()

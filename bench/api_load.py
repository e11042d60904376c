"""Administration API load: GetServerInfo requests/s over keep-alive HTTPS with Basic auth, and
1,000 concurrent get-status long polls held on one running process until its status changes.
Prints figures; asserts nothing.

    .venv/bin/python bench/api_load.py [--seconds 10] [--pollers 1000] [--clients 16]
                                       [--messages 20000]

It starts `mailkeep serve --enable-api` on a free loopback port over a fresh data directory
with generated messages, and also times VerifyStore on them. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

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


class Conn:
    """One keep-alive HTTPS connection speaking just enough HTTP/1.1 for get-status. A thousand
    httpx clients cost the shared CPU more than the server does; this keeps the client cheap."""

    def __init__(self, port: int, ctx: ssl.SSLContext, auth: str) -> None:
        self.port, self.ctx, self.auth = port, ctx, auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                                 ssl=self.ctx)

    async def send(self, path: str, form: dict[str, str]) -> None:
        assert self.writer is not None
        body = urllib.parse.urlencode(form).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Basic "
            f"{self.auth}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, Any]]:
        assert self.reader is not None
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                      if line.lower().startswith("content-length:"))
        raw = await self.reader.readexactly(length)
        return status, (json.loads(raw.decode("utf-8-sig")) if status == 200 else {})

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


def envelope_of(r: httpx.Response) -> dict[str, Any]:
    r.raise_for_status()
    body: dict[str, Any] = json.loads(r.content.decode("utf-8-sig"))
    return body


async def follow(c: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    while body["statusCode"] == "running":
        body = envelope_of(await c.post("/api/get-status", data={
            "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
            "millisecondsTimeout": "5000"}))
    return body


async def verify_seconds(base: str, ctx: ssl.SSLContext) -> tuple[float, str]:
    """How long VerifyStore takes on the generated store, from invoke to its final status."""
    auth = httpx.BasicAuth("admin", "admin")
    async with httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=600) as c:
        t = time.perf_counter()
        body = envelope_of(await c.post("/api/invoke/VerifyStore",
                                        data={"id": "1", "includeIndexes": "true"}))
        final = await follow(c, body)
        return time.perf_counter() - t, str(final["statusCode"])


WRK_SCRIPT = 'wrk.method = "POST"\nwrk.headers["Authorization"] = "Basic YWRtaW46YWRtaW4="\n'


def wrk_rps(base: str, seconds: float, clients: int, lua: Path) -> tuple[float, str] | None:
    """GetServerInfo requests/s under wrk (-t2), if wrk is installed: the server's figure, as
    wrk costs the shared CPU far less than an httpx client in Python does."""
    if shutil.which("wrk") is None:
        return None
    lua.write_text(WRK_SCRIPT)
    cmd = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:.0f}s", "-s", str(lua),
           f"{base}/api/invoke/GetServerInfo"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = next(float(line.split()[1]) for line in out.splitlines()
               if line.startswith("Requests/sec:"))
    errors = [line.strip() for line in out.splitlines()
              if "Non-2xx" in line or "Socket errors" in line]
    return rps, "; ".join(errors)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


BUSY = {  # --busy: the work started in the server while the polls wait
    "verify": ("VerifyStores", "a VerifyStores"),
    "profile": ("RunTemporaryProfile", "a profile run archiving a directory of new messages"),
}


def prepare_profile(mail: Path, messages: int) -> None:
    """New messages (none of them archived yet) for the profile run of --busy profile."""
    mail.mkdir()
    for i in range(messages):
        (mail / f"{i}.eml").write_bytes(
            f"From: p{i % 70}@example.net\r\nSubject: profile load {i}\r\n\r\n"
            f"{f'words of message {i} ' * 150}\r\n".encode())


async def working(c: httpx.AsyncClient, busy: str, profile_mail: Path | None
                  ) -> tuple[str, float]:
    """Start the --busy work and return once it has reported progress twice: a process that
    is really working in the server. (its token, when it was seen working)"""
    name = BUSY[busy][0]
    if busy == "profile":
        form = {"properties": json.dumps({"type": "directory", "path": str(profile_mail),
                                          "userName": "admin"}), "raw": "false"}
    else:
        form = {"includeIndexes": "true"}
    body = envelope_of(await c.post(f"/api/invoke/{name}", data=form))
    if body["token"] is None:
        raise RuntimeError(f"{name} ended at once: {body['statusCode']} {body.get('error')}")
    seen = 0
    while seen < 2:
        body = envelope_of(await c.post("/api/get-status", data={
            "token": body["token"], "lastKnownStatusVersion": str(body["statusVersion"]),
            "millisecondsTimeout": "5000"}))
        if body["statusCode"] != "running":
            raise RuntimeError(f"{name} ended before the polls: {body['statusCode']}")
        seen += 1
    return str(body["token"]), time.perf_counter()


async def place_polls(port: int, ctx: ssl.SSLContext, basic: str, token: str, version: int,
                      pollers: int, server_pid: int, out: dict[str, Any]
                      ) -> tuple[list[Conn], list[asyncio.Task[tuple[float, str, int]]]]:
    """Each poller on its own connection: a status that must be running at `version`, then
    a long poll with that version. Returns once every poll has been in for a second."""
    conns = [Conn(port, ctx, basic) for _ in range(pollers)]
    sem = asyncio.Semaphore(100)
    seen: list[tuple[str, int]] = []

    async def place(cn: Conn) -> None:
        async with sem:  # the TLS handshakes, a hundred at a time
            await cn.open()
            await cn.send("/api/get-status", {"token": token, "lastKnownStatusVersion": "-1",
                                              "millisecondsTimeout": "0"})
            status, first = await cn.answer()
        seen.append((str(first.get("statusCode", status)), int(first.get("statusVersion", -1))))
        await cn.send("/api/get-status", {"token": token,
                                          "lastKnownStatusVersion": str(version),
                                          "millisecondsTimeout": "60000"})

    async def wait(cn: Conn) -> tuple[float, str, int]:
        status, got = await cn.answer()
        return (time.perf_counter(), str(got.get("statusCode", status)),
                int(got.get("statusVersion", -1)))

    t = time.perf_counter()
    await asyncio.gather(*(place(cn) for cn in conns))
    out["place_s"] = time.perf_counter() - t
    answers = [asyncio.create_task(wait(cn)) for cn in conns]
    await asyncio.sleep(1.0)  # let the last polls reach the server
    out["answered_early"] = sum(a.done() for a in answers)
    out["rss_held_mb"] = rss_mb(server_pid)
    out["saw_running"] = sum(1 for code, v in seen if code == "running" and v == version)
    return conns, answers


def summed(out: dict[str, Any], results: list[tuple[float, str, int]], released: float,
           version: int, pollers: int) -> dict[str, Any]:
    delays = [(t - released) * 1000 for t, _, _ in results]
    first = min(t for t, _, _ in results)
    out.update(
        pollers=pollers, version=version,
        saw_newer=sum(1 for _, _, v in results if v > version),
        codes=sorted({code for _, code, _ in results}),
        median_ms=statistics.median(delays), p95_ms=pct(delays, 0.95), max_ms=max(delays),
        first_ms=(first - released) * 1000)
    after_first = [(t - first) * 1000 for t, _, _ in results]
    out.update(f_median_ms=statistics.median(after_first), f_p95_ms=pct(after_first, 0.95),
               spread_ms=max(after_first))
    return out


async def long_polls(base: str, port: int, ctx: ssl.SSLContext, data: Path, pollers: int,
                     server_pid: int, load: str | None = None,
                     profile_mail: Path | None = None) -> dict[str, Any]:
    """1,000 get-status long polls held on one running process, then one status change.

    The process is RebuildStoreIndex, held still by a write transaction this script keeps open
    on the master database: when the rebuild is done the process waits to write the master
    (SQLite busy timeout: 10 s) and its status stops changing. Every poller opens its own
    connection, asks the status (it must be running, at the version the script saw), then
    long-polls with that version. Once every poll is in, the script rolls back: the process
    ends, and each poller must get a newer version. The times are taken from the rollback.
    VerifyStore cannot be held still like this: it reports progress every 1,000 records.
    With `load` (a key of BUSY), that work is started once the polls are in and the rollback
    waits until it has reported progress: the fan-out then happens while it works.
    """
    auth = httpx.BasicAuth("admin", "admin")
    basic = base64.b64encode(b"admin:admin").decode()
    out: dict[str, Any] = {}
    lock = sqlite3.connect(data / "mailkeep.db", isolation_level=None)
    async with httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=120) as c:
        lock.execute("BEGIN IMMEDIATE")
        try:
            body = envelope_of(await c.post("/api/invoke/RebuildStoreIndex",
                                            data={"id": "1", "folder": ""}))
            if body["token"] is None:
                return {"error": f"RebuildStoreIndex ended at once: {body['statusCode']}"}
            token = body["token"]
            log = body.get("logOutput") or ""
            while True:  # until the rebuild is done and the process waits for the master
                again = envelope_of(await c.post("/api/get-status", data={
                    "token": token, "lastKnownStatusVersion": str(body["statusVersion"]),
                    "millisecondsTimeout": "1000"}))
                if again["statusCode"] != "running":
                    return {"error": f"RebuildStoreIndex ended early: {again['statusCode']} "
                                     f"{again['error']}"}
                log += again.get("logOutput") or ""
                # still for a second after its last line: it waits for the master database
                if again["statusVersion"] == body["statusVersion"] and \
                        "messages in the rebuilt catalog" in log:
                    break
                body = again
            held_from = time.perf_counter() - 1.0  # it has been still for the last second
            version = int(body["statusVersion"])
            conns, answers = await place_polls(port, ctx, basic, token, version, pollers,
                                               server_pid, out)
            if load:
                out["load_token"], _ = await working(c, load, profile_mail)
        finally:
            released = time.perf_counter()
            lock.execute("ROLLBACK")
            lock.close()
        out["held_s"] = released - held_from
        results = await asyncio.gather(*answers)
        if load:  # was it still working when the last poll was answered?
            loaded = envelope_of(await c.post("/api/get-status", data={
                "token": out["load_token"], "lastKnownStatusVersion": "-1",
                "millisecondsTimeout": "0"}))
            out["load_running_after"] = loaded["statusCode"] == "running"
            out["load_final"] = (await follow(c, loaded))["statusCode"]
        await asyncio.gather(*(cn.close() for cn in conns))
        final = await follow(c, envelope_of(await c.post("/api/get-status", data={
            "token": token, "lastKnownStatusVersion": "-1", "millisecondsTimeout": "0"})))
    out["final"] = final["statusCode"]
    return summed(out, results, released, version, pollers)


def workers_of(pid: int) -> set[int]:
    """The processes the server's forkserver started (isolated calls, extraction workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    forkservers = {p for p, parent in parents.items() if parent == pid}
    return {p for p, parent in parents.items() if parent in forkservers}


def opens_a_catalog(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith("catalog.sqlite"):
                return True
        except OSError:
            continue
    return False


async def long_polls_stopped(base: str, port: int, ctx: ssl.SSLContext, pollers: int,
                             server_pid: int, busy: str, profile_mail: Path) -> dict[str, Any]:
    """The fan-out while `busy` works, for work that writes the master database as it goes
    (a profile run), which the held write transaction of long_polls would stop. The process
    polled is a VerifyStores, held still by stopping its process (SIGSTOP) once the busy work
    runs; once every poll is in, SIGCONT lets it go on, and its next progress report is the
    status change the polls wait for. Times are taken from the SIGCONT."""
    auth = httpx.BasicAuth("admin", "admin")
    basic = base64.b64encode(b"admin:admin").decode()
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, verify=ctx, auth=auth, timeout=120) as c:
        out["load_token"], _ = await working(c, busy, profile_mail)
        before, steady = workers_of(server_pid), time.perf_counter()
        while time.perf_counter() - steady < 1.0:  # until the busy work's workers are all up
            await asyncio.sleep(0.1)
            now = workers_of(server_pid)
            if now != before:
                before, steady = now, time.perf_counter()
        body = envelope_of(await c.post("/api/invoke/VerifyStores",
                                        data={"includeIndexes": "true"}))
        token = body["token"]
        if token is None:
            return {"error": f"VerifyStores ended at once: {body['statusCode']}"}
        new: set[int] = set()
        for _ in range(500):  # its own process: a new one that has a store's catalog open
            new = {w for w in workers_of(server_pid) - before if opens_a_catalog(w)}
            if new:
                break
            await asyncio.sleep(0.01)
        if len(new) != 1:
            return {"error": f"VerifyStores' own process not told apart: {sorted(new)}"}
        child = new.pop()
        os.kill(child, signal.SIGSTOP)
        try:
            await asyncio.sleep(1.0)  # what it said before the stop reaches its status
            body = envelope_of(await c.post("/api/get-status", data={
                "token": token, "lastKnownStatusVersion": "-1", "millisecondsTimeout": "0"}))
            if body["statusCode"] != "running":
                return {"error": f"VerifyStores ended before the polls: {body['statusCode']}"}
            held_from = time.perf_counter()
            version = int(body["statusVersion"])
            conns, answers = await place_polls(port, ctx, basic, token, version, pollers,
                                               server_pid, out)
        finally:
            released = time.perf_counter()
            os.kill(child, signal.SIGCONT)
        out["held_s"] = released - held_from
        results = await asyncio.gather(*answers)
        loaded = envelope_of(await c.post("/api/get-status", data={
            "token": out["load_token"], "lastKnownStatusVersion": "-1",
            "millisecondsTimeout": "0"}))
        out["load_running_after"] = loaded["statusCode"] == "running"
        await asyncio.gather(*(cn.close() for cn in conns))
        final = await follow(c, envelope_of(await c.post("/api/get-status", data={
            "token": token, "lastKnownStatusVersion": "-1", "millisecondsTimeout": "0"})))
        out["final"] = final["statusCode"]
        out["load_final"] = (await follow(c, loaded))["statusCode"]
    out["stopped"] = True
    return summed(out, results, released, version, pollers)


def print_polls(polls: dict[str, Any], n: int, what: str, busy: str = "") -> None:
    if "error" in polls:
        print(f"long polls: not measured: {polls['error']}")
    else:
        ok = (polls["saw_running"] == n and polls["saw_newer"] == n
              and polls["answered_early"] == 0)
        print(f"{n} concurrent get-status long polls on {what} (held still at status "
              f"version {polls['version']}):")
        print(f"  placed in {polls['place_s']:.1f} s (TLS handshake, status, long poll on its "
              f"own connection each); the process's status stood still {polls['held_s']:.1f} s; "
              f"polls answered before the change: {polls['answered_early']}")
        print(f"  first answer: running at version {polls['version']}: {polls['saw_running']} "
              f"of {n}; long poll answered with a newer version: {polls['saw_newer']} of {n} "
              f"(status {', '.join(polls['codes'])}; process ended {polls['final']}): "
              f"{'PASS' if ok else 'MISS'}")
        stopped = "stopped" in polls
        why = ("the process's next progress report once it runs again" if stopped else
               "the process's own end, i.e. SQLite's busy handler, which sleeps up to 100 ms "
               "between retries, then its audit and history writes")
        since = "the SIGCONT" if stopped else "the rollback"
        print(f"  time until each poller had the new status, from {since}: median "
              f"{polls['median_ms']:.0f} ms, p95 {polls['p95_ms']:.0f} ms, max "
              f"{polls['max_ms']:.0f} ms (the first answer came {polls['first_ms']:.0f} ms after "
              f"{since}: {why})")
        print(f"  the same from the first answer (the fan-out itself): median "
              f"{polls['f_median_ms']:.0f} ms, p95 {polls['f_p95_ms']:.0f} ms, max "
              f"{polls['spread_ms']:.0f} ms; target < 250 ms: "
              f"{'PASS' if polls['spread_ms'] < 250 else 'MISS'}")
        if "load_final" in polls:
            still = "still" if polls["load_running_after"] else "no longer"
            print(f"  the {busy} was {still} running when the last poll was answered; it "
                  f"ended {polls['load_final']}"
                  + ("" if polls["load_running_after"] else ": NOTE: the fan-out was not all "
                     "under load"))
        if polls["held_s"] > 8:
            print(f"  NOTE: the process waited for the master database {polls['held_s']:.1f} s "
                  "or more, near SQLite's 10 s busy timeout: it may have failed instead")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pollers", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--busy", choices=sorted(BUSY), default="verify",
                    help="the work in the server during the second fan-out")
    ap.add_argument("--profile-messages", type=int, default=60000,
                    help="new messages the profile run of --busy profile archives")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"preparing {opts.messages} messages ...", flush=True)
        prepare(data, opts.messages)
        profile_mail = Path(tmp) / "profile-mail"
        if opts.busy == "profile":
            prepare_profile(profile_mail, opts.profile_messages)
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
            rss_start = rss_mb(proc.pid)
            rps, median_ms = asyncio.run(requests_per_second(base, ctx, opts.seconds,
                                                             opts.clients))
            wrk = wrk_rps(base, opts.seconds, opts.clients, Path(tmp) / "wrk.lua")
            rss_after_rps = rss_mb(proc.pid)
            verify_s, verify_code = asyncio.run(verify_seconds(base, ctx))
            polls = asyncio.run(long_polls(base, port, ctx, data, opts.pollers, proc.pid))
            if opts.busy == "profile":
                loaded = asyncio.run(long_polls_stopped(base, port, ctx, opts.pollers,
                                                        proc.pid, opts.busy, profile_mail))
            else:
                loaded = asyncio.run(long_polls(base, port, ctx, data, opts.pollers, proc.pid,
                                                load=opts.busy, profile_mail=profile_mail))
            rss_after_polls = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    n = opts.pollers
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"GetServerInfo over keep-alive HTTPS + Basic auth, {opts.clients} connections, "
          f"{opts.seconds:.0f} s:")
    if wrk is None:
        print("  wrk: not installed")
    else:
        errors = f" ({wrk[1]})" if wrk[1] else ""
        print(f"  wrk -t2 -c{opts.clients}: {wrk[0]:,.0f} requests/s{errors}; target >= 2,000/s: "
              f"{'PASS' if wrk[0] >= 2000 else 'MISS'}")
    print(f"  httpx clients in this script: {rps:,.0f} requests/s (median {median_ms:.1f} ms; "
          "the Python client shares the 2 cores and limits this figure)")
    print(f"VerifyStore on the {opts.messages:,} generated messages: {verify_s:.2f} s from "
          f"invoke to its end ({verify_code})")
    print_polls(polls, n, "one running RebuildStoreIndex process")
    held = "VerifyStores process (held by SIGSTOP)" if opts.busy == "profile" else \
        "RebuildStoreIndex process"
    print_polls(loaded, n, f"one running {held}, while {BUSY[opts.busy][1]} works in the "
                "server", BUSY[opts.busy][0])
    print(f"server RSS: {rss_start:.0f} MB at the start, {rss_after_rps:.0f} MB after the "
          f"request run, {polls.get('rss_held_mb', 0):.0f} MB with the {n} polls held, "
          f"{rss_after_polls:.0f} MB after them")


if __name__ == "__main__":
    main()

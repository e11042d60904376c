"""A million messages: builds a realistic archive deterministically from the linux-mips corpus,
imports it, and reports the import rate and memory over the whole run, the bytes on disk, the
first page with its total count for a set of queries (p50 and p95), verify and recover times,
and the console API's search under concurrent users, read from the server's /metrics as an
operator would. See bench/README.md.

    .venv/bin/python bench/million.py [--messages 1000000] [--users 2000] [--years 15]
                                      [--seed 1] [--work DIR] [--keep] [--skip-recover]
                                      [--reuse] [--maintain]

It takes about an hour for a million messages on two cores. A benchmark, not a test: it
prints figures and PASS/MISS against the targets, and exits 0 unless it cannot run at all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import random
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_search as base  # noqa: E402  (corpus, process-tree sampler, disk usage)

TRICKY = base.REPO.parent / "shared" / "corpus" / "tricky"
TARGET_P50_MS, TARGET_P95_MS = 20.0, 100.0
RUNS = 20
CONSOLE_USERS = 20
CONSOLE_SECONDS = 30.0
USER_PASSWORD = "search-their-own-1"
# CJK text for the 1% of messages that carry some (Japanese and Chinese sentences about mail)
CJK = ["添付ファイルを確認してください。", "会議の議事録を送ります。", "異常時通知の設定について",
       "请查收附件中的报告。", "服务器维护通知", "월간 보고서를 첨부합니다."]
CJK_QUERY = "議事録"
FIRST = ["Ann", "Bo", "Carl", "Dana", "Emil", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena",
         "Mats", "Nora", "Otto", "Pia", "Quin", "Rosa", "Sven", "Tove", "Ugo", "Vera", "Wim",
         "Xia", "Yuki", "Zoe"]
LAST = ["Berg", "Costa", "Dahl", "Engel", "Falk", "Gran", "Holm", "Ito", "Jansen", "Kovac",
        "Lund", "Moreau", "Nagy", "Olsen", "Park", "Quist", "Rossi", "Sato", "Tanaka", "Ueda",
        "Vogel", "Weber", "Xu", "Yilmaz", "Zhou"]


# -- the material ----------------------------------------------------------------------------
@dataclass
class Material:
    subjects: list[str]
    bodies: list[bytes]
    attachments: list[tuple[str, str, bytes]]  # (file name, content type, bytes)


def _header(head: bytes, name: bytes) -> str:
    m = re.search(rb"^" + name + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.M | re.I)
    return m.group(1).decode("ascii", "replace").replace("\n", " ").strip() if m else ""


def material() -> Material:
    """Subjects and plain bodies of the linux-mips corpus, attachments from the tricky one."""
    subjects: list[str] = []
    bodies: list[bytes] = []
    for path in sorted(base.CORPUS.glob("*.mbox.gz")):
        data = gzip.decompress(path.read_bytes())
        for raw in base.split_mbox(data):
            head, sep, body = raw.partition(b"\n\n")
            if not sep or b"multipart" in head.lower() or len(body) > 64 << 10:
                continue
            subject = _header(head, b"Subject")
            if subject and subject.isascii():
                subjects.append(subject[:200])
            if body.isascii():
                bodies.append(body)
    attachments: list[tuple[str, str, bytes]] = []
    for path in sorted(TRICKY.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".pdf", ".png", ".jpg", ".gif", ".zip",
                                                      ".docx", ".txt", ".html", ".csv"):
            data = path.read_bytes()[:512 << 10]
            ctype = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg",
                     ".gif": "image/gif", ".zip": "application/zip", ".txt": "text/plain",
                     ".html": "text/html", ".csv": "text/csv"}.get(
                path.suffix.lower(), "application/octet-stream")
            attachments.append((path.name, ctype, data))
    if not attachments:  # the corpus has none of these kinds: a made-up report
        attachments.append(("report.csv", "text/csv", b"month,messages\n" * 200))
    return Material(subjects, bodies, attachments)


def user(i: int) -> tuple[str, str]:
    return (f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}",
            f"u{i:04d}@example.org")


def message(i: int, rng: random.Random, mat: Material, users: int, start: float,
            span: float) -> bytes:
    sender = user(rng.randrange(users))
    to = [user(rng.randrange(users)) for _ in range(1 + rng.randrange(3))]
    when = datetime.fromtimestamp(start + rng.random() * span, UTC)
    subject = rng.choice(mat.subjects)
    if rng.random() < 0.3:
        subject = "Re: " + subject
    body = rng.choice(mat.bodies)
    if rng.random() < 0.01:
        body = (rng.choice(CJK) + "\n\n").encode("utf-8") + body
    head = (f"From: {sender[0]} <{sender[1]}>\n"
            f"To: {', '.join(f'{n} <{a}>' for n, a in to)}\n"
            f"Subject: {subject}\n"
            f"Date: {format_datetime(when)}\n"
            f"Message-ID: <{i}.million@example.org>\n"
            "MIME-Version: 1.0\n")
    if rng.random() < 0.05:  # one in twenty carries an attachment
        name, ctype, data = rng.choice(mat.attachments)
        boundary = f"=_b{i}"
        encoded = base64.encodebytes(data)
        parts = (f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n"
                 f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n").encode()
        return (head.encode() + parts + body + f"\n--{boundary}\nContent-Type: {ctype}; "
                f"name=\"{name}\"\nContent-Disposition: attachment; filename=\"{name}\"\n"
                "Content-Transfer-Encoding: base64\n\n".encode() + encoded
                + f"--{boundary}--\n".encode())
    return head.encode() + b"Content-Type: text/plain; charset=utf-8\n\n" + body


def generate(work: Path, n: int, users: int, years: int, seed: int) -> tuple[Path, int]:
    """work/mbox-N/uXXXX.mbox (one per user whose folder the messages are filed in), made
    once and reused while its manifest matches: (the directory, bytes of the messages)."""
    out = work / f"million-{n}-{users}-{years}-{seed}"
    manifest = out / "manifest.json"
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        return out / "mbox", int(saved["bytes"])
    shutil.rmtree(out, ignore_errors=True)
    (out / "mbox").mkdir(parents=True)
    base.say(f"generating {n:,} messages for {users:,} users over {years} years ...")
    mat = material()
    start = datetime(2026 - years, 1, 1, tzinfo=UTC).timestamp()
    span = years * 365.25 * 86400
    total = 0
    per_user = -(-n // users)
    for u in range(users):
        with open(out / "mbox" / f"u{u:04d}.mbox", "wb") as fh:
            for k in range(per_user):
                i = u * per_user + k
                if i >= n:
                    break
                raw = message(i, random.Random(seed * 1_000_003 + i), mat, users, start, span)
                total += len(raw)
                fh.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n")
                fh.write(re.sub(rb"^(>*From )", rb">\1", raw, flags=re.M))
                fh.write(b"\n" if raw.endswith(b"\n") else b"\n\n")
    manifest.write_text(json.dumps({"messages": n, "bytes": total}))
    return out / "mbox", total


# -- import ----------------------------------------------------------------------------------
@dataclass
class Imported:
    wall: float
    archived: int
    peak_rss: int
    curve: list[tuple[float, int, int]] = field(default_factory=list)  # (s, done, tree RSS)


def run_import(mbox: Path, data: Path, n: int) -> Imported:
    """`mailkeep import` as a child; its progress (JSON lines) and RSS every 5 s."""
    shutil.rmtree(data, ignore_errors=True)
    log = data.parent / "million-import.jsonl"
    cmd = [*base.mailkeep_command(), "--data", str(data), "import", str(mbox), "--jsonl"]
    base.say(f"importing: {' '.join(cmd)}")
    curve: list[tuple[float, int, int]] = []
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        sampler = base.TreeSampler(proc.pid)
        sampler.start()
        done, offset = 0, 0
        while proc.poll() is None:
            time.sleep(5)
            with open(log, "rb") as fh:  # count the lines written since the last look
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            done += chunk.count(b"\n")
            rss = sum(base._rss(p) for p in base.process_tree(proc.pid))
            curve.append((time.perf_counter() - start, done, rss))
            if len(curve) % 24 == 0:
                base.say(f"  {curve[-1][0]:6.0f} s: {done:,} messages, tree RSS "
                         f"{base.mb(rss)}")
        wall = time.perf_counter() - start
        sampler.stop()
    summary: dict[str, Any] = {}
    with open(log, "rb") as fh:
        fh.seek(max(0, log.stat().st_size - 4096))
        for line in fh.read().splitlines():
            if line.startswith(b'{"summary"'):
                summary = json.loads(line)["summary"]
    return Imported(wall, int(summary.get("archived", -1)), sampler.peak_rss, curve)


# -- searches --------------------------------------------------------------------------------
def queries(n: int) -> list[tuple[str, str]]:
    return [("common word", "the"), ("rare word", "bombarded"), ("phrase", '"cache flush"'),
            ("sender", "from:u0042@example.org"), ("folder + word", "folder:u0007 kernel"),
            ("date range", "after:2015-03-01 before:2015-04-01"),
            ("date + word", "after:2020-01-01 patch"), ("CJK", CJK_QUERY),
            ("has:attachment", "has:attachment")]


@dataclass
class Searched:
    kind: str
    query: str
    total: int
    exact: bool  # False: the total is the search's estimate (catalog_search.count_matches)
    cold: float
    p50: float
    p95: float
    exact_total: int  # with exactTotal, as an export counts
    exact_p50: float


def search_figures(data: Path, n: int) -> list[Searched]:
    """Each query in-process as import_search does: cold, then p50 and p95 of RUNS, as a
    search answers (its total estimated past 10,000 matches), and p50 with the exact count."""
    from mailkeep.core.archive import Archive
    out = []
    for kind, q in queries(n):
        stores = list((data / "stores").glob("*/catalog.sqlite*"))
        base.drop_from_page_cache([*stores, data / "mailkeep.db"])
        with Archive(data) as archive:
            t = time.perf_counter()
            res = archive.search(q, limit=20)
            cold = (time.perf_counter() - t) * 1000
            archive.search(q, limit=20)
            times, exact_times = [], []
            for _ in range(RUNS):
                t = time.perf_counter()
                archive.search(q, limit=20)
                times.append((time.perf_counter() - t) * 1000)
            for _ in range(RUNS // 4):
                t = time.perf_counter()
                counted = archive.search(q, limit=20, exact=True)
                exact_times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out.append(Searched(kind, q, res.total, res.exact, cold, statistics.median(times),
                            times[int(0.95 * RUNS) - 1], counted.total,
                            statistics.median(exact_times)))
    return out


def search_table(searches: list[Searched]) -> list[str]:
    rows = [["kind", "query", "total", "cold", "p50", "p95", "target", "exact total",
             "its p50"]]
    for r in searches:
        ok = r.p50 <= TARGET_P50_MS and r.p95 <= TARGET_P95_MS
        rows.append([r.kind, r.query, f"{'~' if not r.exact else ''}{r.total:,}",
                     f"{r.cold:.1f}", f"{r.p50:.2f}", f"{r.p95:.2f}",
                     f"p50 <= {TARGET_P50_MS:.0f}, p95 <= {TARGET_P95_MS:.0f} "
                     f"{base.verdict(ok)}", f"{r.exact_total:,}", f"{r.exact_p50:.2f}"])
    return base.table(rows, right=(2, 3, 4, 5, 7, 8))


def timed_command(*args: str) -> tuple[float, int]:
    t = time.perf_counter()
    done = subprocess.run([*base.mailkeep_command(), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, done.returncode


# -- the console API under load --------------------------------------------------------------
async def console_load(base_url: str, tls: ssl.SSLContext, n: int, users: list[str]
                       ) -> dict[str, Any]:
    """CONSOLE_USERS sessions searching at once: as admin, or each as one of `users`."""
    qs = [q for _, q in queries(n)]
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + CONSOLE_SECONDS

    async def one(k: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base_url, verify=tls, timeout=120) as c:
            name = users[k] if users else "admin"
            r = await c.post("/mcapi/auth/login", json={"userName": name,
                                                         "password": USER_PASSWORD if users
                                                         else "admin"})
            sid = r.json()["result"]["data"]["sessionId"]
            rng = random.Random(k)
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = await c.post("/mcapi/archive/search", headers={"X-Fs-SessionId": sid},
                                     json={"query": rng.choice(qs), "limit": 50})
                    if r.status_code != 200:
                        errors += 1
                except httpx.TimeoutException:  # counted, with the time it took
                    errors += 1
                latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(CONSOLE_USERS)))
    elapsed = time.monotonic() - t0
    latencies.sort()
    return {"requests": len(latencies), "per_s": len(latencies) / elapsed, "errors": errors,
            "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * len(latencies)) - 1]}


def metrics_text(base_url: str, tls: ssl.SSLContext) -> dict[str, float]:
    text = httpx.get(base_url + "/metrics", verify=tls, timeout=30).text
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", text, re.M)}


def archive_users(data: Path) -> list[str]:
    """CONSOLE_USERS accounts, each allowed to read one user's folder (admin/uNNNN, as the
    import filed it): people searching their own mail in the console. Made once."""
    names = [f"u{k:04}" for k in range(CONSOLE_USERS)]
    for name in names:
        subprocess.run([*base.mailkeep_command(), "--data", str(data), "call", "CreateUser",
                        f"userName={name}", "privileges=login", f"password={USER_PASSWORD}"],
                       capture_output=True)  # (made by an earlier run: refused, kept)
        subprocess.run([*base.mailkeep_command(), "--data", str(data), "call",
                        "SetUserPrivilegesOnFolder", f"userName={name}",
                        f"folder=admin/{name}", "privileges=read"], check=True,
                       capture_output=True)
    return names


def console_figures(data: Path, n: int, users: list[str] | None = None) -> dict[str, Any]:
    port = base_port = _free_port()
    subprocess.run([*base.mailkeep_command(), "--data", str(data), "settings", "set",
                    "metrics.enabled", "true"], check=True, capture_output=True)
    proc = subprocess.Popen([*base.mailkeep_command(), "--data", str(data), "serve",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"https://127.0.0.1:{base_port}"
        for _ in range(600):
            try:
                httpx.get(url + "/metrics", verify=False, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        tls = ssl.create_default_context(cafile=str(data / "tls" / "server.crt"))
        before = metrics_text(url, tls)
        load = asyncio.run(console_load(url, tls, n, users or []))
        after = metrics_text(url, tls)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    key = '{function="SearchArchive",via="mcapi"}'
    count = after.get("mailkeep_call_seconds_count" + key, 0) - before.get(
        "mailkeep_call_seconds_count" + key, 0)
    secs = after.get("mailkeep_call_seconds_sum" + key, 0) - before.get(
        "mailkeep_call_seconds_sum" + key, 0)
    load["metrics_calls"] = int(count)
    load["metrics_mean_ms"] = secs / count * 1000 if count else 0.0
    load["server_rss"] = after.get("process_resident_memory_bytes", 0.0)
    return load


def say_console(console: dict[str, Any], who: str = "as admin") -> None:
    base.say(f"CONSOLE  {CONSOLE_USERS} sessions ({who}) searching for {CONSOLE_SECONDS:.0f} s: "
             f"{console['requests']:,} searches ({console['per_s']:.1f}/s), p50 "
             f"{console['p50']:.0f} ms, p95 {console['p95']:.0f} ms, {console['errors']} errors; "
             f"the server's /metrics: {console['metrics_calls']:,} SearchArchive calls, mean "
             f"{console['metrics_mean_ms']:.1f} ms; server RSS "
             f"{base.mb(console['server_rss'])}")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- report ----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--years", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=base.DEFAULT_WORK)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--skip-recover", action="store_true")
    ap.add_argument("--maintain", action="store_true", help="then run "
                    "MaintainFileSystemDatabases and search (and load the console) again")
    ap.add_argument("--reuse", action="store_true", help="search the data directory a run "
                    "with --keep left, without generating or importing again")
    args = ap.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for line in base.machine_info():
        base.say(line)
    mbox, raw = generate(work, args.messages, args.users, args.years, args.seed)
    base.say(f"input: {mbox} ({args.messages:,} messages, {base.mb(raw)})")
    data = work / "million-data"
    if args.reuse and (data / "mailkeep.db").exists():
        imp = Imported(0.0, -1, 0)
    else:
        imp = run_import(mbox, data, args.messages)
        base.say(f"  imported in {imp.wall:.0f} s ({args.messages / imp.wall:,.0f}/s), peak "
                 f"tree RSS {base.mb(imp.peak_rss)}")
    disk = base.disk_usage(data)
    base.say("searching ...")
    searches = search_figures(data, args.messages)
    for line in search_table(searches):
        base.say("  " + line)
    base.say("verifying ...")
    verify_s, verify_code = timed_command("--data", str(data), "verify", "1")
    base.say(f"  {verify_s:.0f} s (exit {verify_code})")
    recover: tuple[float, int] | None = None
    if not args.skip_recover:
        base.say("recovering ...")
        recover = timed_command("--data", str(data), "recover", "1")
        base.say(f"  {recover[0]:.0f} s (exit {recover[1]})")
    base.say("the console API under load ...")
    console = console_figures(data, args.messages)
    users = archive_users(data)
    console_users = console_figures(data, args.messages, users)
    maintained: tuple[float, int, list[Searched], dict[str, Any], dict[str, Any]] | None = None
    if args.maintain:
        base.say("MaintainFileSystemDatabases ...")
        took, code = timed_command("--data", str(data), "call", "MaintainFileSystemDatabases")
        base.say(f"  {took:.0f} s (exit {code}); searching again ...")
        again = search_figures(data, args.messages)
        for line in search_table(again):
            base.say("  " + line)
        base.say("the console API under load again ...")
        maintained = (took, code, again, console_figures(data, args.messages),
                      console_figures(data, args.messages, users))

    base.say()
    base.say("=" * 100)
    base.say(f"a million messages: {args.messages:,} generated (seed {args.seed}), "
             f"{args.users:,} users, {args.years} years")
    if imp.archived >= 0:  # (not with --reuse)
        rate = args.messages / max(imp.wall, 1e-9)
        base.say(f"IMPORT  {imp.archived:,} archived in {imp.wall:.0f} s: {rate:,.0f} messages/s; "
                 f"peak RSS of the process tree {base.mb(imp.peak_rss)} "
                 f"{base.verdict(imp.peak_rss < base.TARGET_RSS)} (< {base.mb(base.TARGET_RSS)})")
        rows = [["at", "messages", "rate since the row before", "tree RSS"]]
        last_t, last_n = 0.0, 0
        for tenth in range(1, 10):  # the first sample past each tenth of the messages
            point = next((p for p in imp.curve if p[1] >= args.messages * tenth // 10), None)
            if point is None or point[0] <= last_t:
                continue
            rows.append([f"{point[0]:.0f} s", f"{point[1]:,}",
                         f"{(point[1] - last_n) / (point[0] - last_t):,.0f}/s",
                         base.mb(point[2])])
            last_t, last_n = point[0], point[1]
        rows.append([f"{imp.wall:.0f} s", f"{imp.archived:,}",
                     f"{(imp.archived - last_n) / max(imp.wall - last_t, 1e-9):,.0f}/s", "(end)"])
        for line in base.table(rows, right=(0, 1, 2, 3)):
            base.say(line)
    base.say(f"DISK  segments {base.mb(disk.segments)}, catalog {base.mb(disk.catalog_rest)}, "
             f"index {base.mb(disk.index)}: {disk.total / raw:.3f}x the raw mail "
             f"({base.mb(raw)})")
    base.say("SEARCH  (first 20 with the total, in-process; ms; cold: catalog files dropped from "
             "the page cache; ~: an estimate; the exact total and its p50 with exactTotal)")
    for line in search_table(searches):
        base.say(line)
    base.say(f"VERIFY  {verify_s:.0f} s (exit {verify_code})")
    if recover is not None:
        base.say(f"RECOVER  {recover[0]:.0f} s (exit {recover[1]})")
    say_console(console)
    say_console(console_users, "each a user of the archive reading one user's mail")
    if maintained is not None:
        took, code, again, console, console_users = maintained
        base.say(f"MAINTAIN  MaintainFileSystemDatabases (the index's segments merged into one, "
                 f"VACUUM): {took:.0f} s (exit {code}); then:")
        for line in search_table(again):
            base.say(line)
        say_console(console)
        say_console(console_users, "each a user of the archive reading one user's mail")
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

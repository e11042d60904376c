"""Soak test: a real `mailkeep serve` under a benign mix and, every other phase, a hostile one,
SIGKILLed at random moments and restarted; then every acknowledged message must be in the
archive exactly once and the stores must verify clean. Prints the durability figures, p95
latency per kind of request with and without the hostile clients, the server's memory and open
files over time, and a summary; exits 1 if an acknowledged message is missing or duplicated,
verification is not clean, or the server could not be restarted.

    .venv/bin/python bench/soak.py [--minutes 10] [--kills 100] [--seed N]
    .venv/bin/python bench/soak.py --minutes 2 --kills 10        # a quick run

The benign mix (bench/soak_load.py): SMTP journaling (STARTTLS + AUTH, corpus messages each
with a unique token), an IMAP mailbox in a private Dovecot that keeps growing and an archiving
profile run again and again through the API, get-status long polls, GetMessages and
GetFolderStatistics, console logins. The hostile mix: a 1.6 MB Subject of encoded words over
SMTP, 200 MB bodies, 60 MB SMTP messages, byte-at-a-time heads and bodies, wrong passwords
(console, API, SMTP AUTH) from other loopback addresses. The server runs from a copy of src/
taken at the start, so that edits made during the run do not reach it between restarts. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import soak_load as load

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sources.dovecot import PASSWORD, Dovecot  # noqa: E402

BULK = ROOT.parent / "shared" / "corpus" / "bulk" / "linux-mips"
MBOX_SEP = b"\nFrom mboxrd@z Thu Jan  1 00:00:00 1970\n"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ADMIN = ("admin", "pw-Soak-admin-5e1d")
CONSOLE = ("operator", "pw-Soak-operator-77a0")
JOURNAL = ("journal", "pw-Soak-journal-c3b9")
SEARCH_FOLDER = "alice/Lists"
IMAP_FOLDERS = ["INBOX", "Lists", "Lists.linux", "Archiv"]
HOSTILE_KINDS = ("subject", "bodies", "oversized", "guess", "slow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


# -- processes -------------------------------------------------------------------------------
@dataclass
class Proc:
    ppid: int
    pgrp: int
    state: str
    cpu: float  # user + system seconds
    rss: int  # bytes


def processes() -> dict[int, Proc]:
    """Every process of the machine, from /proc/PID/stat."""
    out: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[int(entry.name)] = Proc(int(fields[1]), int(fields[2]), fields[0],
                                    (int(fields[11]) + int(fields[12])) / TICK,
                                    int(fields[21]) * PAGE)
    return out


def tree(procs: dict[int, Proc], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p.ppid, []).append(pid)
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            seen.append(pid)
            todo.extend(children.get(pid, []))
    return seen


def vm_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def system_busy() -> float:
    """CPU seconds all processors have spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


# -- the server ------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    rss: int  # the server process (VmRSS)
    fds: int  # its open file descriptors
    tree_rss: int  # the server and its children (extraction workers)
    procs: int


@dataclass
class Lifetime:
    n: int
    proc: subprocess.Popen[bytes]
    spawned: float
    up_at: float | None = None
    ended: float | None = None
    end: str = "running"
    hostile_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    orphans: int | None = None  # its processes still running 2 s after the kill


METRIC = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', re.M)


class ServerFigures:
    """What the server's own /metrics said, summed over its lifetimes: each lifetime's counters
    start at zero, so each is read just before it ends (a kill, the final stop). What it
    archived between that reading and a kill is not in them: lower bounds."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.readings = 0
        self.missed = 0

    def read(self, target: load.Target) -> None:
        try:
            text = httpx.get(f"{target.base}/metrics", verify=target.tls(), timeout=5).text
        except httpx.HTTPError:
            self.missed += 1
            return
        self.readings += 1
        for name, labels, value in METRIC.findall(text):
            if name.startswith("mailkeep_") and (name.endswith("_total") or
                                                 name.endswith("_bucket") or
                                                 name.endswith("_count") or
                                                 name.endswith("_sum")):
                key = name + (labels or "")
                self.values[key] = self.values.get(key, 0.0) + float(value)

    def counter(self, name: str, **labels: str) -> float:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return self.values.get(f"{name}{{{inner}}}" if inner else name, 0.0)

    def quantile(self, name: str, q: float) -> float | None:
        """The upper bound of the bucket holding quantile q of a histogram without labels."""
        buckets = sorted((float(m.group(1)), v) for k, v in self.values.items()
                         if (m := re.fullmatch(rf'{name}_bucket\{{le="([0-9.e+]+)"\}}', k)))
        total = self.values.get(f"{name}_count", 0.0)
        for bound, count in buckets:
            if total and count >= q * total:
                return bound
        return None

    def calls(self) -> list[tuple[str, str, float, float]]:
        """(via, function, calls, mean seconds), most called first."""
        out = []
        for key, count in self.values.items():
            m = re.fullmatch(r'mailkeep_call_seconds_count\{function="([^"]+)",via="([^"]+)"\}',
                             key)
            if m and count:
                total = self.values.get(key.replace("_count{", "_sum{"), 0.0)
                out.append((m.group(2), m.group(1), count, total / count))
        return sorted(out, key=lambda r: -r[2])


class Server:
    """`mailkeep serve` on a data directory, started again and again; each start is a
    Lifetime. Every process it starts is in a process group of its own (its pid), so that what
    a kill leaves behind can be found and ended."""

    def __init__(self, work: Path, target: load.Target, env: dict[str, str]) -> None:
        self.work, self.target, self.env = work, target, env
        self.data = work / "data"
        self.log = open(work / "server.log", "ab")  # closed in close()
        self.lives: list[Lifetime] = []
        self.graves: list[tuple[Lifetime, float]] = []  # killed, not yet checked for orphans
        self.figures = ServerFigures()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailkeep", "--data", str(self.data), *args]

    @property
    def current(self) -> Lifetime | None:
        return self.lives[-1] if self.lives else None

    def start(self) -> Lifetime:
        n = len(self.lives) + 1
        self.log.write(f"\n=== lifetime {n} ===\n".encode())
        self.log.flush()
        proc = subprocess.Popen(
            self.command("serve", "--enable-api", "--host", self.target.host, "--port",
                         str(self.target.http_port), "--smtp-port", str(self.target.smtp_port)),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=self.env,
            start_new_session=True)
        life = Lifetime(n, proc, time.monotonic())
        self.lives.append(life)
        return life

    def answers(self) -> bool:
        """Whether it answers both an API call and on the SMTP port (a 220 greeting)."""
        t = self.target
        try:
            with httpx.Client(verify=t.tls(), timeout=3) as client:
                r = client.post(f"{t.base}/api/invoke/GetServerInfo", auth=t.admin)
                if r.status_code != 200:
                    return False
            with socket.create_connection((t.host, t.smtp_port), 3) as s:
                s.settimeout(3)
                return s.recv(512).startswith(b"220")
        except (OSError, httpx.HTTPError):
            return False

    def wait_up(self, seconds: float) -> bool:
        life = self.current
        assert life is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if life.proc.poll() is not None:
                return False
            if self.answers():
                life.up_at = time.monotonic()
                return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: the process alone, not its group."""
        life = self.current
        assert life is not None
        if life.up_at:
            self.figures.read(self.target)
        os.kill(life.proc.pid, signal.SIGKILL)
        life.proc.wait()
        life.ended = time.monotonic()
        life.end = "killed while serving" if life.up_at else "killed while starting"
        self.graves.append((life, life.ended))

    def bury(self, older_than: float = 2.0, procs: dict[int, Proc] | None = None) -> None:
        """Count what killed lifetimes left running (after `older_than` seconds), and end it."""
        now = time.monotonic()
        keep = []
        for life, at in self.graves:
            if now - at < older_than:
                keep.append((life, at))
                continue
            left = [pid for pid, p in (procs or processes()).items()
                    if p.pgrp == life.proc.pid and p.state != "Z"]
            life.orphans = len(left)
            if left:
                try:
                    os.killpg(life.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.graves = keep

    def stop(self) -> int | None:
        """SIGTERM and wait (the server stops cleanly); its exit status."""
        life = self.current
        code = None
        if life is not None and life.proc.poll() is None:
            if life.up_at:
                self.figures.read(self.target)
            life.proc.terminate()
            try:
                code = life.proc.wait(90)
                life.end = f"stopped (exit {code})"
            except subprocess.TimeoutExpired:
                life.proc.kill()
                life.proc.wait()
                life.end = "did not stop within 90 s: killed"
            life.ended = time.monotonic()
            self.graves.append((life, life.ended))
        return code

    def discard(self) -> None:
        """End the current lifetime and forget it (a start that failed before serving)."""
        life = self.lives.pop()
        if life.proc.poll() is None:
            life.proc.kill()
            life.proc.wait()
        try:
            os.killpg(life.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Whatever is left of every lifetime ends (also after a failed run)."""
        for life in self.lives:
            if life.proc.poll() is None:
                life.proc.kill()
                life.proc.wait()
        time.sleep(0.2)
        for life in self.lives:
            try:
                os.killpg(life.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


class Sampler(threading.Thread):
    """Every `every` seconds: the server's RSS and open descriptors (per lifetime), and the CPU
    used since the last sample by the server's processes, this script, Dovecot and everything
    else, by phase."""

    def __init__(self, server: Server, shared: load.Shared, dovecot_pid: int,
                 every: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.server, self.shared, self.dovecot_pid, self.every = (
            server, shared, dovecot_pid, every)
        self.halt = threading.Event()
        self.cpu: dict[bool, dict[str, float]] = {
            h: dict.fromkeys(("seconds", "server", "clients", "dovecot", "busy"), 0.0)
            for h in (False, True)}
        self.last: tuple[float, float, float, float, tuple[int, float]] | None = None

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.sample()

    def sample(self) -> None:
        procs = processes()
        self.server.bury(procs=procs)
        now = time.monotonic()
        life = self.server.current
        server_cpu = (0, 0.0)
        if life is not None and life.proc.poll() is None:
            pid = life.proc.pid
            pids = tree(procs, pid)
            rss, fds = vm_rss(pid), open_fds(pid)
            if rss and fds:  # else it is being killed
                life.samples.append(Sample(now, rss, fds, sum(procs[p].rss for p in pids),
                                           len(pids)))
            server_cpu = (life.n, sum(procs[p].cpu for p in pids))
        times = os.times()
        mine = times.user + times.system
        dovecot = sum(procs[p].cpu for p in tree(procs, self.dovecot_pid))
        busy = system_busy()
        if self.last is not None:
            t0, busy0, mine0, dove0, (n0, srv0) = self.last
            bucket = self.cpu[self.shared.hostile.is_set()]
            server = server_cpu[1] - srv0 if server_cpu[0] == n0 and n0 else 0.0
            bucket["seconds"] += now - t0
            bucket["server"] += max(0.0, server)
            bucket["clients"] += mine - mine0
            bucket["dovecot"] += max(0.0, dovecot - dove0)  # its exited children drop out
            bucket["busy"] += busy - busy0
        self.last = (now, busy, mine, dovecot, server_cpu)


# -- set-up ----------------------------------------------------------------------------------
def corpus(n: int) -> list[bytes]:
    """The first n messages of the bulk corpus (linux-mips, real mail), CRLF line ends."""
    out: list[bytes] = []
    for gz in sorted(BULK.glob("*.mbox.gz")):
        for part in gzip.decompress(gz.read_bytes()).split(MBOX_SEP):
            part = part.removeprefix(MBOX_SEP[1:])
            out.append(load.crlf(re.sub(rb"(?m)^>(>*From )", rb"\1", part)))
            if len(out) >= n:
                return out
    if not out:
        raise SystemExit(f"no corpus at {BULK}: the soak test sends real mail")
    return out


def snapshot(work: Path, ref: str | None) -> dict[str, str]:
    """A copy of src/ for the server to run from (the working tree's, or a commit's), and the
    environment that makes it do so."""
    if ref is None:
        shutil.copytree(ROOT / "src" / "mailkeep", work / "src" / "mailkeep",
                        ignore=shutil.ignore_patterns("__pycache__"))
    else:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref,
                              "src/mailkeep"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(work, filter="data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILKEEP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(work / "src"), env.get("PYTHONPATH", "")])
    return env


def prepare(server: Server, dovecot: Dovecot, mailbox_user: str,
            stall_port: int) -> tuple[int, int]:
    """Accounts, settings and the two profiles, through the command line before the first
    start; the ids of the IMAP profile and of the stalled one."""
    def call(*args: str) -> str:
        done = subprocess.run(server.command(*args), env=server.env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"set-up failed: mailkeep {' '.join(args[:2])}: {done.stderr}")
        return done.stdout

    call("user", "password", ADMIN[0], "--password", ADMIN[1])
    call("call", "CreateUser", f"userName={JOURNAL[0]}", "privileges=login,archive",
         f"password={JOURNAL[1]}")
    call("call", "CreateUser", f"userName={CONSOLE[0]}", "privileges=login",
         f"password={CONSOLE[1]}", "loginPrivileges=web")
    call("call", "SetUserRole", f"userName={CONSOLE[0]}", "role=operator")
    call("call", "CreateUser", "userName=alice", "privileges=none")
    call("call", "CreateUser", "userName=hostile", "privileges=none")
    call("call", "SetUserEmailAddresses", "userName=hostile", f"emailAddresses={load.HOSTILE_TO}")
    for key, value in (("smtp.auth", "true"), ("smtp.host", "127.0.0.1"),
                       ("metrics.enabled", "true")):
        call("call", "SetSetting", f"key={key}", f"value={value}")
    imap = {"name": "soak imap", "type": "imap", "userName": "alice", "host": "127.0.0.1",
            "port": dovecot.imap_port, "security": "none", "login": mailbox_user,
            "password": PASSWORD}
    profile = json.loads(call("call", "CreateProfile", "properties=" + json.dumps(imap)))
    stalled = {**imap, "name": "soak stalled", "port": stall_port, "timeout": 8,
               "targetFolder": "Stalled"}
    stalled_profile = json.loads(call("call", "CreateProfile",
                                      "properties=" + json.dumps(stalled)))
    return int(profile["id"]), int(stalled_profile["id"])


def fill(dovecot: Dovecot, user: str, mail: list[bytes], n: int, shared: load.Shared) -> None:
    imap = dovecot.admin(user)
    try:
        for folder in IMAP_FOLDERS[1:]:
            imap.create_folder(folder)
        for i in range(n):
            token = f"si-{shared.serial():06d}"
            raw = load.tagged(mail[i % len(mail)], token)
            shared.imap.attempt(token, raw)
            imap.append(IMAP_FOLDERS[i % len(IMAP_FOLDERS)], raw)
            shared.imap.ack(token)
    finally:
        imap.logout()


def clients(opts: argparse.Namespace, shared: load.Shared, mail: list[bytes],
            connect: Callable[[], Any], profiles: tuple[int, int]) -> list[threading.Thread]:
    def folder_listing(c: httpx.Client) -> None:
        load.succeeded(load.invoke(c, "GetMessages", folder=SEARCH_FOLDER))

    def statistics(c: httpx.Client) -> None:
        load.succeeded(load.invoke(c, "GetFolderStatistics"))

    def server_info(c: httpx.Client) -> None:
        load.succeeded(load.invoke(c, "GetServerInfo"))

    out: list[threading.Thread] = [
        *(load.Journal(shared, i, mail, opts.smtp_rate / opts.smtp_clients)
          for i in range(opts.smtp_clients)),
        load.Mailbox(shared, connect, mail, opts.imap_rate),
        load.Admin(shared, "api: RunProfile, IMAP (invoke to end)",  # followed to its end
                   lambda c: load.succeeded(load.invoke(c, "RunProfile", id=profiles[0])), 1.0),
        load.StalledRuns(shared, profiles[1]),
        *(load.Poller(shared, i) for i in range(opts.pollers)),
        load.Admin(shared, f"api: GetMessages {SEARCH_FOLDER}", folder_listing, 1.0),
        load.Admin(shared, "api: GetFolderStatistics", statistics, 2.0),
        load.Admin(shared, "api: GetServerInfo", server_info, 0.5),
        load.Console(shared, 1.0),
    ]
    hostile = set(opts.hostile.split(","))
    if "subject" in hostile:
        out.append(load.BigSubject(shared))
    if "bodies" in hostile:
        out.append(load.BigBodies(shared))
    if "oversized" in hostile:
        out.append(load.Oversized(shared))
    if "guess" in hostile:
        out += [load.Guesser(shared, way, opts.guess_pause) for way in ("console", "api", "smtp")]
    if "slow" in hostile:
        out.append(load.Slow(shared, opts.slow_heads, opts.slow_bodies, opts.slow_smtp, 1.0))
    return out


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Run:
    start: float = 0.0
    end: float = 0.0
    unexpected: list[str] = field(default_factory=list)  # exits nobody asked for
    failed_start: str | None = None
    phases: list[tuple[float, bool]] = field(default_factory=list)  # (start, hostile)
    kill_times: list[float] = field(default_factory=list)


def soak(opts: argparse.Namespace, server: Server, shared: load.Shared) -> Run:
    """The timed part: phases, kills at random moments, restarts."""
    rng = random.Random(opts.seed)
    run = Run(start=time.monotonic())
    duration = opts.minutes * 60
    run.end = run.start + duration
    kills = sorted(run.start + rng.uniform(0, duration) for _ in range(opts.kills))
    before = run.start
    while (now := time.monotonic()) < run.end:
        hostile = int((now - run.start) // opts.phase_seconds) % 2 == 1
        if hostile != shared.hostile.is_set() or not run.phases:
            (shared.hostile.set if hostile else shared.hostile.clear)()
            run.phases.append((now, hostile))
        life = server.current
        assert life is not None
        if life.proc.poll() is not None:  # it ended by itself
            shared.up.clear()
            life.ended, life.end = now, f"exited by itself ({life.proc.returncode})"
            run.unexpected.append(f"lifetime {life.n}: exit status {life.proc.returncode}")
            life = restart(server, shared)
        elif kills and now >= kills[0]:
            kills.pop(0)
            shared.up.clear()
            server.kill()
            run.kill_times.append(now)
            life = restart(server, shared)
        elif not shared.up.is_set():
            if server.answers():
                life.up_at = time.monotonic()
                shared.up.set()
            elif now - life.spawned > 120:
                run.failed_start = f"lifetime {life.n} did not answer within 120 s"
                break
        if shared.hostile.is_set() and shared.up.is_set():
            life.hostile_seconds += now - before
        before = now
        time.sleep(0.05)
    return run


def restart(server: Server, shared: load.Shared) -> Lifetime:
    life = server.start()
    shared.generation = life.n
    return life


def settle(server: Server, shared: load.Shared, clients: list[threading.Thread],
           run: Run) -> bool:
    """End the load: clients stop, the server is brought up if a kill left it starting."""
    shared.hostile.clear()
    shared.stop.set()
    for c in clients:
        c.join(120)
    life = server.current
    assert life is not None
    if life.proc.poll() is not None:
        life.ended, life.end = time.monotonic(), f"exited by itself ({life.proc.returncode})"
        run.unexpected.append(f"lifetime {life.n}: exit status {life.proc.returncode}")
        life = restart(server, shared)
    if life.up_at is None and not server.wait_up(180):
        return False
    return True


# -- the checks ------------------------------------------------------------------------------
@dataclass
class Found:
    """How often each token is in the archive (GetMessages' subjects), and where."""

    count: Counter[str] = field(default_factory=Counter)
    folders: dict[str, set[str]] = field(default_factory=dict)


def found_in_archive(client: httpx.Client) -> Found:
    found = Found()
    stats = load.succeeded(load.invoke(client, "GetFolderStatistics"))
    for folder in (s["folder"] for s in stats if s["messageCount"] > 0):
        for msg in load.succeeded(load.invoke(client, "GetMessages", folder=folder)):
            for token in set(load.tokens(msg["subject"] or "")):
                found.count[token] += 1
                found.folders.setdefault(token, set()).add(folder)
    return found


@dataclass
class Durability:
    name: str
    handed: int
    acked: int
    once: int
    missing: list[str]
    duplicated: list[str]
    unacked_found: int
    misplaced: list[str]
    bytes_differ: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.misplaced or self.bytes_differ)


def durability(name: str, ledger: load.Ledger, found: Found, folder: str) -> Durability:
    acked = ledger.acked
    missing = sorted(t for t in acked if found.count[t] == 0)
    duplicated = sorted(t for t in acked if found.count[t] > 1)
    misplaced = sorted(t for t in acked if found.count[t] and
                       not all(f.startswith(folder) for f in found.folders[t]))
    unacked = sum(1 for t in ledger.sent if t not in acked and found.count[t])
    return Durability(name, len(ledger.sent), len(acked),
                      sum(1 for t in acked if found.count[t] == 1), missing, duplicated,
                      unacked, misplaced)


def verify_stores(client: httpx.Client) -> tuple[dict[str, Any], list[str]]:
    """VerifyStores with its report; tried again, up to a minute, while the server answers
    that the store is being written (its own writer keeps it open a moment after each
    filing). The final answer, and the refusals before it."""
    refused: list[str] = []
    deadline = time.monotonic() + 60
    while True:
        body = load.invoke(client, "VerifyStores", includeIndexes="true", report="true")
        error = body.get("error") or {}
        if (body["statusCode"] == "succeeded" or error.get("details") != "store_unavailable"
                or time.monotonic() > deadline):
            return body, refused
        refused.append(str(error.get("message")))
        time.sleep(0.5)


def found_in_export(server: Server, out: Path) -> tuple[Found, dict[str, set[str]]]:
    """The same count from `mailkeep export` (the server stopped): one .eml per message and
    folder, under <owner>/<folder>/; and token -> SHA-256 of each copy."""
    done = subprocess.run(server.command("export", "--to", str(out)), env=server.env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mailkeep export failed: {done.stderr.strip()[-300:]}")
    found = Found()
    copies: dict[str, set[str]] = {}
    for path in out.rglob("*.eml"):
        raw = path.read_bytes()
        m = re.search(rb"(?im)^Message-ID: <(s[jhi]-\d{6})\.", raw[:1 << 16])
        if m:
            token = m.group(1).decode()
            found.count[token] += 1
            found.folders.setdefault(token, set()).add(str(path.parent.relative_to(out)) + "/")
            copies.setdefault(token, set()).add(hashlib.sha256(raw).hexdigest())
    return found, copies


# -- the report ------------------------------------------------------------------------------
def say(text: str = "") -> None:
    print(text, flush=True)


def table(rows: list[list[str]], right: Iterable[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = set(right)
    lines = []
    for n, r in enumerate(rows):
        cells = [c.rjust(w) if i in right and n else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


def figures(records: list[load.Record]) -> list[str]:
    """n, p50, p95 (ms) and the errors of some requests (those a kill cut left out)."""
    ok = [r.seconds for r in records if r.outcome == "ok"]
    errors = Counter(r.outcome for r in records if r.outcome not in ("ok", "cut"))
    err = ", ".join(f"{n} {what}" for what, n in errors.most_common(3)) or "0"
    if not ok:
        return ["0", "-", "-", err]
    return [str(len(ok)), ms(pct(ok, 0.5)), ms(pct(ok, 0.95)), err]


def latency_rows(records: list[load.Record]) -> tuple[list[str], dict[str, float]]:
    """The benign kinds, benign phases against hostile ones; and each kind's p95 ratio."""
    kinds = sorted({r.kind for r in records if not r.kind.startswith("hostile")})
    rows = [["kind", "benign: n", "p50", "p95", "errors", "hostile: n", "p50", "p95", "errors",
             "p95 ratio"]]
    ratios = {}
    for kind in kinds:
        cells = [kind]
        for hostile in (False, True):
            cells += figures([r for r in records if r.kind == kind and r.hostile == hostile])
        p95s = [cells[3], cells[7]]
        mine = [[r.seconds for r in records if r.kind == kind and r.hostile == h
                 and r.outcome == "ok"] for h in (False, True)]
        if "-" not in p95s and pct(mine[0], 0.95) > 0:
            ratios[kind] = pct(mine[1], 0.95) / pct(mine[0], 0.95)
            cells.append(f"{ratios[kind]:.2f}x")
        else:
            cells.append("-")
        rows.append(cells)
    return table(rows, right=range(1, 10)), ratios


def hostile_rows(records: list[load.Record]) -> list[str]:
    kinds = sorted({r.kind for r in records if r.kind.startswith("hostile")})
    rows = [["kind", "n", "p50", "p95", "errors"]]
    for kind in kinds:
        rows.append([kind, *figures([r for r in records if r.kind == kind])])
    return table(rows, right=range(1, 5))


def mb(n: float) -> str:
    return f"{n / 2**20:.0f}"


def served(life: Lifetime) -> list[Sample]:
    """The samples taken once the lifetime answered (not those of its start-up)."""
    return [x for x in life.samples if life.up_at is not None and x.t >= life.up_at]


def lifetimes_report(lives: list[Lifetime], quiet: Sample | None) -> list[str]:
    rows = [["life", "lived s", "hostile s", "ended", "RSS MB start/mid/end/max",
             "fds start/mid/end/max", "tree MB max", "procs", "orphans"]]
    for life in lives:
        s = served(life)
        lived = (life.ended or time.monotonic()) - life.spawned
        if s:
            ends = (s[0], s[len(s) // 2], s[-1])
            rss = "/".join(mb(x.rss) for x in ends) + f"/{mb(max(x.rss for x in s))}"
            fds = "/".join(str(x.fds) for x in ends) + f"/{max(x.fds for x in s)}"
            tree_max, procs = mb(max(x.tree_rss for x in s)), str(max(x.procs for x in s))
        else:
            rss = fds = tree_max = procs = "-"
        rows.append([str(life.n), f"{lived:.1f}", f"{life.hostile_seconds:.0f}",
                     life.end.replace("killed while ", "kill/"), rss, fds, tree_max, procs,
                     "-" if life.orphans is None else str(life.orphans)])
    out = table(rows, right=(0, 1, 2, 6, 7, 8))
    every = [x for life in lives for x in served(life)]
    if not every:
        return out
    out.append(f"  all {len(every)} samples while serving: RSS {mb(min(x.rss for x in every))} "
               f"to {mb(max(x.rss for x in every))} MB, open fds {min(x.fds for x in every)} to "
               f"{max(x.fds for x in every)}; process tree up to "
               f"{mb(max(x.tree_rss for x in every))} MB in {max(x.procs for x in every)} "
               "processes")
    for label, hostile in (("benign only", False), ("with hostile clients", True)):
        mine = [x for life in lives if (life.hostile_seconds > 0) == hostile
                for x in served(life)]
        if mine:
            median_rss = statistics.median(x.rss for x in mine)
            out.append(f"  lifetimes {label}: RSS median {mb(median_rss)} MB, max "
                       f"{mb(max(x.rss for x in mine))} MB; fds median "
                       f"{statistics.median(x.fds for x in mine):.0f}, max "
                       f"{max(x.fds for x in mine)}")
    lasts = [served(life)[-1] for life in lives if served(life)]
    k = max(1, len(lasts) // 5)
    for label, part in (("first", lasts[:k]), ("last", lasts[-k:])):
        out.append(f"  last sample of the {label} {k} lifetimes: RSS "
                   + " ".join(mb(x.rss) for x in part) + " MB; fds "
                   + " ".join(str(x.fds) for x in part))
    longest = max(lives, key=lambda lf: len(served(lf)))
    s = served(longest)
    if len(s) >= 4:
        step = max(1, len(s) // 15)
        out.append(f"  the longest lifetime ({longest.n}, {len(s)} samples, "
                   f"{longest.hostile_seconds:.0f} s with hostile clients): RSS "
                   + " ".join(mb(x.rss) for x in s[::step]) + " MB; fds "
                   + " ".join(str(x.fds) for x in s[::step]))
    if quiet is not None:
        out.append(f"  after the load, quiet for 5 s: RSS {mb(quiet.rss)} MB, {quiet.fds} open "
                   f"fds (tree {mb(quiet.tree_rss)} MB, {quiet.procs} processes)")
    return out


def timeline(run: Run, lives: list[Lifetime]) -> list[str]:
    """Per phase: the kills in it, and the server's RSS and open fds (at its end, and the
    most), from the samples of whichever lifetime served then."""
    samples = sorted((x for life in lives for x in served(life)), key=lambda x: x.t)
    bounds = [t for t, _ in run.phases[1:]] + [run.end]
    rows = [["phase", "clients", "kills", "RSS MB end", "max", "fds end", "max"]]
    for n, ((start, hostile), end) in enumerate(zip(run.phases, bounds, strict=True), 1):
        mine = [x for x in samples if start <= x.t < end]
        kills = sum(1 for t in run.kill_times if start <= t < end)
        cells = [str(n), "benign + hostile" if hostile else "benign", str(kills)]
        if mine:
            cells += [mb(mine[-1].rss), mb(max(x.rss for x in mine)), str(mine[-1].fds),
                      str(max(x.fds for x in mine))]
        else:
            cells += ["-"] * 4
        rows.append(cells)
    return table(rows, right=(0, 2, 3, 4, 5, 6))


def git(*args: str) -> str:
    return subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def machine(ref: str | None) -> str:
    try:
        if ref is None:
            dirty = git("status", "--porcelain", "--", "src")
            head = git("rev-parse", "--short", "HEAD")
            code = (f"the server runs the working tree's src/ (git {head}"
                    + (", with uncommitted changes)" if dirty else ", clean)"))
        else:
            code = f"the server runs src/ of git {git('rev-parse', '--short', ref)}"
    except (OSError, subprocess.CalledProcessError):
        code = "git unknown"
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {os.cpu_count()} cores, Linux {platform.release()}, python "
            f"{platform.python_version()}, load average {load_avg} at the start; {code}")


def log_summary(path: Path) -> list[str]:
    """The server's own complaints: the exceptions of its tracebacks, then its log's lines by
    kind, most frequent first."""
    text = path.read_text(errors="replace").splitlines()
    raised: Counter[str] = Counter()
    for i, line in enumerate(text):
        if line.startswith("Traceback (most recent call last)"):
            last = next((t for t in text[i + 1:] if t and not t.startswith((" ", "\t"))), "?")
            raised[last[:110]] += 1
    out = [f"  tracebacks: {sum(raised.values())}"]
    out += [f"  {n:6d}  {what}" for what, n in raised.most_common(8)]
    lines: Counter[str] = Counter()
    for line in text:
        if line.startswith(("===", "mailkeep ", "current store", "TLS certificate",
                            "Administration API", "SMTP journal receiver", "stopped", " ",
                            "Traceback")):
            continue
        key = re.sub(r"\d+", "N", line.strip())[:110]
        if key:
            lines[key] += 1
    return out + [f"  {n:6d}  {text}" for text, n in lines.most_common(12)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--phase-seconds", type=float, default=30.0,
                    help="benign and benign + hostile phases alternate this long each")
    ap.add_argument("--smtp-clients", type=int, default=4)
    ap.add_argument("--smtp-rate", type=float, default=20.0, help="messages/s, all clients")
    ap.add_argument("--imap-rate", type=float, default=2.0, help="messages/s into Dovecot")
    ap.add_argument("--imap-initial", type=int, default=400)
    ap.add_argument("--pollers", type=int, default=16)
    ap.add_argument("--guess-pause", type=float, default=0.1,
                    help="seconds between wrong passwords, per way in")
    ap.add_argument("--slow-heads", type=int, default=48)
    ap.add_argument("--slow-bodies", type=int, default=16)
    ap.add_argument("--slow-smtp", type=int, default=16)
    ap.add_argument("--hostile", default=",".join(HOSTILE_KINDS),
                    help="the hostile clients to run, comma separated (default: all of "
                    f"{','.join(HOSTILE_KINDS)})")
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument("--git-ref", default=None,
                    help="run the server from this commit's src/ (default: the working tree's)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()
    unknown = set(opts.hostile.split(",")) - set(HOSTILE_KINDS) - {""}
    if unknown:
        ap.error(f"--hostile: unknown {', '.join(sorted(unknown))}")
    if opts.seed is None:
        opts.seed = random.randrange(1 << 32)
    random.seed(opts.seed)
    work = Path(tempfile.mkdtemp(prefix="mailkeep-soak-"))
    dovecot = Dovecot()
    stall = load.Stall()
    try:
        return run_all(opts, work, dovecot, stall)
    finally:
        stall.close()
        dovecot.stop()
        if opts.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_all(opts: argparse.Namespace, work: Path, dovecot: Dovecot, stall: load.Stall) -> int:
    say(machine(opts.git_ref))
    say("command: bench/soak.py " + " ".join(sys.argv[1:]) + f"  (seed {opts.seed})")
    env = snapshot(work, opts.git_ref)
    mail = corpus(3000)
    target = load.Target(free_port(), free_port(), work / "data" / "tls" / "server.crt",
                         ADMIN, CONSOLE, JOURNAL)
    shared = load.Shared(target)
    server = Server(work, target, env)
    try:
        dovecot.start()
        stall.start()
        mailbox_user = dovecot.new_user()
        t = time.perf_counter()
        fill(dovecot, mailbox_user, mail, opts.imap_initial, shared)
        profiles = prepare(server, dovecot, mailbox_user, stall.port)
        profile_id = profiles[0]
        if not first_start(server, target):
            say("the server did not start:\n" + (work / "server.log").read_text()[-3000:])
            return 1
        shared.generation = len(server.lives)
        with target.http(auth=ADMIN) as c:  # the first run archives the initial mailbox
            first = load.succeeded(load.invoke(c, "RunProfile", id=profile_id))
        say(f"set-up: {len(mail)} corpus messages loaded, Dovecot filled with "
            f"{opts.imap_initial}, accounts and profiles made, the server up, first profile "
            f"run archived {first['itemsArchived']} ({time.perf_counter() - t:.1f} s)")
        shared.up.set()
        threads = clients(opts, shared, mail, lambda: dovecot.admin(mailbox_user), profiles)
        sampler = Sampler(server, shared, dovecot.proc.pid if dovecot.proc else 0,
                          opts.sample_seconds)
        sampler.start()
        for th in threads:
            th.start()
        say(f"soak: {opts.minutes:g} min, {opts.kills} kills at random moments, phases of "
            f"{opts.phase_seconds:g} s (benign, then benign + hostile, in turn) ...")
        run = soak(opts, server, shared)
        settled = settle(server, shared, threads, run)
        if not settled or run.failed_start:
            say(f"the server did not come back: {run.failed_start or 'after the run'}")
            say((work / "server.log").read_text(errors="replace")[-3000:])
            return 1
        return finish(opts, work, server, shared, sampler, run, profile_id)
    finally:
        server.close()


def first_start(server: Server, target: load.Target) -> bool:
    """Start the server; on other ports if another process took one meanwhile (free_port
    only finds ports that were free a moment ago)."""
    for _ in range(3):
        server.start()
        if server.wait_up(120):
            return True
        server.discard()
        if "address already in use" not in (server.work / "server.log").read_text():
            return False
        target.http_port, target.smtp_port = free_port(), free_port()
    return False


def finish(opts: argparse.Namespace, work: Path, server: Server, shared: load.Shared,
           sampler: Sampler, run: Run, profile_id: int) -> int:
    time.sleep(5)  # quiet: what the server holds once the load has gone
    sampler.sample()
    life = server.current
    assert life is not None
    quiet = life.samples[-1] if life.samples else None
    last: dict[str, Any] = {}
    found: Found | None = None
    verified: dict[str, Any] = {"statusCode": "not run"}
    refused: list[str] = []
    api_error = None
    try:
        with shared.target.http(auth=ADMIN, timeout=600) as c:
            last = load.succeeded(load.invoke(c, "RunProfile", id=profile_id))
            found = found_in_archive(c)
            verified, refused = verify_stores(c)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        api_error = f"{type(exc).__name__}: {exc}"
    sampler.halt.set()
    stop_code = server.stop()
    cli = subprocess.run(server.command("verify"), env=server.env, capture_output=True,
                         text=True)
    try:
        exported, copies = found_in_export(server, work / "export")
    except RuntimeError as exc:
        exported, copies = None, {}
        api_error = (api_error + "; " if api_error else "") + str(exc)
    counted = found or exported or Found()
    checks = [durability("SMTP journal", shared.journal, counted, "journal/"),
              durability("1.6 MB Subject (hostile)", shared.big_subject, counted, "hostile/"),
              durability("IMAP, via the profile", shared.imap, counted, "alice/")]
    for check, ledger in zip(checks[:2], (shared.journal, shared.big_subject), strict=True):
        check.bytes_differ = sorted(t for t in ledger.acked if t in copies
                                    and ledger.sent[t] not in copies[t])
    if found is not None and exported is not None:
        differ = sum(1 for t in set(found.count) | set(exported.count)
                     if found.count[t] != exported.count[t])
        count_note = ("the API's count and the export's agree for every token" if not differ
                      else f"the API's count and the export's differ for {differ} tokens")
    else:
        count_note = f"counted from {'the API' if found else 'the export'} only: {api_error}"
    server.bury(older_than=0)
    checked = Checked(checks, verified, refused, cli, stop_code, quiet, last, count_note)
    report(opts, run, server, shared, sampler, checked, work)
    ok = checked.clean and all(c.ok for c in checks) and (found or exported) is not None
    return 0 if ok and not run.unexpected else 1


@dataclass
class Checked:
    """What the end of the run found."""

    durability: list[Durability]
    verified: dict[str, Any]  # VerifyStores' final envelope
    refused: list[str]  # why VerifyStores was refused before that
    cli: subprocess.CompletedProcess[str]  # mailkeep verify
    stop_code: int | None
    quiet: Sample | None
    last_run: dict[str, Any]
    count_note: str

    @property
    def clean(self) -> bool:
        stores = (self.verified.get("result") or {}).get("stores", [])
        return (self.verified["statusCode"] == "succeeded" and self.cli.returncode == 0
                and all(s.get("ok") for s in stores))


def report(opts: argparse.Namespace, run: Run, server: Server, shared: load.Shared,
           sampler: Sampler, checked: Checked, work: Path) -> None:
    checks, verified, refused, cli = (checked.durability, checked.verified, checked.refused,
                                      checked.cli)
    stop_code, quiet, last = checked.stop_code, checked.quiet, checked.last_run
    lives = server.lives
    killed = [lf for lf in lives if lf.end.startswith("killed")]
    serving = sum(1 for lf in killed if lf.end == "killed while serving")
    restarts = [lf.up_at - lf.spawned for lf in lives[1:] if lf.up_at is not None]
    duration = run.end - run.start
    down = sum(((lf.up_at or lf.ended or run.end) - max(lf.spawned, run.start))
               for lf in lives[1:])
    say()
    say("=" * 100)
    say("mailkeep soak test: SMTP journal, IMAP profile, API and console under SIGKILL")
    say(machine(opts.git_ref))
    say("=" * 100)
    say(f"run: {duration / 60:.1f} min, seed {opts.seed}, phases of {opts.phase_seconds:g} s "
        f"(benign / benign + hostile in turn); load: {opts.smtp_clients} SMTP clients "
        f"{opts.smtp_rate:g} messages/s, IMAP {opts.imap_rate:g} messages/s, {opts.pollers} "
        f"long pollers, {opts.slow_heads}+{opts.slow_bodies}+{opts.slow_smtp} slow connections")
    say(f"kills: {len(killed)} SIGKILLs ({serving} while serving, {len(killed) - serving} while "
        f"starting); exits nobody asked for: {len(run.unexpected)}"
        + (f" ({'; '.join(run.unexpected)})" if run.unexpected else ""))
    orphaned = [lf for lf in lives if lf.orphans]
    say(f"  processes a killed server left running 2 s later: "
        f"{sum(lf.orphans or 0 for lf in lives)} (in {len(orphaned)} lifetimes)")
    if restarts:
        say(f"  restart, start to answering (API + SMTP greeting): median "
            f"{statistics.median(restarts):.2f} s, p95 {pct(restarts, 0.95):.2f} s, max "
            f"{max(restarts):.2f} s; the server was down {100 * down / duration:.0f}% of the run")
    say(f"  final stop (SIGTERM): exit status {stop_code}")

    say()
    say("DURABILITY  (counted through GetFolderStatistics + GetMessages after the load, server up)")
    rows = [["messages", "handed over", "acknowledged", "found once", "missing", "duplicated",
             "misplaced", "found, not acked", "bytes differ"]]
    for c in checks:
        rows.append([c.name, str(c.handed), str(c.acked), str(c.once), str(len(c.missing)),
                     str(len(c.duplicated)), str(len(c.misplaced)), str(c.unacked_found),
                     str(len(c.bytes_differ))])
    for line in table(rows, right=range(1, 9)):
        say(line)
    for c in checks:
        for label, items in (("missing", c.missing), ("duplicated", c.duplicated),
                             ("misplaced", c.misplaced), ("bytes differ", c.bytes_differ)):
            if items:
                say(f"  {c.name} {label}: {', '.join(items[:10])}"
                    + (" ..." if len(items) > 10 else ""))
    resent = sum(1 for n in shared.journal.attempts.values() if n > 1)
    say(f"  SMTP messages sent more than once (a kill or a 4xx before the 250): {resent}; "
        f"'found, not acked': committed, but the 250 never reached the client (allowed)")
    say(f"  {checked.count_note}; bytes of each exported copy compared with what was sent "
        "(SMTP)")
    say(f"  last profile run (server quiet): archived {last.get('itemsArchived')}, duplicates "
        f"{last.get('itemsDuplicate')}, failed {last.get('itemsFailed')}")
    stores = (verified.get("result") or {}).get("stores", [])
    say(f"  VerifyStores (API, report=true): {verified['statusCode']}"
        + "".join(f"; store {s.get('name')}: {'clean' if s.get('ok') else 'NOT clean'}, "
                  f"{s.get('messages')} messages, {s.get('records')} records"
                  + (f", problems {s.get('problems')}" if s.get("problems") else "")
                  + (f", repaired on open {s.get('repairedOnOpen')}" if s.get("repairedOnOpen")
                     else "")
                  for s in stores)
        + (f" ({verified.get('error')})" if verified.get("error") else ""))
    if refused:
        say(f"  VerifyStores was refused {len(refused)} times first (the load had stopped): "
            f"{refused[0]}")
    say(f"  mailkeep verify (server stopped): exit {cli.returncode}"
        + (f": {(cli.stdout + cli.stderr).strip()[-300:]}" if cli.returncode else ""))

    say()
    say("LATENCY  (ms; benign clients, in benign phases vs phases with the hostile clients; "
        "requests a kill cut are left out)")
    lines, ratios = latency_rows(shared.records)
    for line in lines:
        say(line)
    cut = sum(1 for r in shared.records if r.outcome == "cut")
    say(f"  requests cut by a kill (left out): {cut}; the long-poll figure is how late the "
        f"answer came after its 2 s timeout (nothing changed meanwhile)")

    say()
    say("HOSTILE CLIENTS  (what they were answered)")
    for line in hostile_rows(shared.records):
        say(line)
    for what, n in sorted(shared.notes.items()):
        say(f"  {n:6d}  {what}")
    for kind, sent in sorted(shared.body_sent.items()):
        say(f"  {kind}: sent before the answer or the cut: median {mb(statistics.median(sent))} "
            f"MB, max {mb(max(sent))} MB")
    held = shared.held
    if held:
        say(f"  slow connections the server ended itself: {len(held)}, held open median "
            f"{statistics.median(held):.1f} s, max {max(held):.1f} s")
    else:
        say("  slow connections the server ended itself: none (each lasted until the phase "
            "ended, the script was sent whole or a kill)")

    say()
    say(f"SERVER PROCESS  (RSS and open file descriptors of `mailkeep serve`, every "
        f"{opts.sample_seconds:g} s; tree = it and its children)")
    for line in lifetimes_report(lives, quiet):
        say(line)
    say()
    say("TIMELINE  (per phase: the server's RSS and open fds at the phase's end and at most)")
    for line in timeline(run, lives):
        say(line)

    say()
    say("CPU  (cores used on average)")
    rows = [["phase", "seconds", "server", "soak clients", "Dovecot", "everything else"]]
    for hostile in (False, True):
        b = sampler.cpu[hostile]
        sec = b["seconds"] or 1.0
        other = b["busy"] - b["server"] - b["clients"] - b["dovecot"]
        rows.append(["benign + hostile" if hostile else "benign", f"{b['seconds']:.0f}",
                     f"{b['server'] / sec:.2f}", f"{b['clients'] / sec:.2f}",
                     f"{b['dovecot'] / sec:.2f}", f"{max(0.0, other) / sec:.2f}"])
    for line in table(rows, right=range(1, 6)):
        say(line)

    say()
    say("SERVER LOG  (lines by kind, numbers as N)")
    for line in log_summary(work / "server.log"):
        say(line)

    say()
    fig = server.figures
    say(f"THE SERVER'S OWN FIGURES  (/metrics, read before each of {fig.readings} lifetimes "
        f"ended, summed; {fig.missed} readings failed; lower bounds where a kill followed)")
    for source in ("journal", "profile", "upload"):
        archived, duplicates, failed = (
            fig.counter(f"mailkeep_messages_{kind}_total", source=source)
            for kind in ("archived", "duplicate", "failed"))
        say(f"  {source}: archived {archived:,.0f}, duplicates {duplicates:,.0f}, failed "
            f"{failed:,.0f}")
    p50 = fig.quantile("mailkeep_writer_commit_seconds", 0.5)
    p95 = fig.quantile("mailkeep_writer_commit_seconds", 0.95)
    say(f"  writer commits: {fig.counter('mailkeep_writer_commit_seconds_count'):,.0f}, p50 "
        f"<= {p50 if p50 is not None else '-'} s, p95 <= {p95 if p95 is not None else '-'} s "
        "(bucket bounds)")
    for via, function, count, mean in fig.calls()[:8]:
        say(f"  {via} {function}: {count:,.0f} calls, mean {mean * 1000:.1f} ms to the first "
            "answer")
    say()
    say("SUMMARY")
    journal = checks[0]
    clean = checked.clean
    worst = max(ratios.values()) if ratios else float("nan")
    over = sorted((k for k, r in ratios.items() if r > 2), key=lambda k: -ratios[k])
    say(f"  every acknowledged message present once: "
        f"{'PASS' if all(c.ok for c in checks) else 'MISS'} (SMTP {journal.acked} acknowledged, "
        f"{journal.once} found once)")
    say(f"  verify clean (API and command line): {'PASS' if clean else 'MISS'}")
    say(f"  p95 with hostile clients within 2x: {'PASS' if worst <= 2 else 'MISS'} "
        f"({len(ratios) - len(over)} of {len(ratios)} kinds within; worst {worst:.2f}x"
        + (f": {', '.join(f'{k} {ratios[k]:.1f}x' for k in over[:4])}" if over else "") + ")")
    say("  memory and open files flat: see SERVER PROCESS (judged there, not computed)")


if __name__ == "__main__":
    sys.exit(main())

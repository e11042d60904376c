"""Journal throughput with one, two and three `mailkeep serve` processes on one PostgreSQL and
one SeaweedFS bucket, against one embedded server; and the time another server takes to go on
with a store whose writer died in the middle of a commit. All on this one machine.

Usage: .venv/bin/python bench/scale_nodes.py [--messages 900] [--clients 6] [--takeovers 5]

Journal: each run has a fresh database and bucket; the installation is made by importing one
message, every server gets its master key. CLIENTS threads send MESSAGES messages of about
2 KB, one SMTP session each (as a journaling mail server does), message i to server i mod k;
the figure is acknowledged (250) messages per second of wall time, and how many got a 451
(the store's write lock busy for 30 s: the sender retries).

Takeover: servers A and B share a store. A is started with a stop point in the commit of its
first batch, after it took the store's write lock (PostgreSQL advisory lock) and before the
catalog commit (tests/crashpoints.py: it SIGSTOPs itself there); a message journaled to A
stops it there. A message is then journaled to B, whose batch waits for the lock (seen as a
waiting lock in pg_locks). A is killed (SIGKILL) and the time from the kill to B's 250 is the
takeover. The machine of A stays up, so its connections are closed at once by its kernel; a
machine lost altogether is noticed by TCP keepalives instead (core/pgconn.py: about 19 s),
which this machine cannot show (dropping packets needs a netem qdisc it lacks).

Figures go to stdout; the servers, PostgreSQL and SeaweedFS share the machine's two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import engines  # noqa: E402
from tests.crashpoints import HOOKED, wait_stopped  # noqa: E402

STOP_IN_COMMIT = "mailkeep.core.storage.segment_objects:upload:1"
WRITER_LOCK = 0x6D6B  # catalog_pg.WRITER_LOCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(i: int) -> bytes:
    return (f"From: app@example.org\r\nTo: u{i % 7}@example.org\r\nSubject: journal {i}\r\n"
            f"Message-ID: <b{i}.{time.time_ns()}@example.org>\r\n\r\n"
            + f"line {i} of the journaled message body\r\n" * 50).encode()


class Node:
    def __init__(self, data: Path, env: dict[str, str], point: str | None = None) -> None:
        self.data, self.smtp, self.http = data, free_port(), free_port()
        child_env = dict(env, MK_CRASH_AT=point) if point else env
        self.proc = subprocess.Popen(
            [*HOOKED, "--data", str(data), "serve", "--host", "127.0.0.1", "--port",
             str(self.http), "--smtp-port", str(self.smtp)], env=child_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
        deadline = time.monotonic() + 90
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.smtp, timeout=5) as s:
                    s.noop()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mailkeep serve on {data} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def installation(work: Path, env: dict[str, str], k: int) -> list[Path]:
    """k data directories of one installation (the first made by an import)."""
    nodes = [work / f"node{n}" for n in range(k)]
    for node in nodes:
        shutil.rmtree(node, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    first = work / "first.eml"
    first.write_bytes(message(-1))
    subprocess.run([sys.executable, "-m", "mailkeep", "--data", str(nodes[0]), "import",
                    str(first)], env=env, check=True, capture_output=True)
    for node in nodes[1:]:
        (node / "conf").mkdir(parents=True)
        shutil.copy(nodes[0] / "conf" / "master.key", node / "conf" / "master.key")
    return nodes


def journal(nodes: list[Node], messages: int, clients: int) -> tuple[float, int, int]:
    """(seconds, acknowledged, refused with 451) for MESSAGES sent by CLIENTS threads."""
    counter = iter(range(messages))
    lock = threading.Lock()
    acked = busy = 0

    def client() -> None:
        nonlocal acked, busy
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            node = nodes[i % len(nodes)]
            try:
                with smtplib.SMTP("127.0.0.1", node.smtp, timeout=120) as s:
                    s.sendmail("mta@example.org", ["journal@example.org"], message(i))
                with lock:
                    acked += 1
            except smtplib.SMTPException:
                with lock:
                    busy += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started, acked, busy


def waiting_for_lock(url: str) -> bool:
    from mailkeep.core.pgconn import Connection
    conn = Connection(url)
    try:
        return bool(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND"
                                 " classid = ? AND NOT granted", (WRITER_LOCK,)).fetchone()[0])
    finally:
        conn.close()


def takeover(work: Path, env: dict[str, str], url: str) -> float:
    """Seconds from the kill of the writer stopped in its commit to the other's 250."""
    nodes = installation(work, env, 2)
    a = Node(nodes[0], env, STOP_IN_COMMIT)
    b = Node(nodes[1], env)
    done: dict[str, float] = {}
    try:
        def send(node: Node, key: str) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", node.smtp, timeout=120) as s:
                    s.sendmail("mta@example.org", ["journal@example.org"], message(0))
                done[key] = time.monotonic()
            except (OSError, smtplib.SMTPException):
                done[key + " failed"] = time.monotonic()
        threading.Thread(target=send, args=(a, "a"), daemon=True).start()
        wait_stopped(a.proc, STOP_IN_COMMIT)  # A holds the store's write lock, stopped
        to_b = threading.Thread(target=send, args=(b, "b"))
        to_b.start()
        deadline = time.monotonic() + 30
        while not waiting_for_lock(url):
            if time.monotonic() > deadline:
                raise SystemExit("B never waited for the store's lock")
            time.sleep(0.01)
        killed = time.monotonic()
        os.killpg(a.proc.pid, signal.SIGKILL)
        to_b.join(timeout=120)
        if "b" not in done:
            raise SystemExit("B did not take the message after A was killed")
        return done["b"] - killed
    finally:
        a.proc.wait()
        b.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=900)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--takeovers", type=int, default=5)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="mailkeep-nodes."))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAILKEEP_", "AWS_"))}
    base["PYTHONPATH"] = str(ROOT / "src")
    print(f"machine: {os.cpu_count()} cores; {args.messages} messages of "
          f"{len(message(0))} bytes, {args.clients} SMTP clients", flush=True)
    with engines(work, keep=args.work is not None) as (pg, weed):
        runs: list[tuple[str, dict[str, str], int]] = [("embedded", base, 1)]
        for k in (1, 2, 3):
            url = pg.new_database()
            bucket = weed.new_bucket(f"journal{k}")
            runs.append((f"postgres+s3, {k} server{'s' if k > 1 else ''}",
                         {**base, **weed.env(), "MAILKEEP_DATABASE": url,
                          "MAILKEEP_OBJECTS": bucket}, k))
        print(f"\n{'journal':28} {'msg/s':>8} {'acknowledged':>13} {'451':>5} {'seconds':>8}")
        for name, env, k in runs:
            place = work / name.replace(" ", "_").replace(",", "")
            nodes = [Node(d, env) for d in installation(place, env, k)]
            try:
                seconds, acked, busy = journal(nodes, args.messages, args.clients)
            finally:
                for node in nodes:
                    node.stop()
            print(f"{name:28} {acked / seconds:>8.1f} {acked:>13} {busy:>5} {seconds:>8.1f}",
                  flush=True)
        times = []
        for n in range(args.takeovers):
            url = pg.new_database()
            bucket = weed.new_bucket(f"takeover{n}")
            env = {**base, **weed.env(), "MAILKEEP_DATABASE": url, "MAILKEEP_OBJECTS": bucket}
            times.append(takeover(work / f"takeover{n}", env, url))
        print(f"\ntakeover of a store whose writer was killed in its commit: median "
              f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
              f"over {len(times)} (each: " + ", ".join(f"{t * 1000:.0f}" for t in times)
              + " ms)")


if __name__ == "__main__":
    main()

"""Three `mailkeep serve` processes, each with a data directory of its own, on one PostgreSQL
database and one bucket of a real SeaweedFS: mail journaled to all three at once while one of
them is killed with SIGKILL and started again. Every message that got its 250 from any of them
is in the archive exactly once, and verify passes."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import smtplib
import threading
from contextlib import ExitStack
from pathlib import Path

from mailkeep.core.archive import Archive
from mailkeep.core.storage.query import compile_query
from tests.helpers import free_port, mk, mk_ok, serving

CLIENTS = 6
BEFORE_KILL = 60  # messages acknowledged before the kill
AFTER_RESTART = 60  # and after the restart


def message(i: int) -> bytes:
    return (f"From: app@example.org\r\nTo: u{i % 5}@example.org\r\nSubject: node journal {i}"
            f"\r\nMessage-ID: <n{i}@example.org>\r\n\r\n" + f"line {i}\r\n" * 30).encode()


def test_three_servers_journal_one_archive_through_a_kill(scaled: str, tmp_path: Path) -> None:
    nodes = [tmp_path / f"node{n}" for n in range(3)]
    first = tmp_path / "first.eml"
    first.write_bytes(message(-1))
    mk_ok(nodes[0], "import", str(first))  # the installation: its master key, its store
    for node in nodes[1:]:
        (node / "conf").mkdir(parents=True)
        shutil.copy2(nodes[0] / "conf" / "master.key", node / "conf" / "master.key")
    smtp = [free_port() for _ in nodes]
    http = [free_port() for _ in nodes]

    def start(n: int, stack: ExitStack) -> int:
        served = stack.enter_context(serving(
            nodes[n], "--host", "127.0.0.1", "--port", str(http[n]), "--smtp-port",
            str(smtp[n]), smtp_port=smtp[n], clean_exit=False, timeout=60))
        return served.proc.pid

    acknowledged: dict[str, int] = {}  # sha256 -> the node that said 250
    lock = threading.Lock()
    stop = threading.Event()
    counts = {"before": threading.Event(), "after": threading.Event()}
    phase = {"name": "before", "base": 0}

    def client(k: int) -> None:
        i = k * 1_000_000
        while not stop.is_set():
            n = i % 3
            raw = message(i)
            i += 1
            try:
                with smtplib.SMTP("127.0.0.1", smtp[n], timeout=60) as session:
                    session.sendmail("mta@example.org", ["x@example.org"], raw)
            except (OSError, smtplib.SMTPException):
                continue  # that node is down (or busy): no 250, next message elsewhere
            with lock:
                acknowledged[hashlib.sha256(raw).hexdigest()] = n
                done = len(acknowledged) - phase["base"]
                if phase["name"] == "before" and done >= BEFORE_KILL:
                    counts["before"].set()
                elif phase["name"] == "after" and done >= AFTER_RESTART:
                    counts["after"].set()

    with ExitStack() as stack:
        pids = [start(n, stack) for n in range(3)]
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            assert counts["before"].wait(120), f"only {len(acknowledged)} acknowledged"
            os.kill(pids[1], signal.SIGKILL)  # in the middle of it all
            with lock:
                at_kill = len(acknowledged)
                phase.update(name="after", base=at_kill)
            with ExitStack() as again:
                start(1, again)  # the same server started again
                assert counts["after"].wait(120), f"{len(acknowledged) - at_kill} after"
                with lock:
                    by_node = {n: sum(1 for v in acknowledged.values() if v == n)
                               for n in range(3)}
                stop.set()
                for t in threads:
                    t.join(timeout=120)
        finally:
            stop.set()
    assert all(by_node[n] > 0 for n in range(3)), by_node  # all three took mail
    seen: dict[str, int] = {}
    with Archive(nodes[2]) as archive:
        for _rec, store in archive.readable_stores():
            for number in store.catalog.iter_numbers(compile_query("journal")):
                digest = hashlib.sha256(store.read(number)).hexdigest()
                seen[digest] = seen.get(digest, 0) + 1
    missing = set(acknowledged) - set(seen)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged messages lost"
    assert all(count == 1 for count in seen.values()), "a message filed twice"
    for node in (nodes[0], nodes[1]):
        result = mk(node, "verify")
        assert result.exit_code == 0, result.output

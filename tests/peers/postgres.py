"""A private PostgreSQL server for the tests: Debian's own binaries, a cluster made by initdb in
a temporary directory, listening on a free port of 127.0.0.1 only, stopped (fast shutdown)
and removed at the end. Run as root, the server runs as the `postgres` account the package
made (initdb refuses root). Its durability settings are off: it holds test data only, and a
test of durability stops mailkeep, not PostgreSQL.

`MAILKEEP_TEST_POSTGRES` may name a server of the environment instead (a libpq URL of an
account that may create databases): each test then gets a database of its own there."""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.helpers import free_port

_counter = itertools.count(1)


def pg_bin() -> Path | None:
    """The directory of the newest PostgreSQL server installed from Debian's packages."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _die_with_parent() -> None:  # in the child, before exec: the server ends with the tests
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG


class Postgres:
    def __init__(self, durable: bool = False) -> None:
        """`durable`: fsync and synchronous commits on, as in production (a benchmark's)."""
        self.durable = durable
        self.url = os.environ.get("MAILKEEP_TEST_POSTGRES", "")
        self.proc: subprocess.Popen[bytes] | None = None
        self.root: Path | None = None

    def start(self, timeout: float = 60) -> Postgres:
        if self.url:
            return self
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (tests/peers/install.sh installs "
                               "Debian's postgresql package)")
        self.root = Path(tempfile.mkdtemp(prefix="mailkeep-pg."))
        runas: dict[str, object] = {}
        if os.geteuid() == 0:
            runas = {"user": "postgres", "group": "postgres", "extra_groups": []}
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True,
                       capture_output=True, cwd=self.root, **runas)  # type: ignore[call-overload]
        self._command = [
            str(bindir / "postgres"), "-D", str(data), "-p", str(free_port()), "-k",
            str(self.root), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
            *([] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off"])]
        self._runas = runas
        self._log = open(self.root / "server.log", "ab")  # noqa: SIM115 (closed in stop)
        self.url = f"postgresql://postgres@127.0.0.1:{self._command[4]}/postgres"
        self._run(timeout)
        return self

    def _run(self, timeout: float = 60) -> None:
        assert self.root is not None
        self.proc = subprocess.Popen(
            self._command, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent, cwd=self.root, **self._runas)  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: "
                                       + (self.root / "server.log").read_text()) from None
                time.sleep(0.05)  # polling its readiness: there is no event to wait for

    def restart(self) -> None:
        """A fast shutdown (every connection is cut), then the same server again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(20)
        self._run()

    def new_database(self) -> str:
        """A new empty database of this server: its URL."""
        name = f"mk_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        base = self.url.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)  # fast shutdown, whatever is still connected
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(10)
        self._log.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

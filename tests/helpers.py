"""What the tests share: where the shared test data is, free ports, a directory that other users
may enter and a way to run code as one of them, a caller for catalog functions run in-process,
the `mailkeep` command line (in-process, or as a real process), and a real `mailkeep serve`
that is yielded once it listens.

The fixtures built on these are in tests/conftest.py; a child that stops itself at a named
point of the code, to be killed there, is in tests/crashpoints.py."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import pwd
import random
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from argon2 import PasswordHasher
from click.testing import CliRunner, Result

from mailkeep.cli import main
from mailkeep.core.masterdb import MasterDB
from mailkeep.functions.call import Caller, Services
from mailkeep.functions.invoke import Invoker, Quiet  # Quiet: a call nobody watches
from mailkeep.jobs.process import Progress

T = TypeVar("T")

# -- the shared test data -----------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]  # the checkout
SHARED = ROOT.parent / "shared"  # beside the checkout: ../shared
CORPUS = SHARED / "corpus"  # real mail nobody on this project wrote (see its README.md)
TRICKY = CORPUS / "tricky"
BULK = CORPUS / "bulk" / "linux-mips"
FUNCTION_SPEC = SHARED / "spec" / "mailstore-functions.json"
NEEDED = (TRICKY, BULK, FUNCTION_SPEC)  # tests/conftest.py stops the run if one is missing


def gunzip_years(years: list[int], out: Path) -> None:
    """linux-mips mboxes of these years (one may come more than once), unpacked into one file."""
    with open(out, "wb") as fh:
        for year in years:
            with gzip.open(BULK / f"linux-mips-{year}.mbox.gz") as gz:
                shutil.copyfileobj(gz, fh)


# -- ports and directories ----------------------------------------------------------------------
_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A port nothing is bound to, below the kernel's range of ephemeral ports. A port the
    kernel picks (a bind to port 0) is one it may give any outgoing connection before the
    server binds it: a test's server then failed with "address already in use"."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def public_dir(prefix: str) -> Path:
    """A new directory that other users may enter (mode 0755), outside pytest's temporary
    root, whose parents are the running user's alone (0700): for peers whose processes run
    as other users, and for a child that drops its privileges. The caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def unprivileged(fn: Callable[[], T]) -> T:
    """fn() as a user without privileges, so that file modes hold for it: run as root (who
    reads and writes whatever the modes say), it runs in a forked child that first becomes
    `nobody` (what it reaches must be reachable by other users: see public_dir); otherwise
    here. The result comes back pickled; an exception in the child fails the test."""
    if os.geteuid() != 0:
        return fn()
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns of fork() in a process with threads: the child runs fn alone
        # (which must need no lock another thread may hold) and leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: it never returns into pytest
        try:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                answer = pickle.dumps((True, fn()))
            except BaseException:
                answer = pickle.dumps((False, traceback.format_exc()))
            with os.fdopen(write_end, "wb") as out:
                out.write(answer)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        answer = inp.read()
    _pid, status = os.waitpid(pid, 0)
    assert answer and os.waitstatus_to_exitcode(status) == 0, f"the child: {status}"
    ok, value = pickle.loads(answer)
    assert ok, f"as nobody:\n{value}"
    result: T = value
    return result


# -- catalog functions, in-process ---------------------------------------------------------------
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # Argon2 at its cheapest
SHELL = Caller("root", "cli")  # the shell that owns the data directory, as `mailkeep call` is


@contextmanager
def invoker(data: Path, hasher: PasswordHasher | None = CHEAP) -> Iterator[Invoker]:
    """The one invoke path on a data directory, as `mailkeep` builds it (passwords hashed
    cheaply unless told otherwise)."""
    data = data.resolve()
    master = MasterDB.of(data)
    services = Services(data, master, hasher=hasher)
    try:
        yield Invoker(services)
    finally:
        services.close()
        master.close()


def call_function(data: Path, name: str, /, *, caller: Caller = SHELL,
                  ctx: Progress | None = None, **form: str) -> Any:
    """A catalog function in-process through the one invoke path (rights, audit, notification
    as from any interface), its arguments as text, as `mailkeep call` passes them."""
    with invoker(data) as inv:
        return inv.call(name, caller, form=form, ctx=ctx or Quiet())


# -- the command line, in-process ---------------------------------------------------------------
# Where a test's master database and segments are (set by tests/conftest.py for the test alone,
# never taken from the environment the tests were started in).
BACKENDS = ("MAILKEEP_DATABASE", "MAILKEEP_OBJECTS")


def cli(*args: str, env: Mapping[str, str | None] | None = None,
        input: str | bytes | None = None) -> Result:
    """`mailkeep ARGS` in this process (click's CliRunner on mailkeep.cli.main). No MAILKEEP_*
    variable of this process's environment reaches it but the test's engines (BACKENDS), only
    those in `env` (None unsets). It may exit with any code; an exception other than
    SystemExit fails the test."""
    unset: dict[str, str | None] = {k: None for k in os.environ
                                    if k.startswith("MAILKEEP_") and k not in BACKENDS}
    # as they are, and as they were after it: `--database` sets its variable for what the
    # command starts, which must not outlive the command here
    unset.update({k: os.environ.get(k) for k in BACKENDS})
    result = CliRunner().invoke(main, list(args), env={**unset, **(env or {})}, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"mailkeep {' '.join(args)} crashed:\n{result.output}\n{trace}")
    return result


def mk(data: Path, *args: str, env: Mapping[str, str | None] | None = None,
       input: str | bytes | None = None) -> Result:
    """`mailkeep --data DATA ARGS` in this process (see cli)."""
    return cli("--data", str(data), *args, env=env, input=input)


def mk_ok(data: Path, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """mk(), which must exit 0."""
    result = mk(data, *args, env=env)
    assert result.exit_code == 0, (args, result.exit_code, result.output)
    return result


# -- the command line, as a real process --------------------------------------------------------
_ENTRY_POINT = Path(sys.executable).with_name("mailkeep")  # the installed `mailkeep` script
MAILKEEP = [str(_ENTRY_POINT)] if _ENTRY_POINT.exists() else [sys.executable, "-m", "mailkeep"]
CRASH_AT = "MK_CRASH_AT"  # see tests/crashpoints.py


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child, without any MAILKEEP_* variable but the test's
    engines (BACKENDS), nor a crash point, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("MAILKEEP_") or k in BACKENDS) and k != CRASH_AT}
    return env | extra


def mk_process(data: Path, *args: str, env: Mapping[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mailkeep --data DATA ARGS` as a real process of its own (its output as text)."""
    return subprocess.run([*MAILKEEP, "--data", str(data), *args], capture_output=True,
                          text=True, timeout=timeout, env=clean_env(**(env or {})))


# -- a real server ------------------------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    log: Path | None
    out: bytes = b""  # stdout and stderr once it has stopped (with a log: empty, see the log)
    err: bytes = b""

    def output(self) -> str:
        """Everything it wrote so far that can be read, for a failure message."""
        if self.log is not None:
            return self.log.read_text(errors="replace")
        return (self.out + self.err).decode(errors="replace")


def _smtp_answers(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as probe:
            probe.noop()
        return True
    except smtplib.SMTPConnectError:  # it answers, refusing this address (smtp.networks)
        return True
    except (OSError, smtplib.SMTPException):
        return False


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def serving(data: Path, *flags: str, port: int | None = None, smtp_port: int | None = None,
            log: Path | None = None, clean_exit: bool = True,
            timeout: float = 30) -> Iterator[Served]:
    """`mailkeep --data DATA serve FLAGS` as a real process, yielded once it listens: once
    `port` accepts a connection and `smtp_port` answers an SMTP NOOP (those that are given).
    Its output goes to pipes (read once it has stopped), or is appended to `log`. On leaving,
    a server still running gets SIGTERM; with clean_exit it must then exit 0, having printed
    its certificate's fingerprint unless --no-tls was given (or its output went to the log)."""
    command = [*MAILKEEP, "--data", str(data), "serve", *flags]
    if log is not None:
        with log.open("ab") as fh:
            proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=clean_env())
    else:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=clean_env())
    served = Served(proc, log)
    try:
        deadline = time.monotonic() + timeout
        while not ((port is None or _accepts(port))
                   and (smtp_port is None or _smtp_answers(smtp_port))):
            if proc.poll() is not None:
                out, err = proc.communicate()
                served.out, served.err = out or b"", err or b""
                raise AssertionError(f"`mailkeep serve` exited with {proc.returncode}:\n"
                                     f"{served.output()}")
            assert time.monotonic() < deadline, f"`mailkeep serve` did not listen in {timeout} s"
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        served.out, served.err = out or b"", err or b""
    if clean_exit:
        assert proc.returncode == 0, (proc.returncode, served.output())
        if log is None and "--no-tls" not in flags:
            assert b"SHA-256 fingerprint" in served.out, served.output()


@contextmanager
def master_sql(data: Path) -> Iterator[Any]:
    """A connection of its own to the master database of data, wherever the test keeps it
    (the data directory's SQLite file, or the PostgreSQL database of $MAILKEEP_DATABASE), to
    read or change it behind mailkeep's back: `execute(sql, params)` with `?` placeholders,
    each statement committed. Without the tables: a connection where there are none."""
    url = os.environ.get("MAILKEEP_DATABASE")
    if url:
        from mailkeep.core.pgconn import Connection
        pg = Connection(url)
        try:
            yield pg
        finally:
            pg.close()
        return
    conn = sqlite3.connect(data / "mailkeep.db", isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def catalog_rows(store_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of a query on a store's catalog, wherever the test keeps it (catalog.sqlite,
    or the store's schema in the PostgreSQL database of $MAILKEEP_DATABASE)."""
    url = os.environ.get("MAILKEEP_DATABASE")
    if url:
        from mailkeep.core.pgconn import Connection
        from mailkeep.core.storage.catalog_pg import schema_of
        store_id = json.loads((store_dir / "store.json").read_text())["id"]
        pg = Connection(url)
        try:
            pg.execute(f"SET search_path TO {schema_of(store_id)}")
            return pg.execute(sql, params).fetchall()
        finally:
            pg.close()
    conn = sqlite3.connect(store_dir / "catalog.sqlite")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def last_audit_id(data: Path) -> int:
    """The id of the master database's newest audit record (0: none yet)."""
    with master_sql(data) as db:
        return int(db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0])


def audit_since(data: Path, after: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, action, details) of the audit records written after `after`, oldest first, read
    from the table `audit` of the master database."""
    with master_sql(data) as db:
        rows = db.execute("SELECT actor, action, details FROM audit WHERE id > ? ORDER BY id",
                          (after,)).fetchall()
    return [(actor, action, json.loads(details)) for actor, action, details in rows]


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM to a peer's process, SIGKILL if it has not gone within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Calls run in a process of their own: in the server, the functions declared `isolated`
(verifying, compacting, recovering, rebuilding and merging stores: minutes of Python work) run
in a child process, so that their work does not hold the server's interpreter while it answers
requests and long polls. The child takes a store's write lock as any other writer does (the
server's one writer lets go of the current store when idle, core/writer.py). The status protocol is
the same: the child reports progress and log lines through a pipe to the process's context in
the server, a cancel asked of the process is passed on to the child's next safe point, and the
child's result or error comes back as the call's own. The child runs the call on the one invoke
path of its own (functions/invoke.py), on the data directory's master database: the audit
record and the notifications are its.

A child that ends without an answer (killed, out of memory) fails the call with WorkerEnded;
one that does not stop within CANCEL_GRACE_S of a cancel is killed. Either wrote no audit
record: the invoke path in the server writes it.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailkeep.core.errors import Cancelled, MailkeepError

if TYPE_CHECKING:
    from mailkeep.functions.call import Caller, Services
    from mailkeep.functions.invoke import Prepared
    from mailkeep.jobs.process import Progress

log = logging.getLogger("mailkeep.calls")

POLL_S = 0.1  # how often the server looks for a cancel while the child works
CANCEL_GRACE_S = 30.0


class WorkerEnded(MailkeepError):
    """The child process of an isolated call ended without answering (`cancelled`: it was
    killed after a cancel it did not heed); it wrote no audit record, so its caller does."""

    def __init__(self, message: str, cancelled: bool = False) -> None:
        super().__init__(message)
        self.cancelled = cancelled


def run_isolated(services: Services, prepared: Prepared, ctx: Progress,
                 token: str | None) -> Any:
    """Run a prepared call in a child process; what it returns, or raise what it raised."""
    mp = multiprocessing.get_context("forkserver")
    ours, theirs = mp.Pipe()
    child = mp.Process(target=_child_main, name=f"mailkeep-{prepared.fn.name}", daemon=True,
                       args=(theirs, str(services.data_dir), prepared.fn.name, prepared.args,
                             prepared.caller, token, dict(services.keys.unlocked),
                             _backends(services)))
    child.start()
    theirs.close()
    cancelled_at: float | None = None
    try:
        while True:
            if cancelled_at is None:
                try:
                    ctx.check_cancelled()
                except Cancelled:
                    cancelled_at = time.monotonic()
                    _send(ours, ("cancel",))
            elif time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                child.kill()
                raise WorkerEnded(f"{prepared.fn.name} did not stop within "
                                  f"{CANCEL_GRACE_S:.0f} s of the cancel: its process was "
                                  "killed", cancelled=True)
            if ours.poll(POLL_S):
                try:
                    kind, *rest = ours.recv()
                except (EOFError, OSError):
                    child.join(5)
                    raise WorkerEnded(f"{prepared.fn.name} ended without an answer (its "
                                      f"process exited with {child.exitcode})") from None
                if kind == "progress":
                    ctx.progress(rest[0], rest[1])
                elif kind == "log":
                    ctx.log(rest[0])
                elif kind == "result":
                    return rest[0]
                elif kind == "error":
                    raise _rebuilt(rest[0])
            elif not child.is_alive() and not ours.poll(0):
                raise WorkerEnded(f"{prepared.fn.name} ended without an answer (its "
                                  f"process exited with {child.exitcode})")
    finally:
        ours.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    try:
        conn.send(message)
    except (OSError, ValueError):
        pass  # the other side has gone: its own end says why


# -- the child ------------------------------------------------------------------------------
class _ChildContext:
    """The call's context in the child: reports go to the server, a cancel comes from it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        try:
            while True:
                if self.conn.recv()[0] == "cancel":
                    self.cancelled.set()
        except (EOFError, OSError):
            self.cancelled.set()  # the server has gone: stop at the next safe point

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            _send(self.conn, message)

    def progress(self, percent: int | None, text: str | None = None) -> None:
        self.send(("progress", percent, text))

    def log(self, line: str) -> None:
        self.send(("log", line))

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise Cancelled()


def _backends(services: Services) -> dict[str, str | None]:
    """Where this server's master database and segments are, for its child: the forkserver
    the child comes from has the environment of the first call, not of this one."""
    from mailkeep.core.backends import DATABASE_VAR, OBJECTS_VAR
    return {DATABASE_VAR: services.master.url, OBJECTS_VAR: os.environ.get(OBJECTS_VAR)}


def _child_main(conn: Connection, data_dir: str, name: str, args: dict[str, Any],
                caller: Caller, token: str | None, unlocked: dict[str, bytes],
                backends: dict[str, str | None]) -> None:
    for var, value in backends.items():  # (this call's, as the parent has them)
        if value:
            os.environ[var] = value
        else:
            os.environ.pop(var, None)
    from mailkeep.core.masterdb import MasterDB
    from mailkeep.functions import REGISTRY
    from mailkeep.functions.call import Services
    from mailkeep.functions.invoke import Invoker, Prepared

    ctx = _ChildContext(conn)
    master = MasterDB.of(Path(data_dir))
    services = Services(Path(data_dir), master)
    services.keys.unlocked.update(unlocked)
    try:
        result = Invoker(services).run(Prepared(REGISTRY.find(name), args, caller), ctx, token)
        ctx.send(("result", result))
    except BaseException as exc:
        ctx.send(("error", _described(exc)))
    finally:
        services.close()
        master.close()
        conn.close()


# -- errors across the pipe -----------------------------------------------------------------
def _described(exc: BaseException) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    """An exception as data that crosses a pipe whatever its constructor takes."""
    state = {}
    for key, value in vars(exc).items():
        try:
            pickle.dumps(value)
        except Exception:
            continue
        state[key] = value
    args = exc.args
    try:
        pickle.dumps(args)
    except Exception:
        args = tuple(str(a) for a in args)
    return type(exc).__module__, type(exc).__qualname__, args, state


def _rebuilt(desc: tuple[str, str, tuple[Any, ...], dict[str, Any]]) -> BaseException:
    module, qualname, args, state = desc
    try:
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(qualname)
        exc: BaseException = cls.__new__(cls)
        exc.args = args
        exc.__dict__.update(state)
        return exc
    except Exception:
        message = str(state.get("message") or (args[0] if args else qualname))
        return MailkeepError(message)

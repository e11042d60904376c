"""The one path of every call of a catalog function, whatever the interface.

`Invoker.prepare` finds the function, types its arguments and checks the caller's rights;
`Invoker.run` opens what the function needs (the archive, on first use), runs it, writes the
one audit record of the call (function, caller, arguments with secrets masked, outcome, and
what the function noted), raises the notification a failed process deserves, and closes.
`Invoker.call` does both in the caller's thread (the command line, a job's run);
`Invoker.start` runs it as a process of the server's engine (the Administration API, the
console API, automatic profile runs) and answers its first snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mailkeep import error_table as errors
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Cancelled, Forbidden, NotFound
from mailkeep.functions.call import Call, Caller, Services
from mailkeep.functions.isolated import WorkerEnded, run_isolated
from mailkeep.functions.registry import REGISTRY, Function, Registry, parse_args
from mailkeep.jobs.process import Context, Progress, Snapshot
from mailkeep.notify.events import record_event

log = logging.getLogger("mailkeep.calls")

SYSTEM_VIAS = ("cli", "automatic")  # the shell that owns the data directory; the server itself


class Quiet:
    """The context of a call nobody watches: no progress, never cancelled."""

    def progress(self, percent: int | None, text: str | None = None) -> None:
        return None

    def log(self, line: str) -> None:
        return None

    def check_cancelled(self) -> None:
        return None


@dataclass(frozen=True)
class Prepared:
    """A call that may run: its function, typed arguments and caller."""

    fn: Function
    args: dict[str, Any]
    caller: Caller


class Invoker:
    def __init__(self, services: Services, registry: Registry = REGISTRY,
                 on_call: Callable[[str, str, float], None] | None = None,
                 isolate: bool = False) -> None:
        """`on_call(via, function, seconds)` is told how long each start() took to answer
        (the server's metrics). With `isolate` (the server), a function declared isolated
        runs in a child process (functions/isolated.py)."""
        self.services = services
        self.registry = registry
        self.on_call = on_call
        self.isolate = isolate

    # -- before ------------------------------------------------------------------------------
    def prepare(self, name: str | Function, caller: Caller, form: Mapping[str, str] | None = None,
                native: Mapping[str, Any] | None = None) -> Prepared:
        """The function, the caller's right to call it, and its arguments typed from text
        (`form`: form fields, name=value words) and values (`native`: JSON, this process). A
        caller without the right is refused before its arguments are even read, and the
        refusal is audited; an unknown function or a bad argument raises before anything runs
        (and is not a call)."""
        return self.with_args(self.admit(name, caller), caller, form, native)

    def admit(self, name: str | Function, caller: Caller) -> Function:
        """The function, if the caller may call it; a refusal is audited."""
        fn = name if isinstance(name, Function) else self.registry.find(name)
        try:
            self.authorize(fn, caller)
        except (Forbidden, NotFound) as exc:
            self._audit(Prepared(fn, {}, caller), {}, "refused", exc)
            if caller.via == "job":  # nobody watches a job: its owner's lost rights are news
                record_event(self.services.master, "process.failed",
                             f"job {caller.job} was refused: {errors.message(exc)}")
            raise
        return fn

    @staticmethod
    def with_args(fn: Function, caller: Caller, form: Mapping[str, str] | None = None,
                  native: Mapping[str, Any] | None = None) -> Prepared:
        """An admitted function with its arguments typed and checked."""
        return Prepared(fn, parse_args(fn, form or {}, native), caller)

    def authorize(self, fn: Function, caller: Caller) -> None:
        """Whether the caller may call fn now (read at every call: a role or privilege taken
        away counts at once)."""
        if caller.via in SYSTEM_VIAS:
            return
        account = Users(self.services.master).account(caller.user)
        if caller.via == "job":
            if account is None:
                raise NotFound(f"The owner {caller.user} of job {caller.job} no longer exists.")
            refusal = Users(self.services.master).login_refusal(caller.user, "job")
            if not account.is_administrator or refusal is not None:
                raise Forbidden(f"The owner {caller.user} of job {caller.job} is not an "
                                "administrator who may log in (any more): the job cannot call "
                                f"{fn.name}." + (f" {refusal}" if refusal else ""))
            return
        if account is None:
            raise Forbidden(f"User {caller.user} does not exist.")
        if caller.via == "mcapi":
            # an account without a management role is a user: it reads its own archive
            role = account.role or ("administrator" if "admin" in account.privileges
                                    else "user")
            if role not in fn.roles:
                raise Forbidden(f"Role {role} may not call {fn.name} (it needs "
                                f"{' or '.join(fn.roles)}).")
            return
        if not account.is_administrator:
            raise Forbidden(f"User {caller.user} is not an administrator.")

    # -- running -----------------------------------------------------------------------------
    def run(self, prepared: Prepared, ctx: Progress, token: str | None = None) -> Any:
        """Run a prepared call in this thread (an isolated one, in the server: in a child
        process, this thread following it): the result, or the error it raised."""
        if self.isolate and prepared.fn.isolated:
            try:
                return run_isolated(self.services, prepared, ctx, token)
            except WorkerEnded as exc:  # its process wrote no record: this one does
                self._finished(prepared, {}, "cancelled" if exc.cancelled else "failed", exc)
                if exc.cancelled:
                    raise Cancelled() from None
                raise
        call = Call(prepared.fn, prepared.args, prepared.caller, ctx, self.services, self, token)
        outcome, error = "failed", None
        try:
            ctx.check_cancelled()  # cancelled while it waited for a worker
            result = prepared.fn.run(call)
            outcome = "succeeded"
            return result
        except (Cancelled, KeyboardInterrupt):
            outcome = "cancelled"
            raise
        except BaseException as exc:
            error = exc
            if isinstance(exc, Forbidden):  # the function's own check of who may (its own MFA)
                outcome = "refused"
            raise
        finally:
            call.close()
            self._finished(prepared, call.notes, outcome, error)

    def call(self, name: str | Function, caller: Caller, form: Mapping[str, str] | None = None,
             native: Mapping[str, Any] | None = None, ctx: Progress | None = None) -> Any:
        """prepare() and run() in this thread."""
        return self.run(self.prepare(name, caller, form, native), ctx or Quiet())

    async def start(self, prepared: Prepared) -> Snapshot:
        """Run a prepared call as a process of the server's engine: its outcome if it ends
        within the engine's grace period, else a running snapshot with a token."""
        engine = self.services.engine
        if engine is None:
            raise RuntimeError("no process engine in this process")

        def work(ctx: Context) -> Any:
            return self.run(prepared, ctx, ctx.token)

        def never_ran() -> None:  # the server stopped before a worker took it
            self._finished(prepared, {"started": False}, "cancelled", None)

        started = time.monotonic()
        try:
            return await engine.invoke(prepared.fn.name, work, prepared.caller.user,
                                       abandoned=never_ran,
                                       background=prepared.fn.long_running)
        finally:
            if self.on_call is not None:
                self.on_call(prepared.caller.via, prepared.fn.name, time.monotonic() - started)

    # -- after -------------------------------------------------------------------------------
    def _finished(self, prepared: Prepared, notes: dict[str, Any], outcome: str,
                  error: BaseException | None) -> None:
        fn = prepared.fn
        if not fn.audited:
            return
        self._audit(prepared, notes, outcome, error)
        if outcome == "succeeded":
            return
        kind = errors.event(error if error is not None else Cancelled())
        if kind is None:
            return
        who = f"{fn.name} started by {prepared.caller.user}"
        if outcome == "cancelled":
            text = f"{who} was cancelled"
        elif kind == "process.failed":
            text = f"{who} failed: {errors.message(error) if error else ''}"
        else:
            text = f"{who}: {errors.message(error) if error else ''}"
        record_event(self.services.master, kind, text)

    def _audit(self, prepared: Prepared, notes: dict[str, Any], outcome: str,
               error: BaseException | None) -> None:
        caller = prepared.caller
        details: dict[str, Any] = {"via": caller.via, "user": caller.user,
                                   "args": prepared.fn.audit_args(prepared.args),
                                   "outcome": outcome, **notes}
        if caller.address:
            details["address"] = caller.address
        if caller.agent:
            details["agent"] = caller.agent
        if error is not None:
            details["error"] = errors.message(error)
        try:
            self.services.master.audit.write(caller.actor, prepared.fn.name, **details)
        except Exception:  # the call's own outcome must reach its caller whatever happens
            log.exception("the audit record of %s by %s could not be written",
                          prepared.fn.name, caller.actor)

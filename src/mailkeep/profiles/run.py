"""One run of a profile: read the source, file every message through the writer, confirm to
the source only what is durable, save the source's state, and leave a worker result.

The source's state (UIDs, UIDLs, files seen) advances only over messages the writer has
committed, so a run that is cut off anywhere (a crash, a cancel, a lost connection) fetches
the rest next time and archives nothing twice (and what it fetches again is a duplicate).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mailkeep.core.errors import Cancelled, MailkeepError
from mailkeep.core.message import RawMessage, SourceProblem
from mailkeep.core.writer import Filed, Filing, StoreWriter
from mailkeep.profiles import schema
from mailkeep.profiles.store import Profile, Profiles, WorkerResult
from mailkeep.sources.files import FileSource
from mailkeep.sources.imap import FolderState, ImapSettings, ImapSource, SourceError
from mailkeep.sources.pop3 import Pop3Settings, Pop3Source

MAX_PENDING = 200  # messages handed to the writer and not yet durable
SAVE_EVERY_S = 10.0  # the source's state is saved at least this often during a run
LOGGED_FAILURES = 100


class RunFailed(MailkeepError):
    """The source could not be read at all (connection, login, path)."""


class Ctx(Protocol):
    """The process context (functions.call.Progress, without the user)."""

    def progress(self, percent: int | None, text: str | None = None) -> None: ...

    def log(self, line: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass
class Built:
    source: Any  # ImapSource | Pop3Source | FileSource
    state: Callable[[], dict[str, Any]]  # the state to save, as JSON
    finish: Callable[[], int]  # after the run: delete what is due; returns how many
    describe: str


def build(props: dict[str, Any], secrets: dict[str, str], state: dict[str, Any]) -> Built:
    kind = props["type"]
    if kind in ("imap", "pop3"):
        common: dict[str, Any] = dict(
            host=props["host"], port=schema.default_port(props), security=props["security"],
            verify=props["verifyCertificate"], ca_file=props["caFile"],
            timeout=float(props["timeout"]), username=props["login"],
            delete_after_days=props["deleteAfterDays"])
        where = f"{props['login']}@{props['host']}:{schema.default_port(props)}"
        if kind == "imap":
            auth = props["authentication"]
            secret = secrets.get("accessToken" if auth == "xoauth2" else "password", "")
            folders = {name: FolderState(int(v[0]), int(v[1]))
                       for name, v in state.get("folders", {}).items()}
            imap = ImapSource(ImapSettings(**common, secret=secret, auth=auth,
                                           folders=tuple(props["folders"]),
                                           exclude=tuple(props["excludeFolders"])), folders)
            return Built(imap, lambda: {"folders": {n: [s.uidvalidity, s.last_uid]
                                                    for n, s in imap.state.items()}},
                         imap.delete_archived, f"IMAP {where}")
        pop = Pop3Source(Pop3Settings(**common, password=secrets.get("password", ""),
                                      apop=props["apop"], folder=""),
                         state.get("uidls", {}))
        return Built(pop, lambda: {"uidls": pop.seen}, pop.delete_archived, f"POP3 {where}")
    files = FileSource(kind, Path(props["path"]), state.get("files", {}),
                       pattern=props.get("pattern", "*"), recursive=props.get("recursive", True),
                       delete_after=props.get("deleteAfterArchive", False))
    return Built(files, lambda: {"files": files.seen}, files.finish, f"{kind} {props['path']}")


class Runner:
    def __init__(self, profiles: Profiles, writer: StoreWriter, ctx: Ctx,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.profiles = profiles
        self.writer = writer
        self.ctx = ctx
        self.on_event = on_event or (lambda kind, text: None)

    def run(self, prof: Profile | None, props: dict[str, Any], secrets: dict[str, str],
            started_by: str) -> WorkerResult:
        """Run a saved profile (prof) or a temporary one (prof None); the caller holds the
        profile's lock. Raises Cancelled after recording a cancelled run, RunFailed after a
        failed one."""
        self.profiles.check_place(props)  # again: a link may point elsewhere by now
        res = self.profiles.begin_result(prof, props, started_by)
        built = build(props, secrets, prof.state if prof else {})
        self._log(res, f"Profile {props['name']!r} ({built.describe}) into the archive of "
                  f"{props['userName']!r}" + (f", folder {props['targetFolder']!r}"
                                             if props["targetFolder"] else "") + ".")
        cancelled = False
        try:
            cancelled = self._pump(res, prof, props, built)
            if not cancelled and res.error is None:
                try:
                    res.deleted = built.finish()
                    if res.deleted:
                        self._log(res, f"Deleted {res.deleted} archived message(s) from the "
                                  "source.")
                except (SourceError, OSError) as exc:
                    res.warnings.append(f"Deleting archived messages from the source failed: "
                                        f"{exc}")
                res.warnings.extend(getattr(built.source, "warnings", []))
        finally:
            if prof is not None:
                self.profiles.save_state(prof.id, built.state())
            res.complete = time.time()
            res.result = ("cancelled" if cancelled else "failed" if res.error is not None
                          else "completedWithErrors" if res.failed
                          else "completedWithWarnings" if res.warnings else "succeeded")
            for w in res.warnings:
                self._log(res, f"Warning: {w}")
            self._log(res, f"{res.result}: {res.archived} archived, {res.duplicates} already "
                      f"archived, {res.skipped} skipped, {res.failed} failed"
                      + (f", {res.deleted} deleted from the source" if res.deleted else "")
                      + f" in {res.complete - res.start:.1f} s.")
            self.profiles.finish_result(res)
        if res.result == "failed":
            self.on_event("profile.failed", f"profile {res.profile_name!r} (user "
                          f"{res.user_name}) failed: {res.error}")
        elif res.result == "completedWithErrors":
            self.on_event("profile.errors", f"profile {res.profile_name!r} (user "
                          f"{res.user_name}) completed with {res.failed} failed message(s); "
                          f"first: {res.failures[0][0]}: {res.failures[0][1]}")
        if cancelled:
            raise Cancelled()
        if res.error is not None:
            raise RunFailed(f"Profile {res.profile_name!r} failed: {res.error}")
        return res

    def _log(self, res: WorkerResult, line: str) -> None:
        res.log.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")
        self.ctx.log(line)

    def _pump(self, res: WorkerResult, prof: Profile | None, props: dict[str, Any],
              built: Built) -> bool:
        """Feed the writer from the source; True when cancelled."""
        results: queue.Queue[tuple[RawMessage, Filed | BaseException]] = queue.Queue()
        pending = 0
        last_save = time.monotonic()
        base = props["targetFolder"]
        owner = props["userName"]

        def settle(block: bool) -> None:
            nonlocal pending
            while pending:
                try:
                    msg, outcome = results.get(block=block)
                except queue.Empty:
                    return
                pending -= 1
                if isinstance(outcome, BaseException):
                    # The archive cannot take mail (no current store, disk full): the run
                    # stops, and what was not confirmed is fetched again next time.
                    reason = getattr(outcome, "message", None) or str(outcome)
                    self._fail(res, msg.origin, f"not archived: {reason}")
                    if res.error is None:
                        res.error = f"the archive cannot take mail: {reason}"
                        self._log(res, f"Stopping: {res.error}")
                    continue
                built.source.confirm(msg)
                if outcome.duplicate:
                    res.duplicates += 1
                else:
                    res.archived += 1
                block = False

        def report() -> None:
            self.ctx.progress(None, f"{res.archived} archived, {res.duplicates} already "
                              f"archived, {res.failed} failed")

        cancelled = False
        items = iter(built.source)
        try:
            for item in items:
                try:
                    self.ctx.check_cancelled()
                except Cancelled:
                    cancelled = True
                    break
                if isinstance(item, SourceProblem):
                    if item.skipped:
                        res.skipped += 1
                    else:
                        self._fail(res, item.origin, item.reason)
                    continue
                # Messages at the top of the source with no targetFolder go to Inbox, not to
                # the archive's root (where folder listings do not show them).
                folder = "/".join(p for p in (base, item.folder) if p) or "Inbox"
                res.bytes += item.size

                def done(outcome: Filed | BaseException, msg: RawMessage = item) -> None:
                    results.put((msg, outcome))

                self.writer.submit(Filing([(owner, folder)], done, raw=item.data,
                                          stream=item.stream, size=item.size,
                                          flags=item.flags, internal_date=item.internal_date,
                                          order=results,  # archived in the source's order
                                          source="profile"))
                pending += 1
                settle(block=False)
                while pending >= MAX_PENDING:
                    settle(block=True)
                if res.error is not None:
                    break
                if time.monotonic() - last_save > SAVE_EVERY_S:
                    report()
                    if prof is not None:
                        self.profiles.save_state(prof.id, built.state())
                    last_save = time.monotonic()
        except KeyboardInterrupt:
            cancelled = True
        except (SourceError, OSError) as exc:
            res.error = str(exc)
            self._log(res, f"The source could not be read: {exc}")
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # ends the source's connection now
            while pending:
                settle(block=True)
            report()
        return cancelled

    def _fail(self, res: WorkerResult, origin: str, reason: str) -> None:
        res.failed += 1
        if len(res.failures) < 1000:
            res.failures.append((origin, reason))
        if res.failed <= LOGGED_FAILURES:
            self._log(res, f"Failed: {origin}: {reason}")
        elif res.failed == LOGGED_FAILURES + 1:
            self._log(res, "(further failures only in the worker result report)")

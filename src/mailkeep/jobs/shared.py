"""Processes of an installation with several servers (PostgreSQL): any server answers get-status
and cancel-async for a process another one runs.

The server that runs a process keeps it in memory, as always (engine.py), and writes its status
and new log lines to the database (core/masterdb/processes.py) a moment after each change,
with a NOTIFY; its running processes' heartbeat goes on every few seconds. Another server reads
the row, and a long poll waits for that NOTIFY (a listening connection of its own), the
database being the truth. A cancel through another server sets the row's flag; the server that
runs the process sees it (by the NOTIFY, or its next look) and asks the process to stop. A
process whose server stopped beating is failed by the first server asked about it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import Any

from mailkeep.core.masterdb import MasterDB
from mailkeep.core.masterdb.processes import CHANNEL
from mailkeep.jobs.process import FAILED, RUNNING, Process, Snapshot

log = logging.getLogger("mailkeep.jobs")

FLUSH_S = 0.2  # how soon a change of a process reaches the database
HEARTBEAT_S = 5.0
STALE_S = 30.0  # without a heartbeat: its server is gone
GONE = "The server running this process stopped."


class UnknownRemote(Exception):
    """No server of the installation knows the token (or it is another user's)."""


class SharedProcesses:
    def __init__(self, master: MasterDB, retention_s: float = 600.0) -> None:
        assert master.url is not None
        self.master = master
        self.url = master.url
        self.retention_s = retention_s
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._local: dict[str, Process] = {}
        self._sent: dict[str, int] = {}  # token -> the version last written
        self._beat: dict[str, float] = {}  # token -> when its heartbeat was last written
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._kick = threading.Event()
        self._writing = threading.Lock()
        master.processes.ensure()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._flush_loop, "mailkeep-processes"),
                             (self._listen_loop, "mailkeep-process-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for thread in self._threads:
            thread.join(10)
        self._flush()  # the last changes, the outcomes of processes stopped with the server

    # -- this server's processes -------------------------------------------------------------
    def track(self, proc: Process) -> None:
        """A process of this server whose token is about to be handed out: in the database
        now, so that every server knows it from then on."""
        with self._lock:
            self._local[proc.token] = proc
            self._sent[proc.token] = 0
        self._flush([proc])

    def _flush_loop(self) -> None:
        last_look = 0.0
        while not self._stop.is_set():
            self._kick.wait(FLUSH_S)
            self._kick.clear()
            try:
                self._flush()
                now = time.time()
                if now - last_look >= HEARTBEAT_S:
                    last_look = now
                    self._look_for_cancels()
                    self.master.processes.forget_before(now - self.retention_s)
            except Exception:  # the database away a moment: the next round tries again
                log.exception("writing the processes' status")

    def _flush(self, only: list[Process] | None = None) -> None:
        with self._writing:  # one writer of rows at a time (the loop, a new token)
            self._flush_now(only)

    def _flush_now(self, only: list[Process] | None) -> None:
        now = time.time()
        with self._lock:
            procs = list(self._local.values()) if only is None else only
        for proc in procs:
            with proc.lock:
                changed = proc.version != self._sent.get(proc.token)
                beat = now - self._beat.get(proc.token, 0.0) >= HEARTBEAT_S
                if not changed and not (beat and not proc.finished):
                    continue
                row = {"token": proc.token, "name": proc.name, "user": proc.user,
                       "node": self.node, "started": proc.started, "version": proc.version,
                       "status_code": proc.status_code, "percent": proc.percent,
                       "status_text": proc.text, "result": proc.result, "error": proc.error,
                       "heartbeat": now, "finished_at": now if proc.finished else None}
                version, finished = proc.version, proc.finished
            sent = self._sent.get(proc.token, 0)
            lines = [(v, t) for v, t in proc.log_entries() if sent < v <= version]
            try:
                self.master.processes.put(row, lines)
            except TypeError:  # a result that is no JSON: its outcome without it
                row["result"] = None
                self.master.processes.put(row, lines)
            with self._lock:
                self._sent[proc.token] = version
                self._beat[proc.token] = now
                if finished:
                    self._local.pop(proc.token, None)
                    self._sent.pop(proc.token, None)
                    self._beat.pop(proc.token, None)

    def _look_for_cancels(self, tokens: list[str] | None = None) -> None:
        with self._lock:
            local = dict(self._local)
        wanted = [t for t in (tokens if tokens is not None else list(local)) if t in local]
        if wanted:
            for token in self.master.processes.cancel_requested(wanted):
                local[token].cancel_requested.set()

    # -- notifications -------------------------------------------------------------------------
    def _listen_loop(self) -> None:
        from mailkeep.core.pgconn import Connection
        while not self._stop.is_set():
            try:
                conn = Connection(self.url, name="mailkeep process notifications")
            except Exception:
                self._stop.wait(1.0)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                while not self._stop.is_set():
                    for note in conn.raw.notifies(timeout=1.0):
                        self._notified(note.payload)
            except Exception:
                log.warning("process notifications: listening again")
            finally:
                conn.close()

    def _notified(self, token: str) -> None:
        with self._lock:
            waiters = self._waiters.pop(token, [])
            local = token in self._local
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_done, fut)
            except RuntimeError:
                pass
        if local:  # a cancel asked through another server, perhaps
            try:
                self._look_for_cancels([token])
            except Exception:
                log.exception("reading a cancel")

    async def _wait(self, token: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.setdefault(token, []).append((loop, fut))
        try:
            await asyncio.wait((fut,), timeout=seconds)
        finally:
            with self._lock:
                left = [w for w in self._waiters.get(token, []) if w[1] is not fut]
                if left:
                    self._waiters[token] = left
                else:
                    self._waiters.pop(token, None)

    # -- another server's processes ----------------------------------------------------------
    async def status(self, token: str, user: str, last_known: int, seconds: float
                     ) -> Snapshot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            row = await asyncio.to_thread(self._row, token, user)
            remaining = deadline - loop.time()
            if row["version"] > last_known or row["status_code"] != RUNNING or remaining <= 0:
                lines = await asyncio.to_thread(self.master.processes.log_after, token,
                                                last_known)
                return _snapshot(token, row, "".join(lines) or None)
            await self._wait(token, min(remaining, HEARTBEAT_S))

    def _row(self, token: str, user: str) -> dict[str, Any]:
        row = self.master.processes.get(token)
        if row is None or row["user_name"] != user:
            raise UnknownRemote(token)
        now = time.time()
        if row["status_code"] == RUNNING and now - float(row["heartbeat"]) > STALE_S:
            self.master.processes.abandon(token, row["heartbeat"], now, GONE)
            row = self.master.processes.get(token) or row
        return row

    def cancel(self, token: str, user: str) -> Snapshot:
        row = self._row(token, user)
        if row["status_code"] == RUNNING:
            self.master.processes.request_cancel(token)
        return _snapshot(token, row, None)


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _snapshot(token: str, row: dict[str, Any], log_output: str | None) -> Snapshot:
    error = None
    if row["status_code"] == FAILED:
        error = (str(row["error_message"] or ""), str(row["error_details"] or ""))
    return Snapshot(token=token, status_version=int(row["version"]),
                    status_code=str(row["status_code"]), percent_progress=row["percent"],
                    status_text=row["status_text"], result=row["result"], error=error,
                    log_output=log_output)

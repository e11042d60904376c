"""The ASGI application and the server's composition: one Starlette app whose lifespan starts
and stops everything that runs in the server (the process engine, the scheduler, the
notifier, the health checks, automatic profile runs, the SMTP journal receiver and the store
writer), all around one master database and one invoke path."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailkeep.core.admin.auth import Authenticator
from mailkeep.core.admin.compliance import Compliance
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import Users
from mailkeep.core.errors import Conflict, InvalidArgument
from mailkeep.core.masterdb import MasterDB
from mailkeep.error_table import api_error
from mailkeep.functions import REGISTRY
from mailkeep.functions.actions import job_runner
from mailkeep.functions.call import Caller, Services
from mailkeep.functions.invoke import Invoker
from mailkeep.jobs.engine import Engine, FinishedRecord
from mailkeep.jobs.scheduler import Scheduler
from mailkeep.jobs.shared import SharedProcesses
from mailkeep.notify import monitor
from mailkeep.notify.events import Notifier, record_event
from mailkeep.notify.mailer import Mailer
from mailkeep.notify.mailer import configured as mailer_configured
from mailkeep.profiles.automatic import AutoRunner
from mailkeep.receive.smtp import JournalReceiver, ReceiverSettings
from mailkeep.web import console, mcapi
from mailkeep.web.admin_api import ApiState, FastRoutes, routes
from mailkeep.web.guard import BODY_SECONDS, RequestGuard
from mailkeep.web.metrics import Metrics

log = logging.getLogger("mailkeep.server")
AUTO_USER = "automatic"  # who automatic profile runs are started by
AUDIT_VIA = {"web": "mcapi"}  # how the audit log names the ways of logging in


class CollapseSlashes:
    """`/api//get-status` is what one real client sends: treat it as `/api/get-status`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
        await self.app(scope, receive, send)


class LiveCertificate:
    """The certificate the running server serves, changed without a restart
    (SetServiceCertificate). Each TLS context of the server (uvicorn's for HTTPS, the journal
    receiver's for STARTTLS) is attached with the way to make one like it; at every handshake
    its SNI callback (OpenSSL calls it with or without a server name) hands the connection a
    context holding only the certificate chosen last. Loading the new chain into the running
    context instead would not do: OpenSSL keeps one chain per key type, so an RSA certificate
    loaded beside an EC one would leave the EC one served."""

    def __init__(self) -> None:
        self._makers: dict[int, Callable[[Path, Path], ssl.SSLContext]] = {}
        self._chosen: dict[int, ssl.SSLContext] = {}  # attached context's id -> its stand-in

    def attach(self, context: ssl.SSLContext,
               make: Callable[[Path, Path], ssl.SSLContext]) -> None:
        self._makers[id(context)] = make
        context.sni_callback = self._pick

    def _pick(self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
              context: ssl.SSLContext) -> None:
        chosen = self._chosen.get(id(context))
        if chosen is not None:
            conn.context = chosen

    def use(self, cert: Path, key: Path) -> None:
        """Serve this chain to every handshake from now on; nothing changes if it cannot be
        loaded."""
        if not self._makers:
            raise Conflict("The server does not serve TLS (it runs behind a proxy): the "
                           "certificate is the proxy's.")
        try:
            made = {ident: make(cert, key) for ident, make in self._makers.items()}
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"The certificate {cert.name} cannot be served: "
                                  f"{exc}") from None
        self._chosen = made  # one assignment: a handshake sees the old set or the new


def client_address(request: Request) -> str:
    """The client, as uvicorn names it (behind a proxy of server.trusted_proxies, the client
    the proxy names)."""
    return request.client.host if request.client else ""


def worth_keeping(rec: FinishedRecord) -> bool:
    """A sensor asking GetServerInfo every minute is not history: record processes, changes
    and failures."""
    fn = REGISTRY.get(rec.name)
    return fn is None or fn.audited or rec.outcome != "succeeded"


def create_app(data_dir: Path, *, api_enabled: bool, smtp: ReceiverSettings | None = None,
               certificate: LiveCertificate | None = None, hasher: PasswordHasher | None = None,
               engine: Engine | None = None, body_seconds: float = BODY_SECONDS) -> ASGIApp:
    """The server of a data directory. `smtp`: run the journal receiver with these settings.
    `certificate`: the TLS certificate being served, if the server serves TLS. `hasher`: the
    password hasher (None: Argon2id with its defaults; tests give a cheap one). The master
    database is opened here and closed when the lifespan ends."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    master = MasterDB.of(data_dir)
    users = Users(master, hasher=hasher)
    users.ensure_initial_admin()

    def finished(rec: FinishedRecord) -> None:
        if worth_keeping(rec):
            master.history.record(rec.token, rec.name, rec.user, rec.started, rec.finished,
                                  rec.outcome, rec.error)

    engine = engine or Engine(on_finished=finished, describe=api_error)
    if master.postgres and engine.shared is None:  # any server answers for any process
        engine.shared = SharedProcesses(master, engine.retention_s)
    services = Services(data_dir, master, engine=engine, hasher=hasher, certificate=certificate)
    metrics = Metrics(services, engine)
    services.on_batch = metrics.batch
    invoker = Invoker(services, on_call=metrics.call, isolate=True)
    scheduler = Scheduler(data_dir, master, engine, job_runner(invoker))
    services.scheduler = scheduler

    def locked_out(user: str, address: str) -> None:
        record_event(master, "auth.lockout", f"account {user!r} locked out for {address} "
                     "after repeated failed logins")
        master.audit.write("system", "login.lockout", user=user[:200], address=address)

    def login_failed(user: str, address: str, way: str) -> None:
        # bounded: a check that a lock refuses is not a failure (core/admin/auth.py)
        Compliance(master).audit(f"{AUDIT_VIA.get(way, way)}:{user[:200]}", "login.failed",
                                 user=user[:200], address=address,
                                 via=AUDIT_VIA.get(way, way))

    authenticator = Authenticator(users, on_lockout=locked_out, on_failure=login_failed)
    state = ApiState(data_dir, engine, users, authenticator, invoker, api_enabled)
    conf = Settings(master)
    notifier = Notifier(master, send=Mailer(data_dir).notify,
                        interval_s=lambda: float(conf.get("notify.interval")),
                        configured=lambda: mailer_configured(data_dir))
    health = monitor.Health(data_dir, master, services.keys)

    async def run_automatic(profile_id: int) -> None:
        """One automatic run of a profile, as an engine process; returns when it ended."""
        prepared = invoker.prepare("RunProfile", Caller(AUTO_USER, "automatic"),
                                   native={"id": profile_id})
        snap = await invoker.start(prepared)
        while snap.token is not None and snap.status_code == "running":
            snap = await engine.status(snap.token, AUTO_USER, snap.status_version, 60000)

    auto = AutoRunner(data_dir, master, run_automatic)
    receiver = (JournalReceiver(smtp, services.writer, authenticator, certificate)
                if smtp is not None else None)

    async def watch() -> None:
        while True:
            try:
                if await anyio.to_thread.run_sync(health.check):
                    notifier.wake()
            except Exception:  # a check that fails must not end the checking
                log.exception("health check failed")
            await asyncio.sleep(float(conf.get("notify.check_every")))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        if engine.shared is not None:
            engine.shared.start()
        await scheduler.start()
        notifier.start()
        if receiver is not None:
            await anyio.to_thread.run_sync(receiver.start)
        watcher = asyncio.create_task(watch())
        automatic = asyncio.create_task(auto.loop())
        try:
            yield
        finally:
            watcher.cancel()
            automatic.cancel()
            # A check or a run still in its thread finishes before the master database it
            # uses is closed (closing a connection under a thread's query can crash the process).
            await asyncio.gather(watcher, automatic, return_exceptions=True)
            await auto.stop()
            if receiver is not None:
                await anyio.to_thread.run_sync(receiver.stop)
            await scheduler.stop()  # no new runs; stops the engine, records the runs
            await engine.stop()
            if engine.shared is not None:
                await anyio.to_thread.run_sync(engine.shared.stop)
            await anyio.to_thread.run_sync(notifier.stop)
            # the last filings are committed and answered first
            await anyio.to_thread.run_sync(services.close)
            master.close()

    return RequestGuard(CollapseSlashes(FastRoutes(
        state, Starlette(routes=routes(state) + mcapi.routes(state)
                         + console.routes(data_dir, master, services.keys, state)
                         + [Route("/metrics", metrics.endpoint(master, client_address),
                                  methods=["GET"])],
                         lifespan=lifespan))),
        body_seconds, int(conf.get("server.max_body")))

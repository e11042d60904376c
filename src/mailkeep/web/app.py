"""The ASGI application: one Starlette app whose lifespan starts and stops the process engine."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from mailkeep.core.admin.auth import Authenticator
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import Users
from mailkeep.core.master import Master
from mailkeep.core.writer import stop_shared
from mailkeep.functions import REGISTRY
from mailkeep.jobs.engine import Engine, FinishedRecord
from mailkeep.jobs.history import ProcessHistory
from mailkeep.jobs.scheduler import Scheduler
from mailkeep.notify import monitor
from mailkeep.notify.events import Notifier, record_event
from mailkeep.notify.mailer import Mailer
from mailkeep.notify.mailer import configured as mailer_configured
from mailkeep.profiles.automatic import AutoRunner
from mailkeep.web import mcapi
from mailkeep.web.admin_api import ApiState, FastRoutes, routes, runner

log = logging.getLogger("mailkeep.server")
AUTO_USER = "automatic"  # who automatic profile runs are started by


class CollapseSlashes:
    """`/api//get-status` is what one real client sends: treat it as `/api/get-status`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
        await self.app(scope, receive, send)


def worth_keeping(rec: FinishedRecord) -> bool:
    """A sensor asking GetServerInfo every minute is not history: record processes, changes
    and failures."""
    fn = REGISTRY.get(rec.name)
    return fn is None or fn.long_running or fn.changes or rec.outcome != "succeeded"


def create_app(data_dir: Path, *, api_enabled: bool, engine: Engine | None = None,
               users: Users | None = None) -> ASGIApp:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if users is None:
        users = Users(Master(data_dir / "mailkeep.db"))
    users.ensure_initial_admin()
    db = data_dir / "mailkeep.db"
    history = ProcessHistory(db, keep=worth_keeping)

    def finished(rec: FinishedRecord) -> None:
        history.record(rec)
        monitor.on_finished(db, rec)

    engine = engine or Engine(on_finished=finished)
    scheduler = Scheduler(data_dir, engine)  # scheduled jobs (functions/jobs.py)

    def locked_out(user: str, address: str) -> None:
        record_event(db, "auth.lockout", f"account {user!r} locked out for {address} after "
                     "repeated failed logins")

    state = ApiState(data_dir, engine, users, Authenticator(users, on_lockout=locked_out),
                     api_enabled)
    conf = Settings(Master(db))
    notifier = Notifier(db, send=Mailer(data_dir).notify,
                        interval_s=lambda: float(conf.get("notify.interval")),
                        configured=lambda: mailer_configured(data_dir))
    health = monitor.Health(data_dir)

    async def run_automatic(profile_id: int) -> None:
        """One automatic run of a profile, as an engine process; returns when it ended."""
        fn = REGISTRY.functions["RunProfile"]
        snap = await engine.invoke(fn.name, runner(state, fn, {"id": profile_id}, "auto"),
                                   AUTO_USER)
        while snap.token is not None and snap.status_code == "running":
            snap = await engine.status(snap.token, AUTO_USER, snap.status_version, 60000)

    auto = AutoRunner(data_dir, run_automatic)

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
        await scheduler.start()
        notifier.start()
        watcher = asyncio.create_task(watch())
        automatic = asyncio.create_task(auto.loop())
        try:
            yield
        finally:
            watcher.cancel()
            automatic.cancel()
            await auto.stop()
            await scheduler.stop()  # no new runs; stops the engine, records the runs
            await engine.stop()
            await anyio.to_thread.run_sync(notifier.stop)
            await anyio.to_thread.run_sync(stop_shared, data_dir)
            history.close()

    return CollapseSlashes(FastRoutes(state, Starlette(routes=routes(state) + mcapi.routes(state),
                                                      lifespan=lifespan)))

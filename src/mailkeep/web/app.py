"""The ASGI application: one Starlette app whose lifespan starts and stops the process engine."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from ..core.auth import Authenticator
from ..core.master import Master
from ..core.users import Users
from ..functions import REGISTRY
from ..jobs.engine import Engine, FinishedRecord
from ..jobs.history import ProcessHistory
from . import mcapi
from .admin_api import ApiState, FastRoutes, routes


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
    history = ProcessHistory(data_dir / "mailkeep.db", keep=worth_keeping)
    engine = engine or Engine(on_finished=history.record)
    state = ApiState(data_dir, engine, users, Authenticator(users), api_enabled)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            history.close()

    return CollapseSlashes(FastRoutes(state, Starlette(routes=routes(state) + mcapi.routes(state),
                                                      lifespan=lifespan)))

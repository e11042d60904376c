"""What a catalog function receives (a Call: its arguments, who calls it, its process context,
the archive opened on first use), and what the functions of one process share (Services)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from argon2 import PasswordHasher

from mailkeep.core.archive import Archive
from mailkeep.core.caller import VIAS as VIAS  # (their home)
from mailkeep.core.caller import Caller as Caller
from mailkeep.core.keys import KeyRing
from mailkeep.core.masterdb import MasterDB
from mailkeep.core.writer import Filed, Filing, StoreWriter
from mailkeep.jobs.process import Progress

if TYPE_CHECKING:
    from mailkeep.functions.invoke import Invoker
    from mailkeep.functions.registry import Function
    from mailkeep.jobs.engine import Engine
    from mailkeep.jobs.process import ProcessInfo

class JobControl(Protocol):
    """The server's scheduler as functions reach it (RunJobAsync, CancelJobAsync, changes)."""

    def request_run(self, job_id: int) -> int: ...

    def cancel(self, job_id: int) -> None: ...

    def changed(self) -> None: ...

    def now(self) -> float: ...


class CertificateSwitch(Protocol):
    """The running server's TLS certificate, which SetServiceCertificate changes without a
    restart (None where no server serves TLS in this process)."""

    def use(self, cert: Path, key: Path) -> None: ...


@dataclass
class Services:
    """What the functions of one process share: the data directory and its master database,
    and in a server its process engine and scheduler. The store writer is started on first
    use and stopped by close()."""

    data_dir: Path
    master: MasterDB
    engine: Engine | None = None
    scheduler: JobControl | None = None
    certificate: CertificateSwitch | None = None
    hasher: PasswordHasher | None = None  # None: Argon2id with its defaults
    keys: KeyRing = field(init=False)  # the master keys, and stores unlocked by passphrase
    started: float = field(default_factory=time.monotonic)
    # told of each batch the writer files (the server's metrics): see StoreWriter
    on_batch: Callable[[list[Filing], list[Filed | BaseException], float], None] | None = None
    _writer: StoreWriter | None = None

    def __post_init__(self) -> None:
        self.keys = KeyRing(self.data_dir)

    @property
    def writer(self) -> StoreWriter:
        """The one writer of this process (the journal receiver and the profiles file through
        it, so they never fight over a store)."""
        if self._writer is None:  # it starts at its first filing
            self._writer = StoreWriter(self.data_dir, self.master, self.keys,
                                       on_batch=self.on_batch)
        return self._writer

    @property
    def writer_if_started(self) -> StoreWriter | None:
        """The writer, if anything has used it yet (reading this starts nothing)."""
        return self._writer

    def now(self) -> float:
        """The time jobs go by: the scheduler's clock (tests set it), else the system's."""
        return self.scheduler.now() if self.scheduler is not None else time.time()

    def close(self) -> None:
        """Stop the writer (the last filings are committed and answered first)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()


@dataclass
class Call:
    fn: Function
    args: dict[str, Any]
    caller: Caller
    ctx: Progress
    services: Services
    invoker: Invoker  # for a call a function makes in turn (a job's action, in the CLI)
    token: str | None = None  # the engine process running it, if any
    notes: dict[str, Any] = field(default_factory=dict)
    _archive: Archive | None = None

    @property
    def archive(self) -> Archive:
        """The archive, opened on first use: a function that never touches it (GetServerInfo,
        a monitoring sensor's favourite) opens no store."""
        if self._archive is None:
            self._archive = Archive(self.services.data_dir, self.services.master,
                                    self.services.keys, self.services.now)
        return self._archive

    @property
    def master(self) -> MasterDB:
        return self.services.master

    @property
    def data_dir(self) -> Path:
        return self.services.data_dir

    @property
    def user(self) -> str:
        return self.caller.user

    def arg(self, name: str) -> Any:
        return self.args.get(name)

    def note(self, **details: Any) -> None:
        """Details for this call's audit record (what was deleted, the value before)."""
        self.notes.update(details)

    def processes(self) -> list[ProcessInfo]:
        """The server's other unfinished processes, oldest first (none without a server)."""
        engine = self.services.engine
        if engine is None:
            return []
        return [p for p in engine.running() if p.token != self.token]

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

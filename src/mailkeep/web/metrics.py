"""Prometheus metrics of the server at /metrics: what an operator graphs, and what the
benchmarks read (bench/README.md).

Off by default (`metrics.enabled`). Who may read them is its own setting: the client networks
of `metrics.networks` (loopback by default; behind a proxy of `server.trusted_proxies`, the
client it names), and, once `metrics.token` is set, only a request that brings it as
`Authorization: Bearer <token>`. The token is kept as its SHA-256 digest, never shown. A
request that may not read them gets 404 while they are off and 403 otherwise, and nothing of
the metrics.

Counted as it happens: messages filed by the server's one writer per source (the journal,
archiving profiles, console uploads), its commits and how long they took, and each call of a
catalog function through each interface (labelled only with the catalog's own names). Read at
each scrape: the writer's queue, messages being extracted, long polls waiting, processes
running, the notification outbox, and each store's bytes on disk and messages (these two kept
for STORES_EVERY_S, being costlier to read), plus the process's own CPU, memory and open files.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailkeep.core.admin.settings import Settings, token_digest
from mailkeep.core.storage.catalog import CATALOG, Catalog

if TYPE_CHECKING:
    from mailkeep.core.masterdb import MasterDB
    from mailkeep.core.writer import Filed, Filing
    from mailkeep.functions.call import Services
    from mailkeep.jobs.engine import Engine

STORES_EVERY_S = 30.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)


class _Readings(Collector):
    """What is read at each scrape."""

    def __init__(self, services: Services, engine: Engine) -> None:
        self.services = services
        self.engine = engine
        self._stores: tuple[float, list[tuple[str, int, int | None]]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        writer = self.services.writer_if_started
        yield GaugeMetricFamily("mailkeep_writer_queue", "Filings and tasks waiting for the "
                                "store writer.", value=writer.queue.qsize() if writer else 0)
        yield GaugeMetricFamily("mailkeep_extracting", "Messages whose text is being extracted "
                                "before they are filed.",
                                value=writer.extracting() if writer else 0)
        yield GaugeMetricFamily("mailkeep_long_polls_waiting", "get-status calls waiting for a "
                                "process to change.", value=self.engine.polls_waiting)
        yield GaugeMetricFamily("mailkeep_processes_running", "Processes (long-running "
                                "function calls) not finished.", value=len(self.engine.running()))
        unsent, _oldest = self.services.master.outbox.unsent()
        yield GaugeMetricFamily("mailkeep_notification_outbox", "Notifications not mailed yet.",
                                value=unsent)
        size = GaugeMetricFamily("mailkeep_store_bytes", "Bytes on disk of each store.",
                                 labels=["store"])
        count = GaugeMetricFamily("mailkeep_store_messages", "Messages filed in each store "
                                  "(readable catalogs only).", labels=["store"])
        for name, nbytes, messages in self._store_figures():
            size.add_metric([name], nbytes)
            if messages is not None:
                count.add_metric([name], messages)
        yield size
        yield count

    def _store_figures(self) -> list[tuple[str, int, int | None]]:
        with self._lock:
            now = time.monotonic()
            if self._stores is None or now - self._stores[0] >= STORES_EVERY_S:
                self._stores = (now, store_figures(self.services.master))
            return self._stores[1]


def store_figures(master: MasterDB) -> list[tuple[str, int, int | None]]:
    """(name, bytes on disk, messages or None) of each attached store."""
    out = []
    for rec in master.stores.all():
        nbytes = _tree_bytes(rec.path)
        messages: int | None = None
        if master.postgres or (rec.path / CATALOG).is_file():
            try:
                if master.postgres:  # its catalog in the database (catalog_pg.py)
                    from mailkeep.core.storage.catalog_pg import PgCatalog
                    catalog: Catalog | PgCatalog = PgCatalog(str(master.url), rec.uuid,
                                                             readonly=True)
                else:
                    catalog = Catalog(rec.path / CATALOG, readonly=True)
                try:
                    messages = catalog.count_entries()
                finally:
                    catalog.close()
            except Exception:  # a damaged or missing catalog: its size is still worth showing
                messages = None
        out.append((rec.name, nbytes, messages))
    return out


def _tree_bytes(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    total += _tree_bytes(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    except OSError:
        pass
    return total


class Metrics:
    """The server's metrics, in a registry of its own (one per server in a process)."""

    def __init__(self, services: Services, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.archived = Counter("mailkeep_messages_archived", "Messages filed by the server, "
                                "by source (journal, profile, upload).", ["source"], registry=r)
        self.duplicates = Counter("mailkeep_messages_duplicate", "Messages the server was "
                                  "given that were archived already, by source.", ["source"],
                                  registry=r)
        self.failed = Counter("mailkeep_messages_failed", "Messages the server could not file, "
                              "by source.", ["source"], registry=r)
        self.commits = Histogram("mailkeep_writer_commit_seconds", "The store writer's group "
                                 "commits: from taking a batch to its messages being durable.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.calls = Histogram("mailkeep_call_seconds", "Calls of catalog functions until "
                               "their first answer (a process: its token), by interface and "
                               "function.", ["via", "function"], buckets=LATENCY_BUCKETS,
                               registry=r)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(_Readings(services, engine))

    # -- what the server's parts report -----------------------------------------------------
    def batch(self, filings: list[Filing], outcomes: list[Filed | BaseException],
              seconds: float) -> None:
        """The store writer filed a batch (core/writer.py calls this)."""
        self.commits.observe(seconds)
        for filing, outcome in zip(filings, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self.failed.labels(filing.source).inc()
            elif outcome.duplicate:
                self.duplicates.labels(filing.source).inc()
            else:
                self.archived.labels(filing.source).inc(len(outcome.numbers))

    def call(self, via: str, function: str, seconds: float) -> None:
        """A call of a catalog function answered (functions/invoke.py calls this)."""
        self.calls.labels(via, function).observe(seconds)

    # -- /metrics ---------------------------------------------------------------------------
    def endpoint(self, master: MasterDB, client: Callable[[Request], str]
                 ) -> Callable[[Request], Any]:
        async def metrics(request: Request) -> Response:
            refusal = refused(Settings(master), client(request), request.headers)
            if refusal is not None:
                return PlainTextResponse(refusal[1], status_code=refusal[0])
            # the format the scraper asks for (Prometheus's text formats, OpenMetrics); read
            # in a thread: the stores' figures touch their catalogs on disk
            encode, media_type = choose_encoder(request.headers.get("accept", ""))
            body = await anyio.to_thread.run_sync(encode, self.registry)
            return Response(body, headers={"Content-Type": media_type})

        return metrics


def refused(conf: Settings, address: str, headers: Any) -> tuple[int, str] | None:
    """(status, text) of a request that may not read the metrics; None for one that may."""
    if not conf.get("metrics.enabled"):
        return 404, "Not Found"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 403, "Forbidden"
    networks = [ipaddress.ip_network(n, strict=False)
                for n in str(conf.get("metrics.networks")).split(",") if n]
    if not any(ip in n for n in networks if n.version == ip.version):
        return 403, "Forbidden"
    kept = conf.get("metrics.token")
    if kept:
        scheme, _, given = str(headers.get("authorization", "")).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token_digest(given.strip()).encode(), str(kept).encode()):
            return 403, "Forbidden"
    return None

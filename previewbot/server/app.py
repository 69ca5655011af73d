"""The server wired: the webhook endpoint, the probes and metrics, the workers and the resync, one lifecycle.

`Server.asgi` is the ASGI app; its lifespan starts the workers and the resync loop and, on
shutdown (uvicorn runs it on SIGTERM once no request is in flight), stops taking work, lets the
running jobs end within the grace period and gives their leases back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from previewbot.core.leases import LEASE_SECONDS
from previewbot.core.ports import Cluster, UrlProbe
from previewbot.errors import PreviewbotError
from previewbot.server.jobs import AppGitHub, JobRunner
from previewbot.server.metrics import CONTENT_TYPE, Metrics
from previewbot.server.receiving import Deliveries, WebhookEndpoint
from previewbot.server.resync import resync_jobs
from previewbot.server.working import WorkQueue

log = logging.getLogger("previewbot.server")


class InstalledApp(AppGitHub, Protocol):
    def repositories(self) -> list[str]: ...


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    webhook_secret: bytes
    lease_namespace: str
    holder: str  # this replica's name (its pod's) in the Leases
    workers: int = 4
    queue_capacity: int = 1000
    resync_interval: float | None = 600.0  # seconds between two resyncs; 0: at start only; None: never
    shutdown_grace: float = 25.0  # how long running jobs may take to end on shutdown
    lease_seconds: int = LEASE_SECONDS  # how long a dead replica's Lease keeps the others off its PR
    server_url: str = "https://github.com"


class Server:
    def __init__(self, *, app: InstalledApp, cluster: Cluster, probe: UrlProbe, settings: ServerSettings) -> None:
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self._app = app
        self._cluster = cluster
        self._settings = settings
        self._started = False
        deliveries = Deliveries()
        runner = JobRunner(
            app=app,
            cluster=cluster,
            probe=probe,
            metrics=self.metrics,
            follow_up=lambda jobs: self.queue.submit(jobs),  # the queue is made next, with this runner
            lease_namespace=settings.lease_namespace,
            holder=settings.holder,
            lease_seconds=settings.lease_seconds,
            stopping=self.stopping,
            server_url=settings.server_url,
            failed=deliveries.forget,
        )
        self.queue = WorkQueue(runner, workers=settings.workers, capacity=settings.queue_capacity, metrics=self.metrics)
        self._resyncer = threading.Thread(target=self._resync_loop, name="previewbot-resync", daemon=True)
        webhook = WebhookEndpoint(
            secret=settings.webhook_secret, inbox=self.queue, metrics=self.metrics, deliveries=deliveries
        )
        self.asgi = Starlette(
            routes=[
                Route("/webhook", webhook.receive, methods=["POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def start(self) -> None:
        self.queue.start()
        if self._settings.resync_interval is not None:
            self._resyncer.start()
        self._started = True
        log.info("previewbot serve: taking deliveries (%d workers)", self._settings.workers)

    def stop(self) -> bool:
        """True when every running job ended within the grace period."""
        log.info("previewbot serve: stopping; running jobs get %.0fs to end", self._settings.shutdown_grace)
        self.stopping.set()
        ended = self.queue.stop(timeout=self._settings.shutdown_grace)
        if self._resyncer.is_alive():
            self._resyncer.join(timeout=self._settings.shutdown_grace)
        log.info("previewbot serve: stopped%s", "" if ended else " with jobs still running")
        return ended

    def resync(self) -> int:
        """Queue what the deliveries missed; returns how many jobs."""
        jobs, active = resync_jobs(
            repositories=self._app.repositories(), github=self._app.github, cluster=self._cluster
        )
        self.metrics.active_previews.set(active)
        if not self.queue.submit(jobs):
            log.warning("resync: the queue has no room for %d jobs; the next resync tries again", len(jobs))
            return 0
        log.info("resync: %d job(s) queued", len(jobs))
        return len(jobs)

    def _resync_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.resync()
            except PreviewbotError as error:
                log.error("resync failed: %s", error)
            interval = self._settings.resync_interval or 0
            if interval <= 0 or self.stopping.wait(interval):
                return

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await asyncio.to_thread(self.stop)

    async def _healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, _request: Request) -> Response:
        ready = self._started and not self.stopping.is_set()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def _metrics(self, _request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

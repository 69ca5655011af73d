"""The work queue: bounded, served by a small pool of worker threads.

One PR's jobs run one at a time, in the order they came: a close after an open tears down what the
open deployed, never the other way round. A job that brings a PR to a new head (a push, a finished
build) replaces the PR's queued jobs of that kind: only the newest SHA is worth deploying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from previewbot.events import BuildFinished
from previewbot.model import Collect, Deploy, Intent
from previewbot.server.metrics import Metrics

log = logging.getLogger("previewbot.server")

Work = Intent | BuildFinished


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    delivery: str  # the X-GitHub-Delivery it came with, or what made it ("resync")
    key: str  # the PR ("owner/name#N") or the repo whose work must not overlap
    work: Work

    @property
    def brings_head(self) -> bool:
        """True for work that deploys the PR's newest head: a newer one makes it moot."""
        return isinstance(self.work, Deploy | BuildFinished)


def job_key(work: Work) -> str:
    """Which work must run one at a time with this one: the same PR's (or, for repo-wide work, the repo's)."""
    if isinstance(work, Deploy):
        return f"{work.pr.repo}#{work.pr.number}".lower()
    if isinstance(work, BuildFinished):
        return f"{work.repo}#{work.numbers[0]}".lower() if len(work.numbers) == 1 else work.repo.lower()
    if isinstance(work, Collect):
        return work.repo.lower()
    ref = getattr(work, "ref", None)
    return f"{ref.repo}#{ref.number}".lower() if ref is not None else "-"


class WorkQueue:
    """Jobs waiting per key, and the keys ready for a worker; at most `capacity` jobs wait in all."""

    def __init__(
        self,
        run: Callable[[Job], None],
        *,
        workers: int = 2,
        capacity: int = 1000,
        metrics: Metrics | None = None,
    ) -> None:
        self._run = run
        self._workers = workers
        self._capacity = capacity
        self._metrics = metrics
        self._waiting: dict[str, deque[Job]] = {}
        self._ready: deque[str] = deque()  # keys with waiting jobs and no job running
        self._running: set[str] = set()
        self._size = 0
        self._open = True
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    @property
    def depth(self) -> int:
        return self._size

    def start(self) -> None:
        for number in range(self._workers):
            thread = threading.Thread(target=self._serve, name=f"previewbot-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, jobs: Sequence[Job]) -> bool:
        with self._changed:
            if not self._open:
                return False
            superseded = [j for job in jobs if job.brings_head for j in self._waiting.get(job.key, ()) if j.brings_head]
            if self._size - len(superseded) + len(jobs) > self._capacity:
                return False
            for job in jobs:
                waiting = self._waiting.setdefault(job.key, deque())
                if job.brings_head:
                    for old in [j for j in waiting if j.brings_head]:
                        waiting.remove(old)
                        self._size -= 1
                        log.info(
                            "job of delivery %s for %s superseded by delivery %s", old.delivery, job.key, job.delivery
                        )
                waiting.append(job)
                self._size += 1
                if job.key not in self._running and job.key not in self._ready:
                    self._ready.append(job.key)
            self._gauge()
            self._changed.notify_all()
            return True

    def stop(self, *, timeout: float) -> bool:
        """Take no more work, let the running jobs end; True when they all did within timeout.

        Jobs still waiting are dropped: their PRs are caught up by the next start's resync.
        """
        with self._changed:
            self._open = False
            dropped = self._size
            self._waiting.clear()
            self._ready.clear()
            self._size = 0
            self._gauge()
            self._changed.notify_all()
        if dropped:
            log.info("stopping: %d waiting job(s) left for the next resync", dropped)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job waits or runs; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._size or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _serve(self) -> None:
        while True:
            with self._changed:
                while self._open and not self._ready:
                    self._changed.wait()
                if not self._open:
                    return
                key = self._ready.popleft()
                job = self._waiting[key].popleft()
                self._size -= 1
                self._running.add(key)
                self._gauge()
            try:
                self._run(job)
            except Exception:
                # One job's failure must not take a worker, or the server, down with it.
                log.exception("job of delivery %s for %s failed", job.delivery, job.key)
            finally:
                with self._changed:
                    self._running.discard(key)
                    if self._waiting.get(key):
                        self._ready.append(key)
                    else:
                        self._waiting.pop(key, None)
                    self._changed.notify_all()

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(self._size)

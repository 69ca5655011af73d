"""A per-PR Lease: one run at a time works on a PR's preview, whichever process or replica it is in.

The lease is held while the run works, renewed in the background well before it runs out, and
given back at the end. When its holder dies, it runs out and the next one takes it over.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from previewbot import naming
from previewbot.core.ports import Cluster
from previewbot.errors import PreviewbotError
from previewbot.model import OnDemandRef, PrRef

log = logging.getLogger("previewbot")

LEASE_SECONDS = 30  # how long a dead holder keeps others waiting


class LeaseUnavailable(PreviewbotError):
    """The lease could not be had before the caller gave up waiting."""


class PrLease:
    """`with PrLease(...)`: wait for the PR's lease, hold it (renewed) inside the block, release it after."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        ref: PrRef | OnDemandRef,
        holder: str,
        seconds: int = LEASE_SECONDS,
        give_up: threading.Event | None = None,
    ) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._name = naming.lease_name(ref)
        self._holder = holder
        self._seconds = seconds
        self._give_up = give_up or threading.Event()
        self._done = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when a renewal failed: another may hold it now
        self.waited = False  # whether another holder kept it from us for a while

    @property
    def name(self) -> str:
        return self._name

    def __enter__(self) -> PrLease:
        while not self._cluster.take_lease(self._namespace, self._name, holder=self._holder, seconds=self._seconds):
            log.info("lease %s is held by another run; waiting", self._name)
            self.waited = True
            self._cluster.wait_lease(self._namespace, self._name, give_up=self._give_up)
            if self._give_up.is_set():
                raise LeaseUnavailable(f"gave up waiting for lease {self._name}")
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self._name}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self._cluster.release_lease(self._namespace, self._name, holder=self._holder)
        except PreviewbotError as failure:
            log.warning("could not release lease %s (it runs out by itself): %s", self._name, failure)

    def _renew(self) -> None:
        while not self._done.wait(self._seconds / 3):
            try:
                held = self._cluster.take_lease(self._namespace, self._name, holder=self._holder, seconds=self._seconds)
            except PreviewbotError as failure:
                log.warning("could not renew lease %s: %s", self._name, failure)
                continue
            if not held:
                self.lost = True
                log.error("lease %s was taken over by another run", self._name)
                return

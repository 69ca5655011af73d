"""Receiving a webhook delivery: verify it, acknowledge it, hand its work over. Nothing here calls GitHub
or the cluster, so GitHub gets its answer in milliseconds whatever the work costs.

The order is GitHub's advice: the body is read (never more than GitHub ever sends), its
X-Hub-Signature-256 checked in constant time before anything else looks at it, and only then parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from previewbot import events
from previewbot.errors import EventError
from previewbot.model import Ignore
from previewbot.server import logs
from previewbot.server.metrics import Metrics
from previewbot.server.working import Job, job_key

log = logging.getLogger("previewbot.server")

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB and does not deliver larger ones
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
_LABELLED_EVENTS = frozenset(
    {
        "ping",
        "pull_request",
        "issue_comment",
        "check_suite",
        "workflow_run",
        "installation",
        "installation_repositories",
    }
)
DELIVERIES_REMEMBERED = 10_000  # GitHub redelivers on request, within days: enough ids for a busy day


def sign(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 GitHub sends with body: "sha256=" and the HMAC-SHA256 as hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(secret: bytes, body: bytes, given: str | None) -> bool:
    """Whether given is body's signature; compared in constant time, so timing tells nothing of it."""
    if not given:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), given.encode("utf-8", errors="replace"))


class Inbox(Protocol):
    def submit(self, jobs: Sequence[Job]) -> bool:
        """Queue all the jobs, or none of them and False when the queue has no room."""
        ...


class Deliveries:
    """The ids of the deliveries accepted lately: a redelivery is acknowledged but not done again,
    unless its job failed (a person redelivering it from GitHub asks for another try)."""

    def __init__(self, capacity: int = DELIVERIES_REMEMBERED) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        with self._lock:
            if delivery in self._seen:
                return False
            self._seen[delivery] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True

    def forget(self, delivery: str) -> None:
        """A delivery whose work was not taken: its redelivery must be done."""
        with self._lock:
            self._seen.pop(delivery, None)


def jobs_from_delivery(delivery: str, event_name: str, payload: dict[str, object]) -> list[Job]:
    """The work one delivery asks for, one job per PR (and per repo for repo-wide work)."""
    jobs = [
        Job(delivery=delivery, key=job_key(intent), work=intent)
        for intent in events.intents_from_event(event_name, payload)
        if not isinstance(intent, Ignore)
    ]
    build = events.build_from_event(event_name, payload)
    if build is not None:
        singles = [replace(build, numbers=(number,)) for number in build.numbers] or [build]
        jobs.extend(Job(delivery=delivery, key=job_key(single), work=single) for single in singles)
    return jobs


class WebhookEndpoint:
    """POST /webhook."""

    def __init__(self, *, secret: bytes, inbox: Inbox, metrics: Metrics, deliveries: Deliveries | None = None) -> None:
        self._secret = secret
        self._inbox = inbox
        self._metrics = metrics
        self._deliveries = deliveries or Deliveries()

    async def receive(self, request: Request) -> Response:
        event_name = request.headers.get(EVENT_HEADER, "")
        delivery = request.headers.get(DELIVERY_HEADER, "")

        def answer(status: int, outcome: str, message: str) -> Response:
            self._metrics.deliveries.labels(event=_event_label(event_name), outcome=outcome).inc()
            with logs.about(delivery=delivery, subject=""):
                log.info("%s delivery: %s", _event_label(event_name), message)
            return JSONResponse({"message": message}, status_code=status)

        body = await _body_within(request, MAX_BODY)
        if body is None:
            return answer(413, "too_large", f"the body is over {MAX_BODY} bytes")
        if not signature_matches(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            # Nothing about the body is looked at, or said, before it is known to come from GitHub.
            return answer(401, "bad_signature", f"{SIGNATURE_HEADER} is missing or wrong")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return answer(400, "malformed", "the body is not JSON")
        if not isinstance(payload, dict):
            return answer(400, "malformed", "the body is not a JSON object")
        if event_name == "ping":
            return answer(200, "ping", "pong")
        if not delivery:
            return answer(400, "malformed", f"{DELIVERY_HEADER} is missing")
        if not self._deliveries.first_time(delivery):
            return answer(200, "redelivery", "already received; not done twice")
        try:
            jobs = jobs_from_delivery(delivery, event_name, payload)
        except EventError as error:
            self._deliveries.forget(delivery)
            return answer(400, "malformed", str(error))
        if not jobs:
            return answer(200, "ignored", "nothing to do")
        if not self._inbox.submit(jobs):
            self._deliveries.forget(delivery)
            return answer(503, "busy", "the work queue is full; redeliver later")
        return answer(202, "accepted", f"{len(jobs)} job(s) queued")


async def _body_within(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to be over limit (the rest is never read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)


def _event_label(event_name: str) -> str:
    """The event as a metric label: a known name or "other", so no sender can grow the label set."""
    return event_name if event_name in _LABELLED_EVENTS else "other"

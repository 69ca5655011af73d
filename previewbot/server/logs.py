"""The server's log lines: each says which delivery, PR and step it is about, as text or as JSON.

A job runs on a worker thread; `about(...)` marks that thread's lines until the job ends, and the
webhook endpoint marks the lines of the request it answers. Records stay redacted: the redacting
filter runs on the handler before the formatter sees them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from previewbot.core.reporting import CURRENT_STEP

_DELIVERY: contextvars.ContextVar[str] = contextvars.ContextVar("delivery", default="")
_SUBJECT: contextvars.ContextVar[str] = contextvars.ContextVar("subject", default="")  # "owner/name#N" or a repo


@contextlib.contextmanager
def about(*, delivery: str, subject: str) -> Iterator[None]:
    """Mark the lines logged inside the block with the delivery and the PR (or repo) they are about."""
    delivery_token, subject_token = _DELIVERY.set(delivery), _SUBJECT.set(subject)
    try:
        yield
    finally:
        _DELIVERY.reset(delivery_token)
        _SUBJECT.reset(subject_token)


class ContextFilter(logging.Filter):
    """Puts the delivery, the PR and the core's step on each record (as `delivery`, `pr` and `step`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.delivery = _DELIVERY.get()
        record.pr = _SUBJECT.get()
        record.step = CURRENT_STEP.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, delivery, pr, step (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "delivery": getattr(record, "delivery", ""),
            "pr": getattr(record, "pr", ""),
            "step": getattr(record, "step", ""),
        }
        if record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The message, then what it is about in brackets when it is about a delivery or a PR."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        marks = [f"{key}={value}" for key in ("delivery", "pr", "step") if (value := getattr(record, key, ""))]
        return f"{text} [{' '.join(marks)}]" if marks else text


def configure(*, json_lines: bool) -> None:
    """Give the root logger's handlers (set up by the CLI, with their redaction) the server's format."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter() if json_lines else TextFormatter("%(message)s"))

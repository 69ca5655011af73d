"""Progress and outcome of one run on the PR: the sticky comment, and the log with step timings.

The sticky comment is found again by its marker (render.COMMENT_MARKER) and edited in place,
so a PR carries exactly one, across runs and restarts. It also carries a small hidden state
record (what GitHub must remember for previewbot, such as a fork approval) in a second marker.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from previewbot import render
from previewbot.core.ports import GitHub
from previewbot.errors import NotFound
from previewbot.model import Comment, Phase, PreviewReport, PrRef, StepTiming

log = logging.getLogger("previewbot")

_STATE = re.compile(r"<!-- previewbot:state (\{.*?\}) -->")


def read_state(body: str) -> dict[str, Any]:
    """The hidden state record of a sticky comment ({} when it has none or it is unreadable)."""
    match = _STATE.search(body)
    if not match:
        return {}
    try:
        state = json.loads(match.group(1))
    except json.JSONDecodeError:
        return {}
    return state if isinstance(state, dict) else {}


def _state_line(state: dict[str, Any]) -> str:
    # "--" cannot occur inside an HTML comment; JSON of our own short values never holds it.
    return f"<!-- previewbot:state {json.dumps(state, sort_keys=True, separators=(',', ':'))} -->"


def _find_sticky(github: GitHub, ref: PrRef) -> Comment | None:
    for comment in github.comments(ref.repo, ref.number):
        if render.is_preview_comment(comment.body):
            return comment
    return None


@dataclass
class StepResult:
    ok: bool


class Reporter:
    """Keeps the PR's sticky comment current while a run goes on, and logs each step with its timing."""

    def __init__(
        self,
        *,
        github: GitHub,
        report: PreviewReport,
        server_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._github = github
        self._server_url = server_url
        self._clock = clock
        existing = _find_sticky(github, report.ref)
        self.comment_id: int | None = existing.id if existing else None
        self.state: dict[str, Any] = read_state(existing.body) if existing else {}
        self.report = report

    def update(self, **changes: Any) -> PreviewReport:
        """Change the report and show it on the PR."""
        self.report = replace(self.report, updated_at=self._clock(), **changes)
        self._publish()
        return self.report

    def remember(self, **state: Any) -> None:
        """Record values in the comment's hidden state (written with the next update)."""
        self.state.update(state)

    def progress(self, line: str) -> None:
        log.info("  %s", line)

    @contextmanager
    def step(self, name: str, *, phase: Phase = Phase.DEPLOYING) -> Iterator[StepResult]:
        """Run one step: the comment names it while it runs, and its timing is kept.

        The step failed when it raised, or when the caller set the yielded result's `ok` to False.
        """
        started = self._clock()
        begun = time.monotonic()
        running = StepTiming(name=name, started=started)
        done = tuple(s for s in self.report.steps if s.name != name)
        log.info("▶ %s", name)
        self.update(phase=phase, running=name, steps=(*done, running))
        result = StepResult(ok=True)
        try:
            yield result
        except BaseException:
            result.ok = False
            raise
        finally:
            ok = result.ok
            seconds = time.monotonic() - begun
            log.info("%s %s (%.1fs)", "✔" if ok else "✘", name, seconds)
            finished = replace(running, seconds=seconds, ok=ok)
            # The step's outcome is published by the caller's next update, which says what followed.
            self.report = replace(self.report, running=None, steps=(*done, finished))

    def _publish(self) -> None:
        body = render.render_comment(self.report, server_url=self._server_url, trailer=_state_line(self.state))
        repo, number = self.report.ref.repo, self.report.ref.number
        if self.comment_id is not None:
            try:
                self._github.update_comment(repo, self.comment_id, body)
                return
            except NotFound:
                log.warning("the preview comment was deleted; posting a new one")
        self.comment_id = self._github.create_comment(repo, number, body)

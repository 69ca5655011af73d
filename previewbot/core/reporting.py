"""Progress and outcome of one run on the PR: the sticky comment, statuses, and the log with step timings.

The sticky comment is found again by its marker (render.COMMENT_MARKER) among the comments
previewbot itself wrote, and edited in place, so a PR carries exactly one, across runs and
restarts. Anyone can write a comment that starts with the marker; only previewbot's own count.
The comment carries nothing previewbot reads back: what decides trust lives on the namespace.

The run never waits for GitHub: a Reporter hands each report to an Outbox, which sends them to a
Sink (GitHubSink: the comment, the commit statuses, the Deployment) in order on a thread of its
own. A comment update still waiting to be sent is replaced by a newer one, so only the newest state
of the comment goes out; statuses keep their order. The front door's run ends with `Outbox.flush`,
which waits for the last report, but never longer than it is told.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from previewbot import render
from previewbot.core.ports import GitHub
from previewbot.errors import NotFound, PreviewbotError, TemporaryError
from previewbot.model import Comment, CommitState, DeploymentState, Phase, PreviewReport, PrRef, StepTiming

log = logging.getLogger("previewbot")

CURRENT_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("previewbot_step", default="")
"""The step the run on this thread is in, for front doors that put it on each log line."""


def _find_sticky(github: GitHub, ref: PrRef) -> Comment | None:
    """previewbot's own sticky comment: a stranger's comment that starts with the marker is not it."""
    try:
        me = github.login().casefold()
    except TemporaryError as error:
        # GitHub is out of reach for now, and so are the comment's updates: a run goes on without them.
        log.warning("no preview comment to update: %s", error)
        return None
    for comment in github.comments(ref.repo, ref.number):
        if comment.author.casefold() == me and render.is_preview_comment(comment.body):
            return comment
    return None


# ---------------------------------------------------------------- sending in the background


@dataclass(slots=True)
class _Letter:
    what: str  # for the log: "update the comment", "set status previewbot/deploy to success"
    send: Callable[[], object]  # what it returns is not used
    key: Hashable | None  # a newer letter with the same key replaces this one while it waits
    lingers: bool  # waits `linger` seconds after it was first posted, for newer ones to replace it
    posted: float  # time.monotonic() when the first of its key was posted


@dataclass(slots=True)
class _Counter:
    posted: int = 0
    done: int = 0


class Outbox:
    """Sends writes in order on a thread of its own, so the run that posts them never waits for them.

    A write posted with a key replaces one of the same key that is still waiting, in its place: the
    comment is sent in its newest state only, and so is a commit status or a deployment's status
    that changed again before it went out. The comment lingers `linger` seconds so that changes
    posted close together go out as one, then goes before the writes waiting ahead of it. Writes go
    out as fast as GitHub answers; only when more than `backlog` wait (a burst, such as a server
    handling many PRs) are they spaced `spacing` seconds apart, the pace GitHub asks of clients that
    write a lot.
    A write that fails is logged and the next one goes on.
    """

    def __init__(self, *, spacing: float = 1.0, backlog: int = 8, linger: float = 0.1, exit_wait: float = 30.0) -> None:
        """exit_wait bounds how long the interpreter's exit waits for what is still to be sent."""
        self._spacing = spacing
        self._backlog = backlog
        self._linger = linger
        self._exit_wait = exit_wait
        self._waiting: deque[_Letter] = deque()
        self._counter = _Counter()
        self._sending: _Letter | None = None
        self._last_sent = 0.0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def post(self, what: str, send: Callable[[], object], *, key: Hashable | None = None, linger: bool = False) -> None:
        with self._changed:
            if key is not None:
                for letter in self._waiting:
                    if letter.key == key:
                        letter.what, letter.send = what, send
                        return
            self._waiting.append(_Letter(what, send, key, linger, time.monotonic()))
            self._counter.posted += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="previewbot-reports", daemon=True)
                self._thread.start()
                # A front door that ends without a flush (or on an error) still sends what its run reported.
                atexit.register(self.flush, timeout=self._exit_wait)
            self._changed.notify_all()

    def flush(self, *, timeout: float) -> bool:
        """Wait until every write posted so far was sent (or failed); False, logging what is left, on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            target = self._counter.posted
            while self._counter.done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    left = [letter.what for letter in (self._sending, *self._waiting) if letter is not None]
                    log.warning("GitHub did not take every report within %.0fs; not sent: %s", timeout, "; ".join(left))
                    return False
                self._changed.wait(remaining)
        return True

    def _next(self) -> tuple[_Letter | None, float | None]:
        """The letter to send now; else how long until one is due (None: none waits).

        A lingering letter (the comment) waits a moment after it was first posted: the run often says
        two things within milliseconds (a step done, the next begun), and only the last is sent. Once
        due it goes before the others, which keep their order: the comment is what people read.
        """
        now, due_in = time.monotonic(), None
        for letter in self._waiting:
            if letter.lingers:
                wait = letter.posted + self._linger - now
                if wait <= 0:
                    return letter, None
                due_in = wait if due_in is None else min(due_in, wait)
        return next((letter for letter in self._waiting if not letter.lingers), None), due_in

    def _run(self) -> None:
        while True:
            with self._changed:
                while (chosen := self._next())[0] is None:
                    self._changed.wait(chosen[1])
                letter = self._sending = chosen[0]
                crowded = len(self._waiting) > self._backlog
                self._waiting.remove(letter)
            if crowded:
                time.sleep(max(0.0, self._last_sent + self._spacing - time.monotonic()))
            try:
                letter.send()
            except PreviewbotError as error:
                log.warning("could not %s: %s", letter.what, error)
            except Exception:
                log.exception("could not %s", letter.what)
            self._last_sent = time.monotonic()
            with self._changed:
                self._sending = None
                self._counter.done += 1
                self._changed.notify_all()


# ---------------------------------------------------------------- where reports go


class Sink(Protocol):
    """Where a run's reports are shown. The Outbox calls it, one call at a time, in order."""

    comment_id: int | None
    """The comment GitHub shows the report in, as far as known yet; None when the sink is not GitHub."""
    deployment_id: int | None
    """The GitHub Deployment the statuses go to; None until there is one, or when the sink is not GitHub."""

    def find_comment(self) -> int | None:
        """The comment the report is shown in, looked for now if it was not yet; None: there is none."""
        ...

    def show(self, report: PreviewReport) -> None:
        """Show the run's newest state (the sticky comment)."""
        ...

    def commit_status(
        self, sha: str, *, state: CommitState, context: str, description: str, target_url: str | None
    ) -> None: ...

    def start_deployment(self, *, sha: str, environment: str, description: str, payload: Mapping[str, Any]) -> None:
        """A new deployment of sha; the deployment statuses that follow are its."""
        ...

    def deployment_status(
        self, *, state: DeploymentState, description: str, environment_url: str | None, log_url: str | None
    ) -> None: ...


@dataclass(kw_only=True)
class GitHubSink:
    """Reports on the PR: its sticky comment, commit statuses and a GitHub Deployment.

    The sticky comment is looked for when the first report is shown, on the outbox's thread, so the
    run does not wait for the PR's comments to be listed; reports an earlier run posted are sent
    before it, so a comment one of them made is found.
    """

    github: GitHub
    ref: PrRef
    server_url: str
    comment_id: int | None = None
    deployment_id: int | None = None
    _looked_for: bool = False
    _looking: threading.Lock = field(default_factory=threading.Lock)

    def find_comment(self) -> int | None:
        with self._looking:
            if not self._looked_for:
                existing = _find_sticky(self.github, self.ref)
                self.comment_id = existing.id if existing else None
                self._looked_for = True
        return self.comment_id

    def show(self, report: PreviewReport) -> None:
        body = render.render_comment(report, server_url=self.server_url)
        repo, number = self.ref.repo, self.ref.number
        comment_id = self.find_comment()
        if comment_id is not None:
            try:
                self.github.update_comment(repo, comment_id, body)
                return
            except NotFound:
                log.warning("the preview comment was deleted; posting a new one")
        self.comment_id = self.github.create_comment(repo, number, body)

    def commit_status(
        self, sha: str, *, state: CommitState, context: str, description: str, target_url: str | None
    ) -> None:
        self.github.set_commit_status(
            self.ref.repo, sha, state=state, context=context, description=description, target_url=target_url
        )

    def start_deployment(self, *, sha: str, environment: str, description: str, payload: Mapping[str, Any]) -> None:
        self.deployment_id = None
        self.deployment_id = self.github.create_deployment(
            self.ref.repo, sha=sha, environment=environment, description=description, payload=payload
        )

    def deployment_status(
        self, *, state: DeploymentState, description: str, environment_url: str | None, log_url: str | None
    ) -> None:
        if self.deployment_id is None:
            log.warning("no deployment to set to %s: creating it failed", state.value)
            return
        self.github.set_deployment_status(
            self.ref.repo,
            self.deployment_id,
            state=state,
            description=description,
            environment_url=environment_url,
            log_url=log_url,
        )


@dataclass(kw_only=True)
class TerminalSink:
    """Reports to a person at a terminal: the whole report once the run has ended.

    The steps show as they happen in the log. A preview asked for from a terminal has no pull
    request: no commit status or GitHub Deployment is made, so those reports go nowhere.
    """

    write: Callable[[str], None]
    comment_id: int | None = None
    deployment_id: int | None = None

    def find_comment(self) -> int | None:
        return None

    def show(self, report: PreviewReport) -> None:
        if report.phase in (Phase.READY, Phase.FAILED):
            self.write(render.render_terminal(report))

    def commit_status(
        self, sha: str, *, state: CommitState, context: str, description: str, target_url: str | None
    ) -> None:
        return

    def start_deployment(self, *, sha: str, environment: str, description: str, payload: Mapping[str, Any]) -> None:
        return

    def deployment_status(
        self, *, state: DeploymentState, description: str, environment_url: str | None, log_url: str | None
    ) -> None:
        return


# ---------------------------------------------------------------- the reporter of one run


def sticky_reporter(
    github: GitHub,
    ref: PrRef,
    *,
    phase: Phase,
    sha: str,
    server_url: str,
    outbox: Outbox,
    clock: Callable[[], datetime],
) -> Reporter:
    """The reporter of a run on a PR, which keeps its sticky comment current."""
    # Finding the comment needs previewbot's own login: it is read while the run does its first steps.
    outbox.post("read previewbot's own login", github.login)
    return Reporter(
        sink=GitHubSink(github=github, ref=ref, server_url=server_url),
        report=PreviewReport(ref=ref, phase=phase, head_sha=sha),
        outbox=outbox,
        clock=clock,
    )


@dataclass
class StepResult:
    ok: bool
    details: list[str] = field(default_factory=list)  # shown under the step: the API server's warnings


class Reporter:
    """Keeps the PR's sticky comment and statuses current while a run goes on, and logs each step with its timing.

    Every report is posted to the outbox and sent in the background; `report` is always the
    newest, whether or not GitHub has been told yet.
    """

    def __init__(
        self,
        *,
        sink: Sink,
        report: PreviewReport,
        outbox: Outbox,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._outbox = outbox
        self.sink = sink
        self.report = report
        self._shown: PreviewReport | None = None

    @property
    def comment_id(self) -> int | None:
        """The sticky comment's id: None until one was found or has been posted."""
        return self.sink.comment_id

    def existing_comment(self, *, wait: float) -> int | None:
        """The sticky comment's id, looked for now, once the reports still on their way (one may post it) are sent."""
        self._outbox.flush(timeout=wait)
        return self.sink.find_comment()

    @property
    def deployment_id(self) -> int | None:
        """The id of this run's Deployment, once GitHub has made it."""
        return self.sink.deployment_id

    def update(self, **changes: Any) -> PreviewReport:
        """Change the report and show it on the PR."""
        self.report = replace(self.report, updated_at=self._clock(), **changes)
        # Keyed by preview: an outbox serves every PR a run or a server touches, and each has its own comment.
        self._outbox.post(
            f"update the preview report of {render.subject(self.report.ref)}",
            self._show_newest,
            key=("comment", self.report.ref),
            linger=True,
        )
        return self.report

    def _show_newest(self) -> None:
        """Show the report as it is when GitHub's turn comes, not as it was when posted, and each state once.

        Finding the comment takes GitHub a while the first time: what the run reported meanwhile
        (often that the preview is ready) goes out with it, and the update posted for it is not sent.
        """
        self.sink.find_comment()
        report = self.report
        if report is not self._shown:
            self.sink.show(report)
            self._shown = report

    def hold(self, **changes: Any) -> None:
        """Change the report without showing it: the next update, which says what followed, shows it too."""
        self.report = replace(self.report, **changes)

    def commit_status(
        self, sha: str, *, state: CommitState, context: str, description: str, target_url: str | None = None
    ) -> None:
        self._outbox.post(
            f"set the commit status {context} of {sha[:7]} to {state.value}",
            lambda: self.sink.commit_status(
                sha, state=state, context=context, description=description, target_url=target_url
            ),
            key=("commit status", sha, context),
        )

    def start_deployment(
        self, *, sha: str, environment: str, description: str, payload: Mapping[str, Any], log_url: str | None = None
    ) -> None:
        """A new GitHub Deployment of sha, in progress (unless it ended before GitHub was told)."""
        payload = dict(payload)
        self._outbox.post(
            f"create a deployment of {sha[:7]} to {environment}",
            lambda: self.sink.start_deployment(
                sha=sha, environment=environment, description=description, payload=payload
            ),
        )
        self.deployment_status(DeploymentState.IN_PROGRESS, "Deploying", log_url=log_url)

    def follow_deployment(self, deployment_id: int | None) -> None:
        """Report on a deployment an earlier run made (None: there is none) instead of starting one."""
        self.sink.deployment_id = deployment_id

    def deployment_status(
        self,
        state: DeploymentState,
        description: str,
        *,
        environment_url: str | None = None,
        log_url: str | None = None,
    ) -> None:
        self._outbox.post(
            f"set the deployment to {state.value}",
            lambda: self.sink.deployment_status(
                state=state, description=description, environment_url=environment_url, log_url=log_url
            ),
            key=("deployment status", id(self)),
        )

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
        current = CURRENT_STEP.set(name)
        log.info("▶ %s", name)
        self.update(phase=phase, running=name, steps=(*done, running))
        result = StepResult(ok=True)
        try:
            yield result
        except BaseException:
            result.ok = False
            raise
        finally:
            CURRENT_STEP.reset(current)
            ok = result.ok
            seconds = time.monotonic() - begun
            log.info("%s %s (%.1fs)", "✔" if ok else "✘", name, seconds)
            finished = replace(running, seconds=seconds, ok=ok, details=tuple(result.details))
            # The step's outcome is published by the caller's next update, which says what followed.
            self.report = replace(self.report, running=None, steps=(*done, finished))

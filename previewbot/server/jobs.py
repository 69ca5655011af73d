"""One job run: what the Action's runner gives the core (a token, a checkout), the server makes here.

The token is the App's installation token for the repo; the checkout is `.preview.yml` and the
files it names, read through the contents API at the PR's head into a temporary folder (trust
settings the core reads from the default branch itself). A deploy that `deploy.after` makes wait for
builds starts when each has succeeded for the head; a failed one is reported on the PR instead.
Each PR's job runs under the PR's Lease, so two replicas never work on one preview at once. What
the core says should run next (the deploy of the PR first in line for a freed slot) is queued as
that PR's own job, as if a delivery had asked for it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from previewbot.core import fetching
from previewbot.core.leases import LEASE_SECONDS, PrLease
from previewbot.core.ports import Cluster, GitHub, UrlProbe
from previewbot.core.previews import Previews, Settings
from previewbot.core.reporting import Outbox
from previewbot.errors import PreviewbotError
from previewbot.events import BuildFinished
from previewbot.model import Approve, Collect, Deploy, Intent, PrRef, PullRequest, Redeploy, Retest
from previewbot.server import logs
from previewbot.server.metrics import Metrics
from previewbot.server.working import Job, job_key

log = logging.getLogger("previewbot.server")

SUCCEEDED = frozenset({"success", "neutral", "skipped"})


class AppGitHub(Protocol):
    """What a job needs of the GitHub App (adapters.github_app.GitHubApp)."""

    rate_remaining: int | None

    def github(self, repo: str) -> GitHub: ...

    def builds(self, repo: str, sha: str) -> dict[str, str | None]: ...


@dataclass(kw_only=True)
class JobRunner:
    app: AppGitHub
    cluster: Cluster
    probe: UrlProbe
    metrics: Metrics
    follow_up: Callable[[Sequence[Job]], bool]  # queues the jobs a job's outcome asks for; False: no room
    lease_namespace: str
    holder: str  # this replica's name in the Leases
    lease_seconds: int = LEASE_SECONDS
    stopping: threading.Event  # set on shutdown: a job still waiting for a lease gives up
    server_url: str = "https://github.com"
    config_path: str = ".preview.yml"
    outbox: Outbox | None = None
    # Told the delivery of a job that failed: a redelivery of it (GitHub's "Redeliver") is done again.
    failed: Callable[[str], None] = lambda _delivery: None

    def __call__(self, job: Job) -> None:
        with logs.about(delivery=job.delivery, subject=job.key):
            self._run(job)

    def _run(self, job: Job) -> None:
        work = job.work
        log.info("job of delivery %s for %s: %s", job.delivery, job.key, type(work).__name__)
        started = time.monotonic()
        try:
            next_up = self._built(work) if isinstance(work, BuildFinished) else self._intent(work)
        except PreviewbotError as error:
            self.metrics.jobs.labels(kind=type(work).__name__, outcome="error").inc()
            log.error("job of delivery %s for %s failed: %s", job.delivery, job.key, error)
            self.failed(job.delivery)
            return
        finally:
            if self.app.rate_remaining is not None:
                self.metrics.rate_limit_remaining.set(self.app.rate_remaining)
        if isinstance(work, Deploy | Redeploy | Approve | BuildFinished):
            self.metrics.deploy_seconds.observe(time.monotonic() - started)
        self.metrics.jobs.labels(kind=type(work).__name__, outcome="done").inc()
        self._queue_next(job, next_up)

    def _queue_next(self, job: Job, next_up: Sequence[Deploy]) -> None:
        """Queue each deploy the job's outcome asked for as its PR's own job, under the delivery that caused it."""
        if not next_up:
            return
        names = ", ".join(_name(deploy.pr.ref) for deploy in next_up)
        if self.follow_up([Job(delivery=job.delivery, key=job_key(deploy), work=deploy) for deploy in next_up]):
            log.info("queued next: the deploy of %s", names)
        else:
            # Each keeps its place in line on its namespace, and the next resync deploys it.
            log.warning("the queue has no room for the deploy of %s; the next resync deploys it", names)

    # ------------------------------------------------------------ kinds of work

    def _intent(self, intent: Intent) -> Sequence[Deploy]:
        """Run the intent; returns the deploys its outcome asks for next."""
        if isinstance(intent, Collect):  # repo-wide: the sweep destroys one PR's preview at a time
            with self._core(intent.repo, head=None) as (_, core):
                return core.handle(intent).follow_up
        ref = _ref_of(intent)
        with self._lease(ref):
            if isinstance(intent, Deploy):
                current = self.app.github(ref.repo).pull_request(ref.repo, ref.number)
                if current.head_sha != intent.pr.head_sha or current.state != "open":
                    # A delivery that came late (or again) must not put an older commit over a newer one,
                    # nor bring back the preview of a PR closed since.
                    log.info("%s is %s at %s now: nothing to deploy", _name(ref), current.state, current.head_sha[:7])
                    return ()
                return self._deploy(intent.pr, trigger=intent.trigger)
            head = None
            if isinstance(intent, Redeploy | Approve | Retest):
                # A command that deploys or tests does so at the head the core reads next: fetch the files there.
                head = self.app.github(ref.repo).pull_request(ref.repo, ref.number).head_sha
            with self._core(ref.repo, head=head) as (_, core):
                return core.handle(intent).follow_up

    def _built(self, build: BuildFinished) -> Sequence[Deploy]:
        github = self.app.github(build.repo)
        if build.numbers:
            pulls = [github.pull_request(build.repo, number) for number in build.numbers]
        else:  # a fork's PR: GitHub names none, so find the open PRs at that commit
            pulls = [pr for pr in github.open_pull_requests(build.repo) if pr.head_sha == build.sha]
        next_up: list[Deploy] = []
        for pr in pulls:
            if pr.state != "open" or pr.head_sha != build.sha:
                log.info("%s#%d is no longer at %s: the build is not its head's", pr.repo, pr.number, build.sha[:7])
                continue
            with self._lease(pr.ref):
                next_up += self._deploy(pr, trigger="built")
        return next_up

    def _deploy(self, pr: PullRequest, *, trigger: str) -> Sequence[Deploy]:
        with self._core(pr.repo, head=pr.head_sha) as (workspace, core):
            if not (workspace / self.config_path).is_file():
                # An App is installed on many repos: one without the file has not asked for previews.
                log.info("%s has no %s at %s: no preview", _name(pr.ref), self.config_path, pr.head_sha[:7])
                return ()
            config = fetching.read_config(workspace, self.config_path)
            waited_for = tuple(config.deploy.after) if config is not None else ()
            if waited_for:
                builds = self.app.builds(pr.repo, pr.head_sha)
                # A build not started yet, or still running, is None: the deploy waits for its end.
                failed = [
                    f"{name}: {builds[name]}" for name in waited_for if builds.get(name) not in (None, *SUCCEEDED)
                ]
                if failed:
                    core.report_failed_build(pr, failed=", ".join(failed))
                    return ()
                pending = [name for name in waited_for if builds.get(name) is None]
                if pending:
                    log.info("%s#%d at %s waits for %s", pr.repo, pr.number, pr.head_sha[:7], ", ".join(pending))
                    core.report_waiting_for_builds(pr, pending=", ".join(pending))
                    return ()
            return core.handle(Deploy(pr=pr, trigger=trigger)).follow_up

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _lease(self, ref: PrRef) -> Iterator[None]:
        with PrLease(self.cluster, namespace=self.lease_namespace, ref=ref, holder=self.holder, give_up=self.stopping):
            yield

    @contextmanager
    def _core(self, repo: str, *, head: str | None) -> Iterator[tuple[Path, Previews]]:
        """The core for one job, over a temporary workspace that holds the PR's files at head, when given."""
        with tempfile.TemporaryDirectory(prefix="previewbot-") as folder:
            workspace = Path(folder)
            github = self.app.github(repo)
            if head is not None:
                fetching.fetch_tree(github, repo, head, into=workspace, config_path=self.config_path)
            yield (
                workspace,
                Previews(
                    github=github,
                    cluster=self.cluster,
                    probe=self.probe,
                    # The tree is of head exactly: the core deploys it only as that commit.
                    settings=Settings(
                        workspace=workspace, config_path=self.config_path, server_url=self.server_url, checkout_sha=head
                    ),
                    outbox=self.outbox,
                ),
            )


def _name(ref: PrRef) -> str:
    return f"{ref.repo}#{ref.number}"


def _ref_of(intent: Intent) -> PrRef:
    if isinstance(intent, Deploy):
        return intent.pr.ref
    ref = getattr(intent, "ref", None)
    if not isinstance(ref, PrRef):
        raise AssertionError(f"{intent!r} is about no pull request")
    return ref

"""The preview lifecycle: each intent run as steps over the GitHub and Cluster ports.

Every run converges: the namespace, its objects, the sticky comment and the deployment end as
the PR's current head wants them, whether the run is the first, a repeat, or follows a crash.
Only namespaces labelled as this repo's preview of this PR are ever changed or deleted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from previewbot import manifests, naming, policy, render
from previewbot.config import Forks, PreviewConfig, SecretCopy, effective_config, load_config_file, trusted_default
from previewbot.core import cap, endpoints, fetching, gc, lifetime, retest
from previewbot.core.leases import PrLease
from previewbot.core.ports import Cluster, CommandRunner, GitHub, UrlProbe
from previewbot.core.reporting import Outbox, Reporter, sticky_reporter
from previewbot.core.testing import run_tests
from previewbot.core.trust import PERMISSION_RANK, Trusted, approved_sha, needed_permission, read_trusted
from previewbot.errors import ApiError, Conflict, NotFound, PreviewbotError, UserError
from previewbot.model import (
    Approve,
    Collect,
    CommitState,
    Deploy,
    DeploymentState,
    Destroy,
    Ignore,
    Intent,
    Keep,
    NamespaceInfo,
    ObjectRef,
    Phase,
    Previewed,
    PreviewReport,
    PrRef,
    PullRequest,
    Redeploy,
    Reply,
    Retest,
    RolloutResult,
    Status,
    TestOutcome,
    TestRun,
    Wake,
    WorkloadDiagnosis,
)
from previewbot.redact import redactor

log = logging.getLogger("previewbot")

WAKE_TIMEOUT = 300.0
"""How long a wake waits for the workloads when the deploy left no readiness timeout on the namespace."""
CommandRun = Callable[[PullRequest, int, "NamespaceInfo | None"], "Outcome"]
"""A command on a PR: the PR, the comment that asked, and the PR's preview (None when it has none)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the core runs, as the front door found it."""

    workspace: Path  # the checkout of the PR's head: .preview.yml and the manifests
    config_path: str = ".preview.yml"
    server_url: str = "https://github.com"
    run_url: str | None = None  # the run's log, linked from the deployment
    namespace_wait: float = 300.0  # how long a Terminating namespace may take to go
    report_wait: float = 30.0  # how long a run's end waits for GitHub to take its last reports
    checkout_sha: str | None = None  # the commit the workspace holds, when the front door can tell; None: unchecked


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a run ended with: the Action's outputs and exit code come from here."""

    status: str  # a Phase value, or "ignored" / "refused"
    message: str = ""
    url: str | None = None
    namespace: str | None = None
    report: PreviewReport | None = None
    follow_up: tuple[Deploy, ...] = ()  # what should run next: the deploy of a PR that waited for a slot

    @property
    def failed(self) -> bool:
        return self.status == Phase.FAILED


@dataclass(frozen=True, kw_only=True)
class Ports:
    """What a deploy run drives: the cluster, the URL probe, and the runner (None where there is none).

    GitHub is no port of the run: its reporter tells GitHub, or a terminal, how the run goes.
    """

    cluster: Cluster
    probe: UrlProbe
    runner: CommandRunner | None = None


class Previews:
    """Runs intents. One instance per run; holds no state between runs."""

    def __init__(
        self,
        *,
        github: GitHub,
        cluster: Cluster,
        probe: UrlProbe,
        settings: Settings,
        runner: CommandRunner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        outbox: Outbox | None = None,
    ) -> None:
        """outbox sends the reports in the background; a server handling many runs shares one."""
        self._ports = Ports(cluster=cluster, probe=probe, runner=runner)
        self._outbox = outbox or Outbox()
        self._github = github
        self._cluster = cluster
        self._settings = settings
        self._clock = clock
        self._answered: set[int] = set()  # the comments replied to: one reply each, however many commands
        self._trusted: dict[tuple[str, str], Trusted] = {}  # the default branch's settings, read once a run

    def pull_request(self, repo: str, number: int) -> PullRequest:
        return self._github.pull_request(repo, number)

    def fetched(self, pr: PullRequest, *, into: Path) -> Previews:
        """The core over pr's files at its head, fetched into `into`: for a PR this run has no checkout of.

        The tree is of that commit exactly, and the core deploys it only as that commit. Nothing of it
        runs here: this core has no runner.
        """
        fetching.fetch_tree(self._github, pr.repo, pr.head_sha, into=into, config_path=self._settings.config_path)
        return Previews(
            github=self._github,
            cluster=self._cluster,
            probe=self._ports.probe,
            settings=replace(self._settings, workspace=into, checkout_sha=pr.head_sha),
            clock=self._clock,
            outbox=self._outbox,
        )

    # ------------------------------------------------------------ dispatch

    def handle(self, intent: Intent) -> Outcome:
        """Run the intent; it is done when its last report has reached GitHub (or report_wait ran out)."""
        try:
            return self._handle(intent)
        finally:
            self._outbox.flush(timeout=self._settings.report_wait)

    def _handle(self, intent: Intent) -> Outcome:
        match intent:
            case Deploy(pr=pr, trigger=trigger):
                return self.deploy(pr, trigger=trigger)
            case Destroy():
                return self.destroy(intent)
            case Redeploy(ref=ref, by=by, comment_id=comment_id):
                return self._command(ref, by=by, comment_id=comment_id, verb="redeploy", run=self._redeploy)
            case Retest(ref=ref, by=by, comment_id=comment_id):
                return self._command(ref, by=by, comment_id=comment_id, verb="retest", run=self._retest)
            case Status(ref=ref, by=by, comment_id=comment_id):
                return self._command(ref, by=by, comment_id=comment_id, verb="status", run=self._status)
            case Keep(ref=ref, by=by, comment_id=comment_id, on=on):
                keep = functools.partial(self._keep, on=on, by=by)
                return self._command(ref, by=by, comment_id=comment_id, verb="keep", run=keep)
            case Wake(ref=ref, by=by, comment_id=comment_id):
                return self._command(
                    ref, by=by, comment_id=comment_id, verb="wake", run=functools.partial(self._wake, by=by)
                )
            case Approve():
                return self.approve(intent)
            case Reply():
                return self._reply(intent)
            case Collect(repo=repo):
                return self.collect(repo)
            case Ignore(reason=reason):
                log.info("nothing to do: %s", reason)
                return Outcome(status="ignored", message=reason)
        raise AssertionError(f"unhandled intent {intent!r}")

    def _trusted_for(self, pr: PullRequest) -> Trusted:
        """The settings of the PR's repo that decide trust, from its default branch."""
        key = (pr.repo.lower(), pr.default_branch)
        if key not in self._trusted:
            self._trusted[key] = read_trusted(self._github, pr, config_path=self._settings.config_path)
        return self._trusted[key]

    def _reporter(self, ref: PrRef, *, phase: Phase, sha: str = "") -> Reporter:
        """The reporter that keeps the PR's sticky comment current."""
        return sticky_reporter(
            self._github,
            ref,
            phase=phase,
            sha=sha,
            server_url=self._settings.server_url,
            outbox=self._outbox,
            clock=self._clock,
        )

    # ------------------------------------------------------------ deploy

    def deploy(self, pr: PullRequest, *, trigger: str, force: bool = False, approved_by: str | None = None) -> Outcome:
        """Bring the PR's preview to its head commit: namespace, objects, rollout, tests, reports.

        `approved_by` is set when a maintainer's approval of this very head is what runs the deploy.
        """
        reporter = self._reporter(pr.ref, phase=Phase.PENDING, sha=pr.head_sha)
        trusted = self._trusted_for(pr)
        name = naming.namespace_name(prefix=trusted.prefix, repo=pr.repo, number=pr.number)
        existing = self._cluster.namespace(name)
        approved = pr.head_sha if approved_by is not None else approved_sha(existing, pr)
        waiting = self._fork_gate(pr, forks=trusted.forks, approved=approved, reporter=reporter)
        if waiting is not None:
            return waiting
        try:
            self._check_checkout(pr)
            own = load_config_file(self._settings.workspace, self._settings.config_path)
        except UserError as error:
            return self._fail_early(reporter, pr, error, context=trusted.status_context)
        config = effective_config(own, trusted.config)
        if not force and existing is not None and self._already_done(existing, pr):
            log.info("%s is already deployed at %s: nothing to do", name, pr.head_sha[:7])
            return Outcome(
                status=existing.annotations.get(naming.STATUS_ANNOTATION, Phase.READY),
                message="already deployed",
                namespace=name,
                url=existing.annotations.get(naming.URL_ANNOTATION),
            )
        admission = cap.admit(
            # Without a cap, the repo's other previews change nothing: they are not even listed.
            cap.previews_of(self._cluster, pr.repo) if config.max_previews is not None else [],
            name=name,
            limit=config.max_previews,
            policy=cap.Policy(config.when_full),
        )
        if not admission.admitted:
            return self._wait_for_a_slot(pr, name=name, admission=admission, reporter=reporter, config=config)
        if admission.evict is not None:
            self._evict(admission.evict, for_pr=pr)
        return self._deployment(
            pr,
            config=config,
            trusted=trusted,
            reporter=reporter,
            approved_by=approved_by,
            seen_missing=existing is None,
        ).run(trigger)

    def _wait_for_a_slot(
        self, pr: PullRequest, *, name: str, admission: cap.Admission, reporter: Reporter, config: PreviewConfig
    ) -> Outcome:
        """The repo has as many live previews as max_previews allows: join the line, or be refused."""
        full = f"This repository has {admission.live} live previews, the most `max_previews` allows"
        if admission.place is None:
            note = (
                f"Not deployed: {full}, and `when_full` is `refuse`. When a preview goes (its PR closes, or "
                "`/preview destroy`), push or comment `/preview redeploy`."
            )
            state, description = CommitState.ERROR, f"Not deployed: {admission.live} live previews, the most allowed"
        else:
            self._join_the_line(pr, name=name, limit=admission.limit)
            note = (
                f"Queued: {full}. This pull request is number {admission.place} in line and deploys when a "
                "preview frees its slot (its PR closes, or it sleeps or expires)."
            )
            state, description = CommitState.PENDING, f"Queued for a preview slot: number {admission.place} in line"
        self._github.set_commit_status(
            pr.repo,
            pr.head_sha,
            state=state,
            context=config.status_context,
            description=description,
            target_url=self._settings.run_url,
        )
        if admission.place is None:
            report = reporter.update(phase=Phase.PENDING, note=note)
            return Outcome(status="refused", message=note, namespace=name, report=report)
        report = reporter.update(phase=Phase.PENDING, namespace=name, note=note)
        log.info("%s#%d waits for a preview slot: number %d in line", pr.repo, pr.number, admission.place)
        return Outcome(
            status=Phase.PENDING, message=f"queued, number {admission.place} in line", namespace=name, report=report
        )

    def _join_the_line(self, pr: PullRequest, *, name: str, limit: int | None) -> None:
        """An empty namespace of the PR's, marked as waiting since now, holds its place in line."""
        labels = naming.preview_labels(repo=pr.repo, number=pr.number)
        made = {naming.REPO_ANNOTATION: pr.repo, naming.CREATED_AT_ANNOTATION: naming.format_time(self._clock())}
        with contextlib.suppress(Conflict):  # it waits already, or another run made it
            self._cluster.create_namespace(name, labels=labels, annotations=made)
        existing = self._cluster.namespace(name)
        if existing is None or not naming.is_owned(existing, repo=pr.repo, number=pr.number):
            raise UserError(f"namespace {name} exists and is not previewbot's preview of {pr.repo}#{pr.number}")
        if existing.annotations.get(naming.QUEUED_AT_ANNOTATION):
            return
        self._cluster.annotate_namespace(
            name,
            annotations={
                naming.QUEUED_AT_ANNOTATION: naming.format_time(self._clock(), precise=True),
                naming.STATUS_ANNOTATION: Phase.PENDING,
                naming.MAX_PREVIEWS_ANNOTATION: str(limit) if limit else None,
            },
        )

    def _evict(self, namespace: NamespaceInfo, *, for_pr: PullRequest) -> None:
        """Make room for for_pr: the least recently active preview sleeps, and its PR is told why."""
        log.info("%s sleeps to make room for %s#%d", namespace.name, for_pr.repo, for_pr.number)
        self._put_to_sleep(
            gc.Decision(
                namespace=namespace,
                repo=for_pr.repo,
                number=naming.pr_number(namespace),
                verdict=gc.Verdict.SLEEP,
                reason=gc.Reason.IDLE,
            ),
            why=f"to make room for #{for_pr.number}: this repository allows `max_previews` live previews, and "
            "this one was the least recently active",
        )

    def _deployment(
        self,
        pr: PullRequest,
        *,
        config: PreviewConfig,
        trusted: Trusted,
        reporter: Reporter,
        approved_by: str | None = None,
        seen_missing: bool = False,
    ) -> DeployRun:
        """A deploy run of the PR's head under config, the effective one: its trusted keys are the default branch's."""
        name = naming.namespace_name(prefix=config.namespace.prefix, repo=pr.repo, number=pr.number)
        secrets = () if pr.from_fork else tuple(config.namespace.secrets)
        return DeployRun(
            head_moved=self._head_moved(pr),
            # A fork's code never runs on the runner, which holds the workflow's secrets, nor gets any.
            ports=replace(self._ports, runner=None) if pr.from_fork else self._ports,
            secrets=secrets,
            manifest_policy=policy.ManifestPolicy(
                namespace=name,
                pod_security=policy.stricter(config.namespace.pod_security, config.forks.pod_security)
                if pr.from_fork
                else config.namespace.pod_security,
                fork=pr.from_fork,
                isolated=config.namespace.network_policy == "isolate",
                copied_secrets=frozenset(secret.copied_as for secret in secrets),
            ),
            settings=self._settings,
            clock=self._clock,
            pr=pr,
            config=config,
            trusted=trusted,
            approved_by=approved_by,
            reporter=reporter,
            namespace=name,
            seen_missing=seen_missing,
        )

    def _head_moved(self, pr: PullRequest) -> Callable[[], str | None]:
        def check() -> str | None:
            head = self._github.pull_request(pr.repo, pr.number)
            if head.state != "open":
                return "the PR closed"
            return f"the PR's head is {head.head_sha[:7]} now" if head.head_sha != pr.head_sha else None

        return check

    def _already_done(self, namespace: NamespaceInfo, pr: PullRequest) -> bool:
        """True when this very commit is already deployed and ready: a redelivered event changes nothing.

        A run that failed or died half-way is done again: every step converges, so repeating it is safe.
        """
        notes = namespace.annotations
        return (
            not namespace.terminating
            and notes.get(naming.HEAD_SHA_ANNOTATION) == pr.head_sha
            and notes.get(naming.STATUS_ANNOTATION) == Phase.READY
        )

    def _check_checkout(self, pr: PullRequest) -> None:
        """Refuse a checkout of another commit than the PR's head, before reading anything of it: its
        config, manifests and tests would be another commit's than the one approved, reported and pinned."""
        checkout = self._settings.checkout_sha
        if checkout is None or checkout == pr.head_sha:
            return
        raise UserError(
            f"The checkout holds commit {checkout}, not the pull request's head {pr.head_sha}: previewbot "
            "uses a commit only from a checkout of that commit, so nothing was changed. Check out the "
            "head this run works on (a push after the checkout gets a run of its own)."
        )

    def _fail_early(self, reporter: Reporter, pr: PullRequest, error: PreviewbotError, *, context: str) -> Outcome:
        """Bad input: say what is wrong on the PR and in the log, and change nothing else."""
        message = redactor.redact(str(error))
        log.error("%s", message)
        report = reporter.update(phase=Phase.FAILED, error=message)
        reporter.commit_status(
            pr.head_sha,
            state=CommitState.FAILURE,
            context=context,
            description=message.splitlines()[0],
            target_url=self._settings.run_url,
        )
        return Outcome(status=Phase.FAILED, message=message, report=report)

    def report_failed_build(self, pr: PullRequest, *, failed: str) -> Outcome:
        """The build of the PR's images failed: say so on the PR, instead of deploying images that are not there."""
        error = UserError(f"The build of {pr.head_sha[:7]} did not succeed ({failed}), so it is not deployed.")
        trusted = self._trusted_for(pr)
        reporter = self._reporter(pr.ref, phase=Phase.PENDING, sha=pr.head_sha)
        return self._sent(self._fail_early(reporter, pr, error, context=trusted.status_context))

    def report_waiting_for_builds(self, pr: PullRequest, *, pending: str) -> Outcome:
        """The builds the deploy waits for (`deploy.after`) have not all succeeded yet: say which, on the PR."""
        note = f"Waiting for {pending} to succeed for {pr.head_sha[:7]} before deploying."
        report = self._reporter(pr.ref, phase=Phase.PENDING, sha=pr.head_sha).update(phase=Phase.PENDING, note=note)
        return self._sent(Outcome(status=Phase.PENDING, message=note, report=report))

    def _sent(self, outcome: Outcome) -> Outcome:
        """outcome, once its reports have reached GitHub (or report_wait ran out), as `handle` returns them."""
        self._outbox.flush(timeout=self._settings.report_wait)
        return outcome

    def _fork_gate(self, pr: PullRequest, *, forks: Forks, approved: str | None, reporter: Reporter) -> Outcome | None:
        """None when the PR may be previewed; else the Outcome that says it waits (or never will).

        `approved` is the commit a maintainer approved, as recorded on the preview's namespace.
        """
        if not pr.from_fork or forks.policy == "allow":
            return None
        if forks.policy == "deny":
            note = "Previews are off for pull requests from forks in this repository."
            report = reporter.update(phase=Phase.PENDING, note=note)
            return Outcome(status=Phase.PENDING, message=note, report=report)
        if approved == pr.head_sha:
            return None
        note = render.render_fork_waiting(sha=pr.head_sha, label=forks.approve_label)
        if approved and forks.approve_label and forks.approve_label in pr.labels:
            # The label approved an earlier commit; taking it off lets a maintainer approve again by label.
            self._github.remove_label(pr.repo, pr.number, forks.approve_label)
        report = reporter.update(phase=Phase.PENDING, note=note)
        log.info("fork PR %s#%d waits for a maintainer's approval of %s", pr.repo, pr.number, pr.head_sha[:7])
        return Outcome(status=Phase.PENDING, message="waiting for approval", report=report)

    # ------------------------------------------------------------ destroy

    def destroy(self, intent: Destroy) -> Outcome:
        """Delete the PR's preview namespace (only if it is ours), retire its deployments, say so."""
        ref = intent.ref
        pr: PullRequest | None = None
        if intent.comment_id is not None and intent.by is not None:
            pr = self._github.pull_request(ref.repo, ref.number)
            refusal = self._refuse_unless_allowed(pr, by=intent.by, comment_id=intent.comment_id, verb="destroy")
            if refusal is not None:
                return refusal
        selected = self._cluster.namespaces(label_selector=naming.owned_selector(repo=ref.repo, number=ref.number))
        # The selector said so, but safety does not rest on one check.
        owned = [ns for ns in selected if naming.is_owned(ns, repo=ref.repo, number=ref.number)]
        for namespace in owned:
            log.info("deleting namespace %s", namespace.name)
            try:
                self._cluster.delete_namespace(namespace.name)
            except NotFound:
                log.info("namespace %s was already gone", namespace.name)
        reporter = self._reporter(ref, phase=Phase.DESTROYED)
        for environment in self._environments_of(ref, owned, pr):
            for deployment_id in self._github.deployments(ref.repo, environment=environment):
                self._github.set_deployment_status(
                    ref.repo, deployment_id, state=DeploymentState.INACTIVE, description="Preview destroyed"
                )
        note = {
            "merged": "Destroyed: the pull request was merged.",
            "closed": "Destroyed: the pull request was closed.",
            "command": f"Destroyed by @{intent.by} with `/preview destroy`. A new push deploys it again.",
            "expired": "Destroyed: no activity (a push, a command, a deploy) within its time limit (`ttl`). "
            "A new push or `/preview redeploy` brings it back.",
        }.get(intent.reason, "Destroyed.")
        if not owned and reporter.existing_comment(wait=self._settings.report_wait) is None:
            log.info("no preview of %s#%d to destroy", ref.repo, ref.number)
            return Outcome(status=Phase.DESTROYED, message="no preview")
        head = next(
            (
                ns.annotations[naming.HEAD_SHA_ANNOTATION]
                for ns in owned
                if naming.HEAD_SHA_ANNOTATION in ns.annotations
            ),
            "",
        )
        report = reporter.update(note=note, head_sha=head)
        if intent.comment_id is not None:
            self._github.react(ref.repo, intent.comment_id, "+1")
        return Outcome(status=Phase.DESTROYED, message=note, report=report, follow_up=self._slot_freed(ref.repo))

    def _slot_freed(self, repo: str) -> tuple[Deploy, ...]:
        """Previews went or slept: the deploys of the PRs first in line for the free slots, if any wait."""
        previews = cap.previews_of(self._cluster, repo)
        free = cap.free_slots(previews)
        deploys: list[Deploy] = []
        for waiting in cap.line(previews):
            if free is not None and len(deploys) >= free:
                break
            number = naming.pr_number(waiting)
            pr = self._github.pull_request(repo, number) if number is not None else None
            if pr is None or pr.state != "open":
                break  # gc takes its place in line away, and then deploys the next
            log.info("a preview slot is free: %s#%d, next in line, deploys next", repo, number)
            deploys.append(Deploy(pr=pr, trigger="slot"))
        return tuple(deploys)

    def _environments_of(self, ref: PrRef, owned: list[NamespaceInfo], pr: PullRequest | None) -> set[str]:
        """The Deployment environments a teardown retires: those previewbot recorded on the namespaces.

        A preview with none recorded falls back to the default branch's `environment`: never one a
        comment, a PR's config or any other text the PR controls names.
        """
        recorded = {
            ns.annotations[naming.ENVIRONMENT_ANNOTATION]
            for ns in owned
            if ns.annotations.get(naming.ENVIRONMENT_ANNOTATION)
        }
        if recorded:
            return recorded
        try:
            pr = pr or self._github.pull_request(ref.repo, ref.number)
        except NotFound:
            return {manifests.substitute(trusted_default("environment"), {"PR_NUMBER": str(ref.number)})}
        trusted = self._trusted_for(pr)
        namespace = naming.namespace_name(prefix=trusted.prefix, repo=pr.repo, number=pr.number)
        try:
            return {_environment(pr, trusted, namespace=namespace, url=None)}
        except UserError as error:
            log.warning("no Deployment environment to retire: %s", error)
            return set()

    def collect(self, repo: str) -> Outcome:
        """gc for one repo, as its scheduled run asks: previews whose PR closed unseen or whose time ran out go,
        idle ones sleep. It fails when anything it decided could not be done, naming each."""
        decisions, failures = self.sweep(only_repos=[repo], act=True)
        changed = [d for d in decisions if d.verdict is not gc.Verdict.STAYS]
        done = [f"{d.namespace.name} ({d.verdict}: {d.reason})" for d in changed]
        message = f"gc: {len(done)} of {len(decisions)} previews changed" + (": " + ", ".join(done) if done else "")
        if failures:
            message = "\n".join([message, *failures])
        log.info("%s", message)
        follow_up = self._slot_freed(repo) if changed else ()
        return Outcome(status=Phase.FAILED if failures else "swept", message=message, follow_up=follow_up)

    def sweep(self, *, only_repos: Sequence[str] = (), act: bool) -> tuple[list[gc.Decision], list[str]]:
        """gc's decisions for previewbot's previews (of only_repos, when given), carried out when act, with a
        line for each that could not be.

        Deletions go through destroy (the PR's comment, its Deployments), sleep says so on the PR; the
        reports of what was done have reached GitHub (or report_wait ran out) when this returns.
        """
        collector = gc.Collector(
            github=self._github, cluster=self._cluster, destroy=self._collected, sleep=self._put_to_sleep
        )
        decisions = collector.plan(now=self._clock(), only_repos=only_repos)
        if not act:
            return decisions, []
        try:
            return decisions, collector.carry_out(decisions)
        finally:
            self._outbox.flush(timeout=self._settings.report_wait)

    def _collected(self, decision: gc.Decision) -> None:
        # An on-demand preview has no PR to tell, and a repo that is gone has no PR left to tell.
        if decision.ref is not None and decision.reason is not gc.Reason.REPO_GONE:
            try:
                self.destroy(Destroy(ref=decision.ref, reason=decision.reason))
            except NotFound as error:
                # The PR itself is gone from GitHub: its namespace went all the same, but no one is left to tell.
                log.info("%s went; its PR could not be told: %s", decision.namespace.name, error)
            return
        try:
            self._cluster.delete_namespace(decision.namespace.name)
        except NotFound:
            log.info("namespace %s was already gone", decision.namespace.name)

    def _put_to_sleep(self, decision: gc.Decision, *, why: str | None = None) -> None:
        namespace = decision.namespace
        lifetime.sleep(self._cluster, namespace, label_selector=_app_selector(namespace))
        if decision.ref is None:
            return
        notes = namespace.annotations
        reporter = self._reporter(decision.ref, phase=Phase.SLEEPING, sha=notes.get(naming.HEAD_SHA_ANNOTATION, ""))
        why = why or f"after no activity since {notes.get(naming.LAST_ACTIVITY_ANNOTATION, 'its deploy')}"
        reporter.update(
            phase=Phase.SLEEPING,
            namespace=namespace.name,
            url=notes.get(naming.URL_ANNOTATION),
            expires_at=lifetime.expires_at(namespace),
            note=f"Asleep {why}: its workloads were scaled to zero. A push or `/preview wake` wakes it.",
        )

    # ------------------------------------------------------------ commands

    def _permission(self, repo: str, user: str, *, needed: str) -> tuple[bool, str]:
        """Whether user has at least the needed permission on repo, and what they have."""
        has = self._github.permission(repo, user)
        return PERMISSION_RANK.get(has, 0) >= PERMISSION_RANK[needed], has

    def _answer(self, ref: PrRef, comment_id: int, text: str) -> None:
        """Reply to a comment, once: a comment gets one reply however many commands it holds."""
        if comment_id in self._answered:
            log.info("comment %d has its reply already", comment_id)
            return
        self._answered.add(comment_id)
        self._github.create_comment(ref.repo, ref.number, text)

    def _refuse_unless_allowed(self, pr: PullRequest, *, by: str, comment_id: int, verb: str | None) -> Outcome | None:
        """React to the command at once; refuse (reply, reaction) when `by` may not run it.

        This comes before any other reply: a commenter who may not command gets one refusal, nothing more.
        """
        ref = pr.ref
        trusted = self._trusted_for(pr)
        needed = needed_permission(verb, trusted.commands)
        allowed, has = self._permission(ref.repo, by, needed=needed)
        if allowed:
            self._github.react(ref.repo, comment_id, "eyes")
            return None
        log.warning("@%s (%s) may not run /preview %s (needs %s)", by, has, verb, needed)
        self._github.react(ref.repo, comment_id, "-1")
        self._answer(ref, comment_id, render.render_refusal(user=by, verb=verb, needed=needed, has=has))
        return Outcome(status="refused", message=f"@{by} has {has} permission; /preview {verb or ''} needs {needed}")

    def _command(self, ref: PrRef, *, by: str, comment_id: int, verb: str, run: CommandRun) -> Outcome:
        """Run a command someone may run, with the PR's preview as the command's activity left it."""
        pr = self._github.pull_request(ref.repo, ref.number)
        refusal = self._refuse_unless_allowed(pr, by=by, comment_id=comment_id, verb=verb)
        if refusal is not None:
            return refusal
        preview = self._preview_of(ref)
        if preview is not None:
            preview = lifetime.touch(self._cluster, preview, now=self._clock())  # a command is activity
        return run(pr, comment_id, preview)

    def _preview_of(self, ref: PrRef) -> NamespaceInfo | None:
        """The PR's preview namespace, when there is one that is previewbot's and not going away."""
        owned = self._cluster.namespaces(label_selector=naming.owned_selector(repo=ref.repo, number=ref.number))
        return next(
            (ns for ns in owned if not ns.terminating and naming.is_owned(ns, repo=ref.repo, number=ref.number)),
            None,
        )

    def _keep(self, pr: PullRequest, comment_id: int, preview: NamespaceInfo | None, *, on: bool, by: str) -> Outcome:
        """Pin the preview (no expiry, no sleep), or let its time limits count again."""
        ref = pr.ref
        if preview is None:
            self._answer(ref, comment_id, "There is no preview of this pull request to keep.")
            return Outcome(status="ignored", message="no preview")
        preview = lifetime.keep(self._cluster, preview, on=on)
        report = replace(
            _report_from_namespace(ref, preview),
            note=f"Kept by @{by}: it neither expires nor sleeps until `/preview keep off`."
            if on
            else f"@{by} let it go again: its time limits count from now.",
        )
        reporter = self._reporter(ref, phase=report.phase, sha=report.head_sha)
        reporter.report = report
        shown = reporter.update()
        self._github.react(ref.repo, comment_id, "+1")
        return Outcome(
            status=shown.phase, message="kept" if on else "no longer kept", namespace=preview.name, report=shown
        )

    def _wake(self, pr: PullRequest, comment_id: int, preview: NamespaceInfo | None, *, by: str) -> Outcome:
        """Scale a sleeping preview back (under the cap, like any preview that goes live) and wait for it."""
        ref = pr.ref
        if preview is None or lifetime.asleep(preview) is None:
            self._answer(ref, comment_id, "This pull request's preview is not asleep: there is nothing to wake.")
            return Outcome(status="ignored", message="not asleep")
        trusted = self._trusted_for(pr).config
        admission = cap.admit(
            cap.previews_of(self._cluster, ref.repo),
            name=preview.name,
            limit=trusted.max_previews if trusted else None,
            policy=cap.Policy(trusted.when_full if trusted else "queue"),
        )
        if not admission.admitted:
            full = f"This repository has {admission.live} live previews, the most `max_previews` allows"
            if admission.place is None:
                text = (
                    f"{full}, and `when_full` is `refuse`: this one stays asleep. When a preview goes, wake it again."
                )
            else:
                # In line like any PR that waits for a slot: the slot that frees deploys its head, which wakes it.
                self._join_the_line(pr, name=preview.name, limit=admission.limit)
                text = f"{full}: this one stays asleep, number {admission.place} in line, and wakes when a slot frees."
            self._answer(ref, comment_id, text)
            return Outcome(
                status="refused" if admission.place is None else Phase.PENDING, message=text, namespace=preview.name
            )
        if admission.evict is not None:
            self._evict(admission.evict, for_pr=pr)
        timeout = float(preview.annotations.get(naming.READINESS_TIMEOUT_ANNOTATION) or WAKE_TIMEOUT)
        reporter = self._reporter(
            ref, phase=Phase.DEPLOYING, sha=preview.annotations.get(naming.HEAD_SHA_ANNOTATION, "")
        )
        reporter.report = replace(_report_from_namespace(ref, preview), phase=Phase.DEPLOYING, note=None)
        with reporter.step("Wake"):
            rollout = lifetime.wake(
                self._cluster, preview, now=self._clock(), timeout=timeout, progress=reporter.progress
            )
        awake = self._cluster.namespace(preview.name) or preview
        phase = Phase.READY if rollout is None or rollout.ok else Phase.FAILED
        self._cluster.annotate_namespace(preview.name, annotations={naming.STATUS_ANNOTATION: phase})
        shown = reporter.update(
            phase=phase,
            diagnoses=rollout.failed if rollout is not None else (),
            expires_at=lifetime.expires_at(awake),
            note=f"Woken by @{by}.",
        )
        self._github.react(ref.repo, comment_id, "rocket" if phase is Phase.READY else "confused")
        return Outcome(status=phase, message=f"woken by @{by}", namespace=preview.name, url=shown.url, report=shown)

    def _reply(self, intent: Reply) -> Outcome:
        """Help, or what was wrong with a comment's commands: only for those who may command."""
        ref = intent.ref
        pr = self._github.pull_request(ref.repo, ref.number)
        verb = "help" if intent.ok else None  # a malformed command has no verb to name
        refusal = self._refuse_unless_allowed(pr, by=intent.by, comment_id=intent.comment_id, verb=verb)
        if refusal is not None:
            return refusal
        if not intent.ok:
            self._github.react(ref.repo, intent.comment_id, "confused")
        self._answer(ref, intent.comment_id, intent.text)
        return Outcome(status="ignored", message="replied")

    def _redeploy(self, pr: PullRequest, comment_id: int, _preview: NamespaceInfo | None) -> Outcome:
        """Deploy the head again; the deploy finds the preview itself, as any deploy does."""
        ref = pr.ref
        if pr.state != "open":
            self._answer(ref, comment_id, "This pull request is closed: nothing to redeploy.")
            return Outcome(status="ignored", message="closed PR")
        outcome = self.deploy(pr, trigger="redeploy", force=True)
        self._github.react(ref.repo, comment_id, "rocket" if outcome.status == Phase.READY else "confused")
        return outcome

    def _retest(self, pr: PullRequest, comment_id: int, _preview: NamespaceInfo | None) -> Outcome:
        """Run the tests again against the ready preview of the PR's head; refuse with a reply otherwise.

        The preview is the one the config at the head names, looked up by that name."""
        ref = pr.ref
        trusted = self._trusted_for(pr)
        try:
            self._check_checkout(pr)
            own = load_config_file(self._settings.workspace, self._settings.config_path)
        except UserError as error:
            reporter = self._reporter(ref, phase=Phase.FAILED, sha=pr.head_sha)
            return self._fail_early(reporter, pr, error, context=trusted.status_context)
        config = effective_config(own, trusted.config)
        name = naming.namespace_name(prefix=config.namespace.prefix, repo=pr.repo, number=pr.number)
        namespace = self._cluster.namespace(name)
        if namespace is not None and not naming.is_owned(namespace, repo=pr.repo, number=pr.number):
            namespace = None
        refused = retest.refusal(namespace, head_sha=pr.head_sha, has_tests=config.tests is not None)
        if refused is not None:
            log.info("/preview retest on %s#%d refused: %s", ref.repo, ref.number, refused)
            self._github.react(ref.repo, comment_id, "confused")
            self._answer(ref, comment_id, refused)
            return Outcome(status="refused", message=refused, namespace=name)
        reporter = self._reporter(ref, phase=Phase.TESTING, sha=pr.head_sha)
        assert namespace is not None  # retest.refusal refuses a preview that is not there
        environment = namespace.annotations.get(naming.ENVIRONMENT_ANNOTATION)
        deployments = self._github.deployments(ref.repo, environment=environment) if environment else ()
        reporter.follow_deployment(next(iter(deployments), None))
        outcome = self._deployment(pr, config=config, trusted=trusted, reporter=reporter).retest()
        self._github.react(ref.repo, comment_id, "rocket" if outcome.status == Phase.READY else "confused")
        return outcome

    def _status(self, pr: PullRequest, comment_id: int, preview: NamespaceInfo | None) -> Outcome:
        ref = pr.ref
        report = _report_from_namespace(ref, preview) if preview is not None else None
        self._answer(ref, comment_id, render.render_status_reply(report))
        return Outcome(status=report.phase if report else "ignored", report=report)

    def approve(self, intent: Approve) -> Outcome:
        """A maintainer approves one commit of a fork's PR (comment or label); when it is the head, it deploys.

        The approval names its commit, so a push after it approves nothing: the new head waits for
        its own approval. It is recorded on the preview's namespace, which only previewbot writes.
        """
        ref = intent.ref
        pr = self._github.pull_request(ref.repo, ref.number)
        trusted = self._trusted_for(pr)
        if intent.label is not None:
            if intent.label != trusted.forks.approve_label:
                return Outcome(status="ignored", message=f"label {intent.label!r} is not the approval label")
            allowed, has = self._permission(ref.repo, intent.by, needed=needed_permission("approve", trusted.commands))
            if not allowed:
                log.warning("label %s added by @%s (%s) does not approve", intent.label, intent.by, has)
                return Outcome(status="refused", message=f"@{intent.by} may not approve")
        else:
            assert intent.comment_id is not None
            refusal = self._refuse_unless_allowed(pr, by=intent.by, comment_id=intent.comment_id, verb="approve")
            if refusal is not None:
                return refusal
        if not pr.from_fork:
            if intent.comment_id is not None:
                self._answer(ref, intent.comment_id, "This pull request is not from a fork: it needs no approval.")
            return Outcome(status="ignored", message="not a fork")
        if pr.state != "open":
            if intent.comment_id is not None:
                self._answer(ref, intent.comment_id, "This pull request is closed: there is nothing to approve.")
            return Outcome(status="ignored", message="closed PR")
        if intent.sha is None or pr.head_sha != intent.sha.lower():
            return self._approval_not_of_head(intent, pr)
        if trusted.forks.policy != "deny":  # under deny the gate turns the approval away
            name = naming.namespace_name(prefix=trusted.prefix, repo=pr.repo, number=pr.number)
            self._record_approval(name, pr, by=intent.by)
        log.info("@%s approved %s#%d at %s", intent.by, ref.repo, ref.number, pr.head_sha[:7])
        return self.deploy(pr, trigger="approve", force=True, approved_by=intent.by)

    def _approval_not_of_head(self, intent: Approve, pr: PullRequest) -> Outcome:
        """An approval that names no commit, or one that is no longer the head: it deploys nothing."""
        ref = pr.ref
        named = f"{intent.sha[:7]}" if intent.sha else "no commit"
        log.warning(
            "@%s approved %s but the head of %s#%d is %s", intent.by, named, ref.repo, ref.number, pr.head_sha[:7]
        )
        if intent.comment_id is not None:
            self._answer(ref, intent.comment_id, render.render_approve_again(sha=pr.head_sha, named=intent.sha))
        else:
            note = render.render_fork_waiting(sha=pr.head_sha, label=intent.label)
            self._reporter(ref, phase=Phase.PENDING, sha=pr.head_sha).update(note=note)
        return Outcome(status=Phase.PENDING, message=f"the approval names {named}, not the head {pr.head_sha[:7]}")

    def _record_approval(self, name: str, pr: PullRequest, *, by: str) -> None:
        """Write the approved commit on the preview's namespace, made now (pending) when there is none yet."""
        approval = {naming.APPROVED_SHA_ANNOTATION: pr.head_sha, naming.APPROVED_BY_ANNOTATION: by}
        existing = self._cluster.namespace(name)
        if existing is None:
            labels = naming.preview_labels(repo=pr.repo, number=pr.number)
            annotations = {
                **_created_annotations(pr, self._clock()),
                naming.STATUS_ANNOTATION: Phase.PENDING,
                **approval,
            }
            try:
                self._cluster.create_namespace(name, labels=labels, annotations=annotations)
            except Conflict:
                log.info("namespace %s appeared meanwhile; the deploy records the approval", name)
        elif naming.is_owned(existing, repo=pr.repo, number=pr.number) and not existing.terminating:
            self._cluster.annotate_namespace(name, annotations=dict(approval))

    def buildable_commit(self, intent: Intent) -> str | None:
        """The commit a comment's command lets the workflow build before previewbot runs it, else None.

        Building a PR's image runs its code with the workflow's registry token, so only a command
        previewbot will act on gets a build: its author has the permission it needs, the PR is open,
        and a fork's head is built only when this very command approves it (or forks are allowed).
        Writes nothing: the run that follows reacts, replies and reports.
        """
        approved: str | None = None
        match intent:
            case Redeploy(ref=ref, by=by):
                verb = "redeploy"
            case Approve(ref=ref, by=by, sha=approved, label=None):
                verb = "approve"
            case _:
                return None
        pr = self._github.pull_request(ref.repo, ref.number)
        trusted = self._trusted_for(pr)
        allowed, _ = self._permission(ref.repo, by, needed=needed_permission(verb, trusted.commands))
        if not allowed or pr.state != "open":
            return None
        if not pr.from_fork:
            return None if verb == "approve" else pr.head_sha  # approving a PR of the repo deploys nothing
        policy = trusted.forks.policy
        # An approval approves the commit it names, and only while that commit is the head.
        approves_head = verb == "approve" and approved is not None and pr.head_sha.startswith(approved)
        return pr.head_sha if policy == "allow" or (policy == "approve" and approves_head) else None


class DeployRun:
    """One deploy run of one PR head or on-demand preview, as a sequence of reported steps."""

    def __init__(
        self,
        *,
        ports: Ports,
        secrets: tuple[SecretCopy, ...],
        manifest_policy: policy.ManifestPolicy,
        settings: Settings,
        clock: Callable[[], datetime],
        pr: Previewed,
        config: PreviewConfig,
        trusted: Trusted,
        approved_by: str | None,
        reporter: Reporter,
        namespace: str,
        head_moved: Callable[[], str | None] | None = None,
        seen_missing: bool = False,
    ) -> None:
        """head_moved says why the run's commit is no longer its PR's head (a push, a close), else None;
        an on-demand preview has none: the newest run for it wins. seen_missing: the caller found no
        namespace by the preview's name moments ago."""
        self.cluster = ports.cluster
        self.head_moved = head_moved
        self.ports = ports
        self.secrets = secrets
        self.policy = manifest_policy
        self.settings = settings
        self.clock = clock
        self.pr = pr
        self.config = config
        self.trusted = trusted
        self.approved_by = approved_by
        self.reporter = reporter
        self.namespace = namespace
        self.labels = naming.labels_of(pr)
        self.environment = ""  # filled in from the preview's variables when the run begins
        self.claimed = False  # whether the namespace names this run's commit as its head yet
        self.stop = threading.Event()  # set when a newer commit or the PR's close takes the preview over
        self.holder = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"  # this run, as the Lease names it
        self.expires_at: datetime | None = None  # when the preview goes unless there is activity, once claimed
        self.seen_missing = seen_missing
        self.wanted_written = False  # whether the namespace was made naming this run's commit as the one wanted
        self.applied_before: set[tuple[str, str]] | None = None  # the kinds earlier runs applied; None: no run ever did

    def run(self, trigger: str) -> Outcome:
        pr = self.pr
        log.info("deploying %s at %s (%s) into %s", pr.title, pr.head_sha[:7], trigger, self.namespace)
        variables: dict[str, str] = {}
        try:
            variables = self._variables()
            self.environment = _environment(
                pr, self.trusted, namespace=self.namespace, url=variables.get("PREVIEW_URL") or None
            )
            self.reporter.update(
                phase=Phase.DEPLOYING,
                namespace=self.namespace,
                url=variables.get("PREVIEW_URL") or None,
                error=None,
                diagnoses=(),
                tests=None,
                note=self.trusted.problem,
            )
            self._status(CommitState.PENDING, "Deploying the preview")
            self.reporter.start_deployment(
                sha=pr.head_sha,
                environment=self.environment,
                description=f"Preview of {pr.title}",
                payload={"namespace": self.namespace, **({"pr": pr.number} if isinstance(pr, PullRequest) else {})},
                log_url=self.settings.run_url,
            )
            # Refused manifests leave everything as it was: not even the namespace is made.
            rendered = self._rendered(variables)
            guard_labels = {**self.labels, naming.COMPONENT_LABEL: "guardrail"}
            guardrails = manifests.guardrails(self.config, namespace=self.namespace, labels=guard_labels)
            with contextlib.ExitStack() as turn:
                with self.reporter.step("Namespace"):
                    self._ensure_namespace()
                    turn.enter_context(self._turn())
                if self._superseded():
                    return self._superseded_outcome()
                self._claim(kinds={*rendered.kinds, *((o["apiVersion"], o["kind"]) for o in guardrails)})
                with self._rollout_wait(rendered.workloads) as waiting:
                    with self.reporter.step("Apply manifests") as step:
                        self._apply([*guardrails, *rendered.objects], warn=step.details.append, applied=waiting.applied)
                    with self.reporter.step("Wait for rollout") as step:
                        rollout = waiting.result()
                        step.ok = rollout.ok
                if self._superseded():
                    return self._superseded_outcome()
                self.reporter.hold(
                    workloads=rollout.workloads,
                    endpoints=endpoints.endpoints_of(
                        self.cluster, self.namespace, endpoints.exposed_kinds(rendered.objects)
                    ),
                )
                if not rollout.ok:
                    names = ", ".join(str(d.workload) for d in rollout.failed)
                    return self._finish(
                        Phase.FAILED, f"Not ready: {names}", diagnoses=rollout.failed, variables=variables
                    )
                if self.config.tests is None:
                    # The namespace was read just above: the preview is still this run's.
                    return self._finish(Phase.READY, "Preview is ready", variables=variables)
                return self._conclude(self._tests(variables), variables)
        except Exception as error:  # whatever went wrong, the preview ends failed with every status final
            return self._superseded_outcome() if self._superseded() else self._finish_with_error(error)

    def retest(self) -> Outcome:
        """Run only the tests again, against the workloads this commit's deploy made ready; nothing is applied."""
        pr, tests_config = self.pr, self.config.tests
        assert tests_config is not None
        log.info("testing %s at %s again in %s", pr.title, pr.head_sha[:7], self.namespace)
        try:
            variables = self._variables()
            self.environment = _environment(
                pr, self.trusted, namespace=self.namespace, url=variables.get("PREVIEW_URL") or None
            )
            self.claimed = True
            current = self.cluster.namespace(self.namespace)
            applied = _kinds_from(current.annotations.get(naming.APPLIED_KINDS_ANNOTATION, "") if current else "")
            self.reporter.update(
                phase=Phase.TESTING,
                namespace=self.namespace,
                url=variables.get("PREVIEW_URL") or None,
                note="Tests run again with `/preview retest`; the workloads were not redeployed.",
                endpoints=endpoints.endpoints_of(self.cluster, self.namespace, endpoints.kinds_among_applied(applied)),
            )
            self._status(CommitState.PENDING, "Running the tests again", context=tests_config.status_context)
            tests = self._tests(variables)
        except Exception as error:  # whatever went wrong, the preview ends failed with every status final
            return self._superseded_outcome() if self._superseded() else self._finish_with_error(error)
        return self._conclude(tests, variables)

    def _conclude(self, tests: TestRun | None, variables: Mapping[str, str]) -> Outcome:
        """End a run whose workloads became ready: failed when required tests failed, else ready."""
        if self._superseded():
            return self._superseded_outcome()
        if tests is not None and not tests.passed and self.config.tests is not None and self.config.tests.required:
            return self._finish(Phase.FAILED, _tests_line(tests), tests=tests, variables=variables)
        return self._finish(Phase.READY, "Preview is ready", tests=tests, variables=variables)

    def _superseded_outcome(self) -> Outcome:
        log.info("a newer commit (or the PR's close) took over %s; leaving the report to it", self.namespace)
        description = "Superseded: a newer commit took over"
        self.reporter.deployment_status(DeploymentState.INACTIVE, description, log_url=self.settings.run_url)
        self._status(CommitState.ERROR, description)
        return Outcome(status="superseded", namespace=self.namespace)

    # ---------------------------------------------------------------- steps

    def _variables(self) -> dict[str, str]:
        base = manifests.preview_variables(pr=self.pr, namespace=self.namespace, url=None, extra={})
        url = manifests.preview_url(self.config, base)
        return manifests.preview_variables(pr=self.pr, namespace=self.namespace, url=url, extra=self.config.variables)

    def _ensure_namespace(self) -> None:
        """The preview's namespace, made when missing (after an earlier one finished terminating)."""
        cluster, name = self.cluster, self.namespace
        now = self.clock()
        pod_security = policy.namespace_labels(self.policy.pod_security)
        # Seen missing just now: made at once, and read only when the API says it is there after all.
        existing = None if self.seen_missing else cluster.namespace(name)
        for _attempt in range(2):
            if existing is not None and not naming.owns(existing, self.pr):
                raise UserError(
                    f"namespace {name} exists and is not previewbot's preview of {self.pr.title}; "
                    "previewbot will not touch it. Rename it, or set namespace.prefix in .preview.yml."
                )
            if existing is not None and existing.terminating:
                self.reporter.progress(f"namespace {name} is still terminating from an earlier teardown; waiting")
                if not cluster.wait_namespace_gone(
                    name, timeout=self.settings.namespace_wait, progress=self.reporter.progress
                ):
                    raise UserError(f"namespace {name} was still terminating after {self.settings.namespace_wait:.0f}s")
                existing = None
            if existing is None:
                created = {**_created_annotations(self.pr, now), naming.WANTED_SHA_ANNOTATION: self.pr.head_sha}
                try:
                    cluster.create_namespace(name, labels={**self.labels, **pod_security}, annotations=created)
                except Conflict:
                    existing = cluster.namespace(name)  # another run made it, or an old one began terminating
                    continue
                self.wanted_written = True
            break
        # Everything previewbot does inside the namespace, it may do through this binding only.
        access_labels = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE, naming.COMPONENT_LABEL: "access"}
        cluster.bind_preview_role(name, labels=access_labels)

    def _claim(self, *, kinds: set[tuple[str, str]]) -> None:
        """Name this run's commit as the preview's head: from here on the preview is this commit's.

        The kinds it will apply are written down with the claim, before any is applied, so that
        whatever part of the apply gets through, a later run knows which kinds to prune.
        """
        cluster, name = self.cluster, self.namespace
        now = self.clock()
        pod_security = policy.namespace_labels(self.policy.pod_security)
        existing = cluster.namespace(name)
        # Read while this run holds the Lease: no other run applies until it is let go. Every run
        # claims before it applies: in a namespace no run has claimed, no run has applied anything.
        if existing is not None and naming.HEAD_SHA_ANNOTATION in existing.annotations:
            self.applied_before = _kinds_from(existing.annotations.get(naming.APPLIED_KINDS_ANNOTATION, ""))
        recorded = sorted({*kinds, *(self.applied_before or ())})
        if existing is not None and (replicas := lifetime.asleep(existing)) is not None:
            # A push wakes a sleeping preview: the rollout wait that follows sees it ready again.
            cluster.scale(name, replicas)
            self.reporter.progress(f"woke {len(replicas)} workloads that slept")
        config = self.config
        limits = lifetime.limits(ttl=config.ttl, sleep_after=config.sleep_after, keep_label=config.keep_label, now=now)
        self.expires_at = naming.parse_time(limits[naming.EXPIRES_AT_ANNOTATION])
        annotations: dict[str, str | None] = {
            naming.HEAD_SHA_ANNOTATION: self.pr.head_sha,
            naming.STATUS_ANNOTATION: Phase.DEPLOYING,
            naming.DEPLOYED_AT_ANNOTATION: naming.format_time(now),
            naming.SLEEPING_ANNOTATION: None,
            naming.QUEUED_AT_ANNOTATION: None,
            naming.READINESS_TIMEOUT_ANNOTATION: str(int(config.readiness.timeout)),
            **limits,
            naming.ROLLED_OUT_SHA_ANNOTATION: None,
            **self._github_ids(),
            naming.ENVIRONMENT_ANNOTATION: self.environment,
            naming.APPLIED_KINDS_ANNOTATION: ",".join(f"{v}/{k}" for v, k in recorded),
        }
        if self.approved_by is not None:
            annotations[naming.APPROVED_SHA_ANNOTATION] = self.pr.head_sha
            annotations[naming.APPROVED_BY_ANNOTATION] = self.approved_by
        # The level may have changed since the namespace was made (a fork's preview, a new config).
        cluster.annotate_namespace(name, annotations=annotations, labels=pod_security)
        self.claimed = True

    def _github_ids(self) -> dict[str, str | None]:
        """The comment's and the deployment's ids as annotations, those GitHub has given yet."""
        ids = {
            naming.COMMENT_ID_ANNOTATION: self.reporter.comment_id,
            naming.DEPLOYMENT_ID_ANNOTATION: self.reporter.deployment_id,
        }
        return {key: str(value) for key, value in ids.items() if value is not None}

    def _rendered(self, variables: Mapping[str, str]) -> manifests.Rendered:
        """The manifests' objects, once they keep to the manifest policy."""
        rendered = manifests.render_manifests(
            self.config,
            root=self.settings.workspace,
            variables=variables,
            namespace=self.namespace,
            labels={**self.labels, naming.COMPONENT_LABEL: "app"},
        )
        policy.check(rendered.objects, locations=rendered.locations, policy=self.policy)
        for reference in rendered.kept:
            log.info("left as written, none of previewbot's variables: %s", reference)
        return rendered

    def _rollout_wait(self, workloads: Sequence[ObjectRef]) -> _RolloutWait:
        return _RolloutWait(
            lambda applied, progress: self.cluster.wait_rollout(
                self.namespace,
                workloads,
                timeout=self.config.readiness.timeout,
                progress=progress,
                stop=self.stop,
                applied=applied,
            ),
            progress=self.reporter.progress,
        )

    def _apply(self, objects: list[dict[str, Any]], *, warn: Callable[[str], None], applied: Future[None]) -> None:
        """Apply the objects, then prune what earlier runs applied and these no longer hold.

        `applied` is done as soon as the objects are: the rollout wait need not wait for the prune.
        """
        cluster = self.cluster
        self._copy_secrets()
        applied_refs = cluster.apply(self.namespace, objects, warn=warn)
        applied.set_result(None)
        self.reporter.progress(f"applied {len(applied_refs)} objects")
        if self.applied_before is None:
            return  # the first run in the namespace: nothing of an earlier one's to prune
        # Only what the manifests and the guardrails made: the copied Secrets and the test Jobs stay.
        applied_by_previewbot = f"{naming.COMPONENT_LABEL} in (app,guardrail)"
        kinds = {*self.applied_before, *((o["apiVersion"], o["kind"]) for o in objects)}
        pruned = cluster.prune(
            self.namespace,
            label_selector=f"{naming.selector_of(self.pr)},{applied_by_previewbot}",
            kinds=sorted(kinds),
            keep=set(applied_refs),
        )
        for ref in pruned:
            self.reporter.progress(f"pruned {ref}, gone from the manifests")

    def _copy_secrets(self) -> None:
        for secret in self.secrets:
            source_namespace, _, source_name = secret.from_.partition("/")
            self.cluster.copy_secret(
                source_namespace=source_namespace,
                name=source_name,
                target_namespace=self.namespace,
                labels={**self.labels, naming.COMPONENT_LABEL: "secret"},
                target_name=secret.copied_as,
            )

    def _tests(self, variables: Mapping[str, str]) -> TestRun:
        self.cluster.annotate_namespace(
            self.namespace,
            annotations={naming.STATUS_ANNOTATION: Phase.TESTING, naming.ROLLED_OUT_SHA_ANNOTATION: self.pr.head_sha},
        )
        with self.reporter.step("End-to-end tests", phase=Phase.TESTING) as step:
            tests = run_tests(
                self.config,
                cluster=self.cluster,
                probe=self.ports.probe,
                runner=self.ports.runner,
                workspace=self.settings.workspace,
                variables=variables,
                labels=self.labels,
                progress=self.reporter.progress,
                pod_security=self.policy.pod_security,
                stop=self.stop,
            )
            step.ok = tests.passed
        if self._superseded():
            return tests
        assert self.config.tests is not None
        # Tests that could not say pass or fail (a report that could not be read, a timeout) are an error.
        verdict = CommitState.FAILURE if tests.problem is None else CommitState.ERROR
        self._status(
            CommitState.SUCCESS if tests.passed else verdict,
            _tests_line(tests),
            context=self.config.tests.status_context,
        )
        return tests

    def _superseded(self) -> bool:
        """True when a newer commit, or the PR's close, has taken the preview over from this run."""
        if self.stop.is_set():
            return True
        if not self.claimed:
            return False
        try:
            current = self.cluster.namespace(self.namespace)
        except PreviewbotError:
            return False
        # A namespace gone or going under a run that claimed it was destroyed by a close or a command.
        return (
            current is None
            or current.terminating
            or current.annotations.get(naming.HEAD_SHA_ANNOTATION) != self.pr.head_sha
        )

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """This run's turn at the preview: one run at a time, and a newer one ends an older one's turn.

        The run writes down the commit it wants, then waits for the PR's Lease in the namespace.
        Meanwhile, and while it works, it follows the namespace by a watch: when another run wants
        another commit and GitHub says the PR's head is no longer this run's (or the PR closed),
        or the namespace is being deleted, `stop` is set, which ends the wait for the Lease, the
        rollout wait or the test Job at once. Objects already applied are left as they are: the
        next run applies over them. A run that had to wait for its turn asks GitHub once more
        before it begins, since pushes may have come while it waited.
        """
        if not self.wanted_written:
            self.cluster.annotate_namespace(
                self.namespace, annotations={naming.WANTED_SHA_ANNOTATION: self.pr.head_sha}
            )
        with (
            self.cluster.following_namespace(self.namespace, self._on_namespace_change),
            PrLease(
                self.cluster, namespace=self.namespace, ref=self.pr.ref, holder=self.holder, give_up=self.stop
            ) as lease,
        ):
            if lease.waited:
                self._stop_unless_still_wanted(self.cluster.namespace(self.namespace), ask_github=True)
            yield

    def _on_namespace_change(self, current: NamespaceInfo | None) -> None:
        if self.stop.is_set():
            return
        try:
            self._stop_unless_still_wanted(current, ask_github=False)
        except PreviewbotError as error:
            log.warning("could not check whether a newer commit took over: %s", error)

    def _stop_unless_still_wanted(self, current: NamespaceInfo | None, *, ask_github: bool) -> None:
        """Set `stop` when the preview (`current`) is going, or GitHub's head of the PR is not this run's commit.

        GitHub is asked only when told to or when another run wants another commit. When that
        other run's commit is the older one (its run came late), this run, whose commit is the
        head, writes its own down again, so that the late one stands down.
        """
        wanted = current.annotations.get(naming.WANTED_SHA_ANNOTATION) if current else None
        mine = self.pr.head_sha
        moved: str | None
        if current is None or current.terminating:
            moved = "the preview is being deleted"
        elif wanted in (None, mine) and not ask_github:
            return
        elif self.head_moved is None:
            moved = f"a newer run wants {wanted[:7]}" if wanted and wanted != mine else None
        else:
            moved = self.head_moved()
            if moved is None and wanted != mine:
                self.cluster.annotate_namespace(self.namespace, annotations={naming.WANTED_SHA_ANNOTATION: mine})
        if moved is None:
            return
        reason = moved
        log.info("stopping the deploy of %s: %s", self.pr.head_sha[:7], reason)
        self.stop.set()

    # ---------------------------------------------------------------- endings

    def _finish(
        self,
        phase: Phase,
        summary: str,
        *,
        variables: Mapping[str, str],
        diagnoses: tuple[WorkloadDiagnosis, ...] = (),
        tests: TestRun | None = None,
    ) -> Outcome:
        url = variables.get("PREVIEW_URL") or None
        ok = phase is Phase.READY
        report = self.reporter.update(
            phase=phase, diagnoses=diagnoses, tests=tests, url=url, expires_at=self.expires_at
        )
        self.reporter.deployment_status(
            DeploymentState.SUCCESS if ok else DeploymentState.FAILURE,
            summary,
            environment_url=url if ok else None,
            log_url=self.settings.run_url,
        )
        self._status(CommitState.SUCCESS if ok else CommitState.FAILURE, summary, target_url=url if ok else None)
        self.cluster.annotate_namespace(
            self.namespace,
            annotations={naming.STATUS_ANNOTATION: phase, naming.URL_ANNOTATION: url, **self._github_ids()},
        )
        log.info("%s: %s", phase, summary)
        return Outcome(status=phase, message=summary, url=url, namespace=self.namespace, report=report)

    def _finish_with_error(self, error: Exception) -> Outcome:
        if isinstance(error, PreviewbotError):
            message = redactor.redact(str(error))
            log.error("%s", message)
        else:
            # Not an error previewbot raises on purpose: the traceback (redacted by the log's filter) shows where.
            message = redactor.redact(f"previewbot failed unexpectedly: {type(error).__name__}: {error}")
            log.error("%s", message, exc_info=error)
        broke = isinstance(error, ApiError) or not isinstance(error, PreviewbotError)
        report = self.reporter.update(phase=Phase.FAILED, error=message)
        self.reporter.deployment_status(
            DeploymentState.ERROR if broke else DeploymentState.FAILURE,
            message.splitlines()[0],
            log_url=self.settings.run_url,
        )
        self._status(CommitState.ERROR if broke else CommitState.FAILURE, message.splitlines()[0])
        try:
            if self.cluster.namespace(self.namespace) is not None and not isinstance(error, UserError):
                self.cluster.annotate_namespace(self.namespace, annotations={naming.STATUS_ANNOTATION: Phase.FAILED})
        except PreviewbotError:
            log.warning("could not record the failure on namespace %s", self.namespace)
        return Outcome(status=Phase.FAILED, message=message, namespace=self.namespace, report=report)

    def _status(
        self,
        state: CommitState,
        description: str,
        *,
        context: str | None = None,
        target_url: str | None = None,
    ) -> None:
        self.reporter.commit_status(
            self.pr.head_sha,
            state=state,
            context=context or _deploy_context(self.config),
            description=description,
            target_url=target_url or self.settings.run_url,
        )


class _RolloutWait:
    """The rollout wait, on a thread of its own from before the apply: its watch is open when the apply ends.

    `applied` is to be set done when the apply has ended; leaving sets it failed when it was not (the
    apply failed: the wait ends at once, with its error) and joins the thread. The wait's progress
    lines are held until `result` is asked for, so that they show in its own step, after the apply's.
    """

    def __init__(
        self, wait: Callable[[Future[None], Callable[[str], None]], RolloutResult], *, progress: Callable[[str], None]
    ) -> None:
        self.applied: Future[None] = Future()
        self._outcome: Future[RolloutResult] = Future()
        self._progress = progress
        self._held: list[str] | None = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(wait,), name="previewbot-rollout", daemon=True)

    def __enter__(self) -> _RolloutWait:
        self._thread.start()
        return self

    def __exit__(self, _type: object, error: BaseException | None, _traceback: object) -> None:
        if not self.applied.done():
            self.applied.set_exception(error or CancelledError("the apply did not end"))
        self._thread.join()

    def result(self) -> RolloutResult:
        """The wait's outcome, once it ended; its error when it failed."""
        with self._lock:
            for line in self._held or ():
                self._progress(line)
            self._held = None
        return self._outcome.result()

    def _run(self, wait: Callable[[Future[None], Callable[[str], None]], RolloutResult]) -> None:
        try:
            self._outcome.set_result(wait(self.applied, self._note))
        except BaseException as error:  # `result` raises it on the run's own thread
            self._outcome.set_exception(error)

    def _note(self, line: str) -> None:
        with self._lock:
            if self._held is None:
                self._progress(line)
            else:
                self._held.append(line)


# ---------------------------------------------------------------- helpers


def _environment(pr: Previewed, trusted: Trusted, *, namespace: str, url: str | None) -> str:
    """The Deployment environment: the default branch's template, filled in from the built-in variables
    and the default branch's own `variables`, never from the PR's."""
    extra = trusted.config.variables if trusted.config else {}
    variables = manifests.preview_variables(pr=pr, namespace=namespace, url=url, extra=extra)
    template = trusted.config.environment if trusted.config else str(trusted_default("environment"))
    return manifests.substitute(template, variables)


def _created_annotations(pr: Previewed, now: datetime) -> dict[str, str]:
    return {naming.REPO_ANNOTATION: pr.repo, naming.CREATED_AT_ANNOTATION: naming.format_time(now)}


def _deploy_context(config: PreviewConfig | None) -> str:
    return config.status_context if config else "previewbot/deploy"


def _app_selector(namespace: NamespaceInfo) -> str:
    """A label selector for the objects previewbot applied from the manifests into namespace."""
    owner = {
        key: namespace.labels[key] for key in (naming.MANAGED_BY_LABEL, naming.REPO_LABEL) if key in namespace.labels
    }
    return ",".join(f"{key}={value}" for key, value in {**owner, naming.COMPONENT_LABEL: "app"}.items())


def _kinds_from(annotation: str) -> set[tuple[str, str]]:
    kinds = set()
    for item in filter(None, annotation.split(",")):
        api_version, _, kind = item.rpartition("/")
        kinds.add((api_version, kind))
    return kinds


def _tests_line(tests: TestRun) -> str:
    if tests.problem:
        return tests.problem
    if tests.report is None:
        return "Tests passed" if tests.passed else "Tests failed"
    counts = {o: tests.report.count(o) for o in TestOutcome}
    return (
        f"{counts[TestOutcome.PASSED]} passed, {counts[TestOutcome.FAILED] + counts[TestOutcome.ERROR]} failed, "
        f"{counts[TestOutcome.SKIPPED]} skipped in {tests.seconds:.0f}s"
    )


def _report_from_namespace(ref: PrRef, namespace: NamespaceInfo) -> PreviewReport:
    notes = namespace.annotations
    try:
        phase = Phase(notes.get(naming.STATUS_ANNOTATION, Phase.PENDING))
    except ValueError:
        phase = Phase.PENDING
    return PreviewReport(
        ref=ref,
        phase=Phase.SLEEPING if lifetime.asleep(namespace) is not None else phase,
        head_sha=notes.get(naming.HEAD_SHA_ANNOTATION, ""),
        namespace=namespace.name,
        url=notes.get(naming.URL_ANNOTATION),
        updated_at=naming.parse_time(notes.get(naming.DEPLOYED_AT_ANNOTATION)),
        expires_at=lifetime.expires_at(namespace),
        kept=lifetime.is_kept(namespace),
    )

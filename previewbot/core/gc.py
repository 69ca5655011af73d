"""Garbage collection: which of previewbot's namespaces go, which sleep, and why.

`plan` is pure: previewbot's namespaces and what GitHub says of their repos' open PRs in, one
decision per namespace out. `Collector` gathers those inputs with one namespace list and one
request per page of each repo's open PRs (never one per namespace), then carries the plan out.

A namespace is previewbot's only when it carries previewbot's labels AND its repo annotation
names the repo its repo label was made from; anything else is left alone, whatever it is called.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from previewbot import naming
from previewbot.core import lifetime
from previewbot.core.ports import Cluster, GitHub
from previewbot.errors import NotFound, PreviewbotError
from previewbot.model import NamespaceInfo, PrRef

log = logging.getLogger("previewbot")


class Verdict(enum.StrEnum):
    STAYS = "stays"
    DELETE = "delete"
    SLEEP = "sleep"


class Reason(enum.StrEnum):
    """Why a namespace goes or sleeps: the vocabulary of gc's table, its log and the PR comment."""

    PR_CLOSED = "closed"  # the PR is closed, merged or gone
    REPO_GONE = "repo-gone"  # GitHub no longer shows the repo to previewbot
    EXPIRED = "expired"  # no activity within its time limit
    IDLE = "idle"  # no activity within sleep_after
    ACTIVE = "active"
    KEPT = "kept"
    ASLEEP = "asleep"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    namespace: NamespaceInfo
    repo: str
    number: int | None  # None for an on-demand preview
    verdict: Verdict
    reason: Reason
    expires_at: datetime | None = None

    @property
    def ref(self) -> PrRef | None:
        return PrRef(repo=self.repo, number=self.number) if self.number is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoState:
    """What GitHub says of one repo: its open PRs and their labels, or that the repo is gone."""

    gone: bool = False
    open_prs: Mapping[int, Collection[str]] = field(default_factory=dict)


def owner_repo(namespace: NamespaceInfo) -> str | None:
    """The repo whose preview namespace is, when its labels and annotation agree on it; else None."""
    repo = namespace.annotations.get(naming.REPO_ANNOTATION, "")
    if not repo or not naming.is_owned(namespace, repo=repo):
        return None
    return repo


def plan(namespaces: Iterable[NamespaceInfo], *, repos: Mapping[str, RepoState], now: datetime) -> list[Decision]:
    """One decision for each of previewbot's namespaces whose repo is in repos; others are not listed."""
    decisions = []
    for namespace in namespaces:
        repo = owner_repo(namespace)
        if repo is None or repo not in repos or namespace.terminating:
            continue
        number = naming.pr_number(namespace)
        verdict, reason = _judge(namespace, number=number, state=repos[repo], now=now)
        decisions.append(
            Decision(
                namespace=namespace,
                repo=repo,
                number=number,
                verdict=verdict,
                reason=reason,
                expires_at=lifetime.expires_at(namespace),
            )
        )
    return decisions


def _judge(namespace: NamespaceInfo, *, number: int | None, state: RepoState, now: datetime) -> tuple[Verdict, Reason]:
    if state.gone:
        return Verdict.DELETE, Reason.REPO_GONE
    if number is not None and number not in state.open_prs:
        return Verdict.DELETE, Reason.PR_CLOSED
    pr_labels = tuple(state.open_prs.get(number, ())) if number is not None else ()
    if lifetime.is_kept(namespace, pr_labels=pr_labels):
        return Verdict.STAYS, Reason.KEPT
    expires_at = lifetime.expires_at(namespace)
    if expires_at is not None and expires_at <= now:
        return Verdict.DELETE, Reason.EXPIRED
    if lifetime.asleep(namespace) is not None:
        return Verdict.STAYS, Reason.ASLEEP
    sleep_at = naming.parse_time(namespace.annotations.get(naming.SLEEP_AT_ANNOTATION))
    if sleep_at is not None and sleep_at <= now:
        return Verdict.SLEEP, Reason.IDLE
    return Verdict.STAYS, Reason.ACTIVE


class Collector:
    """Gathers what `plan` needs through the ports, economically, and carries decisions out."""

    def __init__(
        self,
        *,
        github: GitHub,
        cluster: Cluster,
        destroy: Callable[[Decision], None],
        sleep: Callable[[Decision], None],
    ) -> None:
        self._github = github
        self._cluster = cluster
        self._destroy = destroy
        self._sleep = sleep

    def plan(self, *, now: datetime, only_repos: Sequence[str] = ()) -> list[Decision]:
        """Decisions for previewbot's namespaces (of only_repos, when given): one namespace list, one
        request per page of each repo's open PRs."""
        namespaces = self._cluster.namespaces(label_selector=naming.managed_selector())
        wanted = {repo.lower() for repo in only_repos}
        repos = sorted(
            {repo for ns in namespaces if (repo := owner_repo(ns)) and (not wanted or repo.lower() in wanted)}
        )
        return plan(namespaces, repos={repo: self._repo_state(repo) for repo in repos}, now=now)

    def carry_out(self, decisions: Iterable[Decision]) -> list[str]:
        """Each decision on its own: one that fails (a PR GitHub no longer shows, a refusal of the cluster)
        does not keep the others from being carried out. Returns a line for each that failed."""
        failures = []
        for decision in decisions:
            try:
                if decision.verdict is Verdict.DELETE:
                    log.info("gc: deleting %s (%s)", decision.namespace.name, decision.reason)
                    self._destroy(decision)
                elif decision.verdict is Verdict.SLEEP:
                    log.info("gc: putting %s to sleep (%s)", decision.namespace.name, decision.reason)
                    self._sleep(decision)
            except PreviewbotError as error:
                failures.append(f"could not {decision.verdict} {decision.namespace.name}: {error}")
                log.warning("gc: %s", failures[-1])
        return failures

    def _repo_state(self, repo: str) -> RepoState:
        try:
            pulls = self._github.open_pull_requests(repo)
        except NotFound:
            return RepoState(gone=True)
        return RepoState(open_prs={pull.number: set(pull.labels) for pull in pulls})

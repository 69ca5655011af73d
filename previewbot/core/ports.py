"""The ports the core drives: narrow, typed, and free of any SDK type.

Adapters in previewbot.adapters implement them over PyGithub, the kubernetes
client and httpx; tests implement them over emulated APIs (through the real
clients) or, for pure core logic, with small in-memory fakes.

Every method raises only errors from previewbot.errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from previewbot.model import (
    Comment,
    CommitState,
    DeploymentState,
    Endpoint,
    EndpointKind,
    JobOutcome,
    NamespaceInfo,
    ObjectRef,
    PullRequest,
    RolloutResult,
    WorkloadDiagnosis,
)

Progress = Callable[[str], None]
"""Called with a one-line, human-readable note while a long operation goes on."""


class GitHub(Protocol):
    """What previewbot reads and writes on GitHub, for one installation/token."""

    def login(self) -> str:
        """previewbot's own login on GitHub: the author of every comment it writes."""
        ...

    def pull_request(self, repo: str, number: int) -> PullRequest: ...

    def open_pull_requests(self, repo: str) -> Sequence[PullRequest]:
        """Every open PR of the repo, a page of 100 a request; NotFound when the repo is gone."""
        ...

    def file_text(self, repo: str, path: str, *, ref: str) -> str | None:
        """The text of a file on a branch or commit; None when there is no such file."""
        ...

    def download(self, repo: str, path: str, *, ref: str, into: Path) -> int:
        """Write the file or folder at path (at ref) under into, at path; returns how many files.

        NotFound when there is none; UserError for a path out of the repo, or more files or bytes
        than a deploy may read. Symbolic links and submodules in a folder are left out.
        """
        ...

    def comments(self, repo: str, number: int) -> Sequence[Comment]:
        """All comments on the PR's conversation, oldest first."""
        ...

    def create_comment(self, repo: str, number: int, body: str) -> int:
        """Post a comment; returns its id."""
        ...

    def update_comment(self, repo: str, comment_id: int, body: str) -> None:
        """Raises NotFound when the comment was deleted meanwhile."""
        ...

    def react(self, repo: str, comment_id: int, content: str) -> None:
        """Add a reaction ("eyes", "+1", "-1", "confused", "rocket") to an issue comment."""
        ...

    def permission(self, repo: str, user: str) -> str:
        """The user's permission on the repo: admin, maintain, write, triage, read or none."""
        ...

    def create_deployment(
        self, repo: str, *, sha: str, environment: str, description: str, payload: Mapping[str, Any]
    ) -> int:
        """A transient, non-production deployment of sha to environment; returns its id."""
        ...

    def deployments(self, repo: str, *, environment: str) -> Sequence[int]:
        """Ids of the deployments to environment, newest first."""
        ...

    def set_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        *,
        state: DeploymentState,
        description: str,
        environment_url: str | None = None,
        log_url: str | None = None,
    ) -> None: ...

    def remove_label(self, repo: str, number: int, label: str) -> None:
        """Take a label off the PR; nothing happens when it is not there."""
        ...

    def set_commit_status(
        self,
        repo: str,
        sha: str,
        *,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        """Description is cut to GitHub's 140 characters by the adapter."""
        ...


class Cluster(Protocol):
    """What previewbot does on the Kubernetes cluster."""

    def namespace(self, name: str) -> NamespaceInfo | None:
        """The namespace, or None when there is none (a Terminating one is returned, flagged)."""
        ...

    def following_namespace(
        self, name: str, on_change: Callable[[NamespaceInfo | None], None]
    ) -> AbstractContextManager[None]:
        """While inside, `on_change` hears the namespace as it is, then each time a watch shows it changed.

        None once it is gone. It is called on a thread of its own, one call at a time; leaving the
        block ends the watch at once and waits for that thread.
        """
        ...

    def namespaces(self, *, label_selector: str) -> Sequence[NamespaceInfo]: ...

    def create_namespace(self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> None:
        """Raises Conflict when it exists (also while Terminating)."""
        ...

    def bind_preview_role(self, namespace: str, *, labels: Mapping[str, str]) -> None:
        """Bind previewbot's own identity to its preview ClusterRole inside namespace (idempotent).

        Returns once the cluster's authorizer honours the binding.
        """
        ...

    def annotate_namespace(
        self, name: str, *, annotations: Mapping[str, str | None], labels: Mapping[str, str] | None = None
    ) -> None:
        """Merge-patch the namespace's metadata; a None value removes the annotation."""
        ...

    def delete_namespace(self, name: str) -> None:
        """Ask for deletion (the namespace goes Terminating); NotFound when there is none."""
        ...

    def wait_namespace_gone(self, name: str, *, timeout: float, progress: Progress | None = None) -> bool:
        """Watch until the namespace no longer exists; False on timeout."""
        ...

    def apply(
        self, namespace: str, objects: Sequence[Mapping[str, Any]], *, warn: Progress | None = None
    ) -> list[ObjectRef]:
        """Server-side apply each object into namespace with previewbot's field manager, force on conflicts.

        Raises InvalidManifest naming the object when the API rejects one (unknown kind, 422).
        `warn` is called with each warning the API server sends back, naming the object.
        """
        ...

    def prune(
        self, namespace: str, *, label_selector: str, kinds: Sequence[tuple[str, str]], keep: set[ObjectRef]
    ) -> list[ObjectRef]:
        """Delete the objects of the given (apiVersion, kind)s that match the selector and are not in keep.

        Objects are told apart by API group, kind and name; one that has an owner (a Deployment's
        pods, a Job's) is never pruned: its owner's deletion takes it along.
        """
        ...

    def wait_rollout(
        self,
        namespace: str,
        workloads: Sequence[ObjectRef],
        *,
        timeout: float,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        applied: Future[None] | None = None,
    ) -> RolloutResult:
        """Watch Deployments, StatefulSets, DaemonSets (and Jobs to completion) until each is ready, or `stop` is set.

        The rules are kubectl rollout status's. Those not ready by the timeout, or failing
        sooner for a reason that will not heal by waiting (ErrImagePull for long, CrashLoopBackOff,
        CreateContainerConfigError), come back diagnosed.

        `applied`, when given, is done when the apply of the workloads has ended: the wait may begin
        before, so that its watch is open when the apply ends, and judges each workload only as that
        apply left it or later, never as it was before. The timeout runs from the apply's end, and an
        apply that failed ends the wait at once, raising its error.
        """
        ...

    def diagnose(self, namespace: str, workload: ObjectRef) -> WorkloadDiagnosis: ...

    def endpoints(self, namespace: str, *, kinds: Collection[EndpointKind]) -> list[Endpoint]:
        """The namespace's endpoints of the given kinds: one Ingress rule's host and path each, or one Service each.

        One list request per API kind asked for: Ingresses, and Services (for LoadBalancer and NodePort alike).
        """
        ...

    def run_job(
        self,
        namespace: str,
        job: Mapping[str, Any],
        *,
        timeout: float,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> JobOutcome:
        """Create the Job (replacing one of the same name), watch it to the end, collect its pod's log.

        Setting `stop` ends the watch early and deletes the Job: a newer commit has taken over.
        """
        ...

    def delete_jobs(self, namespace: str, *, label_selector: str, keep: str | None = None) -> list[str]:
        """Delete the Jobs (and their pods) that match, but the one named keep."""
        ...

    def copy_secret(
        self,
        *,
        source_namespace: str,
        name: str,
        target_namespace: str,
        labels: Mapping[str, str],
        target_name: str | None = None,
    ) -> None:
        """Copy one Secret's data and type into target_namespace (as target_name, or its own name).

        NotFound when the source is missing.
        """
        ...

    def take_lease(self, namespace: str, name: str, *, holder: str, seconds: int) -> bool:
        """Hold the coordination.k8s.io Lease for `holder` for `seconds` from now.

        Creates it, renews it when holder has it, takes it over when its holder let it run out;
        False while another holder's lease runs. Two callers never both get True for one lease.
        """
        ...

    def release_lease(self, namespace: str, name: str, *, holder: str) -> None:
        """Let the Lease go, when holder still has it, so another may take it at once."""
        ...

    def wait_lease(self, namespace: str, name: str, *, give_up: threading.Event) -> None:
        """Return once the Lease that `take_lease` last found another holding is given back, changes
        hands or runs out (its holder may have died: nothing tells of that), or once give_up is set.

        The Lease is followed, not asked for again and again: it is taken within moments of its release.
        """
        ...

    def replicas(self, namespace: str, *, label_selector: str) -> dict[ObjectRef, int]:
        """The Deployments and StatefulSets that match, each with the replicas its spec asks for."""
        ...

    def scale(self, namespace: str, replicas: Mapping[ObjectRef, int]) -> None:
        """Set each workload's spec.replicas; one that is gone meanwhile is passed over."""
        ...


class UrlProbe(Protocol):
    """Checks that the preview's URL answers."""

    def wait_until_answers(
        self, url: str, *, expect_status: int, timeout: float, progress: Progress | None = None
    ) -> str | None:
        """None when url answered expect_status in time; else a one-line reason."""
        ...


class CommandRunner(Protocol):
    """Runs the repo's test command on the Action's runner (the webhook server has none)."""

    def run(self, command: str, *, env: Mapping[str, str], cwd: str, timeout: float) -> tuple[int | None, str]:
        """The exit code (None on timeout) and the combined output's end."""
        ...

"""The records that flow between the front doors, the core and the ports.

Pure data, no I/O: every other layer speaks in these types, never in SDK objects
or raw payload dicts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PrRef:
    """Which pull request: enough to look the rest up."""

    repo: str  # "owner/name"
    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRequest:
    """What previewbot needs to know of a pull request, whatever told it."""

    repo: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    default_branch: str  # the repo's: its config is the one that decides trust
    author: str
    head_repo: str  # "owner/name" of the head branch's repository; differs from repo for forks
    state: str = "open"  # "open" | "closed"
    merged: bool = False
    labels: tuple[str, ...] = ()
    html_url: str = ""

    @property
    def ref(self) -> PrRef:
        return PrRef(repo=self.repo, number=self.number)

    @property
    def from_fork(self) -> bool:
        return self.head_repo.lower() != self.repo.lower()

    @property
    def title(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OnDemandRef:
    """Which on-demand preview: one a person asked for from a checkout, with no pull request."""

    repo: str  # "owner/name"
    name: str  # a DNS label (naming.on_demand_name): the namespace's tail and the on-demand label's value


@dataclass(frozen=True, slots=True, kw_only=True)
class OnDemand:
    """A commit of a checkout to preview on demand: it has a branch and a name, but no pull request."""

    repo: str
    name: str
    head_sha: str
    head_ref: str  # the branch; "" when HEAD is detached

    @property
    def ref(self) -> OnDemandRef:
        return OnDemandRef(repo=self.repo, name=self.name)

    @property
    def title(self) -> str:
        return f"{self.repo} on demand: {self.name}"


Previewed = PullRequest | OnDemand
"""What a preview deploys: a pull request's head, or a checkout's commit asked for on demand."""


# ---------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True, kw_only=True)
class Deploy:
    """Deploy the PR's head: opened, reopened or pushed to."""

    pr: PullRequest
    trigger: str  # "opened" | "reopened" | "synchronize" | "manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class Destroy:
    """Tear the preview down."""

    ref: PrRef
    reason: str  # "merged" | "closed" | "command" | "manual" | "expired"
    by: str | None = None
    comment_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Redeploy:
    """Deploy the PR's current head again, asked for in a comment."""

    ref: PrRef
    by: str
    comment_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retest:
    """Run the end-to-end tests again against the running preview of the PR's head, asked for in a comment."""

    ref: PrRef
    by: str
    comment_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Keep:
    """Pin the PR's preview (no expiry, no sleep), or unpin it, asked for in a comment."""

    ref: PrRef
    by: str
    comment_id: int
    on: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Wake:
    """Scale a sleeping preview back and wait until it is ready, asked for in a comment."""

    ref: PrRef
    by: str
    comment_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Approve:
    """A maintainer approves one commit of a fork's PR for a preview (comment or label).

    `sha` is the commit approved: the start of a SHA the comment named (None when it named
    none), or the head SHA the `labeled` event carried. It counts only while it is the PR's head.
    """

    ref: PrRef
    by: str
    sha: str | None
    comment_id: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """Reply with the preview's current state."""

    ref: PrRef
    by: str
    comment_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """Answer a comment with text only (help, or what was wrong with its commands), if `by` may command."""

    ref: PrRef
    comment_id: int
    by: str
    text: str
    ok: bool = True  # False when the command was malformed


@dataclass(frozen=True, slots=True, kw_only=True)
class Collect:
    """Sweep the repo's previews: destroy those whose PR is closed or whose TTL has run out."""

    repo: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignore:
    """Nothing to do, and why."""

    reason: str


Intent = Deploy | Destroy | Redeploy | Retest | Keep | Wake | Approve | Status | Reply | Collect | Ignore


@dataclass(frozen=True, slots=True, kw_only=True)
class Up:
    """Deploy a checkout as an on-demand preview, or bring one up to date."""

    preview: OnDemand
    tag: str | None = None  # pin every configured image to this tag instead of the config's template
    ttl: float | None = None  # seconds; None: the config's ttl, else ON_DEMAND_TTL
    tests: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Down:
    """Tear an on-demand preview down."""

    ref: OnDemandRef


OnDemandIntent = Up | Down
"""What a person asks of an on-demand preview; no GitHub takes part."""

ON_DEMAND_TTL = 24 * 3600.0
"""How long an on-demand preview lives after its last `up` when neither --ttl nor the config says."""


# ---------------------------------------------------------------- cluster records


class Phase(enum.StrEnum):
    """A preview's state as the namespace annotation and the comment show it."""

    PENDING = "pending"  # waiting (for approval, or queued)
    DEPLOYING = "deploying"
    TESTING = "testing"
    READY = "ready"
    FAILED = "failed"
    SLEEPING = "sleeping"  # scaled to zero for want of activity; a push or /preview wake wakes it
    DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    terminating: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    """One Kubernetes object, named the way `kubectl` would name it."""

    api_version: str  # "apps/v1", "v1"
    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerProblem:
    """Why a container is not running: a waiting or terminated reason, with the log's last lines."""

    pod: str
    container: str
    reason: str  # "ImagePullBackOff", "CrashLoopBackOff", "Error", ...
    message: str = ""
    restarts: int = 0
    log_tail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadDiagnosis:
    """Why a workload did not become ready."""

    workload: ObjectRef
    summary: str  # one line: "0/1 replicas available after 300s"
    problems: tuple[ContainerProblem, ...] = ()
    events: tuple[str, ...] = ()  # "Warning Failed pod/web-1: Failed to pull image ..."


class Readiness(enum.StrEnum):
    """Where a workload stood when the rollout wait ended."""

    READY = "ready"
    WAITING = "waiting"  # still on its way: the wait ran out of time, or a newer commit took over
    FAILED = "failed"  # it will not get there by waiting: its diagnosis says why


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadState:
    """How far one Deployment, StatefulSet, DaemonSet or Job got, as the rollout wait last saw it."""

    workload: ObjectRef
    readiness: Readiness
    ready: int  # pods ready (a Job: pods succeeded)
    desired: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutResult:
    ready: tuple[ObjectRef, ...]
    failed: tuple[WorkloadDiagnosis, ...] = ()
    workloads: tuple[WorkloadState, ...] = ()  # each workload waited for, in the order it was asked

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How a test Job ended."""

    succeeded: bool
    timed_out: bool = False
    log: str = ""
    log_unreadable: str | None = None  # why the log could not be read whole (forbidden, kubelet, pod gone)
    diagnosis: WorkloadDiagnosis | None = None  # set when the pod never ran (image, config, refused)


class EndpointKind(enum.StrEnum):
    INGRESS = "Ingress"
    LOAD_BALANCER = "LoadBalancer"
    NODE_PORT = "NodePort"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One way into a preview from outside the cluster: an Ingress rule, or a Service of type LoadBalancer or NodePort.

    Hosts and paths are as the manifests (a PR's) wrote them: text to check before it is shown.
    """

    kind: EndpointKind
    name: str  # the Ingress's or the Service's
    host: str = ""  # an Ingress rule's host; "" when the rule takes any host
    path: str = ""  # an Ingress rule's path; "" when it takes every path
    tls: bool = False  # the Ingress serves the host over TLS (it is among its spec.tls hosts)
    ports: tuple[str, ...] = ()  # a LoadBalancer's ports, a NodePort's node ports: "80", "53/UDP"
    addresses: tuple[str, ...] = ()  # IPs and hostnames status.loadBalancer gives; none yet while pending


# ---------------------------------------------------------------- GitHub records


@dataclass(frozen=True, slots=True, kw_only=True)
class Comment:
    id: int
    body: str
    author: str = ""


class CommitState(enum.StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class DeploymentState(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTiming:
    name: str
    started: datetime
    seconds: float | None = None  # None while running
    ok: bool | None = None
    details: tuple[str, ...] = ()  # what the step was told on the way: the API server's warnings


# ---------------------------------------------------------------- reports


class TestOutcome(enum.StrEnum):
    __test__ = False

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class TestCase:
    __test__ = False  # not a pytest class

    name: str
    classname: str = ""
    outcome: TestOutcome = TestOutcome.PASSED
    message: str = ""  # the failure/error message and the first lines of its details
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TestReport:
    """A JUnit XML report, summed over all its suites."""

    __test__ = False

    cases: tuple[TestCase, ...]
    seconds: float = 0.0

    def count(self, outcome: TestOutcome) -> int:
        return sum(1 for case in self.cases if case.outcome is outcome)

    @property
    def failures(self) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if c.outcome in (TestOutcome.FAILED, TestOutcome.ERROR))


@dataclass(frozen=True, slots=True, kw_only=True)
class TestRun:
    """How the end-to-end tests of one deploy went.

    `problem` is set when the tests could not say pass or fail (the URL never answered,
    the Job's image could not be pulled, no report, a malformed report, a timeout).
    """

    __test__ = False

    passed: bool
    report: TestReport | None = None
    problem: str | None = None
    log_tail: str = ""
    seconds: float = 0.0
    diagnosis: WorkloadDiagnosis | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewEntry:
    """One preview previewbot has in the cluster, as `previewbot list` shows it."""

    namespace: str
    repo: str
    pr: int | None  # None for an on-demand preview
    name: str | None  # the on-demand preview's name; None for a PR's
    head_sha: str
    phase: str  # a Phase value as the namespace records it ("" when it records none)
    created_at: datetime | None
    expires_at: datetime | None
    url: str | None
    terminating: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewReport:
    """Everything the sticky comment, the job summary and the outputs show of one preview."""

    ref: PrRef | OnDemandRef
    phase: Phase
    head_sha: str = ""
    namespace: str = ""
    url: str | None = None
    steps: tuple[StepTiming, ...] = ()
    running: str | None = None  # the step in progress, while phase is DEPLOYING/TESTING
    error: str | None = None  # previewbot or its input broke: config, manifest, API error
    diagnoses: tuple[WorkloadDiagnosis, ...] = ()  # workloads that did not become ready
    tests: TestRun | None = None
    note: str | None = None  # "Destroyed: the PR was merged.", "Waiting for a maintainer's approval."
    updated_at: datetime | None = None
    expires_at: datetime | None = None  # when it goes for want of activity; None: never
    kept: bool = False  # pinned by /preview keep or the keep label: it neither expires nor sleeps
    endpoints: tuple[Endpoint, ...] = ()  # the Ingress rules and external Services, once rolled out
    workloads: tuple[WorkloadState, ...] = ()  # each workload's readiness, as the rollout wait saw it

"""Names, labels and annotations: what previewbot writes on the cluster to find its own again.

Kubernetes names are DNS-1123 labels (at most 63 of [a-z0-9-], alphanumeric at both ends)
and label values are at most 63 characters; both rules are applied here and nowhere else.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from previewbot.model import NamespaceInfo, OnDemand, OnDemandRef, Previewed, PrRef

DOMAIN = "previewbot.dev"
FIELD_MANAGER = "previewbot"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "previewbot"
REPO_LABEL = f"{DOMAIN}/repo"
PR_LABEL = f"{DOMAIN}/pr"
ON_DEMAND_LABEL = f"{DOMAIN}/on-demand"  # the name of a preview asked for by hand, with no pull request
COMPONENT_LABEL = f"{DOMAIN}/component"  # "app" | "tests" | "guardrail" | "secret"

# Annotations on the namespace: the preview's state, read back after a restart.
REPO_ANNOTATION = f"{DOMAIN}/repo"
HEAD_SHA_ANNOTATION = f"{DOMAIN}/head-sha"
STATUS_ANNOTATION = f"{DOMAIN}/status"
CREATED_AT_ANNOTATION = f"{DOMAIN}/created-at"
DEPLOYED_AT_ANNOTATION = f"{DOMAIN}/deployed-at"
EXPIRES_AT_ANNOTATION = f"{DOMAIN}/expires-at"
URL_ANNOTATION = f"{DOMAIN}/url"
COMMENT_ID_ANNOTATION = f"{DOMAIN}/comment-id"
DEPLOYMENT_ID_ANNOTATION = f"{DOMAIN}/deployment-id"
APPLIED_KINDS_ANNOTATION = f"{DOMAIN}/applied-kinds"
# The commit whose workloads became ready here, written as its tests begin: what `/preview retest` may test.
ROLLED_OUT_SHA_ANNOTATION = f"{DOMAIN}/rolled-out-sha"
# A preview's life: what counts as activity, when it sleeps and expires, and what pins it.
LAST_ACTIVITY_ANNOTATION = f"{DOMAIN}/last-activity-at"
SLEEP_AT_ANNOTATION = f"{DOMAIN}/sleep-at"
TTL_ANNOTATION = f"{DOMAIN}/ttl-seconds"  # the limits the deploy's config set, for activity between deploys
SLEEP_AFTER_ANNOTATION = f"{DOMAIN}/sleep-after-seconds"
KEEP_ANNOTATION = f"{DOMAIN}/keep"  # "true" after `/preview keep`
KEEP_LABEL_ANNOTATION = f"{DOMAIN}/keep-label"  # the PR label that pins it, from the trusted config
WANTED_SHA_ANNOTATION = f"{DOMAIN}/wanted-sha"  # the commit the newest run came to deploy
QUEUED_AT_ANNOTATION = f"{DOMAIN}/queued-at"  # while waiting for a slot under max_previews
MAX_PREVIEWS_ANNOTATION = f"{DOMAIN}/max-previews"  # the cap a waiting preview waits under
READINESS_TIMEOUT_ANNOTATION = f"{DOMAIN}/readiness-timeout-seconds"  # how long a wake waits for readiness
SLEEPING_ANNOTATION = f"{DOMAIN}/sleeping"  # while asleep: the replicas to wake each workload to, as JSON
APPROVED_SHA_ANNOTATION = f"{DOMAIN}/approved-sha"  # the fork commit a maintainer approved
APPROVED_BY_ANNOTATION = f"{DOMAIN}/approved-by"
ENVIRONMENT_ANNOTATION = f"{DOMAIN}/environment"  # the Deployment environment, whose deployments teardown retires

MAX_NAME = 63
ON_DEMAND_NAME_LENGTH = 40
_LABEL_VALUE = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")
_HASH_LEN = 6


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def _fold(text: str, *, allowed: str, limit: int) -> str:
    """Lower-case text, turn runs of characters outside `allowed` into one '-', and fit it in limit.

    When folding loses information (case aside), a short hash of the original text is
    appended so that two different texts never meet in one name.
    """
    folded = re.sub(f"[^{allowed}]+", "-", text.lower()).strip("-.")
    if folded == text.lower() and len(folded) <= limit:
        return folded
    head = folded[: limit - _HASH_LEN - 1].rstrip("-.")
    suffix = _short_hash(text.lower())
    return f"{head}-{suffix}" if head else suffix


def dns_label(text: str, *, limit: int = MAX_NAME) -> str:
    """Fold text into a DNS-1123 label ([a-z0-9-], alphanumeric at both ends) of at most limit characters."""
    return _fold(text, allowed="a-z0-9-", limit=limit)


def repo_label(repo: str) -> str:
    """The repo as a label value: "owner.name", lower-cased (GitHub's names ignore case).

    A name that is no label value as it stands (longer than 63, or ending in `.`, `_` or `-`)
    becomes "<hash>_<as much as fits>". No two repos meet in one value: an owner never holds
    `_` or `.`, so a plain value never has `_` before its first `.`, and a hashed one always does.
    """
    text = repo.lower().replace("/", ".", 1)
    if len(text) <= MAX_NAME and _LABEL_VALUE.fullmatch(text):
        return text
    hashed = _short_hash(text)
    head = text[: MAX_NAME - len(hashed) - 1].rstrip("-._")
    return f"{hashed}_{head}" if head else hashed


def namespace_name(*, prefix: str, repo: str, number: int) -> str:
    """`<prefix>-<repo name>-pr-<N>`, the repo part cut with a hash to fit 63; the PR number is never cut.

    Two owners' repos of the same name meet in one name; the repo label on the namespace
    tells them apart, and previewbot refuses to use a namespace that is not its own.
    """
    tail = f"-pr-{number}"
    name = repo.split("/")[-1]
    return dns_label(f"{prefix}-{name}" if prefix else name, limit=MAX_NAME - len(tail)) + tail


def lease_name(ref: PrRef | OnDemandRef) -> str:
    """The name of the Lease that keeps two runs off one preview at once."""
    tail = f"-pr-{ref.number}" if isinstance(ref, PrRef) else f"-{ref.name}"
    return dns_label(f"previewbot-{ref.repo.replace('/', '-')}", limit=MAX_NAME - len(tail)) + tail


def on_demand_name(text: str) -> str:
    """The name of an on-demand preview, from a branch or what a person typed: a DNS label of at most 40.

    It is the tail of the namespace's name, so the repo part keeps at least 22 characters. It also
    stands in for ${PR_NUMBER}, so a name of digits alone gets a prefix: it never reads as a PR's number.
    """
    name = dns_label(text, limit=ON_DEMAND_NAME_LENGTH)
    return f"up-{dns_label(text, limit=ON_DEMAND_NAME_LENGTH - 3)}" if name.isdigit() else name


def on_demand_namespace_name(*, prefix: str, repo: str, name: str) -> str:
    """`<prefix>-<repo name>-<name>`, the repo part cut with a hash to fit 63; the preview's name is never cut."""
    tail = f"-{name}"
    repo_name = repo.split("/")[-1]
    return dns_label(f"{prefix}-{repo_name}" if prefix else repo_name, limit=MAX_NAME - len(tail)) + tail


def on_demand_labels(*, repo: str, name: str) -> dict[str, str]:
    """The labels that mark a namespace as this repo's on-demand preview called name."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REPO_LABEL: repo_label(repo), ON_DEMAND_LABEL: name}


def on_demand_selector(*, repo: str | None = None, name: str | None = None) -> str:
    """A label selector for previewbot's on-demand previews (of repo, and called name, when given)."""
    parts = [managed_selector()]
    if repo is not None:
        parts.append(f"{REPO_LABEL}={repo_label(repo)}")
    parts.append(ON_DEMAND_LABEL if name is None else f"{ON_DEMAND_LABEL}={name}")
    return ",".join(parts)


def is_on_demand(namespace: NamespaceInfo, *, repo: str, name: str) -> bool:
    """True when namespace is previewbot's on-demand preview of repo called name, and no PR's preview.

    As for a PR's preview, its labels and its repo annotation must both say so.
    """
    labels = namespace.labels
    wanted = on_demand_labels(repo=repo, name=name)
    labelled = PR_LABEL not in labels and all(labels.get(key) == value for key, value in wanted.items())
    return labelled and namespace.annotations.get(REPO_ANNOTATION, "").lower() == repo.lower()


def namespace_of(previewed: Previewed, *, prefix: str) -> str:
    """The namespace of a PR's or an on-demand preview."""
    if isinstance(previewed, OnDemand):
        return on_demand_namespace_name(prefix=prefix, repo=previewed.repo, name=previewed.name)
    return namespace_name(prefix=prefix, repo=previewed.repo, number=previewed.number)


def labels_of(previewed: Previewed) -> dict[str, str]:
    """The labels of the namespace (and every object) of a PR's or an on-demand preview."""
    if isinstance(previewed, OnDemand):
        return on_demand_labels(repo=previewed.repo, name=previewed.name)
    return preview_labels(repo=previewed.repo, number=previewed.number)


def selector_of(previewed: Previewed) -> str:
    """A label selector for the objects of one PR's or one on-demand preview."""
    if isinstance(previewed, OnDemand):
        return on_demand_selector(repo=previewed.repo, name=previewed.name)
    return owned_selector(repo=previewed.repo, number=previewed.number)


def owns(namespace: NamespaceInfo, previewed: Previewed) -> bool:
    """True when namespace is previewbot's preview of previewed."""
    if isinstance(previewed, OnDemand):
        return is_on_demand(namespace, repo=previewed.repo, name=previewed.name)
    return is_owned(namespace, repo=previewed.repo, number=previewed.number)


def pr_number(namespace: NamespaceInfo) -> int | None:
    """The number of the PR whose preview the namespace is labelled as; None for an on-demand one."""
    number = namespace.labels.get(PR_LABEL, "")
    return int(number) if number.isdigit() else None


def preview_labels(*, repo: str, number: int) -> dict[str, str]:
    """The labels that mark a namespace as this repo's preview of PR number."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REPO_LABEL: repo_label(repo), PR_LABEL: str(number)}


def managed_selector() -> str:
    """A label selector for every namespace previewbot manages, whatever its repo, PR or on-demand."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


def owned_selector(*, repo: str, number: int | None = None) -> str:
    """A label selector for previewbot's namespaces of repo (and of one PR when number is given).

    Without a number it selects the repo's on-demand previews too, as a sweep wants.
    """
    parts = [managed_selector(), f"{REPO_LABEL}={repo_label(repo)}"]
    if number is not None:
        parts.append(f"{PR_LABEL}={number}")
    return ",".join(parts)


def is_owned(namespace: NamespaceInfo, *, repo: str, number: int | None = None) -> bool:
    """True when namespace is previewbot's preview of repo (and of PR number).

    Its labels must say so, and so must the repo annotation written when it was made: a label
    value is a folded name, the annotation is the repo's own.
    """
    wanted = preview_labels(repo=repo, number=number or 0)
    if number is None:
        wanted.pop(PR_LABEL)
    if number is not None and ON_DEMAND_LABEL in namespace.labels:
        return False  # with a number, it is that PR's preview, never an on-demand one
    labelled = all(namespace.labels.get(key) == value for key, value in wanted.items())
    return labelled and namespace.annotations.get(REPO_ANNOTATION, "").lower() == repo.lower()


def format_time(moment: datetime, *, precise: bool = False) -> str:
    """A moment as previewbot writes it in annotations: UTC, to the second (or microsecond), `Z`-suffixed."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds" if precise else "seconds").replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """A moment read back from an annotation; None when there is none or it is not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

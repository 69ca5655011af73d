"""Every preview previewbot has in a cluster, read back from its namespaces' labels and annotations."""

from __future__ import annotations

from previewbot import naming
from previewbot.core import lifetime
from previewbot.core.ports import Cluster
from previewbot.model import NamespaceInfo, PreviewEntry


def previews_in(cluster: Cluster) -> list[PreviewEntry]:
    """The previews of every repo, PRs' and on-demand, by repo and then by PR number or name."""
    entries = [entry for ns in cluster.namespaces(label_selector=naming.managed_selector()) if (entry := _entry(ns))]
    return sorted(entries, key=lambda e: (e.repo.lower(), e.pr is None, e.pr or 0, e.name or ""))


def _entry(namespace: NamespaceInfo) -> PreviewEntry | None:
    """The preview a namespace holds; None unless its labels and its repo annotation agree it is one."""
    labels, notes = namespace.labels, namespace.annotations
    repo = notes.get(naming.REPO_ANNOTATION, "")
    number = naming.pr_number(namespace)
    name = labels.get(naming.ON_DEMAND_LABEL)
    if name is not None:
        if not naming.is_on_demand(namespace, repo=repo, name=name):
            return None
    elif number is None or not naming.is_owned(namespace, repo=repo, number=number):
        return None
    return PreviewEntry(
        namespace=namespace.name,
        repo=repo,
        pr=None if name is not None else number,
        name=name,
        head_sha=notes.get(naming.HEAD_SHA_ANNOTATION, ""),
        phase=notes.get(naming.STATUS_ANNOTATION, ""),
        created_at=naming.parse_time(notes.get(naming.CREATED_AT_ANNOTATION)),
        expires_at=lifetime.expires_at(namespace),
        url=notes.get(naming.URL_ANNOTATION) or None,
        terminating=namespace.terminating,
    )

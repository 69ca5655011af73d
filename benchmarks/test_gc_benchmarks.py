"""gc over many previews: its requests grow with repos and pages of open PRs, never with namespaces.

`make bench` times the plan of `previewbot gc` over 10, 100 and 1,000 preview namespaces spread over
20 repos, against the emulated GitHub and Kubernetes APIs, and records what it asked of each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from previewbot import naming
from previewbot.adapters.github import GitHubApi
from previewbot.adapters.kubernetes import connect
from previewbot.core.gc import Collector

REPOS = [f"acme/service-{index:02}" for index in range(20)]


def seed(github: Any, kube: Any, *, namespaces: int) -> None:
    """`namespaces` previews spread over REPOS, each of an open PR; every repo has as many open PRs."""
    for index in range(namespaces):
        repo, number = REPOS[index % len(REPOS)], index // len(REPOS) + 1
        kube.server.create(
            "Namespace",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": naming.namespace_name(prefix="preview", repo=repo, number=number),
                    "labels": naming.preview_labels(repo=repo, number=number),
                    "annotations": {naming.REPO_ANNOTATION: repo},
                },
            },
        )
    for index in range(max(namespaces, len(REPOS))):
        github.add_pull(repo=REPOS[index % len(REPOS)], number=index // len(REPOS) + 1)


@pytest.mark.parametrize("namespaces", [10, 100, 1000])
def test_gc_plan(benchmark: Any, github: Any, emulated_kube: Any, namespaces: int) -> None:
    seed(github, emulated_kube, namespaces=namespaces)
    collector = Collector(
        github=GitHubApi(github.token, api_url=github.url, seconds_between_writes=None),
        cluster=connect(kubeconfig=str(emulated_kube.kubeconfig)),
        destroy=lambda decision: None,
        sleep=lambda decision: None,
    )
    github_before, kube_before = len(github.requests), len(emulated_kube.server.requests)

    decisions = benchmark.pedantic(collector.plan, kwargs={"now": datetime.now(UTC)}, rounds=3, iterations=1)

    assert len(decisions) == namespaces
    github_requests = (len(github.requests) - github_before) / 3
    kube_requests = (len(emulated_kube.server.requests) - kube_before) / 3
    pages = -(-max(namespaces // len(REPOS), 1) // 100)
    benchmark.extra_info.update({"github_requests": github_requests, "kubernetes_requests": kube_requests})
    assert github_requests == min(namespaces, len(REPOS)) * pages  # one list per repo and page: none per namespace
    assert kube_requests == 1

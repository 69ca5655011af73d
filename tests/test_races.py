"""Runs that overlap: one deploy per PR at a time, the newest commit wins, a close ends a deploy.

Each scenario starts runs on threads, as overlapping workflow runs would, with previewbot's real
adapters against the emulated GitHub and the emulated (or, with PREVIEWBOT_TEST_KUBECONFIG, a real)
Kubernetes API. A Deployment whose image cannot be pulled holds a run in its rollout wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from previewbot import naming
from previewbot.core.previews import Outcome
from previewbot.model import Phase, PrRef
from tests.harness import (
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    eventually,
    namespace_phase,
    pr_event,
    preview_config,
    web_deployment,
)

SHA_1, SHA_2, SHA_3 = "1" * 40, "2" * 40, "3" * 40
UNPULLABLE = "registry.invalid/acme/web:broken"
LEASE = naming.lease_name(PrRef(repo=REPO, number=PR_NUMBER))


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str) -> Checkout:
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


@pytest.fixture
def coordination(kube: Any) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube.api_client())


class Runs:
    """Runs of previewbot on threads; `results` holds each run's outcomes by name."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.results: dict[str, list[Outcome]] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, event_name: str, event: dict[str, Any]) -> None:
        thread = threading.Thread(target=lambda: self.results.__setitem__(name, self.bot.on(event_name, event)))
        thread.start()
        self.threads.append(thread)

    def wait(self) -> dict[str, str]:
        for thread in self.threads:
            thread.join(timeout=180)
        return {name: outcomes[0].status for name, outcomes in self.results.items()}


def in_rollout_wait(apps: Any, namespace: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return bool(apps.read_namespaced_deployment("web", namespace).status.replicas)
        except client.ApiException:
            return False

    return check


def namespace_of(prefix: str) -> str:
    return naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)


def test_a_newer_push_stops_the_run_before_it_and_only_the_last_commit_is_deployed(
    bot: Bot, github: Any, apps: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write("deploy/web.yaml", web_deployment(image=UNPULLABLE))
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    runs = Runs(bot)
    runs.start("first", "pull_request", pr_event("opened", sha=SHA_1))
    eventually(in_rollout_wait(apps, namespace_of(prefix)))

    checkout.write("deploy/web.yaml", web_deployment())
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_3)
    runs.start("second", "pull_request", pr_event("synchronize", sha=SHA_2))
    runs.start("third", "pull_request", pr_event("synchronize", sha=SHA_3))

    assert runs.wait() == {"first": "superseded", "second": "superseded", "third": Phase.READY}
    name = namespace_of(prefix)
    assert core.read_namespace(name).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_3
    assert apps.read_namespaced_deployment("web", name).spec.template.spec.containers[0].image != UNPULLABLE
    states = {d.sha: d.state for d in github.deployments(REPO)}
    assert states[SHA_1] == "inactive"
    assert states[SHA_3] == "success"
    assert states.get(SHA_2) in (None, "inactive")  # it stood down before or after making one


def test_a_close_during_the_rollout_wait_leaves_no_namespace(
    bot: Bot, github: Any, apps: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write("deploy/web.yaml", web_deployment(image=UNPULLABLE))
    runs = Runs(bot)
    runs.start("deploy", "pull_request", pr_event("opened", sha=SHA_1))
    eventually(in_rollout_wait(apps, namespace_of(prefix)))

    github.update_pull(REPO, PR_NUMBER, state="closed")
    [closed] = bot.on("pull_request", pr_event("closed", sha=SHA_1))

    assert closed.status == Phase.DESTROYED
    assert runs.wait() == {"deploy": "superseded"}
    eventually(lambda: namespace_phase(core, namespace_of(prefix)) is None, timeout=120)
    assert [d.state for d in github.deployments(REPO)] == ["inactive"]


def test_two_runs_for_one_commit_take_turns(
    bot: Bot, github: Any, coordination: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="previewbot")
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    runs = Runs(bot)
    runs.start("one", "pull_request", pr_event("opened", sha=SHA_1))
    runs.start("two", "pull_request", pr_event("reopened", sha=SHA_1))

    assert runs.wait() == {"one": Phase.READY, "two": Phase.READY}
    assert "held by another run; waiting" in caplog.text
    lease = coordination.read_namespaced_lease(LEASE, namespace_of(prefix))
    assert lease.spec.holder_identity is None  # given back


def test_the_lease_of_a_run_that_died_is_taken_over(bot: Bot, core: Any, coordination: Any, prefix: str) -> None:
    name = namespace_of(prefix)
    labels = naming.preview_labels(repo=REPO, number=PR_NUMBER)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels=labels, annotations={naming.REPO_ANNOTATION: REPO})
        )
    )
    renewed = datetime.now(UTC) - timedelta(minutes=10)
    coordination.create_namespaced_lease(
        name,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name=LEASE),
            spec=client.V1LeaseSpec(
                holder_identity="runner-that-crashed",
                lease_duration_seconds=30,
                acquire_time=renewed,
                renew_time=renewed,
            ),
        ),
    )

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    lease = coordination.read_namespaced_lease(LEASE, name)
    assert lease.spec.lease_transitions == 1

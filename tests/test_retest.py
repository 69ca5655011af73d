"""`/preview retest`: the end-to-end tests run again against the ready preview of the head, nothing redeployed."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from previewbot import naming
from previewbot.core.retest import refusal
from previewbot.model import NamespaceInfo, Phase
from tests.harness import (
    REPO,
    Bot,
    Checkout,
    comment_event,
    namespace_of,
    pr_event,
    reactions,
    replies,
    sticky,
    web_deployment,
)
from tests.test_e2e_tests import FAILING_REPORT, PASSING_REPORT, job_config, writes_report

SHA_1 = "1" * 40
SHA_2 = "2" * 40

FLAKY = """#!/bin/sh
# Fails on its first run, passes on every later one.
if [ -e ran-once ]; then result='<testcase name="test_cart"/>'
else result='<testcase name="test_cart"><failure message="timed out waiting for the cart"/></testcase>'
fi
touch ran-once
echo "<testsuite name='e2e'><testcase name='test_home'/>$result</testsuite>" > junit.xml
"""


@pytest.fixture
def checkout(checkout: Checkout) -> Checkout:
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


@pytest.fixture(autouse=True)
def people(github: Any) -> None:
    github.set_permission(REPO, "Codertocat", "write")
    github.set_permission(REPO, "reader", "read")
    github.add_pull(pr_event("opened", sha=SHA_1)["pull_request"])


def statuses(github: Any, context: str, sha: str = SHA_1) -> list[str]:
    """The states of one commit status context, newest first."""
    return [s.state for s in github.statuses(REPO, sha) if s.context == context]


def retest(bot: Bot, github: Any, *, user: str = "Codertocat") -> tuple[int, Any]:
    comment_id, event = comment_event(github, "/preview retest", user=user)
    [outcome] = bot.on("issue_comment", event)
    return comment_id, outcome


def test_a_flaky_test_passes_on_retest_and_nothing_is_redeployed(
    bot: Bot, github: Any, apps: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(
        ".preview.yml",
        f"version: 1\nmanifests: [deploy/]\nurl: {site}/pr-${{PR_NUMBER}}\n"
        f"tests:\n  command: ./e2e.sh\n  report: junit.xml\nnamespace:\n  prefix: {prefix}\n  network_policy: none\n",
    )
    checkout.write("e2e.sh", FLAKY)
    (checkout.root / "e2e.sh").chmod(0o755)
    [failed] = bot.on("pull_request", pr_event("opened", sha=SHA_1))
    assert failed.status == Phase.FAILED
    web = apps.read_namespaced_deployment("web", namespace_of(prefix))

    comment_id, outcome = retest(bot, github)

    assert outcome.status == Phase.READY
    after = apps.read_namespaced_deployment("web", namespace_of(prefix))
    assert after.metadata.generation == web.metadata.generation
    assert after.metadata.resource_version == web.metadata.resource_version
    # The retest's "pending" is sent only when GitHub gets to it before the tests end.
    assert statuses(github, "previewbot/e2e") in (["success", "pending", "failure"], ["success", "failure"])
    assert statuses(github, "previewbot/deploy")[0] == "success"
    [deployment] = github.deployments(REPO)
    assert deployment.state == "success"
    comment = sticky(github)
    assert "Tests passed" in comment
    assert "/preview retest" in comment
    assert "timed out waiting for the cart" not in comment
    assert {"eyes", "rocket"} <= set(reactions(github, comment_id))


def test_retest_runs_a_new_job_against_the_same_workloads(
    bot: Bot, github: Any, apps: Any, kube: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    batch = client.BatchV1Api(kube.api_client())
    job_name = f"e2e-{SHA_1[:7]}"
    first = batch.read_namespaced_job(job_name, namespace_of(prefix)).metadata.uid
    generation = apps.read_namespaced_deployment("web", namespace_of(prefix)).metadata.generation
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(FAILING_REPORT, then="exit 1")))

    _comment_id, outcome = retest(bot, github)

    assert outcome.status == Phase.FAILED
    assert batch.read_namespaced_job(job_name, namespace_of(prefix)).metadata.uid != first
    assert apps.read_namespaced_deployment("web", namespace_of(prefix)).metadata.generation == generation
    assert statuses(github, "previewbot/e2e")[0] == "failure"
    assert "test_checkout_total" in sticky(github)
    assert len(github.deployments(REPO)) == 1


def test_retest_of_a_preview_that_never_became_ready_is_refused(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    checkout.write("deploy/web.yaml", web_deployment(image="registry.invalid/acme/web:missing"))
    [failed] = bot.on("pull_request", pr_event("opened", sha=SHA_1))
    assert failed.status == Phase.FAILED
    before = sticky(github)

    comment_id, outcome = retest(bot, github)

    assert outcome.status == "refused"
    [reply] = replies(github)
    assert "never became ready" in reply
    assert "/preview redeploy" in reply
    assert "confused" in reactions(github, comment_id)
    assert statuses(github, "previewbot/e2e") == []
    assert sticky(github) == before


def test_retest_needs_a_preview_of_the_current_head(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    _comment_id, nothing = retest(bot, github)
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    _comment_id, outdated = retest(bot, github)

    assert (nothing.status, outdated.status) == ("refused", "refused")
    no_preview, old_commit = replies(github)
    assert "no preview" in no_preview
    assert SHA_2[:7] in old_commit
    assert statuses(github, "previewbot/e2e", SHA_2) == []


def test_a_reader_may_not_retest(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    bot.on("pull_request", pr_event("opened", sha=SHA_1))

    comment_id, outcome = retest(bot, github, user="reader")

    assert outcome.status == "refused"
    [reply] = replies(github)
    assert "@reader" in reply
    assert "/preview retest" in reply
    assert "write" in reply
    assert "-1" in reactions(github, comment_id)
    assert statuses(github, "previewbot/e2e") == ["success"]


def preview_namespace(*, status: str, head: str = SHA_1, rolled_out: str | None = SHA_1) -> NamespaceInfo:
    notes = {naming.HEAD_SHA_ANNOTATION: head, naming.STATUS_ANNOTATION: status}
    if rolled_out is not None:
        notes[naming.ROLLED_OUT_SHA_ANNOTATION] = rolled_out
    return NamespaceInfo(name="preview-hello-world-pr-2", annotations=notes)


@pytest.mark.parametrize(
    ("namespace", "has_tests", "refused_with"),
    [
        (preview_namespace(status="ready"), True, None),
        (preview_namespace(status="failed"), True, None),  # the tests failed: that is what a retest is for
        (preview_namespace(status="ready"), False, "no end-to-end tests"),
        (None, True, "no preview"),
        (NamespaceInfo(name="gone", terminating=True), True, "no preview"),
        (preview_namespace(status="ready", head=SHA_2), True, "does not run the pull request's head"),
        (preview_namespace(status="testing"), True, "still being deployed or tested"),
        (preview_namespace(status="deploying", rolled_out=None), True, "still being deployed or tested"),
        (preview_namespace(status="failed", rolled_out=None), True, "never became ready"),
        (preview_namespace(status="failed", rolled_out=SHA_2), True, "never became ready"),
    ],
)
def test_when_a_retest_is_refused(namespace: NamespaceInfo | None, has_tests: bool, refused_with: str | None) -> None:
    refused = refusal(namespace, head_sha=SHA_1, has_tests=has_tests)

    assert refused is None if refused_with is None else refused_with in (refused or "")

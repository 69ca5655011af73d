"""Comment commands and trust, as people use them on a PR: each verb, permissions, forks, secrets."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from previewbot import naming
from previewbot.model import Phase
from tests.harness import (
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    comment_event,
    namespace_of,
    namespace_phase,
    pr_event,
    preview_config,
    reactions,
    replies,
    sticky,
    web_deployment,
)

SHA_1 = "1" * 40
SHA_2 = "2" * 40
FORK = "stranger/Hello-World"
BASE = pr_event("opened")["pull_request"]["base"]["ref"]
SECRET_VALUE = "s3cr3t-db-password-for-previews"


@pytest.fixture
def source_namespace(kube: Any) -> Iterator[str]:
    """A namespace holding a secret that trusted previews get a copy of."""
    core = client.CoreV1Api(kube.api_client())
    name = kube.unique("previewbot-secrets")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(
        name,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="db"),
            data={"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
        ),
    )
    yield name
    if not kube.emulated:
        core.delete_namespace(name)


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str, source_namespace: str) -> Checkout:
    checkout.write(
        ".preview.yml",
        preview_config(
            prefix=prefix,
            site=site,
            namespace_more=f"  secrets:\n    - from: {source_namespace}/db\n",
            more="forks:\n  policy: approve\n  approve_label: preview-approved\n",
        ),
    )
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


@pytest.fixture(autouse=True)
def people(github: Any) -> None:
    github.set_permission(REPO, "Codertocat", "write")
    github.set_permission(REPO, "maintainer", "maintain")
    github.set_permission(REPO, "reader", "read")
    github.add_pull(pr_event("opened", sha=SHA_1)["pull_request"])


def namespace_exists(core: Any, name: str) -> bool:
    return namespace_phase(core, name) == "Active"


def test_destroy_tears_down_and_a_later_push_deploys_again(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))

    comment_id, event = comment_event(github, "/preview destroy")
    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == Phase.DESTROYED
    assert not namespace_exists(core, namespace_of(prefix))
    assert "/preview destroy" in sticky(github)
    assert "eyes" in reactions(github, comment_id)
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])
    [again] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))
    assert again.status == Phase.READY


def test_status_replies_with_the_current_state(bot: Bot, github: Any, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))

    _comment_id, event = comment_event(github, "/preview status")
    bot.on("issue_comment", event)

    [reply] = replies(github)
    assert namespace_of(prefix) in reply or SHA_1[:7] in reply
    assert "ready" in reply.lower()


def test_help_and_an_unknown_verb_get_replies(bot: Bot, github: Any) -> None:
    comment_id, event = comment_event(github, "/preview help")
    bot.on("issue_comment", event)
    comment_id, event = comment_event(github, "/preview deploy-everything")
    bot.on("issue_comment", event)

    help_reply, error_reply = replies(github)
    for verb in ("redeploy", "destroy", "status", "help", "approve"):
        assert verb in help_reply
        assert verb in error_reply
    assert "not a verb" in error_reply
    assert "confused" in reactions(github, comment_id)


def test_a_reader_may_not_destroy(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))

    comment_id, event = comment_event(github, "/preview destroy", user="reader")
    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == "refused"
    assert namespace_exists(core, namespace_of(prefix))
    [reply] = replies(github)
    assert "@reader" in reply
    assert "write" in reply
    assert "-1" in reactions(github, comment_id)


def test_a_bot_comment_runs_nothing(bot: Bot, github: Any) -> None:
    comment_id, event = comment_event(github, "/preview redeploy", user="dependabot[bot]", user_type="Bot")
    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == "ignored"
    assert replies(github) == []
    assert github.reactions(REPO, comment_id) == []
    assert github.deployments(REPO) == []


def test_a_fork_pr_waits_for_approval_and_again_after_a_push(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])

    [waiting] = bot.on("pull_request", fork_pr)

    assert waiting.status == Phase.PENDING
    assert f"/preview approve {SHA_1}" in sticky(github)
    assert not namespace_exists(core, namespace_of(prefix))
    assert github.deployments(REPO) == []

    _comment_id, event = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")
    [approved] = bot.on("issue_comment", event)

    assert approved.status == Phase.READY
    assert namespace_exists(core, namespace_of(prefix))

    pushed = pr_event("synchronize", sha=SHA_2, fork=FORK)
    github.add_pull(pushed["pull_request"])
    [again] = bot.on("pull_request", pushed)

    assert again.status == Phase.PENDING
    assert core.read_namespace(namespace_of(prefix)).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_1


def test_a_label_approves_a_fork_pr(bot: Bot, github: Any) -> None:
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])
    bot.on("pull_request", fork_pr)
    labeled = pr_event("labeled", sha=SHA_1, fork=FORK)
    labeled["label"] = {**labeled.get("label", {}), "name": "preview-approved"}
    labeled["sender"] = {**labeled["sender"], "login": "maintainer", "type": "User"}

    [outcome] = bot.on("pull_request", labeled)

    assert outcome.status == Phase.READY


def test_a_reader_cannot_approve_a_fork_pr(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])
    bot.on("pull_request", fork_pr)

    _comment_id, event = comment_event(github, f"/preview approve {SHA_1}", user="reader")
    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == "refused"
    assert not namespace_exists(core, namespace_of(prefix))


def on_base_branch(github: Any, checkout: Checkout, *, change: tuple[str, str]) -> None:
    """Commit the checkout's .preview.yml, with one change, to the base branch: where trust settings live."""
    config = (checkout.root / ".preview.yml").read_text().replace(*change)
    github.add_file(REPO, ".preview.yml", config, ref=BASE)


def test_a_deny_policy_never_previews_forks(bot: Bot, github: Any, checkout: Checkout) -> None:
    on_base_branch(github, checkout, change=("policy: approve", "policy: deny"))
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])

    [outcome] = bot.on("pull_request", fork_pr)

    assert outcome.status == Phase.PENDING
    assert "forks" in sticky(github)
    assert github.deployments(REPO) == []


def test_a_fork_cannot_let_itself_in_with_its_own_config(bot: Bot, github: Any, checkout: Checkout) -> None:
    on_base_branch(github, checkout, change=("", ""))
    config = (checkout.root / ".preview.yml").read_text().replace("policy: approve", "policy: allow")
    checkout.write(".preview.yml", config)
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])

    [outcome] = bot.on("pull_request", fork_pr)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []


def test_the_base_branch_sets_who_may_run_commands(bot: Bot, github: Any, checkout: Checkout) -> None:
    on_base_branch(github, checkout, change=("forks:", "commands:\n  permission: maintain\nforks:"))
    comment_id, event = comment_event(github, "/preview redeploy", user="Codertocat")

    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == "refused"
    [reply] = replies(github)
    assert "maintain" in reply
    assert "-1" in reactions(github, comment_id)


def test_secrets_are_copied_into_trusted_previews_only(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    on_base_branch(github, checkout, change=("", ""))
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    copied = core.read_namespaced_secret("db", namespace_of(prefix))
    assert base64.b64decode(copied.data["password"]).decode() == SECRET_VALUE

    bot.on("pull_request", pr_event("closed", sha=SHA_1))
    fork_pr = pr_event("reopened", sha=SHA_2, fork=FORK)
    github.add_pull(fork_pr["pull_request"])
    bot.on("pull_request", fork_pr)
    _comment_id, event = comment_event(github, f"/preview approve {SHA_2}", user="maintainer")
    bot.on("issue_comment", event)

    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_secret("db", namespace_of(prefix))
    assert missing.value.status == 404


def test_the_copied_secret_survives_a_deploy_whose_manifests_hold_secrets(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    on_base_branch(github, checkout, change=("", ""))
    checkout.write("deploy/own.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: own}\nstringData: {a: b}\n")
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.READY
    copied = core.read_namespaced_secret("db", namespace_of(prefix))
    assert copied.metadata.deletion_timestamp is None
    assert base64.b64decode(copied.data["password"]).decode() == SECRET_VALUE
    assert core.read_namespaced_secret("own", namespace_of(prefix)).metadata.deletion_timestamp is None


def test_a_manifest_cannot_replace_the_copied_secret(bot: Bot, github: Any, checkout: Checkout) -> None:
    on_base_branch(github, checkout, change=("", ""))
    checkout.write("deploy/db.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {a: b}\n")

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert "deploy/db.yaml, document 1 (Secret/db): metadata.name: " in sticky(github)
    assert "namespace.secrets" in sticky(github)


def test_a_forks_preview_is_held_to_pod_security_restricted(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    on_base_branch(github, checkout, change=("", ""))
    checkout.write(
        "deploy/root.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: root}\nspec: {containers: [{name: root, image: busybox:1.36}]}\n",
    )
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])
    bot.on("pull_request", fork_pr)
    _, event = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == Phase.FAILED
    assert "deploy/root.yaml, document 1 (Pod/root): spec.containers[0].securityContext.runAsNonRoot: " in sticky(
        github
    )
    assert "Pod Security restricted" in sticky(github)
    checkout.remove("deploy/root.yaml")
    [approved] = bot.on("issue_comment", comment_event(github, f"/preview approve {SHA_1}", user="maintainer")[1])
    assert approved.status == Phase.READY
    labels = core.read_namespace(namespace_of(prefix)).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_pr_cannot_ask_for_secrets_the_base_branch_does_not_grant(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix), ref=BASE)  # grants no Secret

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_secret("db", namespace_of(prefix))
    assert missing.value.status == 404


def test_a_failing_deploy_never_shows_a_secret_value(bot: Bot, github: Any, checkout: Checkout) -> None:
    on_base_branch(github, checkout, change=("", ""))
    # A manifest that echoes the copied secret into an error: the API rejects a bad name that holds it.
    checkout.write(
        "deploy/bad.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_{SECRET_VALUE}\ndata: {{}}\n",
    )

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert SECRET_VALUE not in outcome.message
    for comment in github.comments(REPO, PR_NUMBER):
        assert SECRET_VALUE not in comment.body
    for status in github.statuses(REPO, SHA_1):
        assert SECRET_VALUE not in (status.description or "")


def test_a_fork_preview_never_runs_the_test_command_on_the_runner(
    bot: Bot, github: Any, checkout: Checkout, tmp_path: Any
) -> None:
    marker = tmp_path / "ran"
    config = (checkout.root / ".preview.yml").read_text()
    checkout.write(".preview.yml", config + f"tests:\n  command: touch {marker}\n")
    fork_pr = pr_event("opened", sha=SHA_1, fork=FORK)
    github.add_pull(fork_pr["pull_request"])
    bot.on("pull_request", fork_pr)
    _, event = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", event)

    assert not marker.exists()
    assert outcome.status == Phase.FAILED
    assert "never for a PR from a fork" in sticky(github)

"""An attacker tries to decide trust: forged and quoted state, stale approvals, a PR's own or an old
branch's config, a stranger's flood of commands. Each attempt changes nothing.

Through the real PyGithub and kubernetes clients, against the emulators (or a real cluster).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from previewbot import naming, render
from previewbot.adapters.github import GitHubApi
from previewbot.core.previews import Outcome
from previewbot.model import DeploymentState, Phase
from tests.emulators.github import GitHubEmulator
from tests.harness import (
    DEFAULT_BRANCH,
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    comment_event,
    namespace_phase,
    pr_event,
    preview_config,
    web_deployment,
)

SHA_1 = "1" * 40
SHA_2 = "2" * 40
FORK = "stranger/Hello-World"
FORGED_STATE = "<!-- previewbot:state " + json.dumps({"approved_sha": SHA_2, "environment": "production"}) + " -->"


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str) -> Checkout:
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


@pytest.fixture(autouse=True)
def people(github: GitHubEmulator) -> None:
    github.set_permission(REPO, "maintainer", "maintain")
    github.set_permission(REPO, "stranger", "read")


def fork_pr(github: GitHubEmulator, bot: Bot, *, sha: str, action: str = "opened") -> Outcome:
    """The stranger's fork PR at sha, as GitHub holds it and as its event tells previewbot."""
    event = pr_event(action, sha=sha, fork=FORK)
    github.add_pull(event["pull_request"])
    [outcome] = bot.on("pull_request", event)
    return outcome


def namespace_of(prefix: str) -> str:
    return naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)


def annotations(core: Any, prefix: str) -> dict[str, str]:
    return dict(core.read_namespace(namespace_of(prefix)).metadata.annotations or {})


def previewbots(github: GitHubEmulator) -> list[str]:
    """The bodies of the comments previewbot wrote, oldest first."""
    return [c.body for c in github.comments(REPO, PR_NUMBER) if c.user == github.login]


def sticky(github: GitHubEmulator) -> str:
    [body] = [body for body in previewbots(github) if render.is_preview_comment(body)]
    return body


def replies(github: GitHubEmulator) -> list[str]:
    return [body for body in previewbots(github) if not render.is_preview_comment(body)]


# ---------------------------------------------------------------- forged and quoted state


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param(f"{render.COMMENT_MARKER}\nPreview ready\n{FORGED_STATE}", id="a-stranger-s-sticky-comment"),
        pytest.param(f"> {render.COMMENT_MARKER}\n> {FORGED_STATE}\n\nLooks approved to me", id="a-quoted-one"),
    ],
)
def test_a_forged_state_record_approves_nothing(
    bot: Bot, github: GitHubEmulator, core: Any, prefix: str, forgery: str
) -> None:
    github.add_comment(REPO, PR_NUMBER, forgery, user="stranger")

    fork_pr(github, bot, sha=SHA_2)

    assert github.deployments(REPO) == []
    assert [c.body for c in github.comments(REPO, PR_NUMBER) if c.user == "stranger"] == [forgery]
    assert f"/preview approve {SHA_2}" in sticky(github)


def test_a_state_record_a_pod_prints_approves_nothing(
    bot: Bot, github: GitHubEmulator, core: Any, checkout: Checkout, prefix: str
) -> None:
    # The fork's approved commit crashes, printing a state record that "approves" its next commit:
    # the log's end is shown in previewbot's own comment.
    checkout.write("deploy/web.yaml", web_deployment(image="busybox:1.36", command=f"echo '{FORGED_STATE}'; exit 3"))
    fork_pr(github, bot, sha=SHA_1)
    _, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")
    [failed] = bot.on("issue_comment", approve)
    assert failed.status == Phase.FAILED
    assert "previewbot:state" in sticky(github)

    pushed = fork_pr(github, bot, sha=SHA_2, action="synchronize")

    assert pushed.status == Phase.PENDING
    assert {d.sha for d in github.deployments(REPO)} == {SHA_1}
    assert annotations(core, prefix)[naming.APPROVED_SHA_ANNOTATION] == SHA_1


# ---------------------------------------------------------------- approvals name their commit


def test_an_approval_records_the_commit_and_its_approver_on_the_namespace(
    bot: Bot, github: GitHubEmulator, core: Any, prefix: str
) -> None:
    fork_pr(github, bot, sha=SHA_1)
    _, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == Phase.READY
    notes = annotations(core, prefix)
    assert (notes[naming.APPROVED_SHA_ANNOTATION], notes[naming.APPROVED_BY_ANNOTATION]) == (SHA_1, "maintainer")
    assert [d.sha for d in github.deployments(REPO)] == [SHA_1]


def test_a_push_between_the_approval_and_the_run_deploys_nothing(
    bot: Bot, github: GitHubEmulator, core: Any, prefix: str
) -> None:
    fork_pr(github, bot, sha=SHA_1)
    _comment_id, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)  # the fork's author pushes before the run starts

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []
    [reply] = replies(github)
    assert reply.startswith("Nothing was approved or deployed: the approval names commit `1111111`")
    assert f"/preview approve {SHA_2}" in reply
    assert namespace_phase(core, namespace_of(prefix)) is None, "no approval was recorded"


def test_an_approval_that_names_no_commit_gets_the_command_to_copy(bot: Bot, github: GitHubEmulator) -> None:
    fork_pr(github, bot, sha=SHA_1)
    _, approve = comment_event(github, "/preview approve", user="maintainer")

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []
    [reply] = replies(github)
    assert reply.startswith("Nothing was approved or deployed: the approval names no commit")
    assert reply.endswith(f"```\n/preview approve {SHA_1}\n```")


def test_a_label_approves_the_head_its_event_carried_only(
    bot: Bot, github: GitHubEmulator, core: Any, prefix: str
) -> None:
    fork_pr(github, bot, sha=SHA_1)
    labeled = pr_event("labeled", sha=SHA_1, fork=FORK)
    labeled["label"] = {**labeled.get("label", {}), "name": "preview-approved"}
    labeled["sender"] = {**labeled["sender"], "login": "maintainer", "type": "User"}
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)  # pushed after the label went on

    [outcome] = bot.on("pull_request", labeled)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []
    assert f"/preview approve {SHA_2}" in sticky(github)


def test_an_approval_of_a_fork_without_a_namespace_makes_one_to_hold_it(
    bot: Bot, github: GitHubEmulator, core: Any, checkout: Checkout, prefix: str
) -> None:
    fork_pr(github, bot, sha=SHA_1)
    checkout.write(".preview.yml", "version: 1\nmanifests: 3\n")  # the fork's config is not valid
    _, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == Phase.FAILED
    namespace = core.read_namespace(namespace_of(prefix)).metadata
    assert namespace.labels[naming.MANAGED_BY_LABEL] == naming.MANAGED_BY_VALUE
    assert namespace.annotations[naming.APPROVED_SHA_ANNOTATION] == SHA_1
    assert namespace.annotations[naming.STATUS_ANNOTATION] == Phase.PENDING


def test_an_approval_of_a_closed_pr_deploys_nothing(bot: Bot, github: GitHubEmulator) -> None:
    fork_pr(github, bot, sha=SHA_1)
    github.update_pull(REPO, PR_NUMBER, state="closed")
    _, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == "ignored"
    assert github.deployments(REPO) == []
    assert replies(github) == ["This pull request is closed: there is nothing to approve."]


def test_an_approval_does_not_open_a_gate_the_default_branch_keeps_shut(
    bot: Bot, github: GitHubEmulator, core: Any, prefix: str, site: str
) -> None:
    deny = preview_config(prefix=prefix, site=site, more="forks:\n  policy: deny\n")
    github.add_file(REPO, ".preview.yml", deny, ref=DEFAULT_BRANCH)
    fork_pr(github, bot, sha=SHA_1)
    _, approve = comment_event(github, f"/preview approve {SHA_1}", user="maintainer")

    [outcome] = bot.on("issue_comment", approve)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []
    assert namespace_phase(core, namespace_of(prefix)) is None


# ---------------------------------------------------------------- trust from the default branch


def test_a_fork_based_on_a_branch_with_a_lax_config_still_waits(
    bot: Bot, github: GitHubEmulator, checkout: Checkout, prefix: str, site: str
) -> None:
    github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix, site=site), ref=DEFAULT_BRANCH)
    lax = preview_config(prefix=prefix, site=site, more="forks:\n  policy: allow\n")
    github.add_file(REPO, ".preview.yml", lax, ref="release-1.0")
    event = pr_event("opened", sha=SHA_1, fork=FORK)
    event["pull_request"]["base"]["ref"] = "release-1.0"
    github.add_pull(event["pull_request"])

    [outcome] = bot.on("pull_request", event)

    assert outcome.status == Phase.PENDING
    assert github.deployments(REPO) == []


def test_a_pr_s_own_config_names_no_environment_status_secret_or_quota(
    bot: Bot, github: GitHubEmulator, core: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix, site=site), ref=DEFAULT_BRANCH)
    with GitHubApi(github.token, api_url=github.url) as api:
        production = api.create_deployment(REPO, sha="0" * 40, environment="production", description="", payload={})
        api.set_deployment_status(REPO, production, state=DeploymentState.SUCCESS, description="live")
    checkout.write(
        ".preview.yml",
        preview_config(
            prefix=prefix,
            site=site,
            namespace_more="  secrets:\n    - from: kube-system/bootstrap\n",
            more="environment: production\nstatus_context: ci/required-build\n"
            "tests:\n  command: 'true'\n  status_context: ci/required-tests\n",
        ),
    )

    [ready] = bot.on("pull_request", pr_event("opened", sha=SHA_1))
    [closed] = bot.on("pull_request", pr_event("closed", sha=SHA_1))

    assert (ready.status, closed.status) == (Phase.READY, Phase.DESTROYED)
    [preview] = [d for d in github.deployments(REPO) if d.id != production]
    assert preview.environment == f"preview/pr-{PR_NUMBER}"
    contexts = {s.context for s in github.statuses(REPO, SHA_1)}
    assert contexts == {"previewbot/deploy", "previewbot/e2e"}
    [kept] = [d for d in github.deployments(REPO) if d.id == production]
    assert kept.state == "success", "closing the PR left production alone"
    assert preview.state == "inactive"


def test_a_pr_s_own_config_gets_no_secret_and_no_quota_of_its_choosing(
    bot: Bot, github: GitHubEmulator, core: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    trusted = preview_config(prefix=prefix, site=site, namespace_more="  quota: {pods: 5}\n")
    github.add_file(REPO, ".preview.yml", trusted, ref=DEFAULT_BRANCH)
    checkout.write(
        ".preview.yml",
        preview_config(
            prefix=prefix,
            site=site,
            namespace_more="  quota: {pods: 500}\n  secrets:\n    - from: kube-system/bootstrap\n",
        ),
    )

    [ready] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert ready.status == Phase.READY
    [quota] = core.list_namespaced_resource_quota(namespace_of(prefix)).items
    assert quota.spec.hard == {"pods": "5"}
    secrets = core.list_namespaced_secret(namespace_of(prefix)).items
    assert "bootstrap" not in {s.metadata.name for s in secrets}


def test_an_invalid_config_on_the_default_branch_leaves_the_defaults_and_says_so(
    bot: Bot, github: GitHubEmulator, checkout: Checkout
) -> None:
    github.add_file(REPO, ".preview.yml", "version: 1\nmanifests: 3\n", ref=DEFAULT_BRANCH)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.namespace == naming.namespace_name(prefix="preview", repo=REPO, number=PR_NUMBER)
    assert f".preview.yml on {DEFAULT_BRANCH} is not valid, so the safe defaults hold" in sticky(github)


# ---------------------------------------------------------------- a stranger's flood of commands


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("\n".join(f"/preview nonsense-{n}" for n in range(40)), id="forty-malformed-lines"),
        pytest.param(
            "\n".join(f"/preview {verb}" for verb in ("status", "help", "redeploy", "destroy") * 10), id="every-verb"
        ),
        pytest.param(("/preview `x`\n" * 6000)[:65536], id="a-64k-comment"),
    ],
)
def test_a_stranger_s_comment_gets_one_refusal_at_most(bot: Bot, github: GitHubEmulator, body: str) -> None:
    _comment_id, event = comment_event(github, body, user="stranger")

    outcomes = bot.on("issue_comment", event)

    assert {outcome.status for outcome in outcomes} == {"refused"}
    [refusal] = replies(github)
    assert refusal.startswith("@stranger, ")
    assert github.deployments(REPO) == []


def test_a_maintainer_s_comment_of_many_commands_gets_one_reply(bot: Bot, github: GitHubEmulator) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    _, event = comment_event(github, "/preview status\n/preview help\n/preview status", user="maintainer")

    bot.on("issue_comment", event)

    [reply] = replies(github)
    assert "ready" in reply.lower()


# ---------------------------------------------------------------- previewbot's own identity


def test_the_login_of_an_installation_token_comes_from_graphql(github: GitHubEmulator) -> None:
    with GitHubApi(github.token, api_url=github.url) as api:
        assert api.login() == "previewbot[bot]"
    assert [r.path for r in github.requests if r.path == "/user"] == []


def test_a_login_the_front_door_knows_is_taken_as_given(github: GitHubEmulator) -> None:
    with GitHubApi(github.token, api_url=github.url, login="preview-app[bot]") as api:
        assert api.login() == "preview-app[bot]"
    assert github.requests == []


def test_with_a_user_s_token_previewbot_finds_its_own_comment(bot: Bot, kube: Any, checkout: Checkout) -> None:
    # (`bot` is here for its clean-up of the previews on a real cluster.)
    with GitHubEmulator(login="preview-robot", user_type="User") as github:
        event = pr_event("opened", sha=SHA_1)
        github.add_repo(REPO, payload=event["repository"])
        github.add_pull(event["pull_request"])
        github.add_comment(REPO, PR_NUMBER, f"{render.COMMENT_MARKER}\nnot previewbot's", user="Codertocat")
        as_a_user = Bot(github=github, kubeconfig=kube.kubeconfig, checkout=checkout)

        as_a_user.on("pull_request", event)
        github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)
        as_a_user.on("pull_request", pr_event("synchronize", sha=SHA_2))

        mine = [c for c in github.comments(REPO, PR_NUMBER) if c.user == "preview-robot"]
        assert len(mine) == 1
        assert SHA_2[:7] in mine[0].body

"""The preview lifecycle as users meet it: events in, namespace and PR reports out.

previewbot runs with its real adapters against the emulated GitHub API and the emulated (or,
with PREVIEWBOT_TEST_KUBECONFIG, a real) Kubernetes API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from previewbot import naming, render
from previewbot.model import Phase
from tests.harness import (
    PAUSE_NEXT,
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    OwnRepo,
    client_threads,
    comment_event,
    config_map,
    namespace_phase,
    pr_event,
    preview_config,
    web_deployment,
)

SHA_1 = "1" * 40
SHA_2 = "2" * 40


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str) -> Checkout:
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    checkout.write("deploy/settings.yaml", config_map("settings", "branch ${BRANCH_SLUG}"))
    return checkout


@pytest.fixture(autouse=True)
def admin(github: Any) -> None:
    github.set_permission(REPO, "Codertocat", "admin")


def namespace_of(prefix: str) -> str:
    return naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)


def sticky_comments(github: Any) -> list[str]:
    return [c.body for c in github.comments(REPO, PR_NUMBER) if render.is_preview_comment(c.body)]


def deploy_status(github: Any, sha: str) -> str:
    states = [s.state for s in github.statuses(REPO, sha) if s.context == "previewbot/deploy"]
    return states[0]  # newest first


def test_first_deploy_creates_the_namespace_deploys_and_reports(
    bot: Bot, github: Any, core: Any, apps: Any, prefix: str, site: str
) -> None:
    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    name = namespace_of(prefix)
    assert outcome.namespace == name
    assert outcome.url == f"{site}/pr-{PR_NUMBER}"
    namespace = core.read_namespace(name)
    assert namespace.metadata.labels.items() >= naming.preview_labels(repo=REPO, number=PR_NUMBER).items()
    assert namespace.metadata.annotations[naming.REPO_ANNOTATION] == REPO
    assert namespace.metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_1
    assert namespace.metadata.annotations[naming.STATUS_ANNOTATION] == "ready"
    web = apps.read_namespaced_deployment("web", name)
    assert web.status.available_replicas == 1
    assert web.metadata.labels[naming.MANAGED_BY_LABEL] == naming.MANAGED_BY_VALUE
    settings = core.read_namespaced_config_map("settings", name)
    assert settings.data["value"] == "branch " + naming.dns_label("changes", limit=40)

    [comment] = sticky_comments(github)
    assert "Ready" in comment or "ready" in comment
    assert outcome.url in comment
    assert name in comment
    assert SHA_1[:7] in comment
    [deployment] = github.deployments(REPO)
    assert deployment.environment == f"preview/pr-{PR_NUMBER}"
    assert deployment.transient_environment is True
    assert deployment.production_environment is False
    # "in_progress" goes out only when GitHub gets to it before the deploy is done.
    assert [s.state for s in deployment.statuses] in (["in_progress", "success"], ["success"])
    assert deployment.statuses[-1].environment_url == outcome.url
    assert deploy_status(github, SHA_1) == "success"


def test_a_first_deploy_of_n_objects_makes_n_plus_at_most_14_kubernetes_requests(
    bot: Bot, emulated_kube: Any, checkout: Checkout
) -> None:
    """The N server-side applies, and around them the preview's bookkeeping: namespace, access, Lease,
    claim, rollout, status. No discovery per object, no polling, no read twice what the run knows."""
    assert emulated_kube.server is not None
    for index in range(18):
        checkout.write(f"deploy/extra-{index}.yaml", config_map(f"extra-{index}", "more"))
    before = len(emulated_kube.server.requests)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    sent = emulated_kube.server.requests[before:]
    applies = [path for method, path in sent if method == "PATCH" and "fieldManager=" in path]
    assert len(applies) == 20
    assert len(sent) <= len(applies) + 14, "\n".join(f"{method} {path}" for method, path in sent)


def test_a_push_redeploys_changes_the_image_and_prunes_removed_objects(
    bot: Bot, github: Any, core: Any, apps: Any, checkout: Checkout, prefix: str
) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    checkout.write("deploy/web.yaml", web_deployment(image=PAUSE_NEXT))
    checkout.remove("deploy/settings.yaml")
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.READY
    name = namespace_of(prefix)
    web = apps.read_namespaced_deployment("web", name)
    assert web.spec.template.spec.containers[0].image == PAUSE_NEXT
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_config_map("settings", name)
    assert gone.value.status == 404
    [comment] = sticky_comments(github)
    assert SHA_2[:7] in comment
    assert core.read_namespace(name).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_2
    assert len(github.deployments(REPO)) == 2


def test_a_sticky_comment_and_a_deployment_github_made_without_saying_so_are_made_once(bot: Bot, github: Any) -> None:
    github.lose_the_answer("POST", r"/issues/\d+/comments$")
    github.lose_the_answer("POST", r"/deployments$", 0)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    assert len(sticky_comments(github)) == 1
    [deployment] = github.deployments(REPO)
    assert deployment.state == "success"


def test_a_redeploy_comment_deploys_the_head_again(bot: Bot, github: Any) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    github.add_pull(pr_event("opened", sha=SHA_1)["pull_request"])

    comment_id, event = comment_event(github, "/preview redeploy")
    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == Phase.READY
    assert len(github.deployments(REPO)) == 2
    assert len(sticky_comments(github)) == 1
    reactions = [r.content for r in github.reactions(REPO, comment_id)]
    assert "eyes" in reactions
    assert "rocket" in reactions


def test_an_image_that_cannot_be_pulled_is_diagnosed_on_the_pr(bot: Bot, github: Any, checkout: Checkout) -> None:
    checkout.write("deploy/web.yaml", web_deployment(image="registry.invalid/acme/web:missing"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    [comment] = sticky_comments(github)
    assert "deployment/web" in comment.lower() or "Deployment/web" in comment
    assert "ImagePullBackOff" in comment or "ErrImagePull" in comment
    assert "registry.invalid/acme/web:missing" in comment
    assert deploy_status(github, SHA_1) == "failure"
    [deployment] = github.deployments(REPO)
    assert deployment.state == "failure"


def test_a_push_that_breaks_a_ready_deployment_is_not_reported_ready(
    bot: Bot, github: Any, kube: Any, checkout: Checkout
) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    checkout.write("deploy/web.yaml", web_deployment(image="registry.invalid/acme/web:broken"))
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])
    if kube.server is not None:
        kube.server.watch_lag = 0.3  # the changed Deployment reaches the rollout's watch after the apply ended

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    # The rollout's watch began before the apply, while the Deployment was still ready as it was.
    assert outcome.status == Phase.FAILED
    assert "registry.invalid/acme/web:broken" in sticky_comments(github)[0]
    assert deploy_status(github, SHA_2) == "failure"


def test_a_push_that_changes_no_workload_is_ready_as_its_apply_ends(
    bot: Bot, github: Any, emulated_kube: Any, checkout: Checkout, prefix: str
) -> None:
    assert emulated_kube.server is not None
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])
    before = len(emulated_kube.server.requests)

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.READY
    read = [path for method, path in emulated_kube.server.requests[before:] if method == "GET"]
    deployments = f"/apis/apps/v1/namespaces/{namespace_of(prefix)}/deployments"
    # The rollout's one list and one watch (the prune lists by label), judged at the apply's end: no
    # pods listed, as no look closer was due.
    collection = [path for path in read if path.split("?")[0] == deployments and "labelSelector=" not in path]
    assert len(collection) == 2
    assert sum("watch=true" in path for path in collection) == 1
    assert not [path for path in read if path.split("?")[0].endswith("/pods")]


def test_a_manifest_the_api_refuses_ends_the_deploy_with_its_refusal_and_no_thread_left(
    bot: Bot, github: Any, checkout: Checkout
) -> None:
    broken = web_deployment("broken").replace("matchLabels: {app: broken}", "matchLabels: {app: another}")
    checkout.write("deploy/broken.yaml", broken)
    threads_before = client_threads()

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED  # not superseded: the rollout wait it ended says nothing of its own
    assert outcome.message.startswith("Deployment/broken was refused: ")
    assert "Deployment/broken was refused" in sticky_comments(github)[0]
    assert deploy_status(github, SHA_1) == "error"
    assert {thread.name for thread in client_threads() - threads_before} == set()


def test_a_crashing_container_is_diagnosed_with_its_log(bot: Bot, github: Any, checkout: Checkout) -> None:
    checkout.write("deploy/web.yaml", web_deployment(image="busybox:1.36", command="echo database unreachable; exit 3"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    [comment] = sticky_comments(github)
    assert "CrashLoopBackOff" in comment or "Error" in comment
    assert "database unreachable" in comment


def test_a_config_error_is_posted_and_nothing_is_deployed(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write(".preview.yml", f"version: 1\nmanifests: [deploy/]\nnamespace:\n  prefix: {prefix}\n  qouta: {{}}\n")

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    [comment] = sticky_comments(github)
    assert "namespace.qouta" in comment
    assert ":5" in comment
    assert deploy_status(github, SHA_1) == "failure"
    assert github.deployments(REPO) == []
    with pytest.raises(client.ApiException) as missing:
        core.read_namespace(namespace_of(prefix))
    assert missing.value.status == 404


def test_a_config_that_links_out_of_the_checkout_is_refused_and_nothing_is_deployed(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str, tmp_path: Any
) -> None:
    outside = tmp_path / "passwd"
    outside.write_text(preview_config(prefix=prefix))
    checkout.remove(".preview.yml")
    (checkout.root / ".preview.yml").symlink_to(outside)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    [comment] = sticky_comments(github)
    assert "config: .preview.yml is outside the repo (a link out of it)" in comment
    assert namespace_phase(core, namespace_of(prefix)) is None


def test_closing_the_pr_tears_the_preview_down(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))

    [outcome] = bot.on("pull_request", pr_event("closed", sha=SHA_1, merged=True))

    assert outcome.status == Phase.DESTROYED
    assert namespace_phase(core, namespace_of(prefix)) in ("Terminating", None)
    [deployment] = github.deployments(REPO)
    assert deployment.state == "inactive"
    [comment] = sticky_comments(github)
    assert "merged" in comment


def test_reopening_while_the_old_namespace_terminates_waits_and_deploys(
    bot: Bot, github: Any, kube: Any, core: Any, prefix: str
) -> None:
    if kube.server is not None:
        kube.server.namespace_finalize_delay = 1.0
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    bot.on("pull_request", pr_event("closed", sha=SHA_1))

    [outcome] = bot.on("pull_request", pr_event("reopened", sha=SHA_1))

    assert outcome.status == Phase.READY
    namespace = core.read_namespace(namespace_of(prefix))
    assert namespace.status.phase == "Active"
    assert len(sticky_comments(github)) == 1


def test_the_same_event_twice_deploys_once(bot: Bot, github: Any) -> None:
    event = pr_event("synchronize", sha=SHA_1)
    bot.on("pull_request", event)

    [again] = bot.on("pull_request", event)

    assert again.status == Phase.READY
    assert len(github.deployments(REPO)) == 1
    assert len(sticky_comments(github)) == 1


def test_a_foreign_namespace_with_the_same_name_is_never_touched(bot: Bot, github: Any, core: Any, prefix: str) -> None:
    name = namespace_of(prefix)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"team": "payments"})))

    [deploy] = bot.on("pull_request", pr_event("opened", sha=SHA_1))
    [destroy] = bot.on("pull_request", pr_event("closed", sha=SHA_1))

    assert deploy.status == Phase.FAILED
    assert "not previewbot's" in deploy.message
    namespace = core.read_namespace(name)
    assert namespace.status.phase == "Active"
    assert namespace.metadata.labels == {"team": "payments", "kubernetes.io/metadata.name": name} or (
        namespace.metadata.labels.get("team") == "payments"
    )
    assert destroy.status == Phase.DESTROYED
    core.delete_namespace(name)


def test_a_namespace_labelled_as_ours_but_made_for_another_repo_is_never_deleted(
    bot: Bot, core: Any, prefix: str
) -> None:
    # Until labels told acme/web_app and acme/web-app-5032b7 apart, one's previews carried the other's labels.
    name = namespace_of(prefix)
    metadata = client.V1ObjectMeta(
        name=name,
        labels=naming.preview_labels(repo=REPO, number=PR_NUMBER),
        annotations={naming.REPO_ANNOTATION: "acme/web_app"},
    )
    core.create_namespace(client.V1Namespace(metadata=metadata))

    [destroy] = bot.on("pull_request", pr_event("closed", sha=SHA_1))
    [deploy] = bot.on("pull_request", pr_event("reopened", sha=SHA_1))

    assert destroy.status == Phase.DESTROYED
    assert deploy.status == Phase.FAILED
    assert "not previewbot's" in deploy.message
    assert namespace_phase(core, name) == "Active"
    assert core.read_namespace(name).metadata.annotations == {naming.REPO_ANNOTATION: "acme/web_app"}
    core.delete_namespace(name)


def test_a_sweep_destroys_expired_previews_and_those_of_closed_prs(
    bot: Bot, github: Any, core: Any, checkout: Checkout, own_repo: OwnRepo
) -> None:
    # A repo of its own: a sweep acts on every preview of its repo, and a real cluster is shared.
    own_repo.default_config("ttl: 2h\n", limit=None, checkout=checkout)
    sweep = {"schedule": "0 * * * *", "repository": {"full_name": own_repo.name}}
    bot.on("pull_request", own_repo.opened(PR_NUMBER))
    name = own_repo.namespace(PR_NUMBER)

    [kept] = bot.on("schedule", sweep)
    assert kept.message == "gc: 0 of 1 previews changed"
    assert namespace_phase(core, name) == "Active"

    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=3)
    [swept] = bot.on("schedule", sweep)

    assert f"{name} (delete: expired)" in swept.message
    assert namespace_phase(core, name) in ("Terminating", None)
    assert "within its time limit" in own_repo.sticky(PR_NUMBER)
    [deployment] = github.deployments(own_repo.name)
    assert deployment.state == "inactive"


def test_a_sweep_destroys_the_preview_of_a_pr_closed_while_no_one_listened(
    bot: Bot, github: Any, core: Any, checkout: Checkout, own_repo: OwnRepo
) -> None:
    own_repo.default_config(limit=None, checkout=checkout)
    bot.on("pull_request", own_repo.opened(PR_NUMBER))
    github.update_pull(own_repo.name, PR_NUMBER, state="closed", merged=True)

    [swept] = bot.on("workflow_dispatch", {"repository": {"full_name": own_repo.name}})

    assert f"{own_repo.namespace(PR_NUMBER)} (delete: closed)" in swept.message
    assert namespace_phase(core, own_repo.namespace(PR_NUMBER)) in ("Terminating", None)


def test_the_deployment_environment_is_filled_from_the_preview_variables(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(
        ".preview.yml", preview_config(prefix=prefix, site=site, more="environment: preview/${BRANCH_SLUG}\n")
    )

    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    bot.on("pull_request", pr_event("closed", sha=SHA_1))

    [deployment] = github.deployments(REPO)
    assert deployment.environment == "preview/" + naming.dns_label("changes", limit=40)
    assert deployment.state == "inactive"


# ---------------------------------------------------------------- the manifest policy

ESCAPE_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  hostPID: true
  containers:
    - name: shell
      image: busybox:1.36
      securityContext: {privileged: true}
  volumes:
    - name: root
      hostPath: {path: /}
"""


def test_a_manifest_the_policy_refuses_is_named_on_the_pr_and_nothing_is_applied(
    bot: Bot, github: Any, core: Any, apps: Any, checkout: Checkout, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    checkout.write("deploy/escape.yaml", ESCAPE_POD)
    checkout.write("deploy/web.yaml", web_deployment(image=PAUSE_NEXT))
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.FAILED
    [comment] = sticky_comments(github)
    for field in ("spec.hostPID", "spec.containers[0].securityContext.privileged", "spec.volumes[0].hostPath"):
        assert f"deploy/escape.yaml, document 1 (Pod/escape): {field}: " in comment
        assert f"deploy/escape.yaml, document 1 (Pod/escape): {field}: " in outcome.message
        assert f"deploy/escape.yaml, document 1 (Pod/escape): {field}: " in caplog.text
    assert "Pod Security baseline" in comment
    assert deploy_status(github, SHA_2) == "failure"
    name = namespace_of(prefix)
    assert core.read_namespace(name).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_1
    assert apps.read_namespaced_deployment("web", name).spec.template.spec.containers[0].image != PAUSE_NEXT
    assert "escape" not in {pod.metadata.name for pod in core.list_namespaced_pod(name).items}


def test_a_refused_first_deploy_makes_no_namespace(bot: Bot, core: Any, checkout: Checkout, prefix: str) -> None:
    checkout.write("deploy/escape.yaml", ESCAPE_POD)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert namespace_phase(core, namespace_of(prefix)) is None


def test_the_namespace_carries_pod_security_labels_at_the_default_branchs_level(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    [first] = bot.on("pull_request", pr_event("opened", sha=SHA_1))
    labels = core.read_namespace(namespace_of(prefix)).metadata.labels
    assert first.status == Phase.READY
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == "baseline"

    base = pr_event("opened")["pull_request"]["base"]["ref"]
    strict = preview_config(prefix=prefix, site=site, namespace_more="  pod_security: restricted\n")
    github.add_file(REPO, ".preview.yml", strict, ref=base)
    # The PR's own config cannot loosen it.
    checkout.write(
        ".preview.yml", preview_config(prefix=prefix, site=site, namespace_more="  pod_security: baseline\n")
    )
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])
    [second] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert second.status == Phase.READY  # the scenarios' Deployment is hardened as `restricted` asks
    labels = core.read_namespace(namespace_of(prefix)).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# ---------------------------------------------------------------- prune


BARE_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  containers:
    - {name: sidecar, image: registry.k8s.io/pause:3.9}
"""


def test_a_redeploy_with_a_bare_pod_leaves_the_deployments_pods_alone(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write("deploy/sidecar.yaml", BARE_POD)
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    name = namespace_of(prefix)
    web_pods = {pod.metadata.name for pod in core.list_namespaced_pod(name, label_selector="app=web").items}
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.READY
    assert web_pods
    for pod in web_pods:
        assert core.read_namespaced_pod(pod, name).metadata.deletion_timestamp is None
    assert core.read_namespaced_pod("sidecar", name).metadata.deletion_timestamp is None


def test_an_unexpected_error_ends_the_preview_as_failed_with_every_status_final(
    bot: Bot, checkout: Checkout, github: Any, core: Any, prefix: str
) -> None:
    # An unclosed IPv6 bracket passes the config check but makes httpx raise InvalidURL, which no step expects.
    checkout.write(
        ".preview.yml",
        preview_config(
            prefix=prefix, more="url: http://[::1/pr-${PR_NUMBER}\ntests:\n  command: 'true'\n  timeout: 9s\n"
        ),
    )

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert "InvalidURL" in outcome.message
    assert deploy_status(github, SHA_1) in ("failure", "error")
    [deployment] = github.deployments(REPO)
    assert deployment.state in ("failure", "error")
    namespace = core.read_namespace(namespace_of(prefix))
    assert namespace.metadata.annotations[naming.STATUS_ANNOTATION] == "failed"
    [comment] = sticky_comments(github)
    assert "InvalidURL" in comment
    assert bot.github.token not in comment

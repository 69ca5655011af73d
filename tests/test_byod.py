"""Bring your own deploy: manifests copied from a public project, a Helm chart, a Kustomize overlay.

Each is deployed through the whole run, with the real adapters, against the emulated Kubernetes
API or, with PREVIEWBOT_TEST_KUBECONFIG, a real cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from previewbot import naming
from previewbot.model import Phase
from tests.harness import PR_NUMBER, REPO, Bot, Checkout, comment_event, namespace_of, pr_event, sticky
from tests.test_sources import HELM_CONFIG as HELM

FIXTURES = Path(__file__).parent / "fixtures"
SHA = "1" * 40


def settings(prefix: str) -> str:
    """The rest of a .preview.yml: the test's own namespace prefix, a generous readiness timeout."""
    return f"readiness:\n  timeout: 120s\nnamespace:\n  prefix: {prefix}\n  network_policy: none\n"


def with_fixture(checkout: Checkout, fixture: str, config: str, prefix: str) -> None:
    """The checkout of a PR that deploys tests/fixtures/FIXTURE, copied to deploy/, as config says."""
    checkout.write(".preview.yml", config + settings(prefix))
    shutil.copytree(FIXTURES / fixture, checkout.root / "deploy", dirs_exist_ok=True)


@pytest.fixture(autouse=True)
def admin(github: Any) -> None:
    github.set_permission(REPO, "Codertocat", "admin")


def versions(kube: Any, namespace: str) -> dict[str, str]:
    """kind/name → uid and version of the spec of previewbot's app objects in namespace.

    The version is the generation where the object has one: its controller writes its status
    (a Job completing, a Deployment's conditions), which changes its resourceVersion, not its spec.
    """
    api = kube.api_client()
    selector = f"{naming.COMPONENT_LABEL}=app"
    found: dict[str, str] = {}
    for kind, items in (
        ("Deployment", client.AppsV1Api(api).list_namespaced_deployment(namespace, label_selector=selector).items),
        ("Service", client.CoreV1Api(api).list_namespaced_service(namespace, label_selector=selector).items),
        ("ConfigMap", client.CoreV1Api(api).list_namespaced_config_map(namespace, label_selector=selector).items),
        ("Job", client.BatchV1Api(api).list_namespaced_job(namespace, label_selector=selector).items),
    ):
        for item in items:
            meta = item.metadata
            version = f"generation {meta.generation}" if meta.generation else f"version {meta.resource_version}"
            found[f"{kind}/{meta.name}"] = f"{meta.uid}, {version}"
    return found


def redeploy(bot: Bot, github: Any) -> Any:
    github.add_pull(pr_event("opened", sha=SHA)["pull_request"])
    _, event = comment_event(github, "/preview redeploy")
    [outcome] = bot.on("issue_comment", event)
    return outcome


def test_a_published_demos_manifests_deploy_unchanged(
    bot: Bot, checkout: Checkout, apps: Any, core: Any, kube: Any, prefix: str
) -> None:
    with_fixture(checkout, "shop", "manifests: [deploy/]\n", prefix)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.READY, outcome.message
    namespace = namespace_of(prefix)
    deployments = apps.list_namespaced_deployment(namespace, label_selector=f"{naming.COMPONENT_LABEL}=app").items
    assert len(deployments) == 12
    assert all(d.status.available_replicas == 1 for d in deployments)
    assert len(core.list_namespaced_service(namespace, label_selector=f"{naming.COMPONENT_LABEL}=app").items) == 12
    assert (
        len(core.list_namespaced_service_account(namespace, label_selector=f"{naming.COMPONENT_LABEL}=app").items) == 11
    )
    [published] = [
        document
        for document in yaml.safe_load_all((FIXTURES / "shop/shop.yaml").read_text())
        if document["kind"] == "Deployment" and document["metadata"]["name"] == "loadgen"
    ]
    script = published["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    assert "${FRONTEND_ADDR}" in script
    assert "${STATUSCODE}" in script
    loadgen = apps.read_namespaced_deployment("loadgen", namespace)
    assert loadgen.spec.template.spec.init_containers[0].command[2] == script
    if not kube.emulated:  # a real node ran the script: its log comes from the kubelet
        [pod] = core.list_namespaced_pod(namespace, label_selector="app=loadgen").items
        log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="frontend-check")
        assert "load goes to http://frontend:80/ once it answers 200" in log


def test_a_helm_chart_deploys_and_an_unchanged_redeploy_changes_nothing(
    bot: Bot, github: Any, checkout: Checkout, apps: Any, core: Any, kube: Any, prefix: str
) -> None:
    with_fixture(checkout, "helm", HELM, prefix)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.READY, outcome.message
    namespace = namespace_of(prefix)
    web = apps.read_namespaced_deployment("web", namespace)
    assert web.spec.template.spec.containers[0].image == f"registry.k8s.io/pause:pr-{PR_NUMBER}-{SHA[:7]}"
    assert web.metadata.labels[naming.MANAGED_BY_LABEL] == naming.MANAGED_BY_VALUE
    assert apps.read_namespaced_deployment("web-cache", namespace).status.available_replicas == 1
    assert core.read_namespaced_config_map("web", namespace).data["greeting"].startswith(f"preview of #{PR_NUMBER}")
    assert client.BatchV1Api(kube.api_client()).read_namespaced_job("web-migrate", namespace)
    assert [
        p.metadata.name for p in core.list_namespaced_pod(namespace).items if "test-connection" in p.metadata.name
    ] == []
    before = versions(kube, namespace)

    assert redeploy(bot, github).status == Phase.READY

    assert versions(kube, namespace) == before


def test_a_charts_error_is_posted_on_the_pr_in_its_own_words(
    bot: Bot, github: Any, checkout: Checkout, prefix: str
) -> None:
    with_fixture(checkout, "helm", HELM.replace("tag: pr-${PR_NUMBER}-${SHORT_SHA}", "tag: null"), prefix)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.FAILED
    assert "helm chart deploy/web: execution error at (web/templates/deployment.yaml:19:52): image.tag is required" in (
        sticky(github)
    )


def test_a_kustomize_overlay_deploys_and_keeps_its_generated_names_across_a_redeploy(
    bot: Bot, github: Any, checkout: Checkout, apps: Any, core: Any, kube: Any, prefix: str
) -> None:
    with_fixture(checkout, "kustomize", "kustomize: deploy/overlays/preview\n", prefix)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.READY, outcome.message
    namespace = namespace_of(prefix)
    api = apps.read_namespaced_deployment("preview-api", namespace)
    assert api.status.available_replicas == 1
    generated = api.spec.template.spec.containers[0].env_from[0].config_map_ref.name
    assert generated.startswith("preview-settings-")
    assert core.read_namespaced_config_map(generated, namespace).data["PR"] == str(PR_NUMBER)
    before = versions(kube, namespace)

    assert redeploy(bot, github).status == Phase.READY

    assert versions(kube, namespace) == before


def test_a_charts_objects_keep_to_the_manifest_policy_like_any_manifest(
    bot: Bot, github: Any, checkout: Checkout, core: Any, prefix: str
) -> None:
    with_fixture(checkout, "helm", HELM, prefix)
    checkout.write(
        "deploy/web/templates/debug.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: debug\nspec:\n  containers:\n"
        "    - name: shell\n      image: busybox\n      securityContext:\n        privileged: true\n",
    )

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.FAILED
    assert "web/templates/debug.yaml, document 1 (Pod/debug)" in sticky(github)
    assert "privileged" in sticky(github)
    with pytest.raises(client.ApiException) as missing:
        core.read_namespace(namespace_of(prefix))
    assert missing.value.status == 404

"""Each way a cluster says no, told as what it is: RBAC, a ResourceQuota, Pod Security admission, an
admission policy or webhook, a kind it does not serve, a log it will not give.

The adapter runs against the emulated API, which refuses with the real API server's status bodies
and messages, or against a real cluster with PREVIEWBOT_TEST_KUBECONFIG (an admin's kubeconfig: the
tests set up each refusal themselves).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from previewbot import errors, naming
from previewbot.adapters.kubernetes import KubernetesCluster, named_refusal
from previewbot.model import ObjectRef, Phase
from tests.emulators.kube import DenyingPolicy
from tests.emulators.kube_plugin import KubeEnv
from tests.harness import REPO, Bot, Checkout, pr_event, preview_config, sticky, web_deployment

WAIT = 60.0
OWNER = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE, naming.REPO_LABEL: "acme.shop"}
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
SHA = "1" * 40


@pytest.fixture
def cluster(kube: KubeEnv) -> KubernetesCluster:
    return KubernetesCluster(
        kube.api_client(), recheck_interval=0.1, image_pull_grace=0.0, retry_wait=0.01, retry_max_wait=0.05
    )


@pytest.fixture
def core(kube: KubeEnv) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kube.api_client())


@pytest.fixture
def make_namespace(kube: KubeEnv, core: kubernetes.client.CoreV1Api) -> Iterator[Any]:
    made: list[str] = []

    def make(base: str, labels: dict[str, str] | None = None) -> str:
        name = kube.unique(base)
        core.create_namespace({"metadata": {"name": name, "labels": {**OWNER, **(labels or {})}}})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(kubernetes.client.ApiException):
            core.delete_namespace(name)


def server_deployment(name: str, *, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": OWNER},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }


def stateful_set(name: str, *, replicas: int) -> dict[str, Any]:
    workload = server_deployment(name, replicas=replicas)
    workload["kind"] = "StatefulSet"
    workload["spec"]["serviceName"] = name
    return workload


def echo_job() -> dict[str, Any]:
    """A test Job whose one pod echoes a line and succeeds."""
    container = {"name": "tests", "image": "busybox:1.36", "command": ["sh", "-c", "echo ok"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "e2e", "labels": OWNER},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def quota(core: kubernetes.client.CoreV1Api, namespace: str, *, pods: int) -> None:
    """A pod quota, once the quota controller has counted what the namespace holds (admission waits for it)."""
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pods)}}}
    )
    deadline = time.monotonic() + WAIT
    while (core.read_namespaced_resource_quota("pods", namespace).status.hard or {}).get("pods") is None:
        assert time.monotonic() < deadline, "the quota controller never counted the namespace"
        time.sleep(0.1)


def ref(obj: dict[str, Any], namespace: str) -> ObjectRef:
    return ObjectRef(api_version=obj["apiVersion"], kind=obj["kind"], name=obj["metadata"]["name"], namespace=namespace)


# ---------------------------------------------------------------- the API's own words, named


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (
            'deployments.apps "web" is forbidden: User "system:serviceaccount:ci:previewbot" cannot patch resource '
            '"deployments" in API group "apps" in the namespace "pr-7"',
            "forbidden by RBAC: system:serviceaccount:ci:previewbot may not patch deployments.apps in namespace pr-7 "
            "(`previewbot rbac` prints the permissions previewbot needs): ",
        ),
        (
            'namespaces is forbidden: User "ci-bot" cannot create resource "namespaces" in API group "" at the '
            "cluster scope",
            "forbidden by RBAC: ci-bot may not create namespaces cluster-wide",
        ),
        (
            'configmaps "c2" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=3, '
            "limited: configmaps=3",
            "refused by a ResourceQuota: ",
        ),
        (
            'pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
            "refused by Pod Security admission: ",
        ),
        (
            'admission webhook "deny.example.com" denied the request: images must come from registry.example.com',
            "refused by an admission webhook: ",
        ),
        (
            "configmaps \"x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'p' denied request: no",
            "refused by a ValidatingAdmissionPolicy: ",
        ),
    ],
)
def test_each_refusal_is_named_and_keeps_the_apis_words(message: str, named: str) -> None:
    told = named_refusal(message)

    assert told is not None
    assert told.startswith(named)
    assert told.endswith(message)


def test_a_message_that_is_no_refusal_is_left_alone() -> None:
    assert named_refusal('deployments.apps "web" not found') is None


# ---------------------------------------------------------------- refusals by the cluster


def test_a_kind_the_cluster_does_not_serve_is_named_with_what_it_serves(
    cluster: KubernetesCluster, make_namespace: Any
) -> None:
    namespace = make_namespace("refusals-kind")
    widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}

    with pytest.raises(errors.Invalid) as refused:
        cluster.apply(namespace, [widget])

    message = str(refused.value)
    assert "Widget/w: the cluster serves no kind Widget in example.test/v1; it serves v1, " in message
    assert "apps/v1" in message
    assert "batch/v1" in message


def test_pod_security_warns_at_apply_and_its_refusal_of_the_pods_ends_the_rollout_at_once(
    cluster: KubernetesCluster, make_namespace: Any
) -> None:
    namespace = make_namespace("refusals-psa", RESTRICTED)
    web = server_deployment("web")
    warnings: list[str] = []

    cluster.apply(namespace, [web], warn=warnings.append)
    began = time.monotonic()
    result = cluster.wait_rollout(namespace, [ref(web, namespace)], timeout=WAIT)

    [warning] = warnings
    assert warning.startswith('Deployment/web: would violate PodSecurity "restricted:latest": ')
    assert 'allowPrivilegeEscalation != false (container "app" must set' in warning
    [diagnosis] = result.failed
    assert diagnosis.summary.startswith("its pods were refused by Pod Security admission: ")
    assert 'violates PodSecurity "restricted:latest"' in diagnosis.summary
    assert diagnosis.summary.endswith("(0/1 ready)")
    assert time.monotonic() - began < WAIT / 2


def test_a_quota_that_leaves_no_room_refuses_a_stateful_sets_pods_and_says_so(
    cluster: KubernetesCluster, make_namespace: Any, core: kubernetes.client.CoreV1Api
) -> None:
    namespace = make_namespace("refusals-quota")
    quota(core, namespace, pods=1)
    database = stateful_set("db", replicas=2)

    cluster.apply(namespace, [database])
    result = cluster.wait_rollout(namespace, [ref(database, namespace)], timeout=WAIT)

    [diagnosis] = result.failed
    assert diagnosis.summary.startswith("its pods were refused by a ResourceQuota: ")
    assert "exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1" in diagnosis.summary
    assert any("FailedCreate" in event for event in diagnosis.events)


def test_a_quota_at_apply_time_is_named(
    cluster: KubernetesCluster, make_namespace: Any, core: kubernetes.client.CoreV1Api
) -> None:
    namespace = make_namespace("refusals-quota-apply")
    quota(core, namespace, pods=0)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lone", "labels": OWNER},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
    }

    with pytest.raises(errors.Forbidden) as refused:
        cluster.apply(namespace, [pod])

    assert str(refused.value).startswith("Pod/lone was refused: refused by a ResourceQuota: ")
    assert 'pods "lone" is forbidden: exceeded quota: pods' in str(refused.value)


def test_a_test_job_whose_pods_are_refused_never_ran_and_says_why(
    cluster: KubernetesCluster, make_namespace: Any, core: kubernetes.client.CoreV1Api
) -> None:
    namespace = make_namespace("refusals-job")
    quota(core, namespace, pods=0)

    outcome = cluster.run_job(namespace, echo_job(), timeout=WAIT)

    assert not outcome.succeeded
    assert not outcome.timed_out
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.summary.startswith("its pods were refused by a ResourceQuota: ")


@pytest.fixture
def denying_policy(kube: KubeEnv) -> Iterator[str]:
    """A policy that refuses ConfigMaps with a key named `forbidden`, in namespaces labelled for it; the label."""
    label = kube.unique("deny")
    message = "configmaps may not carry a key named forbidden"
    if kube.emulated:
        assert kube.server is not None
        kube.server.denying_policies.append(
            DenyingPolicy(label, "ConfigMap", message, lambda obj: "forbidden" in (obj.get("data") or {}))
        )
        yield label
        return
    resources = kubernetes.dynamic.DynamicClient(kube.api_client()).resources
    admission = "admissionregistration.k8s.io/v1"
    policy = resources.get(api_version=admission, kind="ValidatingAdmissionPolicy")
    binding = resources.get(api_version=admission, kind="ValidatingAdmissionPolicyBinding")
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}
    policy.create(
        body={
            "apiVersion": admission,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": label},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [
                    {"expression": "!has(object.data) || !('forbidden' in object.data)", "message": message}
                ],
            },
        }
    )
    binding.create(
        body={
            "apiVersion": admission,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": label},
            "spec": {
                "policyName": label,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"previewbot-test/deny": label}}},
            },
        }
    )
    try:
        yield label
    finally:
        binding.delete(name=label)
        policy.delete(name=label)


def test_an_admission_policys_denial_is_named_with_its_message(
    cluster: KubernetesCluster, make_namespace: Any, denying_policy: str
) -> None:
    namespace = make_namespace("refusals-deny", {"previewbot-test/deny": denying_policy})
    refused_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"forbidden": "1"}}

    deadline = time.monotonic() + WAIT  # a new policy takes a moment to reach the API server's admission
    while True:
        try:
            cluster.apply(namespace, [refused_map])
        except errors.Invalid as refusal:
            message = str(refusal)
            break
        assert time.monotonic() < deadline, "the policy never refused"
        time.sleep(0.5)

    assert message.startswith("ConfigMap/x was refused: refused by a ValidatingAdmissionPolicy: ")
    assert message.endswith("denied request: configmaps may not carry a key named forbidden")


@pytest.mark.parametrize(("code", "reason"), [(0, ""), (403, "Forbidden")], ids=["no status of its own", "forbidden"])
def test_an_admission_webhooks_denial_of_a_deployment_reaches_the_pr_by_its_name_and_message(
    emulated_kube: KubeEnv,
    bot: Bot,
    github: Any,
    checkout: Checkout,
    prefix: str,
    site: str,
    caplog: pytest.LogCaptureFixture,
    code: int,
    reason: str,
) -> None:
    assert emulated_kube.server is not None
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    github.set_permission(REPO, "Codertocat", "admin")
    webhook, said = "images.policy.example.com", "image registry.k8s.io/pause is not from registry.example.com"
    emulated_kube.server.deny_with_webhook(webhook, said, kinds=["Deployment"], code=code, reason=reason)
    denial = f'refused by an admission webhook: admission webhook "{webhook}" denied the request: {said}'

    [outcome] = bot.on("pull_request", pr_event("opened"))

    comment = sticky(github)
    assert outcome.status == Phase.FAILED
    for told in (outcome.message, comment, caplog.text):
        assert f"Deployment/web was refused: {denial}" in told
        for something_else in ("RBAC", "ResourceQuota", "Pod Security", "ValidatingAdmissionPolicy", "not ready"):
            assert something_else not in told


@pytest.mark.parametrize(
    ("knob", "value", "why"),
    [
        (
            "kubelet_reachable",
            False,
            ["the node's kubelet could not be reached", "dial tcp 127.0.0.1:10250: connect: connection refused"],
        ),
        ("pods_go_when_their_log_is_asked_for", True, [": the pod is gone (", 'pods "e2e-', '" not found)']),
    ],
    ids=["kubelet unreachable", "pod gone"],
)
def test_a_log_that_cannot_be_read_is_unreadable_with_why(
    emulated_kube: KubeEnv, cluster: KubernetesCluster, make_namespace: Any, knob: str, value: bool, why: list[str]
) -> None:
    assert emulated_kube.server is not None
    namespace = make_namespace("refusals-log")
    setattr(emulated_kube.server, knob, value)

    outcome = cluster.run_job(namespace, echo_job(), timeout=WAIT)

    assert outcome.succeeded
    assert outcome.log == ""
    assert outcome.log_unreadable is not None
    assert outcome.log_unreadable.startswith("the log of pod e2e-")
    for words in why:
        assert words in outcome.log_unreadable


def test_tests_whose_pod_went_before_their_log_was_read_could_not_read_the_report(
    emulated_kube: KubeEnv, bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    assert emulated_kube.server is not None
    tests = "tests:\n  job:\n    image: busybox:1.36\n    command: [sh, -c, echo ok]\n    report: /tmp/junit.xml\n"
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site, more=tests))
    checkout.write("deploy/web.yaml", web_deployment())
    github.set_permission(REPO, "Codertocat", "admin")
    emulated_kube.server.pods_go_when_their_log_is_asked_for = True

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.report is not None
    told = outcome.report.tests
    assert told is not None
    assert told.report is None
    assert told.problem is not None
    assert told.problem.startswith("could not read the report: the test log could not be read: the log of pod e2e-")
    assert ": the pod is gone (" in told.problem
    comment = sticky(github)
    assert "could not read the report" in comment
    assert "the pod is gone" in comment
    [e2e] = [status for status in github.statuses(REPO, SHA) if status.context == "previewbot/e2e"][:1]
    assert e2e.state == "error"
    assert e2e.description.startswith("could not read the report")

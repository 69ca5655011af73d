"""The manifest policy: each shape a PR may not deploy, named by object, field and rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from previewbot import naming
from previewbot.model import PrRef
from previewbot.policy import Breach, ManifestPolicy, PolicyError, check, namespace_labels, stricter

NAMESPACE = "preview-web-pr-7"
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
API_VERSIONS = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}


def workload(kind: str, pod_spec: dict[str, Any], *, name: str = "web") -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API_VERSIONS.get(kind, "apps/v1"), "kind": kind, "metadata": {"name": name}}
    holder = obj
    path = POD_SPEC_PATHS[kind]
    for key in path[:-1]:
        holder = holder.setdefault(key, {})
    holder[path[-1]] = copy.deepcopy(pod_spec)
    return obj


def container(**security: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "app", "image": "ghcr.io/acme/web:1"}
    if security:
        spec["securityContext"] = security
    return spec


def breaches(*objects: dict[str, Any], **policy: Any) -> list[Breach]:
    locations = [
        f"deploy/all.yaml, document {n} ({o['kind']}/{o['metadata']['name']})" for n, o in enumerate(objects, 1)
    ]
    with pytest.raises(PolicyError) as refused:
        check(objects, locations=locations, policy=ManifestPolicy(namespace=NAMESPACE, **policy))
    return list(refused.value.breaches)


def allowed(*objects: dict[str, Any], **policy: Any) -> None:
    locations = [f"document {n}" for n in range(len(objects))]
    check(objects, locations=locations, policy=ManifestPolicy(namespace=NAMESPACE, **policy))


# ---------------------------------------------------------------- pods of every workload kind


ESCAPES = {
    "privileged": ({"containers": [container(privileged=True)]}, "containers[0].securityContext.privileged"),
    "hostPID": ({"hostPID": True, "containers": [container()]}, "hostPID"),
    "hostIPC": ({"hostIPC": True, "containers": [container()]}, "hostIPC"),
    "hostNetwork": ({"hostNetwork": True, "containers": [container()]}, "hostNetwork"),
    "hostPath": (
        {"containers": [container()], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
        "volumes[0].hostPath",
    ),
    "capabilities": (
        {"containers": [container(capabilities={"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]})]},
        "containers[0].securityContext.capabilities.add[1]",
    ),
    "init-container": ({"initContainers": [container(privileged=True)], "containers": [container()]}, None),
    "hostPort": ({"containers": [{**container(), "ports": [{"containerPort": 80, "hostPort": 80}]}]}, None),
    "unconfined-seccomp": (
        {"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [container()]},
        "securityContext.seccompProfile.type",
    ),
    "unsafe-sysctl": (
        {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "containers": [container()]},
        "securityContext.sysctls[0]",
    ),
}


@pytest.mark.parametrize("kind", list(POD_SPEC_PATHS))
@pytest.mark.parametrize("escape", list(ESCAPES))
def test_a_pod_that_reaches_the_node_is_refused_in_every_workload_kind(kind: str, escape: str) -> None:
    pod_spec, field = ESCAPES[escape]

    [breach] = breaches(workload(kind, pod_spec))

    assert breach.location == f"deploy/all.yaml, document 1 ({kind}/web)"
    spec_path = ".".join(POD_SPEC_PATHS[kind])
    assert breach.field.startswith(spec_path + ".")
    if field is not None:
        assert breach.field == f"{spec_path}.{field}"
    assert "Pod Security baseline" in breach.rule


def test_the_whole_message_names_object_field_and_rule() -> None:
    pod = workload("Pod", {"hostPID": True, "hostNetwork": True, "containers": [container(privileged=True)]})
    locations = ["deploy/pod.yaml, document 2 (Pod/web)"]

    with pytest.raises(PolicyError) as refused:
        check([pod], locations=locations, policy=ManifestPolicy(namespace=NAMESPACE))

    lines = str(refused.value).splitlines()
    assert lines[0] == "previewbot applied nothing: 3 fields break the manifest policy of previews:"
    assert lines[1:] == [
        "deploy/pod.yaml, document 2 (Pod/web): spec.hostNetwork: "
        "sharing the node's namespaces reaches past the preview: not allowed by Pod Security baseline",
        "deploy/pod.yaml, document 2 (Pod/web): spec.hostPID: "
        "sharing the node's namespaces reaches past the preview: not allowed by Pod Security baseline",
        "deploy/pod.yaml, document 2 (Pod/web): spec.containers[0].securityContext.privileged: "
        "a privileged container has the node's full powers: not allowed by Pod Security baseline",
    ]


def test_ordinary_workloads_pass_baseline() -> None:
    pod_spec = {
        "containers": [container(capabilities={"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, runAsUser=0)],
        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "config", "configMap": {"name": "web"}}],
        "securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]},
    }

    allowed(*(workload(kind, pod_spec) for kind in POD_SPEC_PATHS))


def test_restricted_asks_for_hardened_pods() -> None:
    pod = workload("Deployment", {"containers": [container()], "volumes": [{"name": "d", "gitRepo": {}}]})

    fields = [breach.field for breach in breaches(pod, pod_security="restricted")]

    assert fields == [
        "spec.template.spec.volumes[0].gitRepo",
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.template.spec.containers[0].securityContext.capabilities.drop",
        "spec.template.spec.containers[0].securityContext.runAsNonRoot",
        "spec.template.spec.containers[0].securityContext.seccompProfile.type",
    ]


def test_restricted_is_met_by_a_hardened_pod() -> None:
    hardened = container(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]})
    pod_spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [hardened],
    }

    allowed(workload("Deployment", pod_spec), pod_security="restricted")


def test_the_stricter_level_wins() -> None:
    assert stricter("baseline", "restricted") == "restricted"
    assert stricter("baseline", "baseline") == "baseline"


def test_namespace_labels_enforce_warn_and_audit_at_one_level() -> None:
    assert namespace_labels("restricted") == {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
    }


# ---------------------------------------------------------------- RBAC


def role_binding(*subjects: dict[str, str], role: tuple[str, str] = ("Role", "reader")) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "grant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role[0], "name": role[1]},
        "subjects": list(subjects),
    }


def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


@pytest.mark.parametrize(
    "subject",
    [
        group("system:authenticated"),
        group("system:unauthenticated"),
        group("system:serviceaccounts"),
        group("system:serviceaccounts:kube-system"),
        group("system:masters"),
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "system:anonymous"},
        {"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"},
    ],
    ids=lambda subject: f"{subject['kind']}:{subject['name']}:{subject.get('namespace', '')}",
)
def test_a_binding_to_someone_beyond_the_preview_is_refused(subject: dict[str, str]) -> None:
    [breach] = breaches(role_binding(subject))

    assert breach.field.startswith("subjects[0].")
    assert breach.location == "deploy/all.yaml, document 1 (RoleBinding/grant)"


@pytest.mark.parametrize(
    "role", ["cluster-admin", "admin", "edit", "system:controller:namespace-controller", "previewbot-preview"]
)
def test_a_binding_to_a_broad_cluster_role_is_refused(role: str) -> None:
    own = {"kind": "ServiceAccount", "name": "web"}

    [breach] = breaches(role_binding(own, role=("ClusterRole", role)))

    assert breach.field == "roleRef.name"
    assert role in breach.rule


def test_bindings_within_the_preview_pass() -> None:
    own_accounts = group(f"system:serviceaccounts:{NAMESPACE}")
    account = {"kind": "ServiceAccount", "name": "web", "namespace": NAMESPACE}
    person = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com"}

    allowed(role_binding(own_accounts, account, person), role_binding(account, role=("ClusterRole", "view")))


def test_a_fork_grants_rights_only_to_its_own_service_accounts() -> None:
    person = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@example.com"}
    account = {"kind": "ServiceAccount", "name": "web"}

    [breach] = breaches(role_binding(account, person), fork=True)

    assert breach.field == "subjects[1].kind"
    allowed(role_binding(account), fork=True)


def test_a_role_may_not_let_pods_change_the_guardrails() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "open"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["*"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["delete"]},
            {"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["get", "list"]},
        ],
    }

    [breach] = breaches(role)

    assert breach.field == "rules[1]"


# ---------------------------------------------------------------- ingress, services, network


@pytest.mark.parametrize(
    "annotation",
    [
        "nginx.ingress.kubernetes.io/server-snippet",
        "nginx.ingress.kubernetes.io/configuration-snippet",
        "nginx.ingress.kubernetes.io/auth-snippet",
        "nginx.ingress.kubernetes.io/stream-snippet",
        "nginx.org/server-snippets",
    ],
)
def test_ingress_snippets_are_refused(annotation: str) -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "annotations": {annotation: "location / { proxy_pass http://kubernetes.default; }"},
        },
        "spec": {"rules": [{"host": "pr-7.example.com"}]},
    }

    [breach] = breaches(ingress)

    assert breach.field == f"metadata.annotations[{annotation}]"
    assert "ingress controller" in breach.rule


def test_ordinary_ingress_annotations_pass() -> None:
    annotations = {"nginx.ingress.kubernetes.io/rewrite-target": "/", "cert-manager.io/cluster-issuer": "x"}
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w"}}
    ingress["metadata"]["annotations"] = annotations

    allowed(ingress)


def test_a_service_with_external_ips_is_refused() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}], "externalIPs": ["10.0.0.1"]},
    }

    [breach] = breaches(service)

    assert breach.field == "spec.externalIPs"


def network_policy(*ingress: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web"},
        "spec": {"podSelector": {}, "ingress": list(ingress)},
    }


def test_an_isolated_preview_lets_no_outsider_in_through_its_own_network_policy() -> None:
    everyone = network_policy({})
    other_namespaces = network_policy({"from": [{"podSelector": {}}, {"namespaceSelector": {}}]})
    addresses = network_policy({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})

    fields = [b.field for b in breaches(everyone, other_namespaces, addresses)]

    assert fields == [
        "spec.ingress[0].from",
        "spec.ingress[0].from[1].namespaceSelector",
        "spec.ingress[0].from[0].ipBlock",
    ]
    allowed(network_policy({"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}))
    allowed(everyone, isolated=False)


# ---------------------------------------------------------------- previewbot's own names


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("ResourceQuota", "previewbot-quota"),
        ("LimitRange", "previewbot-limits"),
        ("NetworkPolicy", "previewbot-isolation"),
        ("ConfigMap", "previewbot-anything"),
        ("RoleBinding", "previewbot"),
        # A run waits for the PR's Lease until it is given back or runs out: a PR's own may not hold it.
        ("Lease", naming.lease_name(PrRef(repo="acme/shop", number=7))),
    ],
)
def test_previewbots_own_names_are_reserved(kind: str, name: str) -> None:
    api_version = {
        "NetworkPolicy": "networking.k8s.io/v1",
        "RoleBinding": "rbac.authorization.k8s.io/v1",
        "Lease": "coordination.k8s.io/v1",
    }.get(kind, "v1")
    replacement = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": {}}

    [breach] = breaches(replacement, isolated=False)

    assert breach.field == "metadata.name"
    assert "previewbot's own" in breach.rule


def test_a_copied_secret_cannot_be_replaced() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "x"}}

    [breach] = breaches(secret, copied_secrets=frozenset({"db"}))

    assert "namespace.secrets" in breach.rule
    allowed(secret)

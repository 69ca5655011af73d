"""The manifest policy: what a preview's objects may not do, checked before anything is applied.

Pure: takes the rendered objects and returns nothing or raises PolicyError listing every
breach, each naming the object (file, document), the field and the rule. A PR writes its
manifests, so nothing in them may reach past the preview's namespace: no pod that shares
the node's namespaces, files or powers; no grant to everyone or to broad roles; no ingress
configuration snippets (they run inside the shared ingress controller); and nothing that
replaces previewbot's own guardrails or the Secrets it copies in.

The pod rules are those of Kubernetes' Pod Security Standards, at the level the default
branch's config sets: `baseline` by default, `restricted` on request (and for forks unless
`forks.pod_security` says otherwise). The namespace carries the same level as Pod Security
admission labels, so the API server enforces it too, for pods that controllers make later.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from previewbot.config import PodSecurityLevel
from previewbot.errors import ManifestError
from previewbot.manifests import pod_templates

LEVELS: tuple[PodSecurityLevel, ...] = ("baseline", "restricted")  # laxest first

RESERVED_NAME = "previewbot"
"""Names previewbot keeps for its own objects: this one and those starting with it and `-` (its guardrails,
its RoleBinding in each preview, its ClusterRoles)."""

PSA_LABEL_PREFIX = "pod-security.kubernetes.io/"

# Pod Security Standards, v1.30 and later.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
    }
)
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
_VOLUME_KEYS_NOT_SOURCES = frozenset({"name"})

BROAD_CLUSTER_ROLES = frozenset({"cluster-admin", "admin", "edit"})
_RBAC_GROUP = "rbac.authorization.k8s.io"
_WRITE_VERBS = frozenset({"*", "create", "update", "patch", "delete", "deletecollection"})
_GUARDRAIL_RESOURCES = frozenset({"*", "resourcequotas", "limitranges", "networkpolicies"})
_GUARDRAIL_GROUPS = frozenset({"*", "", "networking.k8s.io"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestPolicy:
    """The rules one preview's objects are held to."""

    namespace: str
    pod_security: PodSecurityLevel = "baseline"
    fork: bool = False  # a fork may grant Kubernetes rights only to its own namespace's service accounts
    isolated: bool = True  # namespace.network_policy is `isolate`: no NetworkPolicy may let outsiders in
    copied_secrets: frozenset[str] = field(default_factory=frozenset)  # the Secrets namespace.secrets copies in


@dataclass(frozen=True, slots=True)
class Breach:
    """One object's field that breaks one rule."""

    location: str  # "deploy/web.yaml, document 2 (Deployment/web)"
    field: str  # "spec.template.spec.hostPID"
    rule: str

    def __str__(self) -> str:
        return f"{self.location}: {self.field}: {self.rule}"


class PolicyError(ManifestError):
    """The manifests break previewbot's policy; `breaches` lists each, and nothing was applied."""

    def __init__(self, breaches: Sequence[Breach]) -> None:
        self.breaches = tuple(breaches)
        count = "1 object's field breaks" if len(breaches) == 1 else f"{len(breaches)} fields break"
        super().__init__(
            "\n".join([f"previewbot applied nothing: {count} the manifest policy of previews:", *map(str, breaches)])
        )


def stricter(*levels: PodSecurityLevel) -> PodSecurityLevel:
    """The strictest of the Pod Security levels given."""
    return max(levels, key=LEVELS.index)


def namespace_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Pod Security admission labels: the API server enforces level (and warns and audits at it)."""
    labels: dict[str, str] = {}
    for mode in ("enforce", "warn", "audit"):
        labels[f"{PSA_LABEL_PREFIX}{mode}"] = level
        labels[f"{PSA_LABEL_PREFIX}{mode}-version"] = "latest"
    return labels


def check(objects: Sequence[Mapping[str, Any]], *, locations: Sequence[str], policy: ManifestPolicy) -> None:
    """Nothing when every object keeps to policy; else PolicyError naming every breach.

    locations are where each object is, as messages name it: "web.yaml, document 2 (Pod/web)".
    """
    breaches = [
        Breach(location, where, rule)
        for obj, location in zip(objects, locations, strict=True)
        for where, rule in _breaches(obj, policy)
    ]
    if breaches:
        raise PolicyError(breaches)


def _breaches(obj: Mapping[str, Any], policy: ManifestPolicy) -> Iterator[tuple[str, str]]:
    kind = str(obj.get("kind", ""))
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    metadata = _dict(obj.get("metadata"))
    name = str(metadata.get("name", ""))
    if _is_previewbots(name):
        yield "metadata.name", f"{RESERVED_NAME} and names starting with {RESERVED_NAME}- are previewbot's own"
    elif kind == "Secret" and group == "" and name in policy.copied_secrets:
        yield "metadata.name", f"previewbot writes {kind}/{name} itself: it is copied in by namespace.secrets"
    for key in _dict(metadata.get("annotations")):
        if key.rpartition("/")[2].endswith(("-snippet", "-snippets")):
            yield (
                f"metadata.annotations[{key}]",
                "configuration snippets run inside the shared ingress controller: not allowed in a preview",
            )
    for where, template in pod_templates(dict(obj)):
        spec_path = f"{where}.spec" if where else "spec"
        yield from _pod_breaches(_dict(template.get("spec")), spec_path, policy.pod_security)
    if group == _RBAC_GROUP and kind == "RoleBinding":
        yield from _binding_breaches(obj, policy)
    if group == _RBAC_GROUP and kind == "Role":
        yield from _role_breaches(obj)
    if group == "networking.k8s.io" and kind == "NetworkPolicy" and policy.isolated:
        yield from _network_policy_breaches(obj)
    if group == "" and kind == "Service" and _dict(obj.get("spec")).get("externalIPs"):
        yield "spec.externalIPs", "a Service's external IPs take over traffic meant for others: not allowed"


# ---------------------------------------------------------------- pods


def _pod_breaches(spec: Mapping[str, Any], path: str, level: PodSecurityLevel) -> Iterator[tuple[str, str]]:
    baseline = f"not allowed by Pod Security {level}"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield f"{path}.{key}", f"sharing the node's namespaces reaches past the preview: {baseline}"
    pod_context = _dict(spec.get("securityContext"))
    yield from _context_breaches(pod_context, f"{path}.securityContext", level)
    for index, sysctl in enumerate(_list(pod_context.get("sysctls"))):
        if _dict(sysctl).get("name") not in SAFE_SYSCTLS:
            yield f"{path}.securityContext.sysctls[{index}]", f"only namespaced, safe sysctls: {baseline}"
    for index, volume in enumerate(_list(spec.get("volumes"))):
        sources = sorted(set(_dict(volume)) - _VOLUME_KEYS_NOT_SOURCES)
        if "hostPath" in sources:
            yield f"{path}.volumes[{index}].hostPath", f"a hostPath volume opens the node's files: {baseline}"
        elif level == "restricted":
            for source in sources:
                if source not in RESTRICTED_VOLUMES:
                    yield f"{path}.volumes[{index}].{source}", f"volume type {source}: {baseline}"
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(_list(spec.get(key))):
            yield from _container_breaches(_dict(container), f"{path}.{key}[{index}]", level, pod_context=pod_context)


def _container_breaches(
    container: Mapping[str, Any], path: str, level: PodSecurityLevel, *, pod_context: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    rule = f"not allowed by Pod Security {level}"
    context = _dict(container.get("securityContext"))
    where = f"{path}.securityContext"
    if context.get("privileged") is True:
        yield f"{where}.privileged", f"a privileged container has the node's full powers: {rule}"
    yield from _context_breaches(context, where, level)
    capabilities = _dict(context.get("capabilities"))
    allowed = RESTRICTED_CAPABILITIES if level == "restricted" else BASELINE_CAPABILITIES
    for index, capability in enumerate(_list(capabilities.get("add"))):
        if str(capability).upper().removeprefix("CAP_") not in allowed:
            yield f"{where}.capabilities.add[{index}]", f"capability {capability}: {rule}"
    for index, port in enumerate(_list(container.get("ports"))):
        if _dict(port).get("hostPort"):
            yield f"{path}.ports[{index}].hostPort", f"a host port binds the node's network: {rule}"
    if level != "restricted":
        return
    if context.get("allowPrivilegeEscalation") is not False:
        yield f"{where}.allowPrivilegeEscalation", f"must be false: {rule}"
    if "ALL" not in [str(dropped).upper() for dropped in _list(capabilities.get("drop"))]:
        yield f"{where}.capabilities.drop", f"must drop ALL: {rule}"
    if not _either(context, pod_context, "runAsNonRoot"):
        yield f"{where}.runAsNonRoot", f"must be true, here or in the pod's securityContext: {rule}"
    seccomp = _dict(context.get("seccompProfile")) or _dict(pod_context.get("seccompProfile"))
    if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
        yield f"{where}.seccompProfile.type", f"must be RuntimeDefault or Localhost, here or in the pod's: {rule}"


def _context_breaches(context: Mapping[str, Any], where: str, level: PodSecurityLevel) -> Iterator[tuple[str, str]]:
    """The rules a pod's and a container's securityContext share."""
    rule = f"not allowed by Pod Security {level}"
    if _dict(context.get("windowsOptions")).get("hostProcess") is True:
        yield f"{where}.windowsOptions.hostProcess", f"a host process runs on the node itself: {rule}"
    if context.get("procMount") not in (None, "Default"):
        yield f"{where}.procMount", f"an unmasked /proc shows the node's: {rule}"
    if _dict(context.get("seccompProfile")).get("type") == "Unconfined":
        yield f"{where}.seccompProfile.type", f"an unconfined seccomp profile: {rule}"
    if _dict(context.get("appArmorProfile")).get("type") == "Unconfined":
        yield f"{where}.appArmorProfile.type", f"an unconfined AppArmor profile: {rule}"
    selinux = _dict(context.get("seLinuxOptions"))
    if selinux.get("user") or selinux.get("role"):
        yield f"{where}.seLinuxOptions", f"a custom SELinux user or role: {rule}"
    if selinux.get("type") not in (None, "", *SELINUX_TYPES):
        yield f"{where}.seLinuxOptions.type", f"SELinux type {selinux['type']}: {rule}"
    if level == "restricted" and context.get("runAsUser") == 0:
        yield f"{where}.runAsUser", f"running as root (user 0): {rule}"


def _either(context: Mapping[str, Any], pod_context: Mapping[str, Any], key: str) -> bool:
    """The container's setting, else the pod's, as the kubelet resolves it."""
    value = context.get(key, pod_context.get(key))
    return value is True


# ---------------------------------------------------------------- RBAC and network


def _binding_breaches(binding: Mapping[str, Any], policy: ManifestPolicy) -> Iterator[tuple[str, str]]:
    role = _dict(binding.get("roleRef"))
    role_name = str(role.get("name", ""))
    if role.get("kind") == "ClusterRole" and (
        role_name in BROAD_CLUSTER_ROLES or role_name.startswith("system:") or _is_previewbots(role_name)
    ):
        # previewbot may bind its own preview ClusterRole: a binding to it would hand the PR's pods
        # previewbot's rights in the namespace, over its guardrails too.
        yield "roleRef.name", f"ClusterRole {role_name} would hand out control of the whole namespace"
    own_service_accounts = f"system:serviceaccounts:{policy.namespace}"
    for index, subject in enumerate(_list(binding.get("subjects"))):
        subject = _dict(subject)
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        where = f"subjects[{index}]"
        if kind == "ServiceAccount":
            if subject.get("namespace") not in (None, "", policy.namespace):
                yield f"{where}.namespace", "a service account of another namespace may not be granted rights here"
        elif policy.fork:
            yield f"{where}.kind", "a fork's preview may grant rights only to its own namespace's service accounts"
        elif kind == "Group" and name.startswith("system:") and name != own_service_accounts:
            # system:authenticated, system:unauthenticated, system:serviceaccounts[:<other namespace>], ...
            yield f"{where}.name", f"group {name} reaches far beyond this preview: it may not be granted rights"
        elif kind == "User" and name.startswith("system:"):
            yield f"{where}.name", f"user {name} is one of Kubernetes' own: it may not be granted rights"


def _role_breaches(role: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for index, rule in enumerate(_list(role.get("rules"))):
        rule = _dict(rule)
        groups = {str(group) for group in _list(rule.get("apiGroups"))}
        resources = {str(resource) for resource in _list(rule.get("resources"))}
        verbs = {str(verb) for verb in _list(rule.get("verbs"))}
        if groups & _GUARDRAIL_GROUPS and resources & _GUARDRAIL_RESOURCES and verbs & _WRITE_VERBS:
            yield (
                f"rules[{index}]",
                "may not let anyone change quotas, limit ranges or network policies: previewbot's guardrails",
            )


def _network_policy_breaches(network_policy: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    rule = "namespace.network_policy is isolate: a preview's policies may let in only its own pods"
    for index, ingress in enumerate(_list(_dict(network_policy.get("spec")).get("ingress"))):
        peers = _list(_dict(ingress).get("from"))
        if not peers:
            yield f"spec.ingress[{index}].from", f"no `from` lets everyone in; {rule}"
        for peer_index, peer in enumerate(peers):
            outside = sorted(set(_dict(peer)) - {"podSelector"})
            if outside:
                yield f"spec.ingress[{index}].from[{peer_index}].{outside[0]}", rule


# ---------------------------------------------------------------- plumbing


def _is_previewbots(name: str) -> bool:
    return name == RESERVED_NAME or name.startswith(f"{RESERVED_NAME}-")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

"""An emulated Kubernetes API server that lives for one test, on 127.0.0.1.

previewbot's Cluster adapter talks to it through the official kubernetes client (typed APIs,
DynamicClient, watch.Watch) exactly as it talks to a real cluster, so the emulator keeps the
behaviour previewbot relies on: discovery, CRUD with resourceVersion conflicts, server-side apply
with field managers, label and field selectors, watches with timeouts and resumption, the status
and log subresources, owner-based cascading deletion and the namespace lifecycle.

kmock 0.8's KubernetesEmulator was considered: it is asyncio/aiohttp-based and stores objects as
plain dicts without resourceVersion conflicts, label selectors, watch timeouts, server-side-apply
semantics or a namespace lifecycle, so previewbot keeps this threaded standard-library server.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import ipaddress
import json
import re
import secrets
import select
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

Obj = dict[str, Any]

NODE_NAME = "previewbot-node"
DEFAULT_WATCH_SECONDS = 1800.0
CLIENT_CHECK_SECONDS = 0.1  # how often a quiet watch looks whether its client went away


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the resource catalogue


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How error messages name the resource: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("status", "finalize"), ("ns",)),
    ResourceType("", "v1", "pods", "Pod", True, ("status", "log"), ("po",)),
    ResourceType("", "v1", "services", "Service", True, ("status",), ("svc",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, (), ("cm",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "events", "Event", True, (), ("ev",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, (), ("sa",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("status",), ("quota",)),
    ResourceType("", "v1", "limitranges", "LimitRange", True, (), ("limits",)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("status",), ("pvc",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, (), ("ep",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("status", "scale"), ("deploy",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("status", "scale"), ("sts",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("status",), ("ds",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("status", "scale"), ("rs",)),
    ResourceType("batch", "v1", "jobs", "Job", True, ("status",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("status",), ("cj",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("status",), ("ing",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, (), ("netpol",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("status",), ("pdb",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("status",),
        ("hpa",),
    ),
)

_BY_KIND = {r.kind: r for r in RESOURCES}
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})

# Status written by the API server at creation: fields a real server always returns (not omitempty).
_INITIAL_STATUS: dict[str, Obj] = {
    "Namespace": {"phase": "Active"},
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "StatefulSet": {"replicas": 0, "availableReplicas": 0},
    "ReplicaSet": {"replicas": 0},
    "DaemonSet": {
        "currentNumberScheduled": 0,
        "desiredNumberScheduled": 0,
        "numberMisscheduled": 0,
        "numberReady": 0,
    },
}

# Jobs keep their pods when deleted without a propagationPolicy, as on a real cluster.
_ORPHAN_BY_DEFAULT = {"Job"}

# Reviews are answered, never stored.
_REVIEWS = {"SelfSubjectReview", "SelfSubjectAccessReview"}


# ---------------------------------------------------------------- errors as Status bodies


class ApiStatusError(Exception):
    """A refusal the API answers with a Status body."""

    def __init__(self, code: int, reason: str, message: str, *, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def body(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            **({"reason": self.reason} if self.reason else {}),  # a webhook's denial may carry none
            "details": self.details,
            "code": self.code,
        }


def _details(rtype: ResourceType, name: str) -> Obj:
    return {"name": name, "group": rtype.group, "kind": rtype.plural}


def not_found(rtype: ResourceType, name: str) -> ApiStatusError:
    return ApiStatusError(404, "NotFound", f'{rtype.qualified} "{name}" not found', details=_details(rtype, name))


def bad_request(message: str) -> ApiStatusError:
    return ApiStatusError(400, "BadRequest", message)


def invalid(rtype: ResourceType, name: str, problems: list[str]) -> ApiStatusError:
    message = f'{rtype.kind_qualified} "{name}" is invalid: ' + ", ".join(problems)
    return ApiStatusError(422, "Invalid", message, details=_details(rtype, name))


def conflict(rtype: ResourceType, name: str, why: str) -> ApiStatusError:
    message = f'Operation cannot be fulfilled on {rtype.qualified} "{name}": {why}'
    return ApiStatusError(409, "Conflict", message, details=_details(rtype, name))


# ---------------------------------------------------------------- selectors

_REQUIREMENT = re.compile(
    r"""\s*(?:
        !\s*(?P<absent>[\w./-]+)
      | (?P<key>[\w./-]+)\s*(?:
            (?P<op>==|!=|=)\s*(?P<value>[\w.-]*)
          | \s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
        )?
    )\s*(?:,|$)""",
    re.VERBOSE,
)

Matcher = Callable[[Obj], bool]


def _requirement(match: re.Match[str]) -> Callable[[dict[str, str]], bool]:
    if match["absent"]:
        absent = match["absent"]
        return lambda labels: absent not in labels
    key = match["key"]
    if match["op"]:
        value, negate = match["value"], match["op"] == "!="
        return lambda labels: (labels.get(key) == value) != negate
    if match["setop"]:
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["setop"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels


def label_matcher(selector: str) -> Matcher:
    """Matches objects whose labels satisfy a selector such as `a=b,c!=d,e in (f,g),!h`."""
    requirements = []
    position = 0
    text = selector.strip()
    while position < len(text):
        match = _REQUIREMENT.match(text, position)
        if match is None or match.end() == position:
            raise bad_request(f"unable to parse requirement: found '{text[position:]}'")
        requirements.append(_requirement(match))
        position = match.end()

    def matches(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def _dotted(obj: Obj, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def field_matcher(selector: str) -> Matcher:
    """Matches `metadata.name=x,involvedObject.name!=y`-style field selectors on any dotted path."""
    checks: list[tuple[str, str, bool]] = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        found = re.fullmatch(r"([\w.]+)\s*(==|!=|=)\s*(.*)", term)
        if found is None:
            raise bad_request(f"invalid field selector: '{term}'")
        checks.append((found[1], found[3], found[2] == "!="))
    return lambda obj: all((_dotted(obj, path) == value) != negate for path, value, negate in checks)


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector object (matchLabels, matchExpressions) selects these labels."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        satisfied = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not satisfied:
            return False
    return True


# ---------------------------------------------------------------- patches and server-side apply

FieldPath = tuple[Any, ...]  # dict keys, or (merge key, value) pairs for items of keyed lists

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    key = _MERGE_KEYS.get(field_name)
    if field_name == "ports":
        key = "containerPort" if all(isinstance(i, dict) and "containerPort" in i for i in items) else "port"
    if key and items and all(isinstance(i, dict) and key in i for i in items):
        return key
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): null removes a key, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container_at(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def json_patch(document: Obj, operations: list[Obj]) -> Obj:
    """JSON patch (RFC 6902): add, remove, replace, test, copy, move."""
    result = copy.deepcopy(document)
    try:
        for operation in operations:
            op, parts = operation["op"], _pointer(operation["path"])
            parent, last = _container_at(result, parts[:-1]), parts[-1]
            if op == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
                if current != operation.get("value"):
                    raise ApiStatusError(422, "Invalid", f"test failed at {operation['path']}")
                continue
            if op in ("copy", "move"):
                from_parts = _pointer(operation["from"])
                from_parent = _container_at(result, from_parts[:-1])
                value = copy.deepcopy(
                    from_parent[int(from_parts[-1])] if isinstance(from_parent, list) else from_parent[from_parts[-1]]
                )
                if op == "move":
                    del from_parent[int(from_parts[-1]) if isinstance(from_parent, list) else from_parts[-1]]
            else:
                value = copy.deepcopy(operation.get("value"))
            if op in ("remove", "replace"):
                del parent[int(last) if isinstance(parent, list) else last]
            if op == "remove":
                continue
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), value)
            else:
                parent[last] = value
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise ApiStatusError(422, "Invalid", f"the JSON patch cannot be applied: {error!r}") from error
    return result


def _applied_fields(obj: Obj) -> Obj:
    """The part of an applied object whose fields a manager owns (identity fields are nobody's)."""
    owned = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    metadata = obj.get("metadata") or {}
    kept = {k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)}
    if kept:
        owned["metadata"] = kept
    return owned


def field_paths(value: Obj, prefix: FieldPath = ()) -> set[FieldPath]:
    paths: set[FieldPath] = set()
    for key, child in value.items():
        path = (*prefix, key)
        merge_key = _merge_key(key, child) if isinstance(child, list) else None
        if isinstance(child, dict) and child:
            paths |= field_paths(child, path)
        elif merge_key is not None:
            for item in child:
                item_path = (*path, (merge_key, item[merge_key]))
                paths.add(item_path)
                paths |= field_paths(item, item_path)
        else:
            paths.add(path)
    return paths


def _step(node: Any, step: Any) -> Any:
    if isinstance(step, tuple):
        key, value = step
        items = node if isinstance(node, list) else []
        return next((item for item in items if isinstance(item, dict) and item.get(key) == value), None)
    return node.get(step) if isinstance(node, dict) else None


def _value_at(obj: Obj, path: FieldPath) -> Any:
    node: Any = obj
    for step in path:
        node = _step(node, step)
    return node


def _remove_field(node: Any, path: FieldPath) -> None:
    """Remove the field at path, and the maps and lists left empty by its removal."""
    step, rest = path[0], path[1:]
    child = _step(node, step)
    if child is None:
        return
    if rest:
        _remove_field(child, rest)
        if child or not isinstance(child, dict | list):
            return
    if isinstance(step, tuple):
        node.remove(child)
    else:
        del node[step]


def apply_merge(target: Obj, applied: Obj) -> None:
    """Merge an applied configuration into target, lists of named things by their key."""
    for key, value in applied.items():
        current = target.get(key)
        merge_key = _merge_key(key, value) if isinstance(value, list) else None
        if isinstance(value, dict) and isinstance(current, dict):
            apply_merge(current, value)
        elif merge_key is not None and isinstance(current, list) and _merge_key(key, current) == merge_key:
            for item in value:
                existing = next((i for i in current if i.get(merge_key) == item[merge_key]), None)
                if existing is None:
                    current.append(copy.deepcopy(item))
                else:
                    apply_merge(existing, item)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


# ---------------------------------------------------------------- validation and defaults

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_LABEL_KINDS = {"Namespace", "Service"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _pod_spec_problems(spec: Any, where: str) -> list[str]:
    if not isinstance(spec, dict) or not spec.get("containers"):
        return [f"{where}.containers: Required value"]
    problems = []
    for index, container in enumerate(spec["containers"]):
        for required in ("name", "image"):
            if not container.get(required):
                problems.append(f"{where}.containers[{index}].{required}: Required value")
    return problems


def validate(rtype: ResourceType, obj: Obj) -> None:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name", "")
    problems = []
    pattern, limit = (_DNS_LABEL, 63) if rtype.kind in _DNS_LABEL_KINDS else (_SUBDOMAIN, 253)
    if not name:
        problems.append("metadata.name: Required value: name or generateName is required")
    elif len(name) > limit or not pattern.fullmatch(name):
        problems.append(f'metadata.name: Invalid value: "{name}": must be a lowercase RFC 1123 name')
    for value in (metadata.get("labels") or {}).values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            problems.append(f'metadata.labels: Invalid value: "{value}": a valid label value is at most 63 characters')
    spec = obj.get("spec") or {}
    if rtype.kind == "Pod":
        problems += _pod_spec_problems(spec, "spec")
    if rtype.kind in _WORKLOADS:
        template = spec.get("template") or {}
        problems += _pod_spec_problems(template.get("spec"), "spec.template.spec")
        template_labels = (template.get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):
            problems.append("spec.selector: Required value")
        elif not selector_matches(spec["selector"], template_labels):
            problems.append("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`")
    if rtype.kind == "Job" and ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") not in (
        "Never",
        "OnFailure",
    ):
        problems.append('spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"')
    if rtype.kind == "Lease":
        problems += _lease_problems(spec)
    if rtype.kind == "Ingress":
        problems += _ingress_host_problems(spec)
    if problems:
        raise invalid(rtype, name, problems)


_SUBDOMAIN_RULE = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
NODE_PORTS = range(30000, 32768)


def _ingress_host_problems(spec: Obj) -> list[str]:
    """A rule's host must be a DNS name, or a wildcard over one; its paths are not checked (ImplementationSpecific)."""
    problems = []
    for index, rule in enumerate(spec.get("rules") or ()):
        host = str(rule.get("host") or "")
        if host and not _SUBDOMAIN.fullmatch(host.removeprefix("*.")):
            problems.append(f'spec.rules[{index}].host: Invalid value: "{host}": {_SUBDOMAIN_RULE}')
    return problems


def _load_balancer_status_problems(rtype: ResourceType, obj: Obj) -> list[str]:
    """What the API server refuses in status.loadBalancer: an IP that is none, a hostname no DNS name."""
    if rtype.kind not in ("Service", "Ingress"):
        return []
    problems = []
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    for index, entry in enumerate(entries):
        where = f"status.loadBalancer.ingress[{index}]"
        if entry.get("ip"):
            try:
                ipaddress.ip_address(entry["ip"])
            except ValueError:
                problems.append(f'{where}.ip: Invalid value: "{entry["ip"]}": must be a valid IP address')
        hostname = entry.get("hostname")
        if hostname and not _SUBDOMAIN.fullmatch(hostname):
            problems.append(f'{where}.hostname: Invalid value: "{hostname}": {_SUBDOMAIN_RULE}')
    return problems


_MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|[+-]\d\d:\d\d)")


def _lease_problems(spec: Obj) -> list[str]:
    """What the API server refuses in a Lease's spec: a duration that is not positive, a time not a MicroTime."""
    problems = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        problems.append(f"spec.leaseDurationSeconds: Invalid value: {duration}: must be greater than 0")
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) and _MICRO_TIME.fullmatch(value)):
            problems.append(f'spec.{key}: Invalid value: "{value}": must be a MicroTime (RFC 3339, microseconds)')
    return problems


def _default_pod_spec(spec: Obj, *, restart_policy: str | None) -> None:
    if restart_policy:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        untagged_or_latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if untagged_or_latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def apply_defaults(rtype: ResourceType, obj: Obj) -> None:
    """The defaults a real API server fills in, where previewbot or the controllers read them."""
    spec = obj.setdefault("spec", {}) if rtype.kind in _WORKLOADS | {"Pod", "Service", "Namespace"} else {}
    template_spec = (spec.get("template") or {}).get("spec")
    if rtype.kind == "Pod":
        _default_pod_spec(spec, restart_policy="Always")
    elif isinstance(template_spec, dict):
        _default_pod_spec(template_spec, restart_policy=None if rtype.kind == "Job" else "Always")
    if rtype.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec.setdefault("replicas", 1)
    if rtype.kind == "Deployment":
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        )
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif rtype.kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    elif rtype.kind == "DaemonSet":
        spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    elif rtype.kind == "Job":
        for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1), ("suspend", False)):
            spec.setdefault(key, value)
        spec.setdefault("completionMode", "NonIndexed")
    elif rtype.kind == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                # Allocated once by a real API server; the same one each time here, from the port's identity.
                identity = f"{obj['metadata'].get('namespace')}/{obj['metadata'].get('name')}/{port.get('port')}"
                offset = int(hashlib.sha256(identity.encode()).hexdigest(), 16) % len(NODE_PORTS)
                port.setdefault("nodePort", NODE_PORTS[offset])
    elif rtype.kind == "Namespace":
        spec.setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# ---------------------------------------------------------------- RBAC

ADMIN = "emulated-admin"  # in system:masters: RBAC never asks
ADMIN_TOKEN = "emulated-token"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def groups_of(user: str) -> list[str]:
    if user == ADMIN:
        return ["system:masters", "system:authenticated"]
    if user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = user.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")[0]
        return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    return ["system:authenticated"]


def _subject_is(subject: Obj, user: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return user == f"{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace')}:{name}"
    if kind == "Group":
        return name in groups_of(user)
    return kind == "User" and name == user


def _rule_allows(rule: Obj, *, verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has("verbs", verb)
        and has("apiGroups", group)
        and has("resources", resource)
        and (not names or (name is not None and name in names))
    )


def forbidden(
    rtype: ResourceType, *, user: str, verb: str, resource: str, namespace: str | None, name: str | None
) -> ApiStatusError:
    """The API server's own words when RBAC says no."""
    subject = f'{rtype.qualified} "{name}"' if name else rtype.qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{rtype.group}" {scope}'
    )
    details: Obj = {
        "kind": rtype.plural,
        **({"name": name} if name else {}),
        **({"group": rtype.group} if rtype.group else {}),
    }
    return ApiStatusError(403, "Forbidden", message, details=details)


# ---------------------------------------------------------------- admission

_PSA_LEVELS = ("privileged", "baseline", "restricted")


def _containers_phrase(names: list[str], *, pod_too: bool = False) -> str:
    quoted = ", ".join(f'"{name}"' for name in names)
    noun = "container" if len(names) == 1 else "containers"
    return f"pod or {noun} {quoted}" if pod_too else f"{noun} {quoted}"


def pod_security_violations(spec: Obj, level: str) -> list[str]:
    """What Pod Security admission says of a pod spec at a level, in its words (the checks previewbot meets)."""
    if level not in ("baseline", "restricted"):
        return []
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    pod_context = spec.get("securityContext") or {}
    problems = []
    privileged = [c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if privileged:
        problems.append(f"privileged ({_containers_phrase(privileged)} must not set securityContext.privileged=true)")
    if level != "restricted":
        return problems
    escalating = [
        c["name"] for c in containers if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    if escalating:
        problems.append(
            f"allowPrivilegeEscalation != false ({_containers_phrase(escalating)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    capable = [
        c["name"]
        for c in containers
        if "ALL" not in (((c.get("securityContext") or {}).get("capabilities") or {}).get("drop") or [])
    ]
    if capable:
        problems.append(
            f"unrestricted capabilities ({_containers_phrase(capable)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    as_root = [
        c["name"]
        for c in containers
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True
    ]
    if as_root:
        problems.append(
            f"runAsNonRoot != true ({_containers_phrase(as_root, pod_too=True)} must set "
            "securityContext.runAsNonRoot=true)"
        )
    unconfined = [
        c["name"]
        for c in containers
        if ((c.get("securityContext") or {}).get("seccompProfile") or pod_context.get("seccompProfile") or {}).get(
            "type"
        )
        not in ("RuntimeDefault", "Localhost")
    ]
    if unconfined:
        problems.append(
            f"seccompProfile ({_containers_phrase(unconfined, pod_too=True)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
        )
    return problems


@dataclass(frozen=True, slots=True)
class DenyingPolicy:
    """A ValidatingAdmissionPolicy (bound under its own name) that denies writes of a kind that `denies` picks."""

    name: str
    kind: str
    message: str
    denies: Callable[[Obj], bool]

    def refusal(self, rtype: ResourceType, name: str) -> ApiStatusError:
        reason = f"ValidatingAdmissionPolicy '{self.name}' with binding '{self.name}' denied request: {self.message}"
        details = {**_details(rtype, name), "causes": [{"message": reason}]}
        return ApiStatusError(422, "Invalid", f'{rtype.qualified} "{name}" is forbidden: {reason}', details=details)


@dataclass(frozen=True, slots=True)
class DenyingWebhook:
    """A ValidatingWebhookConfiguration's webhook that denies every write of its kinds with a message.

    The API server answers its denial as it answers any webhook's: the code and reason of the Status the
    webhook sent (400 when it set none of 400 or more), its message after `admission webhook "<name>" denied
    the request`.
    """

    name: str
    kinds: frozenset[str]
    message: str
    code: int
    reason: str

    def refusal(self) -> ApiStatusError:
        message = f'admission webhook "{self.name}" denied the request: {self.message}'
        return ApiStatusError(max(self.code, 400), self.reason, message)


# ---------------------------------------------------------------- the store


@dataclass(slots=True)
class WatchEvent:
    resource_version: int
    kind: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    previous: Obj | None
    at: float  # time.monotonic() when it happened


@dataclass(slots=True)
class ContainerLog:
    """What one container wrote: the current run, and the one before its last restart."""

    current: str = ""
    previous: str | None = None


Key = tuple[str, str | None, str]  # kind, namespace, name
Manager = tuple[str, str]  # field manager, operation ("Apply" or "Update")


@dataclass(slots=True)
class Ownership:
    """The fields one manager set on one object, and when it last wrote."""

    fields: set[FieldPath]
    time: str


def _updater(field_manager: str | None, *, status_only: bool) -> tuple[Manager, set[FieldPath]] | None:
    """Who a non-apply write is recorded as; the fields it changed are filled in once they are known."""
    if field_manager is None or status_only:
        return None
    return (field_manager, "Update"), set()


def _changed_fields(before: Obj, after: Obj) -> set[FieldPath]:
    old, new = _applied_fields(before), _applied_fields(after)
    return {path for path in field_paths(new) if _value_at(old, path) != _value_at(new, path)}


def fields_v1(paths: set[FieldPath]) -> Obj:
    """Field paths in the FieldsV1 notation of metadata.managedFields."""
    tree: Obj = {}
    for path in paths:
        node = tree
        for step in path:
            if isinstance(step, tuple):
                name = "k:" + json.dumps({step[0]: step[1]}, separators=(",", ":"))
            else:
                name = f"f:{step}"
            node = node.setdefault(name, {})
    return tree


class KubeApiServer:
    """The emulated API server: state behind a lock, served over HTTP on a thread of its own.

    Tests and the test-only kubelet read and write the state directly through the methods
    below (no HTTP); previewbot's code goes through the URL with the kubernetes client.
    """

    def __init__(self, *, namespace_finalize_delay: float = 0.2) -> None:
        self.namespace_finalize_delay = namespace_finalize_delay
        # Seconds a change takes to reach the watches, as a real API server's watch cache trails its
        # storage; reads and lists see it at once.
        self.watch_lag = 0.0
        self.internal_errors: list[str] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[Key, Obj] = {}
        self._managers: dict[Key, dict[Manager, Ownership]] = {}
        self._events: list[WatchEvent] = []
        self._event_versions: list[int] = []
        self._version = 0
        self._compacted_through = 0
        self._finalize_due: dict[str, float] = {}
        self.logs: dict[tuple[str, str, str], ContainerLog] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path and query) of every HTTP request, as it came
        self.users: dict[str, str] = {ADMIN_TOKEN: ADMIN}  # bearer token -> user name; RBAC asks of all but ADMIN
        self.denying_policies: list[DenyingPolicy] = []
        self.denying_webhooks: list[DenyingWebhook] = []
        self.kubelet_reachable = True
        self.pods_go_when_their_log_is_asked_for = False  # as when a pod is deleted between its end and the log read
        self._request = threading.local()  # the warnings of the request being served
        self._stopping = False
        self._http = _HttpServer(self)
        self._threads = [
            threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-api"),
            threading.Thread(target=self._finalize_namespaces, name="kube-namespace-finalizer"),
        ]
        for name in ("default", "kube-system", "kube-public"):
            self.create("Namespace", {"metadata": {"name": name}})

    # ------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}"

    def start(self) -> KubeApiServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        self._http.shutdown()
        self._http.close_connections()
        self._http.server_close()
        for thread in self._threads:
            thread.join()

    # ------------------------------------------------------------ reading

    def get(self, kind: str, name: str, *, namespace: str | None = None) -> Obj | None:
        with self._lock:
            obj = self._objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(
        self, kind: str, *, namespace: str | None = None, label_selector: str = "", field_selector: str = ""
    ) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._select(kind, namespace, label_selector, field_selector)]

    def _select(self, kind: str, namespace: str | None, label_selector: str, field_selector: str) -> list[Obj]:
        by_labels, by_fields = label_matcher(label_selector), field_matcher(field_selector)
        return [
            obj
            for (obj_kind, obj_namespace, _), obj in sorted(self._objects.items(), key=lambda item: str(item[0]))
            if obj_kind == kind
            and (namespace is None or obj_namespace == namespace)
            and by_labels(obj)
            and by_fields(obj)
        ]

    def _existing(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get((rtype.kind, namespace, name))
        if obj is None:
            raise not_found(rtype, name)
        return obj

    # ------------------------------------------------------------ admission and RBAC

    def warn(self, text: str) -> None:
        """A warning for the client of the request being served (a Warning header)."""
        warnings = getattr(self._request, "warnings", None)
        if warnings is not None:
            warnings.append(text)

    def deny_with_webhook(
        self, name: str, message: str, *, kinds: Iterable[str], code: int = 0, reason: str = ""
    ) -> None:
        """From now on a validating admission webhook called `name` denies every write of `kinds` with `message`.

        `code` and `reason` are those of the Status the webhook answers with (many set none; some 403 Forbidden).
        """
        self.denying_webhooks.append(DenyingWebhook(name, frozenset(kinds), message, code, reason))

    def _admit(self, rtype: ResourceType, obj: Obj, *, creating: bool) -> None:
        """The admission plugins previewbot meets: policies, webhooks, Pod Security, and ResourceQuota's pod count."""
        metadata = obj.get("metadata") or {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace")
        for policy in self.denying_policies:
            if policy.kind == rtype.kind and policy.denies(obj):
                raise policy.refusal(rtype, name)
        for webhook in self.denying_webhooks:
            if rtype.kind in webhook.kinds:
                raise webhook.refusal()
        labels = ((self._objects.get(("Namespace", None, namespace)) or {}).get("metadata") or {}).get("labels") or {}
        enforce = labels.get("pod-security.kubernetes.io/enforce", "privileged")
        warn = labels.get("pod-security.kubernetes.io/warn", enforce)
        if rtype.kind == "Pod":
            if problems := pod_security_violations(obj.get("spec") or {}, enforce):
                raise ApiStatusError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: violates PodSecurity "{enforce}:latest": {", ".join(problems)}',
                    details=_details(rtype, name),
                )
            if creating:
                self._admit_pod_quota(rtype, name, namespace)
        template_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
        if rtype.kind in _WORKLOADS and isinstance(template_spec, dict):
            level = max(enforce, warn, key=lambda lvl: _PSA_LEVELS.index(lvl) if lvl in _PSA_LEVELS else 0)
            if problems := pod_security_violations(template_spec, level):
                self.warn(f'would violate PodSecurity "{level}:latest": {", ".join(problems)}')

    def _admit_pod_quota(self, rtype: ResourceType, name: str, namespace: str | None) -> None:
        pods = [
            pod
            for pod in self._select("Pod", namespace, "", "")
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        for quota in self._select("ResourceQuota", namespace, "", ""):
            hard = ((quota.get("spec") or {}).get("hard") or {}).get("pods")
            if hard is not None and len(pods) + 1 > int(hard):
                raise ApiStatusError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: exceeded quota: {quota["metadata"]["name"]}, '
                    f"requested: pods=1, used: pods={len(pods)}, limited: pods={hard}",
                    details=_details(rtype, name),
                )

    def allowed(
        self, user: str, *, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> bool:
        """RBAC's answer from the stored roles and bindings; ADMIN may do anything."""
        if user == ADMIN:
            return True
        with self._lock:
            bindings = [(binding, None) for binding in self._select("ClusterRoleBinding", None, "", "")] + [
                (binding, namespace)
                for binding in (self._select("RoleBinding", namespace, "", "") if namespace else [])
            ]
            for binding, scope in bindings:
                if not any(_subject_is(subject, user) for subject in binding.get("subjects") or []):
                    continue
                ref = binding.get("roleRef") or {}
                role = self._objects.get(
                    (ref.get("kind", ""), scope if ref.get("kind") == "Role" else None, ref.get("name", ""))
                )
                if any(
                    _rule_allows(rule, verb=verb, group=group, resource=resource, name=name)
                    for rule in (role or {}).get("rules") or []
                ):
                    return True
        return False

    def authorize(
        self,
        user: str,
        *,
        verb: str,
        rtype: ResourceType,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> None:
        resource = f"{rtype.plural}/{subresource}" if subresource else rtype.plural
        # A request on a namespace itself is authorized in that namespace, as on a real API server.
        scope = name if rtype.kind == "Namespace" and name else namespace
        if not self.allowed(user, verb=verb, group=rtype.group, resource=resource, namespace=scope, name=name):
            raise forbidden(rtype, user=user, verb=verb, resource=resource, namespace=scope, name=name)

    def check_escalation(self, user: str, binding: Obj, namespace: str | None) -> None:
        """Binding a role needs `bind` on it (holding all its permissions would do too; previewbot relies on bind)."""
        ref = binding.get("roleRef") or {}
        plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if self.allowed(
            user,
            verb="bind",
            group="rbac.authorization.k8s.io",
            resource=plural,
            namespace=namespace,
            name=ref.get("name"),
        ):
            return
        name = (binding.get("metadata") or {}).get("name", "")
        raise ApiStatusError(
            403,
            "Forbidden",
            f'rolebindings.rbac.authorization.k8s.io "{name}" is forbidden: user "{user}" '
            f"(groups={json.dumps(groups_of(user))}) is attempting to grant RBAC permissions not currently held",
            details={"name": name, "group": "rbac.authorization.k8s.io", "kind": "rolebindings"},
        )

    def review(self, user: str, review: Obj) -> Obj:
        """The answer to a SelfSubjectReview or SelfSubjectAccessReview."""
        if review.get("kind") == "SelfSubjectReview":
            status: Obj = {"userInfo": {"username": user, "groups": groups_of(user)}}
        else:
            attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
            resource = attributes.get("resource", "") + (
                f"/{attributes['subresource']}" if attributes.get("subresource") else ""
            )
            status = {
                "allowed": self.allowed(
                    user,
                    verb=attributes.get("verb", ""),
                    group=attributes.get("group", ""),
                    resource=resource,
                    namespace=attributes.get("namespace") or None,
                    name=attributes.get("name") or None,
                )
            }
        return {**review, "metadata": {"creationTimestamp": None}, "status": status}

    # ------------------------------------------------------------ writing

    def _commit(
        self,
        rtype: ResourceType,
        obj: Obj,
        *,
        previous: Obj | None,
        event: str,
        owner: tuple[Manager, set[FieldPath]] | None = None,
    ) -> Obj:
        """Store a write (and who made it: a manager takes its fields from the others) and tell the watches."""
        metadata = obj["metadata"]
        key: Key = (rtype.kind, metadata.get("namespace"), metadata["name"])
        self._version += 1
        metadata["resourceVersion"] = str(self._version)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        managers = self._managers.setdefault(key, {})
        if owner is not None:
            manager, paths = owner
            for ownership in managers.values():
                ownership.fields -= paths
            if manager[1] == "Update":
                paths = paths | (managers[manager].fields if manager in managers else set())
            managers[manager] = Ownership(paths, now_rfc3339())
        metadata["managedFields"] = [
            {
                "manager": name,
                "operation": operation,
                "apiVersion": rtype.api_version,
                "time": ownership.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(ownership.fields),
            }
            for (name, operation), ownership in managers.items()
            if ownership.fields
        ]
        if event == "DELETED":
            self._objects.pop(key, None)
            self._managers.pop(key, None)
        else:
            self._objects[key] = obj
        self._events.append(
            WatchEvent(self._version, rtype.kind, event, copy.deepcopy(obj), previous, at=time.monotonic())
        )
        self._event_versions.append(self._version)
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _check_namespace(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        if not rtype.namespaced:
            return
        if namespace is None:
            raise bad_request("the namespace of the object does not match the namespace on the request")
        owner = self._objects.get(("Namespace", None, namespace))
        if owner is None:
            raise not_found(_BY_KIND["Namespace"], namespace)
        if owner["metadata"].get("deletionTimestamp"):
            raise ApiStatusError(
                403,
                "Forbidden",
                f'{rtype.qualified} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                details=_details(rtype, name),
            )

    def create(
        self,
        kind: str,
        obj: Obj,
        *,
        namespace: str | None = None,
        manager: Manager | None = None,
        admit: bool = False,
    ) -> Obj:
        """Store a new object; with `admit`, through admission (quota, Pod Security, policies) as a client's is."""
        rtype = _BY_KIND[kind]
        with self._lock:
            new = copy.deepcopy(obj)
            metadata = new.setdefault("metadata", {})
            namespace = namespace or metadata.get("namespace")
            if rtype.namespaced:
                metadata["namespace"] = namespace
            else:
                metadata.pop("namespace", None)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
            name = metadata.get("name", "")
            for server_owned in ("resourceVersion", "deletionTimestamp", "managedFields"):
                metadata.pop(server_owned, None)
            metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
            if kind in _INITIAL_STATUS or "status" in rtype.subresources:
                new["status"] = copy.deepcopy(_INITIAL_STATUS.get(kind, {}))
            self._prepare_job(rtype, new)
            if kind == "ResourceQuota":  # what the quota controller writes at once; admission counts the rest
                new["status"] = {"hard": copy.deepcopy((new.get("spec") or {}).get("hard") or {}), "used": {}}
            apply_defaults(rtype, new)
            validate(rtype, new)
            if (kind, metadata.get("namespace"), name) in self._objects:
                raise ApiStatusError(
                    409,
                    "AlreadyExists",
                    f'{rtype.qualified} "{name}" already exists',
                    details=_details(rtype, name),
                )
            self._check_namespace(rtype, namespace, name)
            if admit:
                self._admit(rtype, new, creating=True)
            owner = (manager, field_paths(_applied_fields(obj))) if manager is not None else None
            created = self._commit(rtype, new, previous=None, event="ADDED", owner=owner)
            if kind == "Namespace":
                self._populate_namespace(name)
            return created

    @staticmethod
    def _prepare_job(rtype: ResourceType, job: Obj) -> None:
        """Label a Job's pods with its uid and select them by it, as the API server does."""
        if rtype.kind != "Job":
            return
        uid, name = job["metadata"]["uid"], job["metadata"].get("name", "")
        spec = job.setdefault("spec", {})
        generated = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        if not spec.get("selector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template_metadata = spec.setdefault("template", {}).setdefault("metadata", {})
        template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **generated}

    def _populate_namespace(self, namespace: str) -> None:
        """What a real control plane adds to every new namespace."""
        self.create("ServiceAccount", {"metadata": {"name": "default"}}, namespace=namespace)
        self.create(
            "ConfigMap",
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "emulated\n"}},
            namespace=namespace,
        )

    def _store_update(
        self,
        rtype: ResourceType,
        current: Obj,
        new: Obj,
        *,
        status_only: bool = False,
        check_version: bool = True,
        owner: tuple[Manager, set[FieldPath]] | None = None,
    ) -> Obj:
        """Write new over current, keeping identity and server fields, and status or spec per subresource."""
        metadata, old_metadata = new.setdefault("metadata", {}), current["metadata"]
        name = old_metadata["name"]
        sent_version = metadata.get("resourceVersion")
        if check_version and sent_version and sent_version != old_metadata["resourceVersion"]:
            raise conflict(
                rtype,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if metadata.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})"
            )
        if status_only:
            new = {**copy.deepcopy(current), "status": new.get("status", {})}
            problems = _load_balancer_status_problems(rtype, new)
            if problems:
                raise invalid(rtype, name, problems)
        else:
            if "status" in rtype.subresources or rtype.kind in _INITIAL_STATUS:
                new["status"] = copy.deepcopy(current.get("status", {}))
            for kept in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp", "name"):
                if kept in old_metadata:
                    new["metadata"][kept] = old_metadata[kept]
                else:
                    new["metadata"].pop(kept, None)
            apply_defaults(rtype, new)
            validate(rtype, new)
            if rtype.kind == "Job" and new["spec"].get("template") != current["spec"].get("template"):
                raise invalid(rtype, name, ["spec.template: Invalid value: field is immutable"])
            if _spec_part(new) != _spec_part(current):
                new["metadata"]["generation"] = old_metadata.get("generation", 1) + 1
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        new["metadata"]["resourceVersion"] = old_metadata["resourceVersion"]
        new["metadata"]["managedFields"] = old_metadata.get("managedFields", [])
        if new == current:  # a write that changes nothing keeps the resourceVersion, as on a real server
            return copy.deepcopy(current)
        if owner is not None and owner[0][1] == "Update":
            owner = (owner[0], _changed_fields(current, new))
        return self._commit(rtype, new, previous=copy.deepcopy(current), event="MODIFIED", owner=owner)

    def replace(
        self,
        kind: str,
        obj: Obj,
        *,
        namespace: str | None = None,
        status_only: bool = False,
        check_version: bool = True,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT: the whole object (or its status) replaced; a stale resourceVersion is a Conflict."""
        rtype = _BY_KIND[kind]
        with self._lock:
            name = obj.get("metadata", {}).get("name", "")
            current = self._existing(rtype, namespace if rtype.namespaced else None, name)
            return self._store_update(
                rtype,
                current,
                copy.deepcopy(obj),
                status_only=status_only,
                check_version=check_version,
                owner=_updater(field_manager, status_only=status_only),
            )

    def patch(
        self,
        kind: str,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        content_type: str = "application/merge-patch+json",
        field_manager: str | None = None,
        force: bool = False,
        status_only: bool = False,
    ) -> Obj:
        rtype = _BY_KIND[kind]
        namespace = namespace if rtype.namespaced else None
        with self._lock:
            if content_type.startswith("application/apply-patch"):
                return self._apply(rtype, name, body, namespace=namespace, field_manager=field_manager, force=force)
            current = self._existing(rtype, namespace, name)
            if content_type.startswith("application/json-patch"):
                if not isinstance(body, list):
                    raise bad_request("a JSON patch must be a list of operations")
                new = json_patch(current, body)
            else:
                if not isinstance(body, dict):
                    raise bad_request("a merge patch must be an object")
                new = merge_patch(current, body)
            return self._store_update(
                rtype, current, new, status_only=status_only, owner=_updater(field_manager, status_only=status_only)
            )

    def _apply(
        self,
        rtype: ResourceType,
        name: str,
        body: Any,
        *,
        namespace: str | None,
        field_manager: str | None,
        force: bool,
    ) -> Obj:
        if not field_manager:
            raise bad_request("PATCH with apply patch requires a fieldManager")
        if not isinstance(body, dict) or body.get("kind") != rtype.kind or body.get("apiVersion") != rtype.api_version:
            raise bad_request(f"the apply configuration must be a {rtype.api_version} {rtype.kind}")
        if body.get("metadata", {}).get("name") != name:
            raise bad_request(f"the name of the object does not match the name on the URL ({name})")
        key: Key = (rtype.kind, namespace, name)
        current = self._objects.get(key)
        if current is None:
            return self.create(rtype.kind, body, namespace=namespace, manager=(field_manager, "Apply"), admit=True)
        self._admit(rtype, {**body, "metadata": {**body["metadata"], "namespace": namespace}}, creating=False)
        managers = self._managers.get(key, {})
        new_fields = field_paths(_applied_fields(body))
        mine = managers.get((field_manager, "Apply"), Ownership(set(), "")).fields
        others = {
            path for manager, owned in managers.items() if manager != (field_manager, "Apply") for path in owned.fields
        }
        if not force:
            applied = _applied_fields(body)
            clashes = sorted(
                ".".join(map(str, path))
                for path in new_fields & others
                if _value_at(current, path) != _value_at(applied, path)
            )
            if clashes:
                raise conflict(rtype, name, f"Apply failed with {len(clashes)} conflicts: {', '.join(clashes)}")
        new = copy.deepcopy(current)
        for stale in mine - new_fields - others:
            _remove_field(new, stale)
        apply_merge(new, _applied_fields(body))
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._store_update(rtype, current, new, owner=((field_manager, "Apply"), new_fields))

    def delete(self, kind: str, name: str, *, namespace: str | None = None, propagation: str | None = None) -> Obj:
        """Delete now (a Namespace goes Terminating first); returns what a DELETE answers."""
        rtype = _BY_KIND[kind]
        namespace = namespace if rtype.namespaced else None
        with self._lock:
            current = self._existing(rtype, namespace, name)
            if kind == "Namespace":
                if not current["metadata"].get("deletionTimestamp"):
                    terminating = copy.deepcopy(current)
                    terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
                    terminating["status"] = {"phase": "Terminating"}
                    self._finalize_due[name] = time.monotonic() + self.namespace_finalize_delay
                    return self._commit(rtype, terminating, previous=copy.deepcopy(current), event="MODIFIED")
                return copy.deepcopy(current)
            self._remove(rtype, current, propagation=propagation)
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {**_details(rtype, name), "uid": current["metadata"]["uid"]},
            }

    def _remove(self, rtype: ResourceType, obj: Obj, *, propagation: str | None) -> None:
        metadata = obj["metadata"]
        self._commit(rtype, copy.deepcopy(obj), previous=copy.deepcopy(obj), event="DELETED")
        if rtype.kind == "Pod":
            for log_key in [k for k in self.logs if k[:2] == (metadata["namespace"], metadata["name"])]:
                del self.logs[log_key]
        orphan = propagation == "Orphan" or (propagation is None and rtype.kind in _ORPHAN_BY_DEFAULT)
        for dependent_key, dependent in list(self._objects.items()):
            references = dependent["metadata"].get("ownerReferences") or []
            if dependent_key[1] != metadata.get("namespace") or not any(
                r.get("uid") == metadata["uid"] for r in references
            ):
                continue
            dependent_type = _BY_KIND[dependent_key[0]]
            if orphan:
                released = copy.deepcopy(dependent)
                released["metadata"]["ownerReferences"] = [r for r in references if r.get("uid") != metadata["uid"]]
                self._commit(dependent_type, released, previous=copy.deepcopy(dependent), event="MODIFIED")
            else:
                self._remove(dependent_type, dependent, propagation=propagation)

    def delete_collection(
        self,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        propagation: str | None = None,
    ) -> list[Obj]:
        with self._lock:
            doomed = self._select(kind, namespace, label_selector, field_selector)
            for obj in doomed:
                if (kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]) in self._objects:
                    self.delete(
                        kind,
                        obj["metadata"]["name"],
                        namespace=obj["metadata"].get("namespace"),
                        propagation=propagation,
                    )
            return copy.deepcopy(doomed)

    def _finalize_namespaces(self) -> None:
        """Empty and remove Terminating namespaces once their finalize delay is over."""
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                for name in [n for n, due in self._finalize_due.items() if due <= now]:
                    del self._finalize_due[name]
                    for key, obj in list(self._objects.items()):
                        if key[1] == name and key in self._objects:
                            self._remove(_BY_KIND[key[0]], obj, propagation="Background")
                    namespace = self._objects.get(("Namespace", None, name))
                    if namespace is not None:
                        self._remove(_BY_KIND["Namespace"], namespace, propagation="Background")
                wait = min(self._finalize_due.values(), default=now + 1.0) - now
                self._changed.wait(max(wait, 0.001))

    # ------------------------------------------------------------ watches

    def compact(self) -> None:
        """Forget the history so far, as etcd compaction does: older resourceVersions now get 410 Expired."""
        with self._lock:
            self._compacted_through = self._version

    def watch(
        self,
        kind: str,
        *,
        namespace: str | None,
        resource_version: str | None,
        matches: Matcher,
        timeout: float,
        client_gone: Callable[[], bool] = lambda: False,
    ) -> Iterator[Obj]:
        """Events after resource_version (or the current objects as ADDED first), until timeout, stop, or
        the client going away (as a real API server ends a watch whose connection closed)."""
        deadline = time.monotonic() + timeout

        def relevant(obj: Obj) -> bool:
            return obj["kind"] == kind and (namespace is None or obj["metadata"].get("namespace") == namespace)

        expired: ApiStatusError | None = None
        with self._lock:
            if resource_version in (None, "", "0"):
                initial = [copy.deepcopy(o) for o in self._select(kind, namespace, "", "") if matches(o)]
                position = len(self._events)
            elif int(resource_version) < self._compacted_through:
                expired = ApiStatusError(
                    410, "Expired", f"too old resource version: {resource_version} ({self._compacted_through})"
                )
                initial, position = [], len(self._events)
            else:
                initial = []
                position = bisect.bisect_right(self._event_versions, int(resource_version))
        if expired is not None:
            yield {"type": "ERROR", "object": expired.body()}
            return
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._lock:
                while position == len(self._events) and not self._stopping and time.monotonic() < deadline:
                    self._changed.wait(min(deadline - time.monotonic(), CLIENT_CHECK_SECONDS))
                    if client_gone():
                        return
                batch, position = self._events[position:], len(self._events)
                if self._stopping or not batch:
                    return
            for event in batch:
                if not relevant(event.obj):
                    continue
                time.sleep(max(0.0, event.at + self.watch_lag - time.monotonic()))
                translated = _selected_event(event, matches)
                if translated is not None:
                    yield {"type": translated, "object": event.obj}

    # ------------------------------------------------------------ logs

    def append_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        with self._lock:
            self.logs.setdefault((namespace, pod, container), ContainerLog()).current += text

    def restart_log(self, namespace: str, pod: str, container: str) -> None:
        """A container starts (again): its last run becomes the previous log."""
        with self._lock:
            log = self.logs.get((namespace, pod, container))
            if log is None:
                self.logs[(namespace, pod, container)] = ContainerLog()
            else:
                log.previous, log.current = log.current, ""

    def read_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None,
        tail_lines: int | None,
        previous: bool = False,
    ) -> str:
        with self._lock:
            obj = self._existing(_BY_KIND["Pod"], namespace, pod)
            containers = [c["name"] for c in obj["spec"]["containers"]]
            if container is None:
                if len(containers) != 1:
                    choices = " ".join(containers)
                    raise bad_request(f"a container name must be specified for pod {pod}, choose one of: [{choices}]")
                container = containers[0]
            if container not in containers:
                raise bad_request(f"container {container} is not valid for pod {pod}")
            log = self.logs.get((namespace, pod, container))
            text = None if log is None else log.previous if previous else log.current
            if text is None:
                raise bad_request(self._not_started(obj, pod, container, previous=previous))
            lines = text.splitlines(keepends=True)
            return "".join(lines if tail_lines is None else lines[len(lines) - min(tail_lines, len(lines)) :])

    @staticmethod
    def _not_started(pod_obj: Obj, pod: str, container: str, *, previous: bool) -> str:
        if previous:
            return f'previous terminated container "{container}" in pod "{pod}" not found'
        statuses = pod_obj.get("status", {}).get("containerStatuses") or []
        waiting = next((s.get("state", {}).get("waiting") for s in statuses if s["name"] == container), None)
        reason = (waiting or {}).get("reason", "ContainerCreating")
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            reason = "trying and failing to pull image"
        return f'container "{container}" in pod "{pod}" is waiting to start: {reason}'


def _selected_event(event: WatchEvent, matches: Matcher) -> str | None:
    """The event a selective watch sees: an object moving into or out of the selection is ADDED or DELETED."""
    now_in = matches(event.obj)
    if event.type != "MODIFIED":
        return event.type if now_in else None
    was_in = event.previous is not None and matches(event.previous)
    if now_in:
        return "MODIFIED" if was_in else "ADDED"
    return "DELETED" if was_in else None


def template_hash(template: Obj) -> str:
    """A short, stable digest of a pod template, as pod-template-hash and revision labels carry."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return digest[:10]


# ---------------------------------------------------------------- HTTP


def _discovery_resources(group: str, version: str) -> list[Obj]:
    listed: list[Obj] = []
    for rtype in RESOURCES:
        if (rtype.group, rtype.version) != (group, version):
            continue
        singular = rtype.kind.lower()
        listed.append(
            {
                "name": rtype.plural,
                "singularName": singular,
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": _VERBS,
                **({"shortNames": list(rtype.short_names)} if rtype.short_names else {}),
            }
        )
        for sub in rtype.subresources:
            verbs = ["get"] if sub == "log" else ["update"] if sub == "finalize" else ["get", "patch", "update"]
            kind = "Scale" if sub == "scale" else rtype.kind
            listed.append(
                {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }
            )
    return listed


def _group_entry(group: str) -> Obj:
    versions = [
        {"groupVersion": f"{group}/{version}", "version": version} for g, version in _GROUP_VERSIONS if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


@dataclass(slots=True)
class _Route:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # joined on close, so no request thread outlives the test
    # Connections not yet accepted that the listening socket holds, as many as a real API server's
    # would: with socketserver's 5, a client opening a dozen at once waits a second for a SYN resent.
    request_queue_size = 128

    def __init__(self, api: KubeApiServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """Wake the request threads idling on kept-alive connections so that they end."""
        with self._connections_lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    continue


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't hold the second back
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        try:
            super().finish()
        except OSError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: a test's output stays about the test."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------ plumbing

    def _send(self, code: int, body: bytes, *, content_type: str = "application/json") -> None:
        self.send_response(code)
        for warning in getattr(self.server.api._request, "warnings", None) or []:
            self.send_header("Warning", '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, code: int, payload: Any) -> None:
        self._send(code, json.dumps(payload).encode())

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            if (self.headers.get("Content-Type") or "").startswith("application/apply-patch"):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as error:
            raise bad_request(f"the request body is not valid: {error}") from error

    def _dispatch(self, method: str) -> None:
        self.server.api.requests.append((method, self.path))
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        self.server.api._request.warnings = []
        try:
            body = self._body()
            self._route(method, [p for p in url.path.split("/") if p], query, body)
        except ApiStatusError as error:
            self._send_json(error.code, error.body())
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception:
            self.server.api.internal_errors.append(traceback.format_exc())
            self._send_json(
                500, ApiStatusError(500, "InternalError", "the emulator failed; see internal_errors").body()
            )

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> None:
        if parts == ["version"]:
            self._send_json(
                200,
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-previewbot-emulator",
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2024-08-13T00:00:00Z",
                    "goVersion": "go1.22.5",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
            return
        if parts == ["api"]:
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {
                            "clientCIDR": "0.0.0.0/0",
                            "serverAddress": self.server.api.url.removeprefix("http://"),
                        }
                    ],
                },
            )
            return
        if parts == ["apis"]:
            groups = sorted({g for g, _ in _GROUP_VERSIONS if g})
            self._send_json(
                200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_entry(g) for g in groups]}
            )
            return
        if len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in _GROUP_VERSIONS):
            self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(parts[1])})
            return
        group, version, rest = (
            ("", parts[1], parts[2:])
            if parts[:1] == ["api"] and len(parts) > 1
            else ((parts[1], parts[2], parts[3:]) if parts[:1] == ["apis"] and len(parts) > 2 else ("", "", []))
        )
        if (group, version) not in _GROUP_VERSIONS:
            raise ApiStatusError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            self._send_json(
                200,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version,
                    "resources": _discovery_resources(group, version),
                },
            )
            return
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in _BY_PATH:
            namespace, rest = rest[1], rest[2:]
        rtype = _BY_PATH.get((group, version, rest[0]))
        if rtype is None or len(rest) > 3 or (len(rest) == 3 and rest[2] not in rtype.subresources):
            raise ApiStatusError(404, "NotFound", "the server could not find the requested resource")
        route = _Route(rtype, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)
        self._serve(method, route, query, body)

    def _user(self) -> str:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        user = self.server.api.users.get(token)
        if user is None:
            raise ApiStatusError(401, "Unauthorized", "Unauthorized")
        return user

    def _verb(self, method: str, route: _Route, query: dict[str, str]) -> str:
        if method == "GET":
            return "watch" if query.get("watch") in ("true", "1") else "get" if route.name else "list"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]

    def _authorize(self, method: str, route: _Route, query: dict[str, str], body: Any) -> str:
        """RBAC on the request, as the API server's authorizer and RBAC admission see it; the user."""
        api, user = self.server.api, self._user()
        if route.rtype.kind in _REVIEWS:
            return user  # every authenticated user may ask about itself
        verb = self._verb(method, route, query)
        api.authorize(
            user,
            verb=verb,
            rtype=route.rtype,
            subresource=route.subresource,
            namespace=route.namespace,
            name=route.name,
        )
        applying = (self.headers.get("Content-Type") or "").startswith("application/apply-patch")
        if (
            method == "PATCH"
            and applying
            and api.get(route.rtype.kind, route.name or "", namespace=route.namespace) is None
        ):
            api.authorize(
                user, verb="create", rtype=route.rtype, subresource=None, namespace=route.namespace, name=route.name
            )
        if (
            route.rtype.kind in ("RoleBinding", "ClusterRoleBinding")
            and method in ("POST", "PUT", "PATCH")
            and isinstance(body, dict)
        ):
            api.check_escalation(user, body, route.namespace)
        return user

    def _serve(self, method: str, route: _Route, query: dict[str, str], body: Any) -> None:
        api, rtype, kind = self.server.api, route.rtype, route.rtype.kind
        namespace, name = route.namespace, route.name
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        user = self._authorize(method, route, query, body)
        if method == "POST" and kind in _REVIEWS:
            self._send_json(201, api.review(user, body if isinstance(body, dict) else {}))
        elif method == "GET" and query.get("watch") in ("true", "1"):
            if name is not None:
                fields = ",".join(filter(None, [fields, f"metadata.name={name}"]))
            self._stream_watch(kind, namespace, query, label_matcher(labels), field_matcher(fields))
        elif method == "GET" and name is None:
            with api._lock:
                items = api.objects(kind, namespace=namespace, label_selector=labels, field_selector=fields)
                version = str(api._version)
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            self._send_json(
                200,
                {
                    "kind": f"{kind}List",
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": version},
                    "items": items,
                },
            )
        elif method == "GET" and route.subresource == "log":
            if api.pods_go_when_their_log_is_asked_for and api.get("Pod", name or "", namespace=namespace):
                api.delete("Pod", name or "", namespace=namespace)
            if not api.kubelet_reachable:
                container = query.get("container", "")
                raise ApiStatusError(
                    500,
                    "",
                    f'Get "https://127.0.0.1:10250/containerLogs/{namespace}/{name}/{container}": '
                    "dial tcp 127.0.0.1:10250: connect: connection refused",
                )
            tail = query.get("tailLines")
            text = api.read_log(
                namespace or "",
                name or "",
                container=query.get("container"),
                tail_lines=int(tail) if tail else None,
                previous=query.get("previous") == "true",
            )
            self._send(200, text.encode(), content_type="text/plain")
        elif method == "GET":
            obj = api.get(kind, name or "", namespace=namespace)
            if obj is None:
                raise not_found(rtype, name or "")
            self._send_json(200, obj)
        elif method == "POST" and name is None:
            self._check_body(body, route)
            self._send_json(
                201, api.create(kind, body, namespace=namespace, manager=(self._manager(query), "Update"), admit=True)
            )
        elif method == "PUT" and name is not None:
            self._check_body(body, route)
            self._send_json(
                200,
                api.replace(
                    kind,
                    body,
                    namespace=namespace,
                    status_only=route.subresource == "status",
                    field_manager=self._manager(query),
                ),
            )
        elif method == "PATCH" and name is not None:
            created = api.get(kind, name, namespace=namespace) is None
            content_type = self.headers.get("Content-Type") or "application/merge-patch+json"
            applying = content_type.startswith("application/apply-patch")
            result = api.patch(
                kind,
                name,
                body,
                namespace=namespace,
                content_type=content_type,
                field_manager=query.get("fieldManager") if applying else self._manager(query),
                force=query.get("force") == "true",
                status_only=route.subresource == "status",
            )
            self._send_json(201 if created else 200, result)
        elif method == "DELETE":
            options = body if isinstance(body, dict) else {}
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
            if options.get("orphanDependents") is True:
                propagation = "Orphan"
            if name is None:
                items = api.delete_collection(
                    kind,
                    namespace=namespace,
                    label_selector=labels,
                    field_selector=fields,
                    propagation=propagation,
                )
                self._send_json(
                    200,
                    {"kind": f"{kind}List", "apiVersion": rtype.api_version, "metadata": {}, "items": items},
                )
            else:
                self._send_json(200, api.delete(kind, name, namespace=namespace, propagation=propagation))
        else:
            raise ApiStatusError(405, "MethodNotAllowed", f"the server does not allow this method on {rtype.qualified}")

    def _manager(self, query: dict[str, str]) -> str:
        """The field manager a write is recorded under: as asked, or the client's name from its User-Agent."""
        return query.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]

    @staticmethod
    def _check_body(body: Any, route: _Route) -> None:
        if not isinstance(body, dict):
            raise bad_request("the request body must be an object")
        sent_namespace = (body.get("metadata") or {}).get("namespace")
        if route.rtype.namespaced and sent_namespace and sent_namespace != route.namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")

    def _client_gone(self) -> bool:
        """Whether the client closed the connection: it sends nothing while it reads a watch."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        try:
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _stream_watch(
        self, kind: str, namespace: str | None, query: dict[str, str], by_labels: Matcher, by_fields: Matcher
    ) -> None:
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        events = self.server.api.watch(
            kind,
            namespace=namespace,
            resource_version=query.get("resourceVersion"),
            matches=lambda obj: by_labels(obj) and by_fields(obj),
            timeout=timeout,
            client_gone=self._client_gone,
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for event in events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

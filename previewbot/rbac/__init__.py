"""The RBAC previewbot needs, from one source (rules.yaml), as the manifests a platform team applies.

Cluster-wide, previewbot may only manage namespaces and bind its own `preview` ClusterRole; what it
does inside a preview namespace it may do there only, through the RoleBinding it creates right
after the namespace. The webhook server's Helm chart renders the same rules from the same file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from previewbot import yamlfast

RULES_FILE = Path(__file__).with_name("rules.yaml")
RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

Rule = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """rules.yaml, read."""

    name: str  # the default NAME of the roles and bindings
    cluster_rules: tuple[Rule, ...]
    preview_rules: tuple[Rule, ...]
    applied_verbs: tuple[str, ...]
    guardrails: tuple[tuple[str, str], ...]  # (apiVersion, kind), always applied
    applied_resources: Mapping[tuple[str, str], str]  # (apiVersion, kind) -> plural resource
    secrets_verbs: tuple[str, ...]


@functools.cache
def rules() -> Rules:
    document = yamlfast.load(RULES_FILE.read_text())
    cluster, preview, secrets = document["cluster"], document["preview"], document["secretSources"]
    applied = preview["applied"]
    return Rules(
        name=document["name"],
        cluster_rules=tuple(cluster["rules"]),
        preview_rules=tuple(preview["rules"]),
        applied_verbs=tuple(applied["verbs"]),
        guardrails=tuple((k["apiVersion"], k["kind"]) for k in applied["guardrails"]),
        applied_resources={
            (k["apiVersion"], k["kind"]): k["resource"] for k in [*applied["guardrails"], *applied["known"]]
        },
        secrets_verbs=tuple(secrets["verbs"]),
    )


def preview_role(name: str) -> str:
    """The ClusterRole previewbot binds itself to inside each preview namespace."""
    return f"{name}-preview"


def cluster_rules(name: str) -> list[Rule]:
    """The cluster-wide rules, with `bind` on the preview ClusterRole of this NAME."""
    return [
        {
            key: [preview_role(name) if value == "NAME-preview" else value for value in values]
            if key == "resourceNames"
            else values
            for key, values in rule.items()
        }
        for rule in rules().cluster_rules
    ]


def guess_resource(kind: str) -> str:
    """The plural resource of a kind the rules do not list, guessed the way Kubernetes' RESTMapper does."""
    singular = kind.lower()
    if singular.endswith(("s", "x", "z", "ch", "sh")):
        return singular + "es"
    if singular.endswith("y") and singular[-2:-1] not in ("a", "e", "i", "o", "u"):
        return singular[:-1] + "ies"
    return singular + "s"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def preview_rules(kinds: Iterable[tuple[str, str]] = ()) -> list[Rule]:
    """The rules of the preview ClusterRole: the fixed ones, then the applied kinds (the guardrails and `kinds`)."""
    known = rules()
    resources: dict[str, set[str]] = {}
    for api_version, kind in [*known.guardrails, *kinds]:
        resource = known.applied_resources.get((api_version, kind)) or guess_resource(kind)
        resources.setdefault(_group(api_version), set()).add(resource)
    applied = [
        {"apiGroups": [group], "resources": sorted(names), "verbs": list(known.applied_verbs)}
        for group, names in sorted(resources.items())
    ]
    return [*(dict(rule) for rule in known.preview_rules), *applied]


def subject(username: str) -> dict[str, str]:
    """The RBAC subject of an authenticated user name: a ServiceAccount's, or a User's."""
    if username.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        return {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": username}


def preview_binding(
    namespace: str, *, name: str, subject: Mapping[str, str], labels: Mapping[str, str]
) -> dict[str, Any]:
    """The RoleBinding that grants previewbot the preview ClusterRole inside one preview namespace."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": preview_role(name)},
        "subjects": [dict(subject)],
    }


def manifests(
    *,
    subject: Mapping[str, str],
    name: str | None = None,
    kinds: Iterable[tuple[str, str]] = (),
    secret_sources: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Everything a platform team applies once: the two ClusterRoles, the binding, and Roles to read copied Secrets.

    `name` is NAME (rules.yaml's by default); `secret_sources` are the `namespace/name`s of namespace.secrets.
    """
    known = rules()
    name = name or known.name
    labels = {"app.kubernetes.io/name": "previewbot"}
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": cluster_rules(name),
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [dict(subject)],
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRole",
            "metadata": {"name": preview_role(name), "labels": labels},
            "rules": preview_rules(kinds),
        },
    ]
    by_namespace: dict[str, set[str]] = {}
    for source in secret_sources:
        namespace, _, secret = source.partition("/")
        by_namespace.setdefault(namespace, set()).add(secret)
    for namespace, secrets in sorted(by_namespace.items()):
        metadata = {"name": f"{name}-secrets", "namespace": namespace, "labels": labels}
        documents.append(
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "Role",
                "metadata": metadata,
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "resourceNames": sorted(secrets),
                        "verbs": list(known.secrets_verbs),
                    }
                ],
            }
        )
        documents.append(
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "RoleBinding",
                "metadata": metadata,
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": f"{name}-secrets"},
                "subjects": [dict(subject)],
            }
        )
    return documents

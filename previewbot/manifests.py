"""The repo's manifests made into a preview's objects: variables filled in, placed, labelled, pinned.

Pure: reads the files the config names under the checkout's root and returns plain dicts
ready for server-side apply; nothing here talks to a cluster. Every refusal is a
ManifestError (or a ConfigError for the config's own templates) that names the file,
the document and the object.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from previewbot import naming, yamlfast
from previewbot.config import (
    DEFAULT_PATH,
    VARIABLE_REFERENCE,
    Helm,
    Image,
    Limits,
    PreviewConfig,
    Quota,
    Resources,
    referenced_variables,
    unknown_variable_message,
)
from previewbot.errors import ConfigError, ManifestError
from previewbot.model import ObjectRef, OnDemand, Previewed
from previewbot.paths import is_inside, path_in_repo

SHORT_SHA_LENGTH = 7
BRANCH_SLUG_LENGTH = 40

QUOTA_NAME = "previewbot-quota"
LIMITS_NAME = "previewbot-limits"
ISOLATION_NAME = "previewbot-isolation"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
"""Kinds whose rollout previewbot waits for."""

_POD_TEMPLATE_KINDS = frozenset({*WORKLOAD_KINDS, "ReplicaSet", "ReplicationController", "Job"})

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
"""Kinds that live outside any namespace: a preview may not create them, they would outlive it."""

_DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class KeptReference:
    """A ${NAME} that previewbot left as written, because it is none of its variables."""

    where: str  # file:line, or the object and key of a built object or a config value
    name: str

    def __str__(self) -> str:
        return f"{self.where}: ${{{self.name}}}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """A preview's objects, ready to apply, and what the core needs to wait for and prune them."""

    objects: tuple[dict[str, Any], ...]
    locations: tuple[str, ...]  # where each object is, as messages name it: "web.yaml, document 2 (Pod/web)"
    workloads: tuple[ObjectRef, ...]  # Deployments, StatefulSets, DaemonSets, in manifest order
    kinds: tuple[tuple[str, str], ...]  # (apiVersion, kind) seen, in manifest order
    origin: str  # where they came from: the manifests, the chart, the overlay
    kept: tuple[KeptReference, ...] = ()  # the ${NAME}s left as written, none of previewbot's variables
    skipped: tuple[str, ...] = ()  # what the source held that a preview does not deploy, and why


# ---------------------------------------------------------------- variables


def pr_number(previewed: Previewed) -> str:
    """${PR_NUMBER}: the PR's number, or the name of an on-demand preview, which has no PR.

    The name is a DNS label of the preview's own, never of digits alone, so the URLs, hosts and
    tags a config makes from ${PR_NUMBER} stay apart from every other preview's, PRs' included.
    """
    return previewed.name if isinstance(previewed, OnDemand) else str(previewed.number)


def preview_variables(*, pr: Previewed, namespace: str, url: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    """The ${NAME}s of one deploy: the built-in ones, then the config's `variables` filled in from them."""
    builtins = {
        "PR_NUMBER": pr_number(pr),
        "SHA": pr.head_sha,
        "SHORT_SHA": pr.head_sha[:SHORT_SHA_LENGTH],
        "BRANCH_SLUG": naming.dns_label(pr.head_ref, limit=BRANCH_SLUG_LENGTH),
        "NAMESPACE": namespace,
        "REPO": pr.repo,
        "REPO_NAME": pr.repo.split("/")[-1],
        "PREVIEW_URL": url or "",
    }
    redefined = [name for name in extra if name in builtins]
    if redefined:
        raise ConfigError(
            DEFAULT_PATH,
            [
                f"{DEFAULT_PATH}: variables.{name}: ${{{name}}} is built in and cannot be redefined"
                for name in redefined
            ],
        )
    variables = dict(builtins)
    for name, value in extra.items():
        variables[name] = _fill_config(value, builtins, key=f"variables.{name}")
    return variables


def preview_url(config: PreviewConfig, variables: Mapping[str, str]) -> str | None:
    """The preview's URL from config.url, or None when the config has none.

    It is made before PREVIEW_URL exists: pass the built-in variables (as preview_variables
    gives them with url=None); the config's own variables are filled in here as needed.
    Then call preview_variables again with the URL.
    """
    if config.url is None:
        return None
    known = {name: value for name, value in variables.items() if name != "PREVIEW_URL"}
    for name, value in config.variables.items():
        if name not in known and "PREVIEW_URL" not in referenced_variables(value):
            known[name] = _fill_config(value, known, key=f"variables.{name}")
    return _fill_config(config.url, known, key="url")


def deployment_environment(config: PreviewConfig, variables: Mapping[str, str]) -> str:
    """The GitHub Deployment environment of this preview, from config.environment."""
    return _fill_config(config.environment, variables, key="environment")


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """text with each ${NAME} of variables filled in and each $${NAME} turned into a literal ${NAME}.

    Every other ${NAME} stays exactly as written: shell scripts and config templates inside
    manifests use them too. render_manifests lists them in Rendered.kept.
    """
    return _fill(text, variables)[0]


def _fill(template: str, variables: Mapping[str, str]) -> tuple[str, list[tuple[int, str]]]:
    """The template filled in, and the (line, name) of each reference that variables lacks."""
    unknown: list[tuple[int, str]] = []

    def replace(match: re.Match[str]) -> str:
        escape, name = match.groups()
        if escape:
            return match.group(0)[1:]
        if name in variables:
            return variables[name]
        unknown.append((template.count("\n", 0, match.start()) + 1, name))
        return match.group(0)

    return VARIABLE_REFERENCE.sub(replace, template), unknown


def _fill_kept(text: str, variables: Mapping[str, str], *, source: str) -> tuple[str, list[KeptReference]]:
    """text filled in, and each ${NAME} left as written, named by source and line."""
    filled, unknown = _fill(text, variables)
    return filled, [KeptReference(f"{source}:{line}", name) for line, name in unknown]


def _fill_strings(value: Any, variables: Mapping[str, str], *, where: str, kept: list[KeptReference]) -> Any:
    """value with the variables filled in each text inside it, keys and structure unchanged.

    For YAML already parsed, where filling in the text could change a value's type
    (`PR: ${PR_NUMBER}` would become the number 42).
    """
    if isinstance(value, str):
        filled, unknown = _fill(value, variables)
        kept += [KeptReference(where, name) for _, name in unknown]
        return filled
    if isinstance(value, dict):
        return {key: _fill_strings(item, variables, where=f"{where}.{key}", kept=kept) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill_strings(item, variables, where=f"{where}[{i}]", kept=kept) for i, item in enumerate(value)]
    return value


def _fill_config(template: str, variables: Mapping[str, str], *, key: str) -> str:
    """A template from .preview.yml filled in; what it lacks is the config's fault, so a ConfigError."""
    filled, unknown = _fill(template, variables)
    if unknown:
        raise ConfigError(
            DEFAULT_PATH,
            [f"{DEFAULT_PATH}: {key}: {unknown_variable_message(name, variables)}" for _, name in unknown],
        )
    return filled


# ---------------------------------------------------------------- images


def image_repository(reference: str) -> str:
    """The repository of an image reference: its tag and digest dropped, a registry's port kept."""
    repository = reference.split("@", 1)[0]
    last_slash = repository.rfind("/")
    colon = repository.find(":", last_slash + 1)
    return repository if colon < 0 else repository[:colon]


def pin_images(obj: Mapping[str, Any], images: Sequence[Image], variables: Mapping[str, str]) -> dict[str, Any]:
    """A copy of obj whose containers running one of images' repositories run the PR's tag of it.

    Containers and init containers of Pods, of workload and Job pod templates and of
    CronJobs' job templates are pinned, whatever tag or digest they had.
    """
    tags = {image.name: _rendered_tag(index, image, variables) for index, image in enumerate(images)}
    pinned = copy.deepcopy(dict(obj))
    for _, template in pod_templates(pinned):
        pod_spec = template.get("spec")
        if not isinstance(pod_spec, dict):
            continue
        for key in ("initContainers", "containers"):
            containers = pod_spec.get(key)
            for container in containers if isinstance(containers, list) else ():
                image = container.get("image") if isinstance(container, dict) else None
                if isinstance(image, str) and image_repository(image) in tags:
                    repository = image_repository(image)
                    container["image"] = f"{repository}:{tags[repository]}"
    return pinned


def _rendered_tag(index: int, image: Image, variables: Mapping[str, str]) -> str:
    tag = _fill_config(image.tag, variables, key=f"images[{index}].tag")
    if not _DOCKER_TAG.match(tag):
        raise ManifestError(
            f"images[{index}].tag {image.tag!r} makes {tag!r}, which is not an image tag: "
            "up to 128 letters, digits, _, . and -, not starting with . or -"
        )
    return tag


def pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, part) of each part of obj that describes a pod (metadata and spec): the Pod itself, or its template.

    `where` is the part's dotted path in obj, "" for a Pod, as error messages name fields.
    """
    kind = obj.get("kind")
    if kind == "Pod":
        yield "", obj
        return
    spec, where = _mapping(obj, "spec"), "spec"
    if kind == "CronJob":
        spec, where = _mapping(_mapping(spec, "jobTemplate"), "spec"), "spec.jobTemplate.spec"
    elif kind not in _POD_TEMPLATE_KINDS:
        return
    template = _mapping(spec, "template")
    if template is not None:
        yield f"{where}.template", template


def _mapping(parent: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    value = parent.get(key) if parent is not None else None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------- manifests


def render_manifests(
    config: PreviewConfig,
    *,
    root: Path,
    variables: Mapping[str, str],
    namespace: str,
    labels: Mapping[str, str],
) -> Rendered:
    """The objects of config's deploy source under root, ready to apply into namespace.

    The source is plain manifests (variables filled in), a Helm chart (variables filled in its
    values) or a Kustomize overlay (variables filled in what it builds). Each object is then
    checked (named, namespaced, not aimed at another namespace, not given twice), placed in
    namespace, labelled (its pods too, never its selectors) and has its images pinned.
    """
    source = _source_documents(config, root=root, variables=variables, namespace=namespace)
    objects: list[dict[str, Any]] = []
    locations: list[str] = []
    first_seen: dict[tuple[str, str], str] = {}
    workloads: list[ObjectRef] = []
    kinds: dict[tuple[str, str], None] = {}
    for where, raw in source.documents:
        ref = _checked(raw, where=where, namespace=namespace)
        described = f"{where} ({ref})"
        if (ref.kind, ref.name) in first_seen:
            raise ManifestError(f"{described}: {ref} is given twice; first in {first_seen[ref.kind, ref.name]}")
        first_seen[ref.kind, ref.name] = where
        placed = _placed(raw, namespace=namespace, labels=labels, where=described)
        objects.append(pin_images(placed, config.images, variables))
        locations.append(described)
        kinds[ref.api_version, ref.kind] = None
        if ref.kind in WORKLOAD_KINDS:
            workloads.append(ref)
    return Rendered(
        objects=tuple(objects),
        locations=tuple(locations),
        workloads=tuple(workloads),
        kinds=tuple(kinds),
        origin=source.origin,
        kept=tuple(source.kept),
        skipped=tuple(source.skipped),
    )


@dataclass(slots=True)
class _SourceDocuments:
    origin: str
    documents: list[tuple[str, Any]] = field(default_factory=list)  # (where, content), in the order to apply
    kept: list[KeptReference] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _source_documents(
    config: PreviewConfig, *, root: Path, variables: Mapping[str, str], namespace: str
) -> _SourceDocuments:
    """The documents of config's deploy source, its variables filled in: not yet checked, placed or labelled."""
    if config.helm is not None:
        from previewbot.sources import helm

        kept: list[KeptReference] = []
        values = _helm_values(config.helm, root=root, variables=variables, kept=kept)
        chart = helm.render_chart(config.helm, root=root, values=values, namespace=namespace)
        rendered = [document for path, text in chart.files for document in _documents(text, source=path)]
        ordered, skipped = helm.deploy_order(rendered)
        return _SourceDocuments(
            origin=f"chart {chart.name} (release {chart.release})", documents=ordered, kept=kept, skipped=skipped
        )
    if config.kustomize is not None:
        from previewbot.sources import kustomize

        built = _SourceDocuments(origin=f"kustomize {config.kustomize}")
        for where, raw in _documents(kustomize.build(config.kustomize, root=root), source=built.origin):
            identity = f"{raw.get('kind')}/{(raw.get('metadata') or {}).get('name')}" if isinstance(raw, dict) else ""
            filled = _fill_strings(raw, variables, where=f"{built.origin} {identity}", kept=built.kept)
            built.documents.append((where, filled))
        return built
    plain = _SourceDocuments(origin=", ".join(config.manifests or ()))
    for name, path in _manifest_files(config.manifests or (), root=root):
        text, found = _fill_kept(_read(path, source=name), variables, source=name)
        plain.kept += found
        plain.documents += _documents(text, source=name)
    return plain


def _helm_values(helm: Helm, *, root: Path, variables: Mapping[str, str], kept: list[KeptReference]) -> dict[str, Any]:
    """The chart's values from helm.values_files, then helm.values over them, with the variables filled in."""
    merged: dict[str, Any] = {}
    for entry in helm.values_files:
        text = _read(path_in_repo(root, entry, key="helm.values_files"), source=entry)
        kept += _fill_kept(text, variables, source=entry)[1]  # named by line, which only the text has
        loaded = [document for _, document in _documents(text, source=entry)]
        if len(loaded) > 1 or not all(isinstance(document, dict) for document in loaded):
            raise ManifestError(f"{entry}: a values file is one mapping of values")
        # Filled in after reading, so that `tag: ${SHORT_SHA}` stays text even when the SHA reads as a number.
        merged = _merged(merged, _fill_strings(loaded[0] if loaded else {}, variables, where=entry, kept=[]))
    return _merged(merged, _fill_strings(helm.values, variables, where=f"{DEFAULT_PATH} helm.values", kept=kept))


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """over laid on base as Helm lays values files: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _manifest_files(entries: Sequence[str], *, root: Path) -> Iterator[tuple[str, Path]]:
    """(name as the user would write it, path) of each manifest file, folders walked in sorted order.

    Hidden files and folders (such as .preview.yml and .github/) are not manifests.
    """
    base = root.resolve()
    for entry in entries:
        target = path_in_repo(root, entry, key="manifests")
        if target.is_file():
            yield Path(entry).as_posix(), target
            continue
        found = sorted(
            (path.relative_to(target).as_posix(), path)
            for path in target.rglob("*")
            if path.suffix in _MANIFEST_SUFFIXES
            and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(target).parts)
        )
        if not found:
            raise ManifestError(f"manifests: {entry} holds no *.yaml or *.yml files")
        for relative, path in found:
            name = (Path(entry) / relative).as_posix()
            if not is_inside(path, base):
                raise ManifestError(f"manifests: {name} leads outside the repo")
            yield name, path


def _read(path: Path, *, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{source}: not UTF-8 text") from None


def _documents(text: str, *, source: str) -> Iterator[tuple[str, Any]]:
    """(where, content) of each non-empty document of a file, the items of a `kind: List` one by one."""
    try:
        documents = list(yamlfast.load_all(text))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        reason = ", ".join(part for part in (error.context, error.problem) if part)
        raise ManifestError(f"{source}:{mark.line + 1 if mark else 1}: invalid YAML: {reason}") from None
    except yaml.YAMLError as error:
        raise ManifestError(f"{source}: invalid YAML: {error}") from None
    for number, document in enumerate(documents, start=1):
        where = f"{source}, document {number}"
        if document is None:
            continue
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items")
            if not isinstance(items, list):
                raise ManifestError(f"{where}: a List needs `items`, a list of objects")
            for index, item in enumerate(items, start=1):
                yield f"{where}, item {index}", item
        else:
            yield where, document


def _checked(raw: Any, *, where: str, namespace: str) -> ObjectRef:
    """Who raw is, once it is known to be an object a preview may hold."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping), got {type(raw).__name__}")
    found = raw.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    required = {
        "apiVersion": raw.get("apiVersion"),
        "kind": raw.get("kind"),
        "metadata.name": metadata.get("name"),
    }
    missing = [key for key, value in required.items() if not isinstance(value, str) or not value]
    if missing:
        raise ManifestError(f"{where}: every object needs {', '.join(missing)}")
    ref = ObjectRef(api_version=raw["apiVersion"], kind=raw["kind"], name=metadata["name"], namespace=namespace)
    if ref.kind in CLUSTER_SCOPED_KINDS:
        raise ManifestError(f"{where} ({ref}): {ref.kind} is cluster-scoped: a preview holds only namespaced objects")
    declared = metadata.get("namespace")
    if declared not in (None, namespace):
        raise ManifestError(
            f"{where} ({ref}): metadata.namespace is {declared!r}, "
            f"but the preview's namespace is {namespace}: leave it out and previewbot sets it"
        )
    return ref


def _placed(raw: dict[str, Any], *, namespace: str, labels: Mapping[str, str], where: str) -> dict[str, Any]:
    """A copy of raw in namespace, with labels on it and on the pods it makes."""
    placed = copy.deepcopy(raw)
    placed["metadata"]["namespace"] = namespace
    templates = [template for _, template in pod_templates(placed) if template is not placed]
    for holder in (placed, *templates):
        metadata = holder.setdefault("metadata", {})
        if not isinstance(metadata, dict) or not isinstance(metadata.get("labels", {}), dict):
            raise ManifestError(f"{where}: metadata.labels must be a mapping")
        metadata["labels"] = {**metadata.get("labels", {}), **labels}
    return placed


# ---------------------------------------------------------------- guardrails


def guardrails(config: PreviewConfig, *, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ResourceQuota, LimitRange and NetworkPolicy that config.namespace asks for."""
    options = config.namespace
    objects: list[dict[str, Any]] = []
    hard = _quota_hard(options.quota) if options.quota else {}
    if hard:
        objects.append(_guardrail("v1", "ResourceQuota", QUOTA_NAME, namespace, labels, spec={"hard": hard}))
    container_limits = _container_limits(options.limits) if options.limits else {}
    if container_limits:
        limit_range = {"limits": [{"type": "Container", **container_limits}]}
        objects.append(_guardrail("v1", "LimitRange", LIMITS_NAME, namespace, labels, spec=limit_range))
    if options.network_policy == "isolate":
        isolation: dict[str, Any] = {
            "podSelector": {},
            "policyTypes": ["Ingress"],  # egress stays open: previews call out to registries and APIs
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": options.ingress_namespace}
                            }
                        },
                    ]
                }
            ],
        }
        objects.append(
            _guardrail("networking.k8s.io/v1", "NetworkPolicy", ISOLATION_NAME, namespace, labels, spec=isolation)
        )
    return objects


def _guardrail(
    api_version: str, kind: str, name: str, namespace: str, labels: Mapping[str, str], *, spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def _quota_hard(quota: Quota) -> dict[str, str]:
    hard: dict[str, str] = {}
    for resource, amount in (("cpu", quota.cpu), ("memory", quota.memory)):
        if amount is not None:
            hard[f"requests.{resource}"] = amount
            hard[f"limits.{resource}"] = amount
    if quota.pods is not None:
        hard["pods"] = str(quota.pods)
    return hard


def _container_limits(limits: Limits) -> dict[str, dict[str, str]]:
    given = {"default": limits.default, "defaultRequest": limits.default_request}
    amounts = {key: _amounts(resources) for key, resources in given.items() if resources is not None}
    return {key: value for key, value in amounts.items() if value}


def _amounts(resources: Resources) -> dict[str, str]:
    return {
        resource: amount
        for resource, amount in (("cpu", resources.cpu), ("memory", resources.memory))
        if amount is not None
    }

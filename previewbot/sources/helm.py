"""A Helm chart rendered in-process, as `helm template` renders it, by the Helm engine of helm-python-sdk.

The engine is a native library (about 85 MB, most of a second to load), so it is imported only
when a config has `helm`. Rendering is offline: a chart in the repo is read from the checkout
(its dependencies vendored in charts/), and only a chart named by repository or OCI reference
is fetched, at the version the config pins.

Hooks: a preview is one apply, so the install and upgrade hooks (pre-install, post-install,
pre-upgrade, post-upgrade) are applied with the chart's other objects, pre-hooks first;
test hooks are skipped (`tests:` runs the preview's tests), and so are delete and rollback
hooks (a preview is torn down by deleting its namespace, and never rolled back).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from previewbot.config import Helm
from previewbot.errors import ManifestError
from previewbot.paths import path_in_repo
from previewbot.sources import check_links_stay_inside

if TYPE_CHECKING:
    import helm_python

HOOK_ANNOTATION = "helm.sh/hook"
HOOK_WEIGHT_ANNOTATION = "helm.sh/hook-weight"
_PRE_HOOKS = frozenset({"pre-install", "pre-upgrade"})
_POST_HOOKS = frozenset({"post-install", "post-upgrade"})

# The order `helm install` creates kinds in (Helm's InstallOrder); kinds it does not know come last.
INSTALL_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
_KIND_RANK = {kind: rank for rank, kind in enumerate(INSTALL_ORDER)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedChart:
    """A chart's rendered template files, (path in the chart, YAML text), in the order Helm reads them."""

    name: str
    release: str
    files: tuple[tuple[str, str], ...]


def render_chart(helm: Helm, *, root: Path, values: Mapping[str, Any], namespace: str) -> RenderedChart:
    """The chart of helm rendered with values into namespace, as `helm template` would; NOTES.txt left out."""
    engine = _engine()
    with _chart_folder(helm, root=root, engine=engine) as folder:
        try:
            with engine.Chart.load(folder) as chart:
                _check_dependencies(chart, helm.chart)
                release = helm.release or _release_name(chart.name, engine)
                rendered = chart.render(dict(values), name=release, namespace=namespace, is_install=True)
                name = chart.name
        except engine.HelmError as error:
            raise ManifestError(f"helm chart {helm.chart}: {error.detail}") from None
    files = tuple(
        (path, text) for path, text in sorted(rendered.items()) if path.endswith((".yaml", ".yml")) and text.strip()
    )
    return RenderedChart(name=name, release=release, files=files)


def _engine() -> Any:
    try:
        import helm_python
    except ImportError as error:  # the wheel has no build for this platform
        raise ManifestError(f"helm: the Helm engine (helm-python-sdk) cannot be loaded here: {error}") from None
    return helm_python


@contextmanager
def _chart_folder(helm: Helm, *, root: Path, engine: Any) -> Iterator[Path]:
    """The folder of the chart: in the repo, or fetched into a temporary folder."""
    if not helm.remote:
        folder = path_in_repo(root, helm.chart, key="helm.chart")
        if not folder.is_dir():
            raise ManifestError(f"helm.chart: {helm.chart} is not a folder: give the chart's folder in the repo")
        check_links_stay_inside(folder, root=root, key="helm.chart")
        yield folder
        return
    where = f"{helm.chart} {helm.version}" + (f" from {helm.repository}" if helm.repository else "")
    with tempfile.TemporaryDirectory(prefix="previewbot-chart-") as scratch:
        try:
            engine.pull(helm.chart, version=helm.version, repo_url=helm.repository, untar=True, untar_dir=scratch)
        except engine.HelmError as error:
            raise ManifestError(f"helm.chart: cannot fetch {where}: {error.detail}") from None
        [folder] = [path for path in Path(scratch).iterdir() if path.is_dir()]
        yield folder


def _check_dependencies(chart: helm_python.Chart, reference: str) -> None:
    """Refuse a chart whose declared dependencies are not in its charts/ folder, as `helm install` does."""
    loaded = {dependency.get("name") for dependency in chart.dependencies}
    declared = chart.metadata.get("dependencies") or []
    missing = [d.get("name") for d in declared if isinstance(d, dict) and d.get("name") not in loaded]
    if missing:
        raise ManifestError(
            f"helm chart {reference}: the dependencies {', '.join(map(str, missing))} are in Chart.yaml but not in "
            "charts/: run `helm dependency build` and commit charts/ (previewbot renders offline)"
        )


def _release_name(chart_name: str, engine: Any) -> str:
    try:
        engine.validate_release_name(chart_name)
    except engine.HelmError:
        raise ManifestError(
            f"helm: the chart's name {chart_name!r} is not a release name: set helm.release "
            "(up to 53 of a-z, 0-9 and -)"
        ) from None
    return chart_name


def hook_of(obj: Any) -> tuple[str, ...]:
    """The hook events an object of a chart is for (its helm.sh/hook annotation); none for a plain object."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = annotations.get(HOOK_ANNOTATION) if isinstance(annotations, dict) else None
    return tuple(event.strip() for event in value.split(",")) if isinstance(value, str) else ()


def deploy_order(documents: Sequence[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], list[str]]:
    """The documents a preview applies, in order (pre-hooks, the chart's objects, post-hooks), and what it skips."""
    pre: list[tuple[int, str, Any]] = []
    post: list[tuple[int, str, Any]] = []
    plain: list[tuple[str, Any]] = []
    skipped: list[str] = []
    for where, obj in documents:
        events = hook_of(obj)
        if not events:
            plain.append((where, obj))
        elif _PRE_HOOKS.intersection(events):
            pre.append((_weight(obj), where, obj))
        elif _POST_HOOKS.intersection(events):
            post.append((_weight(obj), where, obj))
        else:
            skipped.append(f"{where}: a {', '.join(events)} hook, which a preview does not run")
    plain.sort(key=lambda item: _KIND_RANK.get(str(item[1].get("kind")) if isinstance(item[1], dict) else "", 99))

    def by_weight(hooks: list[tuple[int, str, Any]]) -> list[tuple[str, Any]]:
        return [(where, obj) for _, where, obj in sorted(hooks, key=lambda hook: hook[0])]

    return [*by_weight(pre), *plain, *by_weight(post)], skipped


def _weight(obj: dict[str, Any]) -> int:
    value = (obj.get("metadata") or {}).get("annotations", {}).get(HOOK_WEIGHT_ANNOTATION, "0")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

"""Deploy sources other than plain manifests: a Helm chart and a Kustomize overlay, rendered to a preview's objects."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from previewbot import naming
from previewbot.config import load_config
from previewbot.errors import ManifestError
from previewbot.manifests import Rendered, render_manifests
from previewbot.sources import helm
from tests.test_manifests import LABELS, NAMESPACE, SHA, variables_for

FIXTURES = Path(__file__).parent / "fixtures"


def repo_from(tmp_path: Path, config: str, *fixtures: str) -> Path:
    """A checkout with .preview.yml and the named folders of tests/fixtures under deploy/."""
    root = tmp_path / "repo"
    for fixture in fixtures:
        shutil.copytree(FIXTURES / fixture, root / "deploy", dirs_exist_ok=True)
    root.mkdir(exist_ok=True)
    (root / ".preview.yml").write_text(textwrap.dedent(config))
    return root


def rendered_from(root: Path) -> Rendered:
    config = load_config((root / ".preview.yml").read_text())
    return render_manifests(config, root=root, variables=variables_for(config), namespace=NAMESPACE, labels=LABELS)


def by_name(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in rendered.objects}


HELM_CONFIG = """\
helm:
  chart: deploy/web
  values_files: [deploy/values-preview.yaml]
  values:
    image:
      tag: pr-${PR_NUMBER}-${SHORT_SHA}
"""


# ---------------------------------------------------------------- helm


def test_a_chart_renders_with_previewbots_release_namespace_values_and_variables(tmp_path: Path) -> None:
    rendered = rendered_from(repo_from(tmp_path, HELM_CONFIG, "helm"))

    objects = by_name(rendered)
    assert list(objects) == [
        "Job/web-migrate",  # a pre-install hook comes first
        "ConfigMap/web",
        "Service/web",
        "Deployment/web-cache",
        "Deployment/web",
    ]
    assert rendered.origin == "chart web (release web)"
    web = objects["Deployment/web"]
    assert web["metadata"]["namespace"] == NAMESPACE
    assert web["metadata"]["labels"][naming.MANAGED_BY_LABEL] == naming.MANAGED_BY_VALUE
    assert web["spec"]["template"]["metadata"]["labels"][naming.PR_LABEL] == "42"
    assert web["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/instance": "web",
    }
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.k8s.io/pause:pr-42-{SHA[:7]}"
    assert objects["Deployment/web-cache"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.k8s.io/pause:3.9"
    )
    config_map = objects["ConfigMap/web"]["data"]
    assert config_map["greeting"] == "preview of #42 (feature-greeting-c4c572)"
    assert config_map["start.sh"] == 'echo "serving ${GREETING} on port ${PORT:-8080}"\n'
    assert [w.name for w in rendered.workloads] == ["web-cache", "web"]


def test_a_charts_test_hook_is_not_deployed_and_plan_says_so(tmp_path: Path) -> None:
    rendered = rendered_from(repo_from(tmp_path, HELM_CONFIG, "helm"))

    assert "Pod/web-test-connection" not in by_name(rendered)
    assert rendered.skipped == (
        "web/templates/tests/test-connection.yaml, document 1: a test hook, which a preview does not run",
    )


def test_the_names_a_values_file_leaves_as_written_are_listed(tmp_path: Path) -> None:
    rendered = rendered_from(repo_from(tmp_path, HELM_CONFIG, "helm"))

    assert [str(reference) for reference in rendered.kept] == ["deploy/values-preview.yaml:6: ${NOT_PREVIEWBOTS}"]


def test_hooks_in_the_order_a_preview_applies_them() -> None:
    def hooked(name: str, hook: str | None = None, weight: str | None = None, kind: str = "Job") -> dict[str, Any]:
        annotations = {
            **({"helm.sh/hook": hook} if hook else {}),
            **({"helm.sh/hook-weight": weight} if weight else {}),
        }
        return {"kind": kind, "metadata": {"name": name, "annotations": annotations}}

    documents = [
        (f"{obj['metadata']['name']}.yaml", obj)
        for obj in (
            hooked("app", kind="Deployment"),
            hooked("notify", "post-install,post-upgrade"),
            hooked("cleanup", "pre-delete"),
            hooked("settings", kind="ConfigMap"),
            hooked("migrate", "pre-upgrade,pre-install", "5"),
            hooked("schema", "pre-install", "-1"),
            hooked("restore", "post-rollback"),
            hooked("smoke", "test"),
        )
    ]

    ordered, skipped = helm.deploy_order(documents)

    assert [where for where, _ in ordered] == [
        "schema.yaml",
        "migrate.yaml",
        "settings.yaml",
        "app.yaml",
        "notify.yaml",
    ]
    assert skipped == [
        "cleanup.yaml: a pre-delete hook, which a preview does not run",
        "restore.yaml: a post-rollback hook, which a preview does not run",
        "smoke.yaml: a test hook, which a preview does not run",
    ]


def test_the_names_the_configs_values_leave_as_written_are_listed(tmp_path: Path) -> None:
    config = HELM_CONFIG.replace("    image:", "    script: echo ${HOME} $${PR_NUMBER}\n    image:")
    rendered = rendered_from(repo_from(tmp_path, config, "helm"))

    assert [str(reference) for reference in rendered.kept] == [
        "deploy/values-preview.yaml:6: ${NOT_PREVIEWBOTS}",
        ".preview.yml helm.values.script: ${HOME}",
    ]


def test_a_variable_in_a_values_file_stays_text_whatever_it_looks_like(tmp_path: Path) -> None:
    root = repo_from(tmp_path, HELM_CONFIG.replace("tag: pr-${PR_NUMBER}-${SHORT_SHA}", "{}"), "helm")
    (root / "deploy/values-preview.yaml").write_text("image:\n  tag: ${SHORT_SHA}\n")

    objects = by_name(rendered_from(root))

    assert SHA[:7] == "0123456"  # YAML would read it as an octal number
    assert objects["Deployment/web"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.k8s.io/pause:0123456"
    )


def test_values_over_values_files_over_the_charts_own(tmp_path: Path) -> None:
    config = HELM_CONFIG.replace("    image:", "    replicas: 2\n    migrate: {enabled: false}\n    image:")
    objects = by_name(rendered_from(repo_from(tmp_path, config, "helm")))

    assert objects["Deployment/web"]["spec"]["replicas"] == 2
    assert "Job/web-migrate" not in objects
    assert objects["ConfigMap/web"]["data"]["greeting"].startswith("preview of #42")


def test_a_release_name_of_ones_own(tmp_path: Path) -> None:
    config = HELM_CONFIG.replace("chart: deploy/web", "chart: deploy/web\n  release: shop")
    objects = by_name(rendered_from(repo_from(tmp_path, config, "helm")))

    assert "Deployment/shop-web" in objects
    assert "Deployment/shop-cache" in objects


def test_a_chart_error_is_reported_in_the_charts_own_words(tmp_path: Path) -> None:
    config = HELM_CONFIG.replace("tag: pr-${PR_NUMBER}-${SHORT_SHA}", "tag: null")

    with pytest.raises(ManifestError) as caught:
        rendered_from(repo_from(tmp_path, config, "helm"))

    assert str(caught.value) == (
        "helm chart deploy/web: execution error at (web/templates/deployment.yaml:19:52): image.tag is required"
    )


def test_values_the_charts_schema_refuses_are_reported_in_its_words(tmp_path: Path) -> None:
    config = HELM_CONFIG.replace("    image:", "    replicas: two\n    image:")

    with pytest.raises(ManifestError) as caught:
        rendered_from(repo_from(tmp_path, config, "helm"))

    assert str(caught.value).startswith("helm chart deploy/web: values don't meet the specifications of the schema")
    assert "- at '/replicas': got string, want integer" in str(caught.value)


def test_a_dependency_missing_from_charts_is_reported(tmp_path: Path) -> None:
    root = repo_from(tmp_path, HELM_CONFIG, "helm")
    shutil.rmtree(root / "deploy/web/charts")

    with pytest.raises(ManifestError, match=r"dependencies cache are in Chart\.yaml but not in charts/: run `helm de"):
        rendered_from(root)


def test_a_chart_outside_the_repo_is_refused(tmp_path: Path) -> None:
    root = repo_from(tmp_path, HELM_CONFIG.replace("chart: deploy/web", "chart: ../web"), "helm")
    shutil.copytree(FIXTURES / "helm/web", tmp_path / "web")

    with pytest.raises(ManifestError, match=r"^helm\.chart: \.\./web is outside the repo$"):
        rendered_from(root)


def test_a_chart_that_links_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    root = repo_from(tmp_path, HELM_CONFIG, "helm")
    (tmp_path / "secret.txt").write_text("the runner's own file")
    (root / "deploy/web/files").mkdir()
    (root / "deploy/web/files/secret.txt").symlink_to(tmp_path / "secret.txt")

    with pytest.raises(ManifestError, match=r"^helm\.chart: deploy/web/files/secret\.txt links outside the repo$"):
        rendered_from(root)


@pytest.mark.parametrize(
    ("chart", "where"),
    [
        ("chart: web\n  repository: https://charts.example.invalid", "web 1.2.3 from https://charts.example.invalid"),
        (
            "chart: oci://registry.example.invalid/acme/charts/web",
            "oci://registry.example.invalid/acme/charts/web 1.2.3",
        ),
    ],
)
def test_a_chart_from_a_repository_or_registry_that_cannot_be_reached_says_so(
    tmp_path: Path, chart: str, where: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        rendered_from(repo_from(tmp_path, f"helm:\n  {chart}\n  version: 1.2.3\n"))

    assert str(caught.value).startswith(f"helm.chart: cannot fetch {where}: ")


# ---------------------------------------------------------------- kustomize


KUSTOMIZE_CONFIG = "kustomize: deploy/overlays/preview\n"


def test_an_overlay_builds_with_its_base_patches_prefix_images_and_generated_config_map(tmp_path: Path) -> None:
    rendered = rendered_from(repo_from(tmp_path, KUSTOMIZE_CONFIG, "kustomize"))

    objects = by_name(rendered)
    [config_map] = [name for name in objects if name.startswith("ConfigMap/preview-settings-")]
    assert list(objects) == [config_map, "Service/preview-api", "Deployment/preview-api"]
    assert objects[config_map]["data"] == {"MODE": "preview", "PR": "42", "GREETING": "hello ${USER}"}
    assert [str(reference) for reference in rendered.kept] == [
        f"kustomize deploy/overlays/preview {config_map}.data.GREETING: ${{USER}}"
    ]
    api = objects["Deployment/preview-api"]
    assert api["spec"]["replicas"] == 1
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.k8s.io/pause:3.9"
    assert container["envFrom"] == [{"configMapRef": {"name": config_map.split("/")[1]}}]
    assert api["metadata"]["labels"]["app.kubernetes.io/part-of"] == "api"
    assert api["metadata"]["labels"][naming.MANAGED_BY_LABEL] == naming.MANAGED_BY_VALUE
    assert api["metadata"]["namespace"] == NAMESPACE
    assert rendered.origin == "kustomize deploy/overlays/preview"
    assert rendered_from(repo_from(tmp_path, KUSTOMIZE_CONFIG, "kustomize")).objects == rendered.objects


def test_previewbots_images_are_pinned_after_the_build(tmp_path: Path) -> None:
    config = KUSTOMIZE_CONFIG + "images:\n  - name: registry.k8s.io/pause\n    tag: pr-${PR_NUMBER}\n"
    objects = by_name(rendered_from(repo_from(tmp_path, config, "kustomize")))

    assert objects["Deployment/preview-api"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.k8s.io/pause:pr-42"
    )


def test_a_kustomize_error_is_reported_in_its_own_words(tmp_path: Path) -> None:
    root = repo_from(tmp_path, KUSTOMIZE_CONFIG, "kustomize")
    (root / "deploy/overlays/preview/replicas.yaml").unlink()

    with pytest.raises(ManifestError, match=r"(?s)^kustomize deploy/overlays/preview: .*replicas\.yaml: no such file"):
        rendered_from(root)


@pytest.mark.parametrize(
    "base",
    [
        "https://github.com/acme/shared//deploy/base?ref=v1",
        "github.com/acme/shared/deploy/base?ref=v1",
        "../../../../outside",
    ],
)
def test_a_base_outside_the_repo_is_refused(tmp_path: Path, base: str) -> None:
    root = repo_from(tmp_path, KUSTOMIZE_CONFIG, "kustomize")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/kustomization.yaml").write_text("resources: []\n")
    overlay = root / "deploy/overlays/preview/kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("../../base", base))

    with pytest.raises(ManifestError) as caught:
        rendered_from(root)

    assert str(caught.value) == (
        f"kustomize: deploy/overlays/preview/kustomization.yaml: resources: {base} is not a file or folder "
        "in the repo; previewbot builds overlays from the repo alone, never fetching a remote base"
    )


def test_a_generator_may_not_read_a_file_from_outside_its_kustomization(tmp_path: Path) -> None:
    root = repo_from(tmp_path, KUSTOMIZE_CONFIG, "kustomize")
    (root / "runner-secret.env").write_text("TOKEN=the runner's\n")
    overlay = root / "deploy/overlays/preview/kustomization.yaml"
    overlay.write_text(
        overlay.read_text() + "secretGenerator:\n  - name: leak\n    envs: [../../../runner-secret.env]\n"
    )

    with pytest.raises(ManifestError, match=r"(?s)^kustomize deploy/overlays/preview: .*is not in or below"):
        rendered_from(root)


def test_an_overlay_outside_the_repo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"^kustomize: \.\./elsewhere is outside the repo$"):
        rendered_from(repo_from(tmp_path, "kustomize: ../elsewhere\n"))

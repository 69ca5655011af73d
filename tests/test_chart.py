"""The Helm chart, rendered by the real Helm engine (helm-python-sdk, no helm binary) and every object
checked against the Kubernetes schemas; with PREVIEWBOT_TEST_KUBECONFIG, also by the real API server
in a dry run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from previewbot import rbac

CHART = Path(__file__).resolve().parent.parent / "charts" / "previewbot"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.30.0"
RELEASE, NAMESPACE = "pb", "previewbot"


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        document
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def scenario(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())
    return loaded


def objects(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == kind]


@pytest.mark.parametrize("values_file", SCENARIOS, ids=lambda path: path.name)
def test_every_scenario_renders_objects_kubernetes_accepts(values_file: Path) -> None:
    documents = render(yaml.safe_load(values_file.read_text()))
    assert {"Deployment", "Service", "ClusterRole", "Role"} <= {d["kind"] for d in documents}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values_file", SCENARIOS, ids=lambda path: path.name)
def test_helm_lint_finds_nothing_to_warn_of(values_file: Path) -> None:
    report = helm.lint(CHART, yaml.safe_load(values_file.read_text()), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # 1 is information, such as "icon"


def test_the_pod_is_locked_down() -> None:
    [deployment] = objects(render(scenario("default")), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] > int(
        next(arg for arg in container["args"] if arg.startswith("--shutdown-grace=")).partition("=")[2]
    )


def test_the_app_credentials_come_from_a_secret_never_from_the_pod_spec() -> None:
    values = scenario("default")
    documents = render(values)
    [secret] = objects(documents, "Secret")
    assert set(secret["stringData"]) == {"app-id", "private-key.pem", "webhook-secret"}
    [deployment] = objects(documents, "Deployment")
    assert values["github"]["webhookSecret"] not in yaml.safe_dump(deployment)
    assert "PRIVATE KEY" not in yaml.safe_dump(deployment)


def test_an_existing_secret_is_used_and_none_made() -> None:
    documents = render(scenario("existing-secret"))
    assert objects(documents, "Secret") == []
    [deployment] = objects(documents, "Deployment")
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "previewbot-github-app"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "previewbot"
    assert objects(documents, "ServiceAccount") == []


def test_a_disruption_budget_only_with_more_than_one_replica() -> None:
    assert objects(render(scenario("default")), "PodDisruptionBudget") == []
    [budget] = objects(render(scenario("ha")), "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1


def test_the_ingress_exposes_only_the_webhook() -> None:
    [ingress] = objects(render(scenario("ha")), "Ingress")
    [path] = ingress["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/webhook", "Exact")


@pytest.mark.parametrize(
    ("values", "problems"),
    [
        ({}, ["github.appId, github.privateKey and github.webhookSecret are all needed"]),
        (
            {"github": {"existingSecret": "mine", "appId": "1", "webhookSecret": "s"}},
            ["github.existingSecret is set, so github.appId, github.webhookSecret must be empty"],
        ),
        (
            {"github": {"appId": "1", "privateKey": "not a key", "webhookSecret": "s"}, "ingress": {"enabled": True}},
            ["github.privateKey is not a PEM private key", "ingress.enabled needs ingress.host"],
        ),
        (
            {"github": {"existingSecret": "mine"}, "rbac": {"secretSources": ["no-slash"]}},
            ['rbac.secretSources: "no-slash" is not namespace/name'],
        ),
    ],
)
def test_wrong_values_fail_the_install_with_every_problem_named(values: dict[str, Any], problems: list[str]) -> None:
    with pytest.raises(helm.HelmError) as failed:
        render(values)
    for problem in problems:
        assert problem in str(failed.value)


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": "two"},
        {"replicaCount": 0},
        {"service": {"type": "Ingress"}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"server": {"workers": 0}},
        {"server": {"logFormat": "xml"}},
        {"github": {"apiUrl": "api.github.com"}},
        {"rbac": {"extraKinds": [{"apiVersion": "v1", "kind": "Thing"}]}},
        {"replicas": 2},
    ],
)
def test_the_values_schema_rejects_a_bad_values_file(values: dict[str, Any]) -> None:
    chart = helm.Chart.load(CHART)
    chart.validate_schema(chart.merge_values(scenario("default")))
    with pytest.raises(helm.HelmError):
        chart.validate_schema(chart.merge_values({**scenario("default"), **values}))


# ---------------------------------------------------------------- RBAC


RULES = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())


def test_the_cluster_role_has_the_rules_file_s_rules() -> None:
    documents = render(scenario("default"))
    [role] = [d for d in objects(documents, "ClusterRole") if d["metadata"]["name"] == "previewbot"]
    expected = [
        {
            **rule,
            **(
                {"resourceNames": [n.replace("NAME-preview", "previewbot-preview") for n in rule["resourceNames"]]}
                if "resourceNames" in rule
                else {}
            ),
        }
        for rule in RULES["cluster"]["rules"]
    ]
    assert role["rules"] == expected
    [binding] = objects(documents, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pb-previewbot", "namespace": NAMESPACE}]


def test_the_preview_role_grants_the_kinds_repos_deploy_and_nothing_cluster_wide() -> None:
    documents = render(scenario("ha"))
    [role] = [d for d in objects(documents, "ClusterRole") if d["metadata"]["name"] == "previewbot-preview"]
    applied = RULES["preview"]["applied"]
    kinds = [*applied["guardrails"], *applied["known"], *scenario("ha")["rbac"]["extraKinds"]]
    by_group: dict[str, set[str]] = {}
    for kind in kinds:
        by_group.setdefault(kind["apiVersion"].rpartition("/")[0], set()).add(kind["resource"])
    assert role["rules"] == [
        *RULES["preview"]["rules"],
        *(
            {"apiGroups": [group], "resources": sorted(names), "verbs": applied["verbs"]}
            for group, names in sorted(by_group.items())
        ),
    ]
    assert not any(
        d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "previewbot-preview" for d in documents
    )


def test_copied_secrets_are_readable_by_name_only() -> None:
    documents = render(scenario("ha"))
    roles = {
        d["metadata"]["namespace"]: d for d in objects(documents, "Role") if d["metadata"]["name"].endswith("secrets")
    }
    assert sorted(roles) == ["payments", "shared"]
    assert roles["shared"]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["registry-credentials", "test-accounts"],
            "verbs": RULES["secretSources"]["verbs"],
        }
    ]


def test_the_server_binds_itself_to_the_preview_role_the_chart_made() -> None:
    documents = render({**scenario("default"), "rbac": {"name": "previews-team-a"}})
    [deployment] = objects(documents, "Deployment")
    assert "--rbac-name=previews-team-a" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    names = {d["metadata"]["name"] for d in objects(documents, "ClusterRole")}
    assert names == {"previews-team-a", rbac.preview_role("previews-team-a")}


def test_leases_only_in_the_release_namespace() -> None:
    documents = render(scenario("default"))
    [role] = [d for d in objects(documents, "Role") if d["metadata"]["name"].endswith("-leases")]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert "namespace" not in role["metadata"]  # Helm installs it into the release's namespace


def test_the_chart_s_rules_are_previewbot_s_own() -> None:
    """One source of the least-privilege rules: the chart's copy is previewbot's rules file, and what it
    renders is what `previewbot rbac` makes."""
    assert (CHART / "files" / "rbac-rules.yaml").read_text() == rbac.RULES_FILE.read_text()
    documents = render(scenario("default"))
    roles = {d["metadata"]["name"]: d["rules"] for d in objects(documents, "ClusterRole")}
    applied = RULES["preview"]["applied"]["known"]
    assert roles["previewbot"] == rbac.cluster_rules("previewbot")
    assert roles["previewbot-preview"] == rbac.preview_rules([(k["apiVersion"], k["kind"]) for k in applied])


@pytest.mark.cluster
@pytest.mark.skipif(not os.environ.get("PREVIEWBOT_TEST_KUBECONFIG"), reason="needs a real API server")
def test_the_real_api_server_accepts_every_object_in_a_dry_run() -> None:
    from kubernetes import config, dynamic

    api = dynamic.DynamicClient(config.new_client_from_config(config_file=os.environ["PREVIEWBOT_TEST_KUBECONFIG"]))
    for document in render(scenario("default")):
        resource = api.resources.get(api_version=document["apiVersion"], kind=document["kind"])
        namespace = "default" if resource.namespaced else None
        resource.create(body=document, namespace=namespace, query_params=[("dryRun", "All")])

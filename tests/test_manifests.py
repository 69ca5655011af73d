"""Rendering a preview's objects: variables, substitution, reading, checks, labels, pinning, guardrails."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from previewbot import naming
from previewbot.config import BUILTIN_VARIABLES, Image, PreviewConfig, load_config, load_config_file
from previewbot.errors import ConfigError, ManifestError
from previewbot.manifests import (
    guardrails,
    image_repository,
    pin_images,
    preview_url,
    preview_variables,
    render_manifests,
    substitute,
)
from previewbot.model import ObjectRef, PullRequest

HELLO = Path(__file__).resolve().parent.parent / "examples" / "hello"
SHA = "0123456789abcdef0123456789abcdef01234567"
NAMESPACE = "preview-hello-pr-42"
LABELS = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE, naming.PR_LABEL: "42"}


def pull_request(*, head_ref: str = "feature/greeting") -> PullRequest:
    return PullRequest(
        repo="acme/hello",
        number=42,
        head_sha=SHA,
        head_ref=head_ref,
        base_ref="main",
        default_branch="main",
        author="octocat",
        head_repo="acme/hello",
    )


def variables_for(config: PreviewConfig) -> dict[str, str]:
    """The variables of PR 42, made the way the core makes them: URL first, then everything."""
    pr = pull_request()
    base = preview_variables(pr=pr, namespace=NAMESPACE, url=None, extra={})
    url = preview_url(config, base)
    return preview_variables(pr=pr, namespace=NAMESPACE, url=url, extra=config.variables)


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def render(root: Path, *manifests: str, images: list[Image] | None = None) -> list[dict[str, Any]]:
    config = PreviewConfig(manifests=list(manifests), images=images or [])
    rendered = render_manifests(config, root=root, variables=variables_for(config), namespace=NAMESPACE, labels=LABELS)
    return list(rendered.objects)


def config_map(name: str, **extra: str) -> str:
    lines = "".join(f"  {key}: {value}\n" for key, value in extra.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{lines}"


# ---------------------------------------------------------------- variables


def test_the_built_in_variables() -> None:
    variables = preview_variables(pr=pull_request(), namespace=NAMESPACE, url="https://pr-42.example.com", extra={})

    assert tuple(variables) == BUILTIN_VARIABLES
    assert variables == {
        "PR_NUMBER": "42",
        "SHA": SHA,
        "SHORT_SHA": "0123456",
        "BRANCH_SLUG": naming.dns_label("feature/greeting", limit=40),
        "NAMESPACE": NAMESPACE,
        "REPO": "acme/hello",
        "REPO_NAME": "hello",
        "PREVIEW_URL": "https://pr-42.example.com",
    }


def test_a_long_branch_makes_a_short_dns_label_slug() -> None:
    pr = pull_request(head_ref="Feature/" + "Very-Long-Branch-Name-" * 5)

    slug = preview_variables(pr=pr, namespace=NAMESPACE, url=None, extra={})["BRANCH_SLUG"]

    assert len(slug) <= 40
    assert slug == naming.dns_label(slug)


def test_no_url_is_an_empty_preview_url() -> None:
    assert preview_variables(pr=pull_request(), namespace=NAMESPACE, url=None, extra={})["PREVIEW_URL"] == ""


def test_config_variables_come_after_the_built_ins_and_use_them() -> None:
    variables = preview_variables(
        pr=pull_request(), namespace=NAMESPACE, url=None, extra={"HOST": "pr-${PR_NUMBER}.example.com"}
    )

    assert list(variables)[-1] == "HOST"
    assert variables["HOST"] == "pr-42.example.com"


def test_a_config_variable_cannot_redefine_a_built_in() -> None:
    with pytest.raises(ConfigError) as caught:
        preview_variables(pr=pull_request(), namespace=NAMESPACE, url=None, extra={"SHA": "main"})

    assert caught.value.problems == [".preview.yml: variables.SHA: ${SHA} is built in and cannot be redefined"]


def test_a_config_variable_may_use_only_built_ins() -> None:
    with pytest.raises(ConfigError, match=r"variables\.B: unknown variable \$\{A\}"):
        preview_variables(pr=pull_request(), namespace=NAMESPACE, url=None, extra={"A": "x", "B": "${A}"})


def test_the_url_uses_the_configs_variables() -> None:
    config = load_config("manifests: [a]\nvariables:\n  HOST: pr-${PR_NUMBER}.example.com\nurl: https://${HOST}/\n")

    assert preview_url(config, preview_variables(pr=pull_request(), namespace=NAMESPACE, url=None, extra={})) == (
        "https://pr-42.example.com/"
    )
    assert variables_for(config)["PREVIEW_URL"] == "https://pr-42.example.com/"


def test_no_url_template_no_url() -> None:
    assert preview_url(PreviewConfig(manifests=["a"]), {"PR_NUMBER": "1"}) is None


# ---------------------------------------------------------------- substitution


def test_substitute_fills_in_escapes_and_leaves_shell_alone() -> None:
    text = 'host: pr-${N}.example.com\nscript: echo "$HOME $${N} ${N}"\n'

    assert substitute(text, {"N": "7"}) == 'host: pr-7.example.com\nscript: echo "$HOME ${N} 7"\n'


def test_a_name_that_is_no_variable_of_previewbot_stays_as_written() -> None:
    text = "a: ${PR_NUMBER}\nb: ${FOO} ${PORT:-80} ${PR NUMBER} ${}\n"

    assert substitute(text, {"PR_NUMBER": "1"}) == "a: 1\nb: ${FOO} ${PORT:-80} ${PR NUMBER} ${}\n"


# ---------------------------------------------------------------- image pinning


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("nginx", "nginx"),
        ("nginx:1.27", "nginx"),
        ("ghcr.io/acme/web:latest", "ghcr.io/acme/web"),
        ("ghcr.io/acme/web@sha256:" + "a" * 64, "ghcr.io/acme/web"),
        ("ghcr.io/acme/web:1.0@sha256:" + "a" * 64, "ghcr.io/acme/web"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("localhost:5000/app:dev", "localhost:5000/app"),
    ],
)
def test_image_repository(reference: str, repository: str) -> None:
    assert image_repository(reference) == repository


def deployment(*images: str, init: str | None = None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    if init:
        pod_spec["initContainers"] = [{"name": "init", "image": init}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": pod_spec}},
    }


PIN = [Image(name="ghcr.io/acme/web", tag="pr-${PR_NUMBER}"), Image(name="localhost:5000/worker")]
PIN_VARIABLES = {"PR_NUMBER": "42", "SHA": SHA}


def test_pinning_replaces_tag_or_digest_of_named_repositories_only() -> None:
    original = deployment(
        "ghcr.io/acme/web:latest",
        "ghcr.io/acme/web-e2e:latest",
        "localhost:5000/worker@sha256:" + "b" * 64,
        "redis:7",
        init="ghcr.io/acme/web",
    )

    pinned = pin_images(original, PIN, PIN_VARIABLES)

    pod_spec = pinned["spec"]["template"]["spec"]
    assert [c["image"] for c in pod_spec["containers"]] == [
        "ghcr.io/acme/web:pr-42",
        "ghcr.io/acme/web-e2e:latest",
        f"localhost:5000/worker:{SHA}",
        "redis:7",
    ]
    assert pod_spec["initContainers"][0]["image"] == "ghcr.io/acme/web:pr-42"
    assert original["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/web:latest"


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        (
            {"kind": "Pod", "spec": {"containers": [{"image": "ghcr.io/acme/web:1"}]}},
            ("spec",),
        ),
        (
            {
                "kind": "Job",
                "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/acme/web:1"}]}}},
            },
            ("spec", "template", "spec"),
        ),
        (
            {
                "kind": "CronJob",
                "spec": {
                    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/acme/web:1"}]}}}}
                },
            },
            ("spec", "jobTemplate", "spec", "template", "spec"),
        ),
    ],
    ids=["Pod", "Job", "CronJob"],
)
def test_pinning_reaches_every_pod_spec(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    pinned = pin_images(obj, PIN, PIN_VARIABLES)

    pod_spec = pinned
    for key in path:
        pod_spec = pod_spec[key]
    assert pod_spec["containers"][0]["image"] == "ghcr.io/acme/web:pr-42"


def test_pinning_leaves_objects_without_pods_alone() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": []}}

    assert pin_images(service, PIN, PIN_VARIABLES) == service


def test_a_rendered_tag_must_be_an_image_tag() -> None:
    images = [Image(name="ghcr.io/acme/web", tag="${REPO}")]

    with pytest.raises(ManifestError) as caught:
        pin_images(deployment("ghcr.io/acme/web"), images, {"REPO": "acme/hello"})

    assert str(caught.value).startswith("images[0].tag '${REPO}' makes 'acme/hello', which is not an image tag")


# ---------------------------------------------------------------- the bundled example


def test_the_bundled_example_renders() -> None:
    config = load_config_file(HELLO)
    labels = {**LABELS, naming.COMPONENT_LABEL: "app"}

    rendered = render_manifests(config, root=HELLO, variables=variables_for(config), namespace=NAMESPACE, labels=labels)

    by_kind = {obj["kind"]: obj for obj in rendered.objects}
    assert [obj["kind"] for obj in rendered.objects] == ["ConfigMap", "Deployment", "Ingress", "Service"]
    assert rendered.workloads == (
        ObjectRef(api_version="apps/v1", kind="Deployment", name="hello", namespace=NAMESPACE),
    )
    assert rendered.kinds == (
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "Service"),
    )
    assert all(obj["metadata"]["namespace"] == NAMESPACE for obj in rendered.objects)
    assert all(labels.items() <= obj["metadata"]["labels"].items() for obj in rendered.objects)
    web = by_kind["Deployment"]["spec"]
    assert web["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/hello:pr-42-0123456"
    assert labels.items() <= web["template"]["metadata"]["labels"].items()
    assert web["selector"] == {"matchLabels": {"app.kubernetes.io/name": "hello"}}
    assert by_kind["Ingress"]["spec"]["rules"][0]["host"] == "hello-pr-42.preview.example.com"
    assert by_kind["ConfigMap"]["data"]["BRANCH"] == naming.dns_label("feature/greeting", limit=40)
    assert by_kind["ConfigMap"]["data"]["COMMIT"] == "0123456"


# ---------------------------------------------------------------- reading the files


def test_folders_are_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    root = repo_with(
        tmp_path,
        {
            "deploy/b.yml": config_map("b"),
            "deploy/a.yaml": config_map("a"),
            "deploy/sub/c.yaml": config_map("c"),
            "deploy/README.md": "not a manifest",
            "deploy/.draft.yaml": "not: valid: yaml",
            "extra.yaml": config_map("extra"),
        },
    )

    objects = render(root, "extra.yaml", "deploy/")

    assert [obj["metadata"]["name"] for obj in objects] == ["extra", "a", "b", "c"]


def test_empty_documents_are_skipped_and_lists_flattened(tmp_path: Path) -> None:
    root = repo_with(
        tmp_path,
        {
            "all.yaml": (
                "---\n"
                "# nothing here\n"
                "---\n" + config_map("first") + "---\n"
                "apiVersion: v1\n"
                "kind: List\n"
                "items:\n"
                "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: second}}\n"
                "  - {apiVersion: v1, kind: Secret, metadata: {name: third}}\n"
            )
        },
    )

    assert [obj["metadata"]["name"] for obj in render(root, "all.yaml")] == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../outside.yaml", "manifests: ../outside.yaml is outside the repo"),
        ("deploy/../../outside.yaml", "manifests: deploy/../../outside.yaml is outside the repo"),
        ("/etc/hosts", "manifests: /etc/hosts is an absolute path: give a path inside the repo"),
        ("missing/", "manifests: missing/ does not exist in the repo"),
        ("empty", "manifests: empty holds no *.yaml or *.yml files"),
    ],
)
def test_manifest_paths_stay_in_the_repo(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "outside.yaml").write_text(config_map("outside"))
    root = repo_with(tmp_path / "repo", {"deploy/a.yaml": config_map("a"), "empty/notes.txt": ""})

    with pytest.raises(ManifestError) as caught:
        render(root, entry)

    assert str(caught.value) == message


def test_a_symbolic_link_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.yaml").write_text(config_map("secret"))
    root = repo_with(tmp_path / "repo", {"deploy/a.yaml": config_map("a")})
    (root / "deploy" / "b.yaml").symlink_to(tmp_path / "secret.yaml")

    with pytest.raises(ManifestError, match=r"manifests: deploy/b\.yaml leads outside the repo"):
        render(root, "deploy")


def test_the_names_left_as_written_are_listed_with_file_and_line(tmp_path: Path) -> None:
    root = repo_with(
        tmp_path,
        {
            "deploy/a.yaml": config_map("a") + "data:\n  script: echo ${FOO} $${PR_NUMBER} ${PR_NUMBER}\n",
            "deploy/b.yaml": config_map("b") + "data:\n  x: ${BAR}\n  y: ${FOO}\n",
        },
    )
    config = PreviewConfig(manifests=["deploy"])

    rendered = render_manifests(config, root=root, variables=variables_for(config), namespace=NAMESPACE, labels=LABELS)

    assert [str(reference) for reference in rendered.kept] == [
        "deploy/a.yaml:6: ${FOO}",
        "deploy/b.yaml:6: ${BAR}",
        "deploy/b.yaml:7: ${FOO}",
    ]
    assert rendered.objects[0]["data"] == {"script": "echo ${FOO} ${PR_NUMBER} 42"}


def test_an_nginx_config_in_a_config_map_renders_unchanged(tmp_path: Path) -> None:
    nginx = (
        "server {\n"
        "  server_name pr-${PR_NUMBER}.example.com;\n"
        "  location / {\n"
        "    proxy_set_header Host $host;\n"
        "    proxy_pass http://${upstream};\n"
        "  }\n"
        "}\n"
    )
    block = "".join(f"    {line}\n" for line in nginx.splitlines())
    root = repo_with(tmp_path, {"deploy/nginx.yaml": config_map("nginx") + f"data:\n  default.conf: |\n{block}"})
    config = PreviewConfig(manifests=["deploy"])

    rendered = render_manifests(config, root=root, variables=variables_for(config), namespace=NAMESPACE, labels=LABELS)

    assert rendered.objects[0]["data"]["default.conf"] == nginx.replace("${PR_NUMBER}", "42")
    assert [str(reference) for reference in rendered.kept] == ["deploy/nginx.yaml:11: ${upstream}"]


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"web.yaml": config_map("web") + "data: [\n"})

    with pytest.raises(ManifestError, match=r"^web\.yaml:6: invalid YAML: "):
        render(root, "web.yaml")


# ---------------------------------------------------------------- what an object may be


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("- just\n- a list\n", "web.yaml, document 2: expected a Kubernetes object (a mapping), got list"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "web.yaml, document 2: every object needs apiVersion"),
        (
            "apiVersion: v1\nmetadata:\n  generateName: x-\n",
            "web.yaml, document 2: every object needs kind, metadata.name",
        ),
        ("apiVersion: v1\nkind: List\n", "web.yaml, document 2: a List needs `items`, a list of objects"),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
            "web.yaml, document 2 (Namespace/prod): Namespace is cluster-scoped: "
            "a preview holds only namespaced objects",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: admin}\n",
            "web.yaml, document 2 (ClusterRoleBinding/admin): ClusterRoleBinding is cluster-scoped: "
            "a preview holds only namespaced objects",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: production}\n",
            "web.yaml, document 2 (Secret/db): metadata.namespace is 'production', "
            f"but the preview's namespace is {NAMESPACE}: leave it out and previewbot sets it",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n",
            "web.yaml, document 2 (ConfigMap/first): ConfigMap/first is given twice; first in web.yaml, document 1",
        ),
    ],
    ids=[
        "not-a-mapping",
        "no-apiVersion",
        "no-kind-no-name",
        "bad-list",
        "namespace",
        "cluster-role",
        "other-ns",
        "twice",
    ],
)
def test_objects_a_preview_cannot_hold(tmp_path: Path, document: str, message: str) -> None:
    root = repo_with(tmp_path, {"web.yaml": config_map("first") + "---\n" + document})

    with pytest.raises(ManifestError) as caught:
        render(root, "web.yaml")

    assert str(caught.value) == message


def test_the_same_name_twice_across_files_names_both(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"a.yaml": config_map("web"), "b/web.yaml": config_map("web")})

    with pytest.raises(ManifestError, match=r"^b/web\.yaml, document 1 \(ConfigMap/web\): .* first in a\.yaml"):
        render(root, "a.yaml", "b")


def test_the_previews_own_namespace_may_be_written(tmp_path: Path) -> None:
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web, namespace: {NAMESPACE}}}\n"
    root = repo_with(tmp_path, {"web.yaml": manifest})

    assert render(root, "web.yaml")[0]["metadata"]["namespace"] == NAMESPACE


def test_previewbots_labels_win_and_selectors_stay(tmp_path: Path) -> None:
    manifest = f"""\
        apiVersion: apps/v1
        kind: StatefulSet
        metadata:
          name: db
          labels: {{app: db, {naming.PR_LABEL}: "7"}}
        spec:
          selector: {{matchLabels: {{app: db}}}}
          template:
            metadata: {{labels: {{app: db}}}}
            spec: {{containers: [{{name: db, image: postgres:16}}]}}
        """
    root = repo_with(tmp_path, {"db.yaml": manifest})

    (stateful_set,) = render(root, "db.yaml")

    assert stateful_set["metadata"]["labels"] == {"app": "db", **LABELS}
    assert stateful_set["spec"]["template"]["metadata"]["labels"] == {"app": "db", **LABELS}
    assert stateful_set["spec"]["selector"] == {"matchLabels": {"app": "db"}}


def test_workloads_are_listed_in_manifest_order(tmp_path: Path) -> None:
    def workload(kind: str, name: str) -> str:
        return (
            f"apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {name}}}\n"
            "spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}\n---\n"
        )

    root = repo_with(
        tmp_path,
        {"all.yaml": workload("DaemonSet", "agent") + config_map("c") + "---\n" + workload("Deployment", "web")},
    )
    config = PreviewConfig(manifests=["all.yaml"])

    rendered = render_manifests(config, root=root, variables={}, namespace=NAMESPACE, labels=LABELS)

    assert [str(ref) for ref in rendered.workloads] == ["DaemonSet/agent", "Deployment/web"]
    assert rendered.kinds == (("apps/v1", "DaemonSet"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"))


# ---------------------------------------------------------------- guardrails


def test_guardrails_from_the_namespace_options() -> None:
    config = load_config(
        "manifests: [a]\n"
        "namespace:\n"
        "  quota: {cpu: 2, memory: 4Gi, pods: 20}\n"
        "  limits:\n"
        "    default: {cpu: 500m, memory: 256Mi}\n"
        "    default_request: {memory: 64Mi}\n"
        "  ingress_namespace: traefik\n"
    )

    quota, limit_range, policy = guardrails(config, namespace=NAMESPACE, labels=LABELS)

    metadata = {"namespace": NAMESPACE, "labels": LABELS}
    assert quota == {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "previewbot-quota", **metadata},
        "spec": {
            "hard": {
                "requests.cpu": "2",
                "limits.cpu": "2",
                "requests.memory": "4Gi",
                "limits.memory": "4Gi",
                "pods": "20",
            }
        },
    }
    assert limit_range == {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "previewbot-limits", **metadata},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"memory": "64Mi"},
                }
            ]
        },
    }
    assert policy == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "previewbot-isolation", **metadata},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}},
                    ]
                }
            ],
        },
    }


def test_no_guardrails_asked_for() -> None:
    config = load_config("manifests: [a]\nnamespace:\n  quota: {}\n  limits: {}\n  network_policy: none\n")

    assert guardrails(config, namespace=NAMESPACE, labels=LABELS) == []


def test_guardrail_labels_are_a_copy() -> None:
    labels = dict(LABELS)

    (policy,) = guardrails(PreviewConfig(manifests=["a"]), namespace=NAMESPACE, labels=labels)
    labels["changed"] = "later"

    assert policy["metadata"]["labels"] == LABELS

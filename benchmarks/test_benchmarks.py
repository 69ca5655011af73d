"""How fast previewbot's own work is: run with `make bench` (pytest-benchmark).

The pure steps are measured on inputs larger than most repos have; the whole deploy is
measured against the emulated APIs, so it times previewbot's requests, not a cluster.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from previewbot import commands, manifests, naming, render
from previewbot.config import load_config_file
from previewbot.model import (
    ContainerProblem,
    ObjectRef,
    Phase,
    PreviewReport,
    PrRef,
    PullRequest,
    WorkloadDiagnosis,
)
from tests.harness import Bot, Checkout, config_map, pr_event, web_deployment

PR = PullRequest(
    repo="acme/shop",
    number=42,
    head_sha="a" * 40,
    head_ref="feature/cart",
    base_ref="main",
    default_branch="main",
    author="octocat",
    head_repo="acme/shop",
)


def _repo(tmp_path: Path, *, objects: int) -> Path:
    root = tmp_path / "repo"
    (root / "deploy").mkdir(parents=True)
    (root / ".preview.yml").write_text(
        "version: 1\nmanifests: [deploy/]\nimages:\n  - name: registry.k8s.io/pause\n    tag: '3.9'\n"
    )
    for index in range(objects):
        (root / "deploy" / f"cm-{index:03}.yaml").write_text(config_map(f"settings-{index}", "branch ${BRANCH_SLUG}"))
    return root


def test_render_200_manifests(benchmark: Any, tmp_path: Path) -> None:
    root = _repo(tmp_path, objects=200)
    config = load_config_file(root)
    namespace = naming.namespace_name(prefix="preview", repo=PR.repo, number=PR.number)
    variables = manifests.preview_variables(pr=PR, namespace=namespace, url=None, extra={})
    labels = naming.preview_labels(repo=PR.repo, number=PR.number)

    rendered = benchmark(
        manifests.render_manifests, config, root=root, variables=variables, namespace=namespace, labels=labels
    )

    assert len(rendered.objects) == 200


def _render(root: Path) -> manifests.Rendered:
    config = load_config_file(root)
    namespace = naming.namespace_name(prefix="preview", repo=PR.repo, number=PR.number)
    variables = manifests.preview_variables(pr=PR, namespace=namespace, url=None, extra={})
    labels = naming.preview_labels(repo=PR.repo, number=PR.number)
    return manifests.render_manifests(config, root=root, variables=variables, namespace=namespace, labels=labels)


def test_render_a_chart_of_100_objects(benchmark: Any, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "chart/templates").mkdir(parents=True)
    (root / ".preview.yml").write_text(
        "helm:\n  chart: chart\n  values:\n    branch: ${BRANCH_SLUG}\n    image:\n      tag: pr-${PR_NUMBER}\n"
    )
    (root / "chart/Chart.yaml").write_text("apiVersion: v2\nname: shop\nversion: 0.1.0\n")
    (root / "chart/values.yaml").write_text("count: 50\nbranch: main\nimage: {tag: latest}\n")
    (root / "chart/templates/objects.yaml").write_text(
        "{{- range $i := until (int .Values.count) }}\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{{ $i }}\n"
        "data:\n  branch: {{ $.Values.branch | quote }}\n"
        "---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{{ $i }}\n"
        "spec:\n  selector: {matchLabels: {app: web-{{ $i }}}}\n"
        "  template:\n    metadata: {labels: {app: web-{{ $i }}}}\n"
        "    spec:\n      containers:\n        - name: web\n"
        "          image: registry.k8s.io/pause:{{ $.Values.image.tag }}\n"
        "{{- end }}\n"
    )

    rendered = benchmark(_render, root)

    assert len(rendered.objects) == 100


def test_build_an_overlay_of_100_objects(benchmark: Any, tmp_path: Path) -> None:
    root = _repo(tmp_path, objects=100)
    names = sorted(path.name for path in (root / "deploy").iterdir())
    (root / "deploy/kustomization.yaml").write_text(f"namePrefix: pr-\nresources: {names}\n")
    (root / ".preview.yml").write_text("kustomize: deploy\n")

    rendered = benchmark(_render, root)

    assert len(rendered.objects) == 100


def test_render_a_comment_cut_to_githubs_limit(benchmark: Any) -> None:
    huge_log = "\n".join(f"line {i}: connection refused to db:5432" for i in range(50_000))
    problems = tuple(
        ContainerProblem(pod=f"web-{i}", container="web", reason="CrashLoopBackOff", log_tail=huge_log)
        for i in range(5)
    )
    report = PreviewReport(
        ref=PrRef(repo=PR.repo, number=PR.number),
        phase=Phase.FAILED,
        head_sha=PR.head_sha,
        diagnoses=(
            WorkloadDiagnosis(
                workload=ObjectRef(api_version="apps/v1", kind="Deployment", name="web"),
                summary="0/5 ready",
                problems=problems,
            ),
        ),
    )

    body = benchmark(render.render_comment, report)

    assert len(body) <= render.COMMENT_LIMIT


def test_parse_a_long_comment(benchmark: Any) -> None:
    body = "\n".join(["> /preview destroy", "```", "/preview destroy", "```", "some prose"] * 2_000)
    body += "\n/preview redeploy\n"

    parsed = benchmark(commands.parse_comment, body)

    assert [c.verb for c in parsed if isinstance(c, commands.Command)] == ["redeploy"]


def test_parse_the_largest_comment_of_unclosed_code_spans(benchmark: Any) -> None:
    # GitHub's largest comment, a backtick on every line of one paragraph: spans that never close.
    body = ("`a\n" * 21_845)[: render.COMMENT_LIMIT]

    parsed = benchmark(commands.parse_comment, body)

    assert parsed == []


def test_deploy_ten_workloads_against_the_emulated_apis(benchmark: Any, github: Any, kube: Any, tmp_path: Path) -> None:
    checkout = Checkout(tmp_path / "repo")
    prefix = "b" + secrets.token_hex(3)
    checkout.write(
        ".preview.yml",
        f"version: 1\nmanifests: [deploy/]\nnamespace:\n  prefix: {prefix}\n  network_policy: none\n",
    )
    for index in range(10):
        checkout.write(f"deploy/web-{index}.yaml", web_deployment(f"web-{index}"))
    bot = Bot(github=github, kubeconfig=kube.kubeconfig, checkout=checkout)
    shas = iter(f"{n:040x}" for n in range(1, 1_000))

    def deploy() -> str:
        [outcome] = bot.on("pull_request", pr_event("synchronize", sha=next(shas)))
        return str(outcome.status)

    assert benchmark.pedantic(deploy, rounds=3, iterations=1) == "ready"

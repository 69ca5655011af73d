"""On-demand previews from a terminal: `previewbot up`, `down` and `list`, run as a developer runs them.

The CLI runs in-process with its real adapters against the emulated (or, with
PREVIEWBOT_TEST_KUBECONFIG, a real) Kubernetes API; no GitHub takes part.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from kubernetes import client

from previewbot import naming, render
from previewbot.cli import main
from previewbot.model import (
    OnDemandRef,
    Phase,
    PreviewReport,
    TestCase,
    TestOutcome,
    TestReport,
    TestRun,
)
from tests.harness import PR_NUMBER, REPO, Bot, Checkout, config_map, git, namespace_phase, pr_event, web_deployment

ROOT = Path(__file__).resolve().parent.parent
BRANCH = "feature/Login-Page"
NAME = naming.on_demand_name(BRANCH)

PASSING_TESTS = """#!/bin/sh
echo "testing $PREVIEW_URL as preview $PR_NUMBER"
echo "<testsuite name='e2e'><testcase name='test_home'/><testcase name='test_login'/></testsuite>" > junit.xml
"""


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str) -> Checkout:
    """A developer's clone of the repo, on a feature branch that has no pull request yet."""
    checkout.write(
        ".preview.yml",
        f"version: 1\nmanifests: [deploy/]\nurl: {site}/pr-${{PR_NUMBER}}\nreadiness:\n  timeout: 60s\n"
        "tests:\n  command: ./e2e.sh\n  report: junit.xml\n"
        f"namespace:\n  prefix: {prefix}\n  network_policy: none\n",
    )
    checkout.write("deploy/web.yaml", web_deployment())
    checkout.write("deploy/settings.yaml", config_map("settings", "preview ${PR_NUMBER} of ${BRANCH_SLUG}"))
    checkout.write("e2e.sh", PASSING_TESTS)
    (checkout.root / "e2e.sh").chmod(0o755)
    git(checkout.root, "init", "--quiet", "--initial-branch", BRANCH)
    git(checkout.root, "remote", "add", "origin", f"git@github.com:{REPO}.git")
    git(checkout.root, "add", ".")
    git(checkout.root, "commit", "--quiet", "-m", "Login page")
    return checkout


@pytest.fixture
def cli(kube: Any, core: client.CoreV1Api, prefix: str) -> Iterator[CliRunner]:
    """The command line; on a real cluster, the test's own on-demand previews go after it (`down` may have begun)."""
    yield CliRunner()
    if not kube.emulated:
        for namespace in core.list_namespace(label_selector=naming.on_demand_selector(repo=REPO)).items:
            if namespace.metadata.name.startswith(f"{prefix}-"):
                try:
                    core.delete_namespace(namespace.metadata.name)
                except client.ApiException as error:
                    if error.status != 404:  # gone since it was listed
                        raise


def run(cli: CliRunner, kube: Any, *args: str) -> Result:
    return cli.invoke(main, [*args, "--kubeconfig", str(kube.kubeconfig)], catch_exceptions=False)


def namespace_of(prefix: str, name: str = NAME) -> str:
    return naming.on_demand_namespace_name(prefix=prefix, repo=REPO, name=name)


def test_up_deploys_the_checkout_tests_it_and_shows_the_report(
    cli: CliRunner, kube: Any, core: Any, apps: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    head = git(checkout.root, "rev-parse", "HEAD")

    result = run(cli, kube, "up", str(checkout.root))

    assert result.exit_code == 0, result.output
    name = namespace_of(prefix)
    url = f"{site}/pr-{NAME}"
    for step in ("Namespace", "Apply manifests", "Wait for rollout", "End-to-end tests"):
        assert step in result.output
    assert "Preview ready" in result.output
    assert url in result.output
    assert "2 passed · 0 failed · 0 errors · 0 skipped" in result.output
    assert "  Workloads:\n    ✅ Deployment/web 1/1\n" in result.output
    assert f"testing {url} as preview {NAME}" in result.output
    assert "status=ready" in result.output
    namespace = core.read_namespace(name).metadata
    assert namespace.labels.items() >= naming.on_demand_labels(repo=REPO, name=NAME).items()
    assert naming.PR_LABEL not in namespace.labels
    assert namespace.annotations[naming.REPO_ANNOTATION] == REPO
    assert namespace.annotations[naming.HEAD_SHA_ANNOTATION] == head
    assert namespace.annotations[naming.STATUS_ANNOTATION] == Phase.READY
    expires = datetime.fromisoformat(namespace.annotations[naming.EXPIRES_AT_ANNOTATION].replace("Z", "+00:00"))
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    settings = core.read_namespaced_config_map("settings", name)
    assert settings.data["value"] == f"preview {NAME} of {naming.dns_label(BRANCH, limit=40)}"
    assert apps.read_namespaced_deployment("web", name).metadata.labels[naming.ON_DEMAND_LABEL] == NAME


def test_up_again_changes_only_what_changed(
    cli: CliRunner, kube: Any, core: Any, apps: Any, checkout: Checkout, prefix: str
) -> None:
    run(cli, kube, "up", str(checkout.root), "--no-tests")
    name = namespace_of(prefix)
    web = apps.read_namespaced_deployment("web", name).metadata
    settings = core.read_namespaced_config_map("settings", name).metadata
    checkout.write("deploy/settings.yaml", config_map("settings", "changed"))

    result = run(cli, kube, "up", str(checkout.root), "--no-tests")

    assert result.exit_code == 0, result.output
    assert "End-to-end tests" not in result.output
    assert core.read_namespaced_config_map("settings", name).metadata.resource_version != settings.resource_version
    after = apps.read_namespaced_deployment("web", name).metadata
    assert (after.generation, after.resource_version) == (web.generation, web.resource_version)


def test_up_with_a_failing_rollout_exits_1_with_the_diagnosis(
    cli: CliRunner, kube: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write("deploy/web.yaml", web_deployment(image="busybox:1.36", command="echo database unreachable; exit 3"))

    result = run(cli, kube, "up", str(checkout.root))

    assert result.exit_code == 1, result.output
    assert "Preview failed" in result.output
    assert "workload did not become ready" in result.output
    assert "Deployment/web" in result.output
    assert "database unreachable" in result.output
    assert "status=failed" in result.output


def test_up_pins_images_to_the_tag_asked_for(
    cli: CliRunner, kube: Any, apps: Any, checkout: Checkout, prefix: str
) -> None:
    config = (checkout.root / ".preview.yml").read_text()
    checkout.write(".preview.yml", config + "images:\n  - name: registry.k8s.io/pause\n    tag: pr-${PR_NUMBER}\n")

    result = run(cli, kube, "up", str(checkout.root), "--name", "demo", "--tag", "3.10", "--ttl", "2h", "--no-tests")

    assert result.exit_code == 0, result.output
    web = apps.read_namespaced_deployment("web", namespace_of(prefix, "demo"))
    assert web.spec.template.spec.containers[0].image == "registry.k8s.io/pause:3.10"


def test_a_bad_config_is_named_and_nothing_is_deployed(
    cli: CliRunner, kube: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    checkout.write(".preview.yml", f"version: 1\nmanifests: [deploy/]\nnamespace:\n  prefix: {prefix}\n  qouta: {{}}\n")

    result = run(cli, kube, "up", str(checkout.root))

    assert result.exit_code == 1
    assert "namespace.qouta" in result.output
    assert namespace_phase(core, namespace_of(prefix)) is None


def test_down_deletes_the_preview_and_then_finds_nothing_to_delete(
    cli: CliRunner, kube: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    run(cli, kube, "up", str(checkout.root), "--no-tests")

    first = run(cli, kube, "down", str(checkout.root))
    second = run(cli, kube, "down", "--name", BRANCH, "--repo", REPO)

    assert first.exit_code == 0, first.output
    assert namespace_of(prefix) in first.output
    assert namespace_phase(core, namespace_of(prefix)) in (None, "Terminating")
    assert second.exit_code == 0, second.output
    assert "nothing to delete" in second.output


def test_down_touches_no_namespace_that_is_not_that_on_demand_preview(
    cli: CliRunner, kube: Any, core: Any, checkout: Checkout
) -> None:
    other_repo = kube.unique("other-repo")
    labels = naming.on_demand_labels(repo=f"acme/{other_repo}", name=NAME)
    decoy = kube.unique("decoy")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=decoy, labels=labels)))
    try:
        result = run(cli, kube, "down", str(checkout.root))

        assert "nothing to delete" in result.output
        assert namespace_phase(core, decoy) == "Active"
    finally:
        core.delete_namespace(decoy)


def test_list_shows_pr_and_on_demand_previews_but_no_decoys(
    cli: CliRunner, kube: Any, core: Any, bot: Bot, checkout: Checkout, prefix: str
) -> None:
    run(cli, kube, "up", str(checkout.root), "--no-tests")
    bot.on("pull_request", pr_event("opened"))
    decoys = {
        kube.unique("no-labels"): {},
        kube.unique("only-managed-by"): {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE},
        kube.unique("other-repos-label"): naming.preview_labels(repo="acme/elsewhere", number=PR_NUMBER),
    }
    for decoy, labels in decoys.items():
        # The repo annotation says this repo, but the labels say another: not a preview of either.
        annotations = {naming.REPO_ANNOTATION: REPO}
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=decoy, labels=labels, annotations=annotations))
        )
    try:
        table = run(cli, kube, "list")
        listed = run(cli, kube, "list", "--output", "json")
    finally:
        for decoy in decoys:
            core.delete_namespace(decoy)

    assert table.exit_code == 0, table.output
    assert listed.exit_code == 0, listed.output
    ours = [p for p in json.loads(listed.output) if p["namespace"].startswith(prefix)]
    assert {(p["kind"], p["pr"], p["name"]) for p in ours} == {("pr", PR_NUMBER, None), ("on-demand", None, NAME)}
    for preview in ours:
        assert preview["repo"] == REPO
        assert preview["state"] == "ready"
        assert len(preview["commit"]) == 40
        assert preview["url"]
        assert preview["created_at"]
    assert {p["namespace"] for p in json.loads(listed.output)}.isdisjoint(decoys)
    header, *rows = table.output.splitlines()
    assert header.split() == ["PREVIEW", "REPO", "COMMIT", "STATE", "AGE", "EXPIRES", "URL", "NAMESPACE"]
    assert any(row.startswith(f"#{PR_NUMBER} ") and namespace_of(prefix).replace(NAME, "") in row for row in rows)
    assert any(f"{NAME} (on demand)" in row and "in 23h" in row for row in rows)
    assert not any(decoy in table.output for decoy in decoys)


def test_the_sweep_destroys_an_on_demand_preview_whose_time_ran_out(
    cli: CliRunner, kube: Any, core: Any, bot: Bot, checkout: Checkout, prefix: str
) -> None:
    run(cli, kube, "up", str(checkout.root), "--no-tests", "--ttl", "1h")
    run(cli, kube, "up", str(checkout.root), "--no-tests", "--name", "kept", "--ttl", "3h")
    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=2)

    [outcome] = bot.on("schedule", {"repository": {"full_name": REPO}})

    assert namespace_of(prefix) in outcome.message
    assert namespace_phase(core, namespace_of(prefix)) in (None, "Terminating")
    assert namespace_phase(core, namespace_of(prefix, "kept")) == "Active"


def test_the_readme_quick_start_brings_the_bundled_example_up_and_down(
    cli: CliRunner, kube: Any, core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
    [up_line] = re.findall(r"^ *previewbot up examples/hello .*$", readme, re.M)
    [down_line] = re.findall(r"^ *previewbot down --repo acme/hello .*$", readme, re.M)
    name = kube.unique("hello-demo")  # real clusters are shared: the README's name, made this run's own
    monkeypatch.chdir(ROOT)

    up = run(cli, kube, *shlex.split(up_line)[1:], "--name", name)
    down = run(cli, kube, *shlex.split(down_line)[1:], "--name", name)

    assert up.exit_code == 0, up.output
    assert "Preview ready" in up.output
    assert f"https://hello-pr-{name}.preview.example.com" in up.output
    assert down.exit_code == 0, down.output
    namespace = naming.on_demand_namespace_name(prefix="preview", repo="acme/hello", name=name)
    assert namespace in down.output
    assert namespace_phase(core, namespace) in (None, "Terminating")


@pytest.mark.parametrize(
    ("asked", "name"),
    [
        ("feature/Login-Page", naming.dns_label("feature/Login-Page", limit=40)),
        ("fix-cart", "fix-cart"),
        ("42", "up-42"),  # ${PR_NUMBER} must never read as another PR's number
        ("x" * 80, naming.dns_label("x" * 80, limit=40)),
    ],
)
def test_an_on_demand_name_is_a_short_dns_label_never_of_digits_alone(asked: str, name: str) -> None:
    assert naming.on_demand_name(asked) == name
    assert len(name) <= naming.ON_DEMAND_NAME_LENGTH
    assert not name.isdigit()


def test_an_on_demand_namespace_never_meets_a_pr_s() -> None:
    on_demand = naming.on_demand_namespace_name(prefix="preview", repo=REPO, name=naming.on_demand_name("2"))
    pr = naming.namespace_name(prefix="preview", repo=REPO, number=2)

    assert on_demand != pr
    assert len(naming.on_demand_namespace_name(prefix="p" * 40, repo=REPO, name="n" * 40)) <= 63


def test_plan_says_what_the_variables_are_for_an_on_demand_preview() -> None:
    result = CliRunner().invoke(main, ["plan", str(ROOT / "examples" / "hello"), "--name", "my-branch"])

    assert result.exit_code == 0, result.output
    assert "#   ${PR_NUMBER} = my-branch" in result.output
    assert "#   ${NAMESPACE} = preview-hello-my-branch" in result.output
    assert "ghcr.io/acme/hello pinned to tag pr-my-branch-0123456" in result.output
    assert "What `previewbot up` prints" in result.output
    assert "# environment:" not in result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d]
    assert {d["metadata"]["labels"][naming.ON_DEMAND_LABEL] for d in documents} == {"my-branch"}


def test_the_terminal_report_keeps_a_pod_s_log_from_driving_the_terminal() -> None:
    log = "step 1\n\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\rcleared\nassert 1 == 2"
    report = PreviewReport(
        ref=OnDemandRef(repo=REPO, name=NAME),
        phase=Phase.FAILED,
        head_sha="1" * 40,
        tests=TestRun(
            passed=False,
            report=TestReport(cases=(TestCase(name="test_cart", outcome=TestOutcome.FAILED, message="cart\x1b[2J"),)),
            log_tail=log,
        ),
    )

    shown = render.render_terminal(report)

    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "\r" not in shown
    assert "✘ test_cart (failed)" in shown
    assert "0 passed · 1 failed · 0 errors · 0 skipped" in shown
    assert "assert 1 == 2" in shown


@pytest.mark.parametrize("command", [["up", "--no-tests"], ["down"], ["list"]])
def test_a_cluster_that_does_not_answer_is_said_plainly(command: list[str], checkout: Checkout, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "unreachable"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    where = [str(checkout.root)] if command[0] != "list" else []

    result = CliRunner().invoke(main, [*command, *where, "--kubeconfig", str(kubeconfig)], catch_exceptions=False)

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "not-a-real-token" not in result.output

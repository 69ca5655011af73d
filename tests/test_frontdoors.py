"""The command line and the Action's front door, run in-process as the runner would run them."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from previewbot import naming, render
from previewbot.cli import main
from tests.harness import (
    PR_NUMBER,
    REPO,
    Checkout,
    OwnRepo,
    comment_event,
    namespace_phase,
    pr_event,
    preview_site,
    pull_event,
    sticky,
    web_deployment,
)

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the PR's head in GitHub's example payloads


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    with preview_site() as site:
        repo = Checkout(tmp_path / "repo")
        repo.write(
            ".preview.yml",
            f"""version: 1
manifests: [deploy/]
url: {site}/pr-${{PR_NUMBER}}
namespace:
  prefix: f{secrets.token_hex(3)}
  network_policy: none
tests:
  command: ./e2e.sh
  report: junit.xml
""",
        )
        repo.write("deploy/web.yaml", web_deployment())
        repo.write(
            "e2e.sh",
            "#!/bin/sh\ncat > junit.xml <<'EOF'\n<testsuite name='e2e' tests='2'>"
            "<testcase name='test_home'/><testcase name='test_cart'><failure message='cart is empty'/></testcase>"
            "</testsuite>\nEOF\nexit 1\n",
        )
        (repo.root / "e2e.sh").chmod(0o755)
        yield repo


def runner_env(
    tmp_path: Path, *, event_name: str, event: dict[str, Any], github: Any, kube: Any, workspace: Path
) -> dict[str, str]:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event))
    return {
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_API_URL": github.url,
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "INPUT_TOKEN": github.token,
        "INPUT_KUBECONFIG": kube.kubeconfig.read_text(),
    }


def read_outputs(path: Path) -> dict[str, str]:
    """Parse GITHUB_OUTPUT's heredoc form (name<<DELIMITER / value / DELIMITER)."""
    outputs, lines = {}, iter(path.read_text().splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        value = []
        for body in lines:
            if body == delimiter:
                break
            value.append(body)
        outputs[name] = "\n".join(value)
    return outputs


def test_plan_renders_the_bundled_example_with_no_cluster_and_no_github(cli: CliRunner) -> None:
    result = cli.invoke(main, ["plan", str(ROOT / "examples" / "hello")], env={"GITHUB_TOKEN": ""})

    assert result.exit_code == 0, result.output
    assert "✔ .preview.yml is valid" in result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d]
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "Ingress", "Job", "ResourceQuota", "NetworkPolicy"} <= kinds
    namespaces = {d["metadata"]["namespace"] for d in documents}
    assert namespaces == {"preview-hello-pr-1"}
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert "ghcr.io/acme/hello:pr-1-0123456" in images
    assert render.COMMENT_MARKER in result.output


@pytest.mark.parametrize(
    ("example", "origin"),
    [
        ("hello-helm", "3 objects from chart hello (release hello); workloads: Deployment/hello"),
        ("hello-kustomize", "4 objects from kustomize deploy/overlays/preview; workloads: Deployment/hello"),
    ],
)
def test_plan_renders_a_chart_and_an_overlay(cli: CliRunner, example: str, origin: str) -> None:
    result = cli.invoke(main, ["plan", str(ROOT / "examples" / example)])

    assert result.exit_code == 0, result.output
    assert f"# ✔ {origin}" in result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d]
    ingress = next(d for d in documents if d["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "hello-pr-1.preview.example.com"
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/hello:pr-1-0123456"
    assert {d["metadata"]["namespace"] for d in documents} == {f"preview-{example}-pr-1"}


def test_plan_says_what_a_chart_leaves_out(cli: CliRunner) -> None:
    result = cli.invoke(main, ["plan", str(ROOT / "examples" / "hello-helm")])

    assert (
        "# - not deployed: hello/templates/tests/test-connection.yaml, document 1: a test hook, "
        "which a preview does not run\n"
    ) in result.output
    assert "test-connection" not in result.output.split("\n---\n", 1)[1]


def test_plan_lists_each_name_it_left_as_written(cli: CliRunner, tmp_path: Path) -> None:
    repo = Checkout(tmp_path)
    repo.write(".preview.yml", "manifests: [deploy/]\n")
    repo.write("deploy/shop.yaml", (ROOT / "tests/fixtures/shop/shop.yaml").read_text())

    result = cli.invoke(main, ["plan", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert (
        "# ${NAME}s left as written, none of previewbot's variables (3):\n"
        "#   deploy/shop.yaml:709: ${FRONTEND_ADDR}\n"
        "#   deploy/shop.yaml:713: ${FRONTEND_ADDR}\n"
        "#   deploy/shop.yaml:713: ${STATUSCODE}\n"
    ) in result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d]
    loadgen = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "loadgen")
    assert 'while [ -z "${FRONTEND_ADDR}" ]' in loadgen["spec"]["template"]["spec"]["initContainers"][0]["command"][2]


def test_plan_shows_a_charts_error_in_its_own_words(cli: CliRunner, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "hello-helm", tmp_path, dirs_exist_ok=True)
    (tmp_path / "chart/templates/broken.yaml").write_text("kind: {{ .Values.kind.name }}\n")

    result = cli.invoke(main, ["plan", str(tmp_path)])

    assert result.exit_code == 1
    assert "✘ helm chart chart: hello/templates/broken.yaml:1:16\n" in result.output
    assert "nil pointer evaluating interface {}.name" in result.output


def test_plan_names_what_is_wrong_in_a_bad_config(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".preview.yml").write_text("version: 1\nmanifests: [deploy/]\nreadiness:\n  timeout: soon\n")

    result = cli.invoke(main, ["plan", str(tmp_path)])

    assert result.exit_code == 1
    assert ".preview.yml:4" in result.output
    assert "readiness.timeout" in result.output


def test_every_command_explains_itself(cli: CliRunner) -> None:
    top = cli.invoke(main, ["--help"])
    assert top.exit_code == 0
    for command in ("plan", "up", "down", "list", "deploy", "destroy", "action", "schema"):
        assert command in top.output
        result = cli.invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_schema_prints_the_shipped_schema(cli: CliRunner) -> None:
    result = cli.invoke(main, ["schema"])

    shipped = json.loads((ROOT / "previewbot" / "schema" / "preview.schema.json").read_text())
    assert json.loads(result.output) == shipped


def test_the_action_writes_outputs_summary_and_fails_on_failed_tests(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    env = runner_env(
        tmp_path, event_name="pull_request", event=pr_event("opened"), github=github, kube=kube, workspace=checkout.root
    )

    result = cli.invoke(main, ["action"], env=env)

    assert result.exit_code == 1, result.output
    assert "::error title=previewbot::" in result.output
    outputs = read_outputs(tmp_path / "output")
    assert outputs["status"] == "failed"
    assert outputs["namespace"].endswith(f"-hello-world-pr-{PR_NUMBER}")
    summary = (tmp_path / "summary.md").read_text()
    assert "test_cart" in summary
    assert "cart is empty" in summary
    assert render.COMMENT_MARKER not in summary
    [deployment] = github.deployments(REPO)
    assert deployment.statuses[-1].log_url == "https://github.example.com/Codertocat/Hello-World/actions/runs/4242"
    assert github.token not in result.output
    assert "client-key-data" not in result.output


def test_a_one_line_json_kubeconfig_longer_than_a_file_name_is_read_and_never_printed(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    checkout.write("e2e.sh", "#!/bin/sh\ncat > junit.xml <<'EOF'\n<testsuite name='e'/>\nEOF\n")
    document = yaml.safe_load(kube.kubeconfig.read_text())
    unused_token = secrets.token_hex(2560)
    document["users"].append({"name": "unused", "user": {"token": unused_token}})
    env = runner_env(
        tmp_path, event_name="pull_request", event=pr_event("opened"), github=github, kube=kube, workspace=checkout.root
    )
    env["INPUT_KUBECONFIG"] = json.dumps(document)
    assert len(env["INPUT_KUBECONFIG"]) > 5 * 1024

    result = cli.invoke(main, ["action"], env=env)

    assert result.exit_code == 0, result.output[-2000:]
    assert read_outputs(tmp_path / "output")["status"] == "ready"
    assert unused_token[:32] not in result.output
    assert "File name too long" not in result.output


def test_text_from_the_pr_cannot_print_a_workflow_command(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    checkout.write(".preview.yml", 'version: 1\nmanifests: [deploy/]\n"x\\n::add-mask::abc\\n::warning::owned": 1\n')
    env = runner_env(
        tmp_path, event_name="pull_request", event=pr_event("opened"), github=github, kube=kube, workspace=checkout.root
    )

    result = cli.invoke(main, ["action"], env=env)

    assert result.exit_code == 1
    assert "add-mask" in result.output
    commands = [line for line in result.output.splitlines() if line.lstrip().startswith("::")]
    assert all(line.startswith("::error title=previewbot::") for line in commands), commands


def test_an_unexpected_error_outside_a_deploy_run_fails_the_step_with_an_annotation(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    checkout.remove(".preview.yml")
    (checkout.root / ".preview.yml").mkdir()
    env = runner_env(
        tmp_path, event_name="pull_request", event=pr_event("opened"), github=github, kube=kube, workspace=checkout.root
    )

    result = cli.invoke(main, ["action"], env=env)

    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "::error title=previewbot::previewbot failed unexpectedly: IsADirectoryError" in result.output
    assert "Traceback" in result.output
    assert github.token not in result.output


def test_the_action_refuses_a_checkout_of_another_commit_than_it_deploys(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    event = pr_event("opened")
    head = event["pull_request"]["head"]["sha"]
    other = "0123456789abcdef0123456789abcdef01234567"
    (checkout.root / ".git").mkdir()
    (checkout.root / ".git" / "HEAD").write_text(other + "\n")
    env = runner_env(
        tmp_path, event_name="pull_request", event=event, github=github, kube=kube, workspace=checkout.root
    )

    result = cli.invoke(main, ["action"], env=env)

    assert result.exit_code == 1
    comment = sticky(github)
    assert other in comment
    assert head in comment
    assert github.deployments(REPO) == []
    assert read_outputs(tmp_path / "output")["namespace"] == ""


@pytest.mark.parametrize(
    ("fork", "body", "permission", "builds"),
    [
        ("stranger/Hello-World", f"/preview approve {PAYLOAD_HEAD}", "write", True),  # the head of the PR's payload
        ("stranger/Hello-World", f"/preview approve {PAYLOAD_HEAD}", "read", False),
        ("stranger/Hello-World", "/preview approve ec26c3e", "write", False),  # a prefix of the head: builds nothing
        ("stranger/Hello-World", f"/preview approve {'1' * 40}", "write", False),  # not the head: builds nothing
        ("stranger/Hello-World", "/preview approve", "write", False),  # names no commit
        ("stranger/Hello-World", "/preview redeploy", "admin", False),
        ("stranger/Hello-World", "/preview status", "admin", False),
        (None, "/preview redeploy", "write", True),
        (None, "/preview redeploy", "triage", False),
        (None, f"/preview approve {PAYLOAD_HEAD}", "admin", False),
    ],
)
def test_the_gate_names_the_commit_a_comment_lets_the_workflow_build_and_changes_nothing(
    cli: CliRunner,
    tmp_path: Path,
    github: Any,
    kube: Any,
    fork: str | None,
    body: str,
    permission: str,
    builds: bool,
) -> None:
    pull = pr_event("opened", fork=fork)["pull_request"]
    github.add_pull(pull)
    github.set_permission(REPO, "commenter", permission)
    comment_id, event = comment_event(github, body, user="commenter")
    env = runner_env(tmp_path, event_name="issue_comment", event=event, github=github, kube=kube, workspace=tmp_path)
    del env["INPUT_KUBECONFIG"]  # the gate holds none

    result = cli.invoke(main, ["action", "--mode", "gate"], env=env)

    assert result.exit_code == 0, result.output
    assert read_outputs(tmp_path / "output") == {"sha": pull["head"]["sha"] if builds else ""}
    assert [c.body for c in github.comments(REPO, PR_NUMBER)] == [body]
    assert github.reactions(REPO, comment_id) == []


def test_the_action_outside_a_workflow_says_what_is_missing(cli: CliRunner) -> None:
    result = cli.invoke(main, ["action"], env={"INPUT_TOKEN": "x", "GITHUB_EVENT_NAME": "", "GITHUB_EVENT_PATH": ""})

    assert result.exit_code == 2
    assert "GITHUB_EVENT_NAME" in result.output


def test_an_unreadable_event_file_is_named(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, checkout: Checkout
) -> None:
    env = runner_env(tmp_path, event_name="pull_request", event={}, github=github, kube=kube, workspace=checkout.root)
    Path(env["GITHUB_EVENT_PATH"]).write_text("{not json")

    result = cli.invoke(main, ["action"], env=env)

    assert result.exit_code == 1
    assert env["GITHUB_EVENT_PATH"] in result.output
    assert github.comments(REPO, PR_NUMBER) == []


def test_deploy_and_destroy_from_the_command_line(cli: CliRunner, github: Any, kube: Any, checkout: Checkout) -> None:
    checkout.write("e2e.sh", "#!/bin/sh\necho fine > /dev/null\ncat > junit.xml <<'EOF'\n<testsuite name='e'/>\nEOF\n")
    connection = ["--token", github.token, "--api-url", github.url, "--kubeconfig", str(kube.kubeconfig)]

    deployed = cli.invoke(main, ["deploy", "--repo", REPO, "--pr", "2", "--workspace", str(checkout.root), *connection])
    destroyed = cli.invoke(main, ["destroy", "--repo", REPO, "--pr", "2", *connection])

    assert deployed.exit_code == 0, deployed.output
    assert "status=ready" in deployed.output
    assert destroyed.exit_code == 0, destroyed.output
    assert "status=destroyed" in destroyed.output
    comment = sticky(github)
    assert "Destroyed" in comment or "destroyed" in comment


# ---------------------------------------------------------------- a freed slot


@pytest.fixture
def capped(github: Any, kube: Any, core: Any, prefix: str, site: str) -> Iterator[OwnRepo]:
    # Its own repo: the cap counts every live preview of a repo, and a real cluster is shared.
    repo = OwnRepo(name=f"acme/{kube.unique('slots')}", prefix=prefix, site=site, github=github)
    repo.default_config()
    yield repo
    if not kube.emulated:
        for namespace in core.list_namespace(label_selector=naming.owned_selector(repo=repo.name)).items:
            core.delete_namespace(namespace.metadata.name)


def run_action(cli: CliRunner, tmp_path: Path, event: dict[str, Any], *, repo: str, github: Any, kube: Any) -> Any:
    """`previewbot action` on a pull_request event of repo, with the PR's checkout when it has one."""
    checkout = tmp_path / f"checkout-{event['action']}-{event['number']}"
    checkout.mkdir(exist_ok=True)
    env = runner_env(tmp_path, event_name="pull_request", event=event, github=github, kube=kube, workspace=checkout)
    env["GITHUB_REPOSITORY"] = repo
    return cli.invoke(main, ["action"], env=env)


def run_sweep(cli: CliRunner, tmp_path: Path, *, repo: str, github: Any, kube: Any) -> Any:
    """`previewbot action` on the scheduled run of repo, which has no checkout."""
    event = {"schedule": "17 * * * *"}
    env = runner_env(tmp_path, event_name="schedule", event=event, github=github, kube=kube, workspace=tmp_path)
    env["GITHUB_REPOSITORY"] = repo
    return cli.invoke(main, ["action"], env=env)


def test_the_action_that_frees_a_slot_deploys_the_pr_first_in_line_from_its_files_at_its_head(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, core: Any, capped: OwnRepo
) -> None:
    live, waiting = 2, 3
    for number, sha in ((live, "a" * 40), (waiting, "b" * 40)):
        event = pull_event(github, "opened", repo=capped.name, number=number, sha=sha)
        capped.commit(sha, checkout=tmp_path / f"checkout-opened-{number}")
        assert run_action(cli, tmp_path, event, repo=capped.name, github=github, kube=kube).exit_code == 0
    assert "number 1 in line" in capped.sticky(waiting)

    closed = pull_event(github, "closed", repo=capped.name, number=live)
    result = run_action(cli, tmp_path, closed, repo=capped.name, github=github, kube=kube)

    assert result.exit_code == 0, result.output[-2000:]
    assert read_outputs(tmp_path / "output")["status"] == "destroyed", "the outputs are the event's PR's"
    deployed = core.read_namespace(capped.namespace(waiting)).metadata.annotations
    assert (deployed[naming.HEAD_SHA_ANNOTATION], deployed[naming.STATUS_ANNOTATION]) == ("b" * 40, "ready")
    assert naming.QUEUED_AT_ANNOTATION not in deployed
    assert "Preview ready" in capped.sticky(waiting)
    fetched = {r.path.rsplit("/contents/", 1)[1] for r in github.requests if r.query.get("ref") == ["b" * 40]}
    assert {".preview.yml", "deploy", "deploy/web.yaml"} <= fetched
    assert [d.sha for d in github.deployments(capped.name)] == ["b" * 40, "a" * 40]


def test_a_forks_pr_first_in_line_is_not_deployed_without_an_approval_of_its_head(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, core: Any, capped: OwnRepo
) -> None:
    live, fork = 2, 3
    capped.default_config("forks:\n  policy: allow\n")
    opened = pull_event(github, "opened", repo=capped.name, number=live, sha="a" * 40)
    capped.commit("a" * 40, checkout=tmp_path / f"checkout-opened-{live}")
    assert run_action(cli, tmp_path, opened, repo=capped.name, github=github, kube=kube).exit_code == 0
    from_fork = pull_event(github, "opened", repo=capped.name, number=fork, sha="f" * 40, fork="mallory/shop")
    capped.commit("f" * 40, checkout=tmp_path / f"checkout-opened-{fork}")
    assert run_action(cli, tmp_path, from_fork, repo=capped.name, github=github, kube=kube).exit_code == 0
    assert "number 1 in line" in capped.sticky(fork)
    capped.default_config()  # forks need a maintainer's approval of their head again, which this one never had

    closed = pull_event(github, "closed", repo=capped.name, number=live)
    result = run_action(cli, tmp_path, closed, repo=capped.name, github=github, kube=kube)

    assert result.exit_code == 0, result.output[-2000:]
    waiting = core.read_namespace(capped.namespace(fork)).metadata.annotations
    assert naming.HEAD_SHA_ANNOTATION not in waiting
    assert "comes from a fork" in capped.sticky(fork)
    assert [d.sha for d in github.deployments(capped.name)] == ["a" * 40]


def test_nothing_of_the_files_fetched_for_the_pr_first_in_line_runs_on_the_runner(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, core: Any, capped: OwnRepo
) -> None:
    live, waiting = 2, 3
    ran = tmp_path / "ran"
    capped.commit("a" * 40, checkout=tmp_path / f"checkout-opened-{live}")
    opened = pull_event(github, "opened", repo=capped.name, number=live, sha="a" * 40)
    assert run_action(cli, tmp_path, opened, repo=capped.name, github=github, kube=kube).exit_code == 0
    capped.commit("b" * 40, checkout=tmp_path / f"checkout-opened-{waiting}", more=f"tests:\n  command: touch {ran}\n")
    queued = pull_event(github, "opened", repo=capped.name, number=waiting, sha="b" * 40)
    assert run_action(cli, tmp_path, queued, repo=capped.name, github=github, kube=kube).exit_code == 0

    closed = pull_event(github, "closed", repo=capped.name, number=live)
    result = run_action(cli, tmp_path, closed, repo=capped.name, github=github, kube=kube)

    assert not ran.exists()
    assert result.exit_code == 1, "the PR deployed next failed its required tests, which could not run"
    assert core.read_namespace(capped.namespace(waiting)).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == "b" * 40
    assert "a deploy when a preview slot frees has no checkout: `/preview retest` runs it" in capped.sticky(waiting)


def test_a_sweep_that_frees_two_slots_deploys_the_two_prs_first_in_line(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, core: Any, capped: OwnRepo
) -> None:
    capped.default_config(limit=2)
    for number in (2, 3, 4, 5, 6):
        sha = f"{number:x}" * 40
        capped.commit(sha, checkout=tmp_path / f"checkout-opened-{number}")
        event = pull_event(github, "opened", repo=capped.name, number=number, sha=sha)
        assert run_action(cli, tmp_path, event, repo=capped.name, github=github, kube=kube).exit_code == 0
    for number in (2, 3):  # closed while no run saw it
        github.update_pull(capped.name, number, state="closed")

    result = run_sweep(cli, tmp_path, repo=capped.name, github=github, kube=kube)

    assert result.exit_code == 0, result.output[-2000:]
    for number in (4, 5):
        deployed = core.read_namespace(capped.namespace(number)).metadata.annotations
        assert (deployed[naming.HEAD_SHA_ANNOTATION], deployed[naming.STATUS_ANNOTATION]) == (
            f"{number:x}" * 40,
            "ready",
        )
    still_waiting = core.read_namespace(capped.namespace(6)).metadata.annotations
    assert naming.QUEUED_AT_ANNOTATION in still_waiting
    assert naming.HEAD_SHA_ANNOTATION not in still_waiting


def test_a_pr_in_line_closed_unseen_holds_its_place_until_the_sweep_takes_it_away(
    cli: CliRunner, tmp_path: Path, github: Any, kube: Any, core: Any, capped: OwnRepo
) -> None:
    for number in (2, 3, 4):
        sha = f"{number:x}" * 40
        capped.commit(sha, checkout=tmp_path / f"checkout-opened-{number}")
        event = pull_event(github, "opened", repo=capped.name, number=number, sha=sha)
        assert run_action(cli, tmp_path, event, repo=capped.name, github=github, kube=kube).exit_code == 0
    github.update_pull(capped.name, 3, state="closed")  # first in line, closed while no run saw it
    closed = pull_event(github, "closed", repo=capped.name, number=2)
    assert run_action(cli, tmp_path, closed, repo=capped.name, github=github, kube=kube).exit_code == 0
    assert naming.HEAD_SHA_ANNOTATION not in core.read_namespace(capped.namespace(4)).metadata.annotations

    assert run_sweep(cli, tmp_path, repo=capped.name, github=github, kube=kube).exit_code == 0

    assert namespace_phase(core, capped.namespace(3)) in (None, "Terminating")
    assert core.read_namespace(capped.namespace(4)).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == "4" * 40

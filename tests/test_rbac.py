"""The RBAC previewbot ships, tried as a platform team would grant it: enough for a whole PR life, no more.

previewbot runs with the token of a ServiceAccount bound to exactly what `previewbot rbac`
prints for the repo, on the emulated API (whose RBAC reads the same roles and bindings) or,
with PREVIEWBOT_TEST_KUBECONFIG, on a real cluster, where the test makes the ServiceAccount
and its token from the admin kubeconfig.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from previewbot import naming, rbac
from previewbot.cli import main
from previewbot.core.previews import Outcome
from previewbot.errors import PreviewbotError
from previewbot.model import Phase, PrRef
from tests.emulators.kube_plugin import KubeEnv, RbacUser, bound_user, cleanup_rbac
from tests.harness import PR_NUMBER, REPO, Bot, Checkout, comment_event, pr_event, sticky, web_deployment

ROOT = Path(__file__).resolve().parent.parent
SHAS = [str(n) * 40 for n in range(1, 5)]
BASE = pr_event("opened")["pull_request"]["base"]["ref"]
REPORT = '<testsuites><testsuite name="e2e"><testcase name="home page loads"/></testsuite></testsuites>'
TESTS = json.dumps(f"echo testing $PREVIEW_URL\ncat > /tmp/junit.xml <<'EOF'\n{REPORT}\nEOF")


def rbac_manifests(
    checkout: Checkout, *, name: str, account: str, edit: Callable[[list[dict[str, Any]]], None] | None = None
) -> list[dict[str, Any]]:
    """What `previewbot rbac` prints for the checkout, as a platform team would apply it (after `edit`)."""
    printed = CliRunner().invoke(main, ["rbac", str(checkout.root), "--name", name, "--service-account", account])
    assert printed.exit_code == 0, printed.output
    documents = [document for document in yaml.safe_load_all(printed.output) if document]
    if edit is not None:
        edit(documents)
    return documents


def test_the_shipped_manifests_are_what_previewbot_rbac_prints() -> None:
    printed = CliRunner().invoke(main, ["rbac"])

    assert printed.exit_code == 0
    assert (ROOT / "rbac" / "previewbot.yaml").read_text() == printed.output, "run `make rbac`"


def test_the_kinds_of_a_repos_manifests_are_granted_in_preview_namespaces_only(tmp_path: Path) -> None:
    (tmp_path / ".preview.yml").write_text(
        "version: 1\nmanifests: [deploy/]\nnamespace:\n  secrets:\n    - from: shared/db\n    - from: shared/api-key\n"
    )
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "app.yaml").write_text(
        web_deployment() + "---\napiVersion: example.com/v1\nkind: Policy\nmetadata:\n  name: p\n"
    )

    printed = CliRunner().invoke(main, ["rbac", str(tmp_path), "--user", "ci-bot"])

    documents = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(printed.output) if d}
    preview = documents[("ClusterRole", "previewbot-preview")]["rules"]
    granted = {(group, resource) for rule in preview for group in rule["apiGroups"] for resource in rule["resources"]}
    assert {("apps", "deployments"), ("example.com", "policies"), ("", "resourcequotas")} <= granted
    cluster = documents[("ClusterRole", "previewbot")]["rules"]
    assert {resource for rule in cluster for resource in rule["resources"]} == {
        "namespaces",
        "rolebindings",
        "clusterroles",
    }
    [bind] = [rule for rule in cluster if rule["verbs"] == ["bind"]]
    assert bind["resourceNames"] == ["previewbot-preview"]
    [secrets] = documents[("Role", "previewbot-secrets")]["rules"]
    assert secrets["resourceNames"] == ["api-key", "db"]
    assert documents[("ClusterRoleBinding", "previewbot")]["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ci-bot"}
    ]


@pytest.mark.parametrize(
    ("kind", "resource"),
    [("Policy", "policies"), ("Gateway", "gateways"), ("Ingress", "ingresses"), ("Mesh", "meshes"), ("Day", "days")],
)
def test_a_kind_the_rules_do_not_list_has_its_resource_guessed_as_kubernetes_does(kind: str, resource: str) -> None:
    assert rbac.guess_resource(kind) == resource


@pytest.fixture
def source_namespace(kube: KubeEnv) -> Iterator[str]:
    core = client.CoreV1Api(kube.api_client())
    name = kube.unique("pb-rbac-source")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    secret = {"password": base64.b64encode(b"previews-only").decode()}
    core.create_namespaced_secret(name, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), data=secret))
    yield name
    if not kube.emulated:
        core.delete_namespace(name)


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str, source_namespace: str, github: Any) -> Checkout:
    config = f"""version: 1
manifests: [deploy/]
url: {site}/pr-${{PR_NUMBER}}
smoke:
  timeout: 5s
readiness:
  timeout: 60s
tests:
  job:
    image: busybox:1.36
    command: [sh, -c, {TESTS}]
    report: /tmp/junit.xml
  timeout: 60s
sleep_after: 1s
namespace:
  prefix: {prefix}
  network_policy: isolate
  quota:
    pods: 3
  secrets:
    - from: {source_namespace}/db
"""
    checkout.write(".preview.yml", config)
    github.add_file(REPO, ".preview.yml", config, ref=BASE)  # where the secrets are granted
    checkout.write("deploy/web.yaml", web_deployment())
    checkout.write("deploy/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n")
    github.set_permission(REPO, "Codertocat", "write")
    return checkout


@pytest.fixture
def grant(kube: KubeEnv, tmp_path: Path, checkout: Checkout) -> Iterator[Callable[..., RbacUser]]:
    """Grant previewbot what `previewbot rbac` prints (changed by `edit`), as a ServiceAccount of its own."""
    made: list[tuple[list[dict[str, Any]], str]] = []

    def granted(edit: Callable[[list[dict[str, Any]]], None] | None = None) -> RbacUser:
        name = kube.unique("pb-rbac")
        account = f"{name}/previewbot"
        documents = rbac_manifests(checkout, name=name, account=account, edit=edit)
        made.append((documents, name))
        return bound_user(kube, tmp_path / "bound-kubeconfig", documents, name=name, account=account)

    yield granted
    for documents, namespace in made:
        cleanup_rbac(kube, documents, account_namespace=namespace)


def bound_bot(bot: Bot, user: RbacUser) -> Bot:
    return Bot(
        github=bot.github,
        kubeconfig=user.kubeconfig,
        checkout=bot.checkout,
        rbac_name=user.name,
    )


def pr_life(bot: Bot, github: Any, checkout: Checkout) -> Iterator[tuple[str, Outcome]]:
    """A PR's whole life, step by step: open, push, a redeploy comment, a push the quota refuses, close."""

    def event(action: str, sha: str) -> dict[str, Any]:
        opened = pr_event(action, sha=sha)
        github.add_pull(opened["pull_request"])
        return opened

    def run(event_name: str, payload: dict[str, Any]) -> Outcome:
        try:
            [outcome] = bot.on(event_name, payload)
        except PreviewbotError as error:  # what the front doors report for a run that could not begin
            return Outcome(status=Phase.FAILED, message=str(error))
        return outcome

    yield "open", run("pull_request", event("opened", SHAS[0]))
    checkout.remove("deploy/settings.yaml")
    yield "push", run("pull_request", event("synchronize", SHAS[1]))
    _, redeploy = comment_event(github, "/preview redeploy")
    yield "comment", run("issue_comment", redeploy)
    time.sleep(1.5)  # past sleep_after
    yield "sleep", run("schedule", {"schedule": "*/30 * * * *"})
    checkout.write("deploy/web.yaml", web_deployment().replace("replicas: 1", "replicas: 5"))
    yield "push beyond the quota", run("pull_request", event("synchronize", SHAS[2]))
    yield "close", run("pull_request", event("closed", SHAS[2]))


EXPECTED = {
    "open": Phase.READY,
    "push": Phase.READY,
    "comment": Phase.READY,
    "sleep": "swept",
    "push beyond the quota": Phase.FAILED,
    "close": Phase.DESTROYED,
}


def as_expected(step: str, outcome: Outcome) -> bool:
    """The step ended as it should; the push beyond the quota fails with a diagnosis, not an error."""
    if outcome.status != EXPECTED[step]:
        return False
    if step == "sleep":
        return "(sleep: idle)" in outcome.message
    return step != "push beyond the quota" or bool(outcome.report and outcome.report.diagnoses)


def test_the_shipped_rbac_is_enough_for_a_whole_pr_life(
    bot: Bot, github: Any, checkout: Checkout, grant: Callable[..., RbacUser]
) -> None:
    bound = bound_bot(bot, grant())

    outcomes = dict(pr_life(bound, github, checkout))

    assert {step: outcome.status for step, outcome in outcomes.items()} == EXPECTED
    assert all(as_expected(step, outcome) for step, outcome in outcomes.items())
    assert all(
        outcome.report and outcome.report.tests and outcome.report.tests.passed
        for outcome in [outcomes["open"], outcomes["push"], outcomes["comment"]]
    )
    starved = outcomes["push beyond the quota"]
    assert starved.report is not None
    [diagnosis] = starved.report.diagnoses
    assert diagnosis.summary.startswith("its pods were refused by a ResourceQuota: ")
    assert "exceeded quota" in diagnosis.summary


def _without_rule(scope: str, resource: str, verb: str) -> Callable[[list[dict[str, Any]]], None]:
    """An edit of the printed manifests that drops the one rule granting `verb` on `resource` in `scope`."""

    def edit(documents: list[dict[str, Any]]) -> None:
        [role] = [d for d in documents if d["kind"] in ("ClusterRole", "Role") and _scope(d) == scope]
        kept = [rule for rule in role["rules"] if resource not in rule["resources"] or verb not in rule["verbs"]]
        assert len(kept) == len(role["rules"]) - 1, f"no single rule grants {verb} {resource} in {scope}"
        role["rules"] = kept

    return edit


def _scope(role: dict[str, Any]) -> str:
    if role["kind"] == "Role":
        return "secret source"
    return "preview" if role["metadata"]["name"].endswith("-preview") else "cluster"


@pytest.mark.parametrize(
    ("scope", "resource", "verb", "named"),
    [
        ("cluster", "namespaces", "create", "namespaces cluster-wide"),
        ("cluster", "rolebindings", "create", "may not create rolebindings.rbac.authorization.k8s.io"),
        ("cluster", "clusterroles", "bind", "may not bind the preview ClusterRole"),
        ("preview", "pods", "list", "may not list pods"),
        ("preview", "pods/log", "get", "may not get pods/log"),
        ("preview", "events", "list", "may not list events"),
        ("preview", "replicasets", "list", "may not list replicasets.apps"),
        ("preview", "statefulsets", "list", "may not list statefulsets.apps"),
        ("preview", "jobs", "create", "jobs.batch"),
        ("preview", "secrets", "create", "may not create secrets"),
        ("preview", "resourcequotas", "patch", "may not patch resourcequotas"),
        ("preview", "deployments", "create", "may not create deployments.apps"),
        ("preview", "networkpolicies", "patch", "may not patch networkpolicies.networking.k8s.io"),
        ("secret source", "secrets", "get", "may not get secrets in namespace"),
    ],
)
def test_without_any_one_rule_a_step_fails_and_names_it(
    bot: Bot,
    github: Any,
    checkout: Checkout,
    grant: Callable[..., RbacUser],
    scope: str,
    resource: str,
    verb: str,
    named: str,
) -> None:
    bound = bound_bot(bot, grant(_without_rule(scope, resource, verb)))

    failed = next(
        (step, outcome) for step, outcome in pr_life(bound, github, checkout) if not as_expected(step, outcome)
    )

    step, outcome = failed
    assert named in (outcome.message or ""), f"{step}: {outcome.message}"
    assert "`previewbot rbac` prints the permissions previewbot needs" in (outcome.message or "")


def test_tests_that_passed_but_whose_log_may_not_be_read_could_not_read_the_report(
    bot: Bot, github: Any, checkout: Checkout, grant: Callable[..., RbacUser]
) -> None:
    bound = bound_bot(bot, grant(_without_rule("preview", "pods/log", "get")))
    github.add_pull(pr_event("opened", sha=SHAS[0])["pull_request"])

    [outcome] = bound.on("pull_request", pr_event("opened", sha=SHAS[0]))

    assert outcome.report is not None
    tests = outcome.report.tests
    assert tests is not None
    assert tests.report is None
    assert tests.problem is not None
    assert tests.problem.startswith("could not read the report: the test log could not be read: the log of pod e2e-")
    assert "may not get pods/log" in tests.problem
    comment = sticky(github)
    assert "Tests could not finish" in comment
    assert "could not read the report" in comment
    [e2e] = [s for s in github.statuses(REPO, SHAS[0]) if s.context == "previewbot/e2e"][:1]
    assert e2e.state == "error"
    assert e2e.description.startswith("could not read the report")


@pytest.mark.parametrize("watch_granted", [True, False], ids=["granted", "watch on leases not granted"])
def test_a_push_while_a_run_that_died_holds_the_lease_watches_the_lease_until_it_runs_out(
    bot: Bot,
    github: Any,
    checkout: Checkout,
    grant: Callable[..., RbacUser],
    kube: KubeEnv,
    prefix: str,
    watch_granted: bool,
) -> None:
    """The step that needs `watch` on leases: a run that finds the PR's Lease held waits for it by a watch."""
    bound = bound_bot(bot, grant(None if watch_granted else _without_rule("preview", "leases", "watch")))
    github.add_pull(pr_event("opened", sha=SHAS[0])["pull_request"])
    [opened] = bound.on("pull_request", pr_event("opened", sha=SHAS[0]))
    assert opened.status == Phase.READY
    namespace = naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)
    coordination = client.CoordinationV1Api(kube.api_client())
    lease = coordination.read_namespaced_lease(naming.lease_name(PrRef(repo=REPO, number=PR_NUMBER)), namespace)
    lease.spec.holder_identity = "runner-that-crashed"
    lease.spec.lease_duration_seconds = 2
    lease.spec.renew_time = datetime.now(UTC)
    coordination.replace_namespaced_lease(lease.metadata.name, namespace, lease)
    github.add_pull(pr_event("synchronize", sha=SHAS[1])["pull_request"])

    try:
        [pushed] = bound.on("pull_request", pr_event("synchronize", sha=SHAS[1]))
    except PreviewbotError as error:  # as the front doors report a run that could not begin
        pushed = Outcome(status=Phase.FAILED, message=str(error))

    if watch_granted:
        assert pushed.status == Phase.READY
    else:
        assert pushed.status == Phase.FAILED
        assert "may not watch leases.coordination.k8s.io" in (pushed.message or "")
        assert "`previewbot rbac` prints the permissions previewbot needs" in (pushed.message or "")

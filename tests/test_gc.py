"""gc: which previews go or sleep and why, asked of GitHub economically, never touching what is not previewbot's.

The plan is tested as a pure function; `previewbot gc` and the scheduled sweep run through the real
clients against the emulated GitHub and the emulated (or, with PREVIEWBOT_TEST_KUBECONFIG, a real)
Kubernetes API, each test with repos of its own so that a shared cluster's other previews are not its.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client

from previewbot import naming
from previewbot.cli import main
from previewbot.core.gc import Reason, RepoState, Verdict, plan
from previewbot.model import NamespaceInfo, Phase
from tests.harness import PR_NUMBER, Bot, Checkout, OwnRepo, namespace_phase

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
APP = "acme/shop"


def preview_namespace(
    name: str, *, repo: str = APP, number: int | None = 1, **annotations: datetime | str
) -> NamespaceInfo:
    """A namespace as previewbot leaves it: its labels, and its repo with the given annotations."""
    labels = naming.preview_labels(repo=repo, number=number or 0)
    if number is None:
        labels.pop(naming.PR_LABEL)
    notes = {naming.REPO_ANNOTATION: repo}
    for key, value in annotations.items():
        notes[f"{naming.DOMAIN}/{key.replace('_', '-')}"] = (
            naming.format_time(value) if isinstance(value, datetime) else value
        )
    return NamespaceInfo(name=name, labels=labels, annotations=notes)


def verdicts(namespaces: list[NamespaceInfo], **repos: RepoState) -> dict[str, tuple[Verdict, Reason]]:
    states = {repo.replace("__", "/"): state for repo, state in repos.items()}
    return {d.namespace.name: (d.verdict, d.reason) for d in plan(namespaces, repos=states, now=NOW)}


# ---------------------------------------------------------------- the plan


def test_a_preview_of_an_open_pr_within_its_limits_stays() -> None:
    active = preview_namespace("p1", expires_at=NOW + timedelta(hours=1), sleep_at=NOW + timedelta(minutes=5))
    assert verdicts([active], acme__shop=RepoState(open_prs={1: ()})) == {"p1": (Verdict.STAYS, Reason.ACTIVE)}


def test_a_preview_of_a_closed_or_vanished_pr_goes() -> None:
    assert verdicts([preview_namespace("p1")], acme__shop=RepoState(open_prs={2: ()})) == {
        "p1": (Verdict.DELETE, Reason.PR_CLOSED)
    }


def test_every_preview_of_a_repo_that_is_gone_goes() -> None:
    namespaces = [preview_namespace("p1"), preview_namespace("od", number=None)]
    assert verdicts(namespaces, acme__shop=RepoState(gone=True)) == {
        "p1": (Verdict.DELETE, Reason.REPO_GONE),
        "od": (Verdict.DELETE, Reason.REPO_GONE),
    }


def test_a_preview_past_its_time_limit_goes_and_one_past_its_bedtime_sleeps() -> None:
    namespaces = [
        preview_namespace("late", number=1, expires_at=NOW - timedelta(seconds=1)),
        preview_namespace("idle", number=2, expires_at=NOW + timedelta(days=1), sleep_at=NOW),
        preview_namespace("asleep", number=3, sleep_at=NOW - timedelta(hours=1), sleeping='{"Deployment/web": 1}'),
    ]
    assert verdicts(namespaces, acme__shop=RepoState(open_prs={1: (), 2: (), 3: ()})) == {
        "late": (Verdict.DELETE, Reason.EXPIRED),
        "idle": (Verdict.SLEEP, Reason.IDLE),
        "asleep": (Verdict.STAYS, Reason.ASLEEP),
    }


def test_a_kept_preview_neither_expires_nor_sleeps() -> None:
    past = NOW - timedelta(days=30)
    namespaces = [
        preview_namespace("by-command", number=1, expires_at=past, sleep_at=past, keep="true"),
        preview_namespace("by-label", number=2, expires_at=past, sleep_at=past, keep_label="preview-keep"),
        preview_namespace("label-gone", number=3, expires_at=past, keep_label="preview-keep"),
    ]
    open_prs = {1: (), 2: ("bug", "preview-keep"), 3: ("bug",)}
    assert verdicts(namespaces, acme__shop=RepoState(open_prs=open_prs)) == {
        "by-command": (Verdict.STAYS, Reason.KEPT),
        "by-label": (Verdict.STAYS, Reason.KEPT),
        "label-gone": (Verdict.DELETE, Reason.EXPIRED),
    }


def test_a_kept_preview_of_a_closed_pr_still_goes() -> None:
    kept = preview_namespace("p1", keep="true")
    assert verdicts([kept], acme__shop=RepoState()) == {"p1": (Verdict.DELETE, Reason.PR_CLOSED)}


def test_an_on_demand_preview_goes_only_when_its_time_runs_out() -> None:
    namespaces = [
        preview_namespace("od-late", number=None, expires_at=NOW - timedelta(minutes=1)),
        preview_namespace("od-fresh", number=None, expires_at=NOW + timedelta(minutes=1)),
    ]
    assert verdicts(namespaces, acme__shop=RepoState()) == {
        "od-late": (Verdict.DELETE, Reason.EXPIRED),
        "od-fresh": (Verdict.STAYS, Reason.ACTIVE),
    }


def test_what_is_not_wholly_previewbots_is_never_in_the_plan() -> None:
    ours = preview_namespace("ours")
    unlabelled = NamespaceInfo(name="preview-shop-pr-1", annotations={naming.REPO_ANNOTATION: APP})
    other_repo_claimed = preview_namespace("claimed", repo="acme/web_app")
    # Labels of acme/shop with the annotation of another repo: the two must agree.
    mismatched = NamespaceInfo(name="mismatched", labels=ours.labels, annotations={naming.REPO_ANNOTATION: "x/y"})
    no_annotation = NamespaceInfo(name="bare", labels=ours.labels)
    terminating = NamespaceInfo(name="going", labels=ours.labels, annotations=ours.annotations, terminating=True)
    namespaces = [ours, unlabelled, other_repo_claimed, mismatched, no_annotation, terminating]
    assert set(verdicts(namespaces, acme__shop=RepoState())) == {"ours"}


# ---------------------------------------------------------------- previewbot gc, against the APIs


@pytest.fixture
def repos(github: Any) -> list[str]:
    """Two repos of this test's own, each with ten open PRs."""
    names = [f"gc-{secrets.token_hex(3)}/app", f"gc-{secrets.token_hex(3)}/api"]
    for repo in names:
        for number in range(1, 11):
            github.add_pull(repo=repo, number=number)
    return names


def make_preview_namespace(core: Any, kube: Any, info: NamespaceInfo) -> str:
    name = kube.unique(info.name)
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=info.labels, annotations=info.annotations))
    core.create_namespace(body)
    return name


@pytest.fixture
def namespaces(core: Any, kube: Any) -> Any:
    made: list[str] = []

    def make(info: NamespaceInfo) -> str:
        made.append(make_preview_namespace(core, kube, info))
        return made[-1]

    yield make
    for name in made:
        if namespace_phase(core, name) == "Active":
            core.delete_namespace(name)


def run_gc(github: Any, kube: Any, *args: str) -> Any:
    return CliRunner().invoke(
        main,
        ["gc", *args, "--token", github.token, "--api-url", github.url, "--kubeconfig", str(kube.kubeconfig)],
        catch_exceptions=False,
    )


def test_gc_asks_github_one_page_per_repo_and_acts_only_with_yes(
    github: Any, kube: Any, core: Any, repos: list[str], namespaces: Any
) -> None:
    app, api = repos
    github.update_pull(app, 3, state="closed")
    github.update_pull(api, 7, state="closed", merged=True)
    live = [namespaces(preview_namespace(f"gc-app-{n}", repo=app, number=n)) for n in (1, 2, 4, 5, 6, 8)]
    closed_app = namespaces(preview_namespace("gc-app-3c", repo=app, number=3))
    closed_api = namespaces(preview_namespace("gc-api-7", repo=api, number=7))
    expired = namespaces(preview_namespace("gc-api-2", repo=api, number=2, expires_at=NOW))
    decoy = namespaces(NamespaceInfo(name="gc-app-9", annotations={naming.REPO_ANNOTATION: app}))
    before = len(github.requests)

    dry = run_gc(github, kube, "--repo", app, "--repo", api)

    assert dry.exit_code == 0, dry.output
    # Eleven previews across two repos: one request per repo (ten open PRs fit one page).
    assert sorted(r.path for r in github.requests[before:]) == sorted(f"/repos/{repo}/pulls" for repo in repos)
    lines = {line.split()[0]: line for line in dry.output.splitlines()[1:] if line.startswith("gc-")}
    assert [lines[closed_app].split()[3:6], lines[closed_api].split()[3:6]] == [["would", "delete", "closed"]] * 2
    assert lines[expired].split()[3:6] == ["would", "delete", "expired"]
    assert decoy not in lines
    assert "Dry run" in dry.output
    assert all(namespace_phase(core, name) == "Active" for name in [*live, closed_app, closed_api, expired, decoy])

    done = run_gc(github, kube, "--yes", "--repo", app, "--repo", api)

    assert done.exit_code == 0, done.output
    assert all(namespace_phase(core, name) in ("Terminating", None) for name in (closed_app, closed_api, expired))
    assert all(namespace_phase(core, name) == "Active" for name in [*live, decoy])


def test_a_preview_whose_pr_github_no_longer_shows_goes_and_gc_goes_on(
    github: Any, kube: Any, core: Any, repos: list[str], namespaces: Any
) -> None:
    app, _ = repos
    github.update_pull(app, 3, state="closed")
    vanished = namespaces(preview_namespace("gc-app-77", repo=app, number=77))  # no such PR on GitHub
    closed = namespaces(preview_namespace("gc-app-3", repo=app, number=3))

    result = run_gc(github, kube, "--yes", "--repo", app)

    assert result.exit_code == 0, result.output
    assert namespace_phase(core, vanished) in ("Terminating", None)
    assert namespace_phase(core, closed) in ("Terminating", None)


def test_gc_tells_the_pr_and_retires_its_deployments(
    bot: Bot, github: Any, kube: Any, core: Any, checkout: Checkout, own_repo: OwnRepo
) -> None:
    own_repo.default_config(limit=None, checkout=checkout)
    bot.on("pull_request", own_repo.opened(PR_NUMBER))
    github.update_pull(own_repo.name, PR_NUMBER, state="closed")

    result = run_gc(github, kube, "--yes", "--output", "json", "--repo", own_repo.name)

    assert result.exit_code == 0, result.output
    name = own_repo.namespace(PR_NUMBER)
    assert f'"namespace": "{name}"' in result.output
    assert namespace_phase(core, name) in ("Terminating", None)
    assert "closed" in own_repo.sticky(PR_NUMBER)
    assert [d.state for d in github.deployments(own_repo.name)] == ["inactive"]


def test_an_idle_preview_sleeps_and_a_push_wakes_it(
    bot: Bot, apps: Any, core: Any, checkout: Checkout, own_repo: OwnRepo
) -> None:
    own_repo.default_config("sleep_after: 4h\nttl: 2d\n", limit=None, checkout=checkout)
    sweep = {"schedule": "0 * * * *", "repository": {"full_name": own_repo.name}}
    [ready] = bot.on("pull_request", own_repo.opened(PR_NUMBER))
    assert ready.status == Phase.READY
    name = own_repo.namespace(PR_NUMBER)
    expiry = naming.parse_time(core.read_namespace(name).metadata.annotations[naming.EXPIRES_AT_ANNOTATION])
    assert expiry is not None
    assert timedelta(hours=47) < expiry - datetime.now(UTC) <= timedelta(days=2)
    assert f"**Expires** | {expiry:%Y-%m-%d %H:}" in own_repo.sticky(PR_NUMBER)

    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=5)
    [swept] = bot.on("schedule", sweep)

    assert "sleep: idle" in swept.message
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 0
    assert naming.SLEEPING_ANNOTATION in core.read_namespace(name).metadata.annotations
    comment = own_repo.sticky(PR_NUMBER)
    assert "Preview asleep" in comment
    assert "/preview wake" in comment

    [asleep] = bot.on("schedule", sweep)
    assert name not in asleep.message  # asleep already: nothing more to do

    [woken] = bot.on("pull_request", own_repo.pushed(PR_NUMBER, "9" * 40))

    assert woken.status == Phase.READY
    web = apps.read_namespaced_deployment("web", name)
    assert (web.spec.replicas, web.status.available_replicas) == (1, 1)
    notes = core.read_namespace(name).metadata.annotations
    assert naming.SLEEPING_ANNOTATION not in notes
    woken_expiry = naming.parse_time(notes[naming.EXPIRES_AT_ANNOTATION])
    assert woken_expiry is not None
    assert woken_expiry - expiry >= timedelta(hours=5)


def test_gc_against_a_cluster_it_cannot_reach_says_so_without_a_traceback(github: Any, tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: me, user: {token: sekret-token-value}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: me}}]\n"
    )

    result = CliRunner().invoke(
        main, ["gc", "--token", github.token, "--api-url", github.url, "--kubeconfig", str(kubeconfig)]
    )

    assert result.exit_code == 1
    assert "✘ the Kubernetes API did not answer in time" in result.output
    assert "Traceback" not in result.output
    assert "sekret-token-value" not in result.output

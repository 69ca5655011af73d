"""The webhook server: deliveries in through Starlette's in-process httpx client, work out through the real clients
against the emulated GitHub (as an App) and the emulated (or real) cluster."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from starlette.applications import Starlette
from starlette.routing import Route

from previewbot import naming, render
from previewbot.adapters.github_app import GitHubApp
from previewbot.adapters.http import HttpProbe
from previewbot.adapters.kubernetes import connect
from previewbot.model import Deploy, Destroy, PrRef
from previewbot.server.app import Server, ServerSettings
from previewbot.server.metrics import Metrics
from previewbot.server.receiving import MAX_BODY, WebhookEndpoint, signature_matches
from previewbot.server.working import Job, WorkQueue, job_key
from tests.app_keys import APP_ID, INSTALLATION_ID, key_pair
from tests.harness import (
    DEFAULT_BRANCH,
    PR_NUMBER,
    REPO,
    OwnRepo,
    comment_event,
    namespace_phase,
    payload,
    pr_event,
    preview_config,
    pull_event,
    web_deployment,
)
from tests.test_byod import FIXTURES
from tests.test_e2e_tests import PASSING_REPORT, job_config, writes_report

SECRET = b"It's a Secret to Everybody"
SHA_1 = "1" * 40
SHA_2 = "2" * 40


def signed(body: bytes, secret: bytes = SECRET) -> str:
    """GitHub's signature, computed here on its own rather than with the server's code."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def headers(event: str, body: bytes, *, delivery: str | None = None, signature: str | None = "auto") -> dict[str, str]:
    sent = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
    if signature == "auto":
        sent["X-Hub-Signature-256"] = signed(body)
    elif signature is not None:
        sent["X-Hub-Signature-256"] = signature
    return sent


class InProcess:
    """httpx's client on the app's ASGI interface, in this process, driven from synchronous tests."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def post(self, url: str, **options: Any) -> httpx.Response:
        return asyncio.run(self._send("POST", url, **options))

    def get(self, url: str) -> httpx.Response:
        return asyncio.run(self._send("GET", url))

    async def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            return await client.request(method, url, **options)


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, jobs: Sequence[Job]) -> bool:
        self.jobs.extend(jobs)
        return True


@pytest.fixture
def inbox() -> Recorder:
    return Recorder()


@pytest.fixture
def webhook(inbox: Recorder) -> Iterator[InProcess]:
    endpoint = WebhookEndpoint(secret=SECRET, inbox=inbox, metrics=Metrics())
    asgi = Starlette(routes=[Route("/webhook", endpoint.receive, methods=["POST"])])
    with InProcess(asgi) as client:  # type: ignore[arg-type]
        yield client


def test_a_signed_pull_request_is_acknowledged_and_queued(webhook: InProcess, inbox: Recorder) -> None:
    body = json.dumps(payload("pull_request.opened")).encode()
    answer = webhook.post("/webhook", content=body, headers=headers("pull_request", body))
    assert answer.status_code == 202
    [job] = inbox.jobs
    assert isinstance(job.work, Deploy)
    assert job.key == f"{REPO}#{PR_NUMBER}".lower()


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=" + "0" * 64, signed(b"another body"), signed(b"{}", secret=b"not the secret"), "sha1=abc"],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_more(
    webhook: InProcess, inbox: Recorder, signature: str | None
) -> None:
    body = json.dumps(payload("pull_request.opened")).encode()
    answer = webhook.post("/webhook", content=body, headers=headers("pull_request", body, signature=signature))
    assert answer.status_code == 401
    assert "pull" not in answer.text  # nothing of the body is looked at or echoed
    assert inbox.jobs == []


def test_the_signature_is_compared_in_constant_time() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    assert signature_matches(SECRET, body, signed(body))
    assert not signature_matches(SECRET, body, signed(body)[:-1] + "0")
    assert not signature_matches(SECRET, body, "sha256=ü")
    import inspect

    from previewbot.server import receiving

    assert "compare_digest" in inspect.getsource(receiving.signature_matches)


def test_a_body_over_25_mb_is_refused_unread(webhook: InProcess, inbox: Recorder) -> None:
    body = b"x" * (MAX_BODY + 1)
    answer = webhook.post("/webhook", content=body, headers=headers("pull_request", body))
    assert answer.status_code == 413
    assert inbox.jobs == []


def test_a_streamed_body_over_the_limit_is_cut_off(webhook: InProcess, inbox: Recorder) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // (1 << 20) + 2):
            yield b"x" * (1 << 20)

    answer = webhook.post("/webhook", content=chunks(), headers=headers("pull_request", b"", signature=None))
    assert answer.status_code == 413


def test_malformed_json_is_a_400(webhook: InProcess, inbox: Recorder) -> None:
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        answer = webhook.post("/webhook", content=body, headers=headers("pull_request", body))
        assert answer.status_code == 400
    assert inbox.jobs == []


def test_a_signed_payload_missing_its_fields_is_a_400(webhook: InProcess, inbox: Recorder) -> None:
    event = payload("pull_request.opened")
    del event["pull_request"]["head"]
    body = json.dumps(event).encode()
    answer = webhook.post("/webhook", content=body, headers=headers("pull_request", body))
    assert answer.status_code == 400
    assert "pull_request.head" in answer.json()["message"]


def test_ping_is_answered(webhook: InProcess, inbox: Recorder) -> None:
    body = json.dumps(payload("ping")).encode()
    answer = webhook.post("/webhook", content=body, headers=headers("ping", body))
    assert answer.status_code == 200
    assert inbox.jobs == []


def test_an_event_previewbot_does_not_act_on_is_acknowledged(webhook: InProcess, inbox: Recorder) -> None:
    body = json.dumps({"action": "created", "repository": {"full_name": REPO}}).encode()
    assert webhook.post("/webhook", content=body, headers=headers("star", body)).status_code == 200
    assert inbox.jobs == []


def test_a_redelivery_is_acknowledged_and_not_done_twice(webhook: InProcess, inbox: Recorder) -> None:
    body = json.dumps(payload("pull_request.synchronize")).encode()
    sent = headers("pull_request", body)
    assert webhook.post("/webhook", content=body, headers=sent).status_code == 202
    assert webhook.post("/webhook", content=body, headers=sent).status_code == 200
    assert len(inbox.jobs) == 1


def test_a_finished_build_is_one_job_per_pr(webhook: InProcess, inbox: Recorder) -> None:
    body = json.dumps(payload("check_suite.completed")).encode()
    assert webhook.post("/webhook", content=body, headers=headers("check_suite", body)).status_code == 202
    [job] = inbox.jobs
    assert job.key == f"{REPO}#{PR_NUMBER}".lower()


# ---------------------------------------------------------------- the queue


def deploy_job(sha: str, delivery: str) -> Job:
    event = pr_event("synchronize", sha=sha)
    from previewbot.events import intents_from_event

    [intent] = intents_from_event("pull_request", event)
    return Job(delivery=delivery, key=job_key(intent), work=intent)


def test_a_newer_sha_supersedes_the_queued_ones_and_one_pr_runs_in_order() -> None:
    ran: list[str] = []
    started, release = threading.Event(), threading.Event()

    def run(job: Job) -> None:
        if job.delivery == "first":
            started.set()
            release.wait(10)
        ran.append(job.delivery)

    queue = WorkQueue(run, workers=3)
    queue.start()
    ref = PrRef(repo=REPO, number=PR_NUMBER)
    assert queue.submit([deploy_job(SHA_1, "first")])
    assert started.wait(5)
    assert queue.submit([deploy_job("3" * 40, "second")])
    assert queue.submit([deploy_job(SHA_2, "third")])
    assert queue.submit(
        [Job(delivery="close", key=job_key(Destroy(ref=ref, reason="closed")), work=Destroy(ref=ref, reason="closed"))]
    )
    assert queue.depth == 2
    release.set()
    assert queue.wait_idle(10)
    assert ran == ["first", "third", "close"]
    assert queue.stop(timeout=5)


def test_a_full_queue_refuses_and_the_delivery_can_come_again() -> None:
    queue = WorkQueue(lambda job: None, capacity=1)
    metrics = Metrics()
    endpoint = WebhookEndpoint(secret=SECRET, inbox=queue, metrics=metrics)
    asgi = Starlette(routes=[Route("/webhook", endpoint.receive, methods=["POST"])])
    body = json.dumps(payload("pull_request.opened")).encode()
    other = json.dumps(payload("pull_request.closed.unmerged")).encode()
    with InProcess(asgi) as client:  # type: ignore[arg-type]
        assert client.post("/webhook", content=body, headers=headers("pull_request", body)).status_code == 202
        sent = headers("pull_request", other)
        assert client.post("/webhook", content=other, headers=sent).status_code == 503
        queue.start()
        assert queue.wait_idle(5)
        assert client.post("/webhook", content=other, headers=sent).status_code == 202
    assert b'previewbot_deliveries_total{event="pull_request",outcome="busy"} 1.0' in metrics.exposition()
    queue.stop(timeout=5)


# ---------------------------------------------------------------- the whole server


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(github: Any, kube: Any, prefix: str, site: str) -> Iterator[ServerFactory]:
    """Servers (replicas, each its own holder) of one App, on the emulated GitHub and the test's cluster."""
    private, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [REPO]})
    github.set_permission(REPO, "Codertocat", "admin")
    for sha in (SHA_1, SHA_2):
        github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix, site=site), ref=sha)
        github.add_file(REPO, "deploy/web.yaml", web_deployment(), ref=sha)
    # The namespace prefix, like every trust setting, comes from the default branch's config.
    github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix, site=site), ref=DEFAULT_BRANCH)
    made: list[Server] = []

    def make(**settings: Any) -> Server:
        app = GitHubApp(app_id=APP_ID, private_key=private, api_url=github.url, seconds_between_writes=None)
        server = Server(
            app=app,
            cluster=connect(kubeconfig=str(kube.kubeconfig)),
            probe=HttpProbe(max_interval=0.2),
            settings=ServerSettings(
                webhook_secret=SECRET,
                lease_namespace="default",
                holder=kube.unique(f"replica-{len(made)}"),
                resync_interval=None,  # a resync sweeps the repo's previews: on a shared cluster, other runs' too
                **settings,
            ),
        )
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
    coordination = k8s.CoordinationV1Api(kube.api_client())
    lease = naming.lease_name(PrRef(repo=REPO, number=PR_NUMBER))
    if any(item.metadata.name == lease for item in coordination.list_namespaced_lease("default").items):
        coordination.delete_namespaced_lease(lease, "default")
    if not kube.emulated:
        core = k8s.CoreV1Api(kube.api_client())
        for namespace in core.list_namespace(label_selector=naming.MANAGED_BY_LABEL).items:
            if namespace.metadata.name.startswith(f"{prefix}-"):  # this test's only: the cluster is shared
                core.delete_namespace(namespace.metadata.name)


@pytest.fixture
def server(make_server: ServerFactory) -> Server:
    return make_server()


def deliver(server: Server, event: str, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    with InProcess(server.asgi) as client:  # type: ignore[arg-type]
        return client.post("/webhook", content=raw, headers=headers(event, raw))


def head_of_preview(core: Any, prefix: str) -> str | None:
    from kubernetes.client import ApiException

    try:
        found = core.read_namespace(naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER))
    except ApiException:
        return None
    return str(found.metadata.annotations.get(naming.HEAD_SHA_ANNOTATION))


def test_an_opened_pr_is_deployed_from_its_files_at_the_head(
    server: Server, github: Any, core: Any, prefix: str
) -> None:
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server.start()
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(90)
    assert head_of_preview(core, prefix) == SHA_1
    assert any(r.path.endswith("/contents/deploy") for r in github.requests)
    comment = [c for c in github.comments(REPO, PR_NUMBER) if c.user == "previewbot[bot]"]
    assert comment, "the App's bot reports on the PR"
    metrics = InProcess(server.asgi).get("/metrics").text  # type: ignore[arg-type]
    assert 'previewbot_deliveries_total{event="pull_request",outcome="accepted"} 1.0' in metrics
    assert "previewbot_deploy_duration_seconds_count 1.0" in metrics
    assert "previewbot_github_rate_limit_remaining" in metrics


def test_an_overlay_is_deployed_with_the_bases_it_builds_on_fetched_too(
    server: Server, github: Any, core: Any, prefix: str, site: str
) -> None:
    overlay = FIXTURES / "kustomize"
    for path in sorted(overlay.rglob("*")):
        if path.is_file():
            github.add_file(REPO, f"deploy/{path.relative_to(overlay).as_posix()}", path.read_text(), ref=SHA_1)
    config = preview_config(prefix=prefix, site=site).replace(
        "manifests: [deploy/]", "kustomize: deploy/overlays/preview"
    )
    github.add_file(REPO, ".preview.yml", config, ref=SHA_1)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server.start()

    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(90)

    assert head_of_preview(core, prefix) == SHA_1
    namespace = naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)
    assert core.read_namespaced_service("preview-api", namespace)
    assert any(r.path.endswith("/contents/deploy/base") for r in github.requests)


def test_a_retest_comment_runs_the_tests_again_at_the_head_and_redeploys_nothing(
    server: Server, github: Any, core: Any, prefix: str, site: str
) -> None:
    github.add_file(REPO, ".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)), ref=SHA_1)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server.start()
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(90)

    _comment_id, event = comment_event(github, "/preview retest")
    assert deliver(server, "issue_comment", event).status_code == 202
    assert server.queue.wait_idle(90)

    e2e = [s.state for s in github.statuses(REPO, SHA_1) if s.context == "previewbot/e2e"]
    # The retest's "pending" is sent only when GitHub gets to it before the tests end.
    assert e2e in (["success", "pending", "success"], ["success", "success"])
    assert len(github.deployments(REPO)) == 1
    assert head_of_preview(core, prefix) == SHA_1


def test_a_burst_of_pushes_ends_in_one_deploy_of_the_newest(
    server: Server, github: Any, core: Any, prefix: str
) -> None:
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)
    for action, sha in (("opened", SHA_1), ("synchronize", "3" * 40), ("synchronize", SHA_2)):
        assert deliver(server, "pull_request", pr_event(action, sha=sha)).status_code == 202
    server.start()
    assert server.queue.wait_idle(90)
    assert head_of_preview(core, prefix) == SHA_2
    [deployment] = github.deployments(REPO)
    assert deployment.sha == SHA_2


def test_a_repo_without_preview_config_is_left_alone(server: Server, github: Any) -> None:
    github.update_pull(REPO, PR_NUMBER, head_sha="4" * 40)  # no .preview.yml at this commit
    server.start()
    assert deliver(server, "pull_request", pr_event("synchronize", sha="4" * 40)).status_code == 202
    assert server.queue.wait_idle(30)
    assert github.comments(REPO, PR_NUMBER) == []
    assert github.statuses(REPO, "4" * 40) == []


def test_a_redelivery_of_a_delivery_whose_job_failed_is_done_again(
    server: Server, github: Any, core: Any, prefix: str
) -> None:
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    github.fail_next("GET", rf"/repos/{REPO}/pulls/{PR_NUMBER}$", status=404, times=1)
    server.start()
    event = json.dumps(pr_event("opened", sha=SHA_1)).encode()
    sent = headers("pull_request", event)
    with InProcess(server.asgi) as client:
        assert client.post("/webhook", content=event, headers=sent).status_code == 202
        assert server.queue.wait_idle(30)
        assert head_of_preview(core, prefix) is None
        assert client.post("/webhook", content=event, headers=sent).status_code == 202, "redelivered: done again"
        assert server.queue.wait_idle(90)
        assert head_of_preview(core, prefix) == SHA_1
        assert client.post("/webhook", content=event, headers=sent).status_code == 200, "done: not twice"


def test_a_late_delivery_of_an_older_push_deploys_nothing(server: Server, github: Any, core: Any, prefix: str) -> None:
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)
    server.start()
    assert deliver(server, "pull_request", pr_event("synchronize", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(30)
    assert head_of_preview(core, prefix) is None


def test_the_app_reports_in_its_own_comment_never_in_a_look_alike(
    server: Server, github: Any, core: Any, prefix: str
) -> None:
    """Anyone can write the sticky comment's marker; only the App's bot, <slug>[bot], writes its comment."""
    forged = github.add_comment(
        REPO, PR_NUMBER, f"{render.COMMENT_MARKER}\nReady: https://phishing.example", user="mallory"
    )
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server.start()
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(90)
    assert head_of_preview(core, prefix) == SHA_1
    comments = {c.id: c for c in github.comments(REPO, PR_NUMBER)}
    assert comments[forged].body.endswith("https://phishing.example"), "the look-alike is left as it was"
    [own] = [c for c in comments.values() if c.user == "previewbot[bot]" and render.is_preview_comment(c.body)]
    assert SHA_1[:7] in own.body


def test_a_deploy_waits_for_the_build_it_names(server: Server, github: Any, core: Any, prefix: str, site: str) -> None:
    config = preview_config(prefix=prefix, site=site, more="deploy:\n  after: [build]\n")
    github.add_file(REPO, ".preview.yml", config, ref=SHA_1)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server.start()
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(30)
    assert head_of_preview(core, prefix) is None, "no deploy before the build"
    assert any("Waiting for build to succeed" in c.body for c in github.comments(REPO, PR_NUMBER))
    github.add_workflow_run(REPO, SHA_1, name="build", status="completed", conclusion="success")
    finished = payload("workflow_run.completed")
    finished["repository"]["full_name"] = REPO
    finished["workflow_run"]["head_sha"] = SHA_1
    assert deliver(server, "workflow_run", finished).status_code == 202
    assert server.queue.wait_idle(90)
    assert head_of_preview(core, prefix) == SHA_1


def test_a_failed_build_is_reported_instead_of_deployed(
    server: Server, github: Any, core: Any, prefix: str, site: str
) -> None:
    config = preview_config(prefix=prefix, site=site, more="deploy:\n  after: [image]\n")
    github.add_file(REPO, ".preview.yml", config, ref=SHA_1)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    github.add_check_run(REPO, SHA_1, name="image", status="completed", conclusion="failure")
    server.start()
    assert deliver(server, "check_suite", {**payload("check_suite.completed")}).status_code == 202
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(30)
    assert head_of_preview(core, prefix) is None
    bodies = [c.body for c in github.comments(REPO, PR_NUMBER)]
    assert any("did not succeed (image: failure)" in body for body in bodies)


def test_resync_catches_up_a_push_and_a_close_it_missed(
    server: Server, github: Any, kube: Any, core: Any, prefix: str, site: str
) -> None:
    # A repo of this test's own: a resync sweeps every preview of the repos it serves.
    repo = f"acme/{kube.unique('resync')}"
    _, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [repo]})
    default_branch = github.add_pull(repo=repo, number=PR_NUMBER, head_sha=SHA_1)["base"]["repo"]["default_branch"]
    for sha in (SHA_1, SHA_2):
        github.add_file(repo, ".preview.yml", preview_config(prefix=prefix, site=site), ref=sha)
        github.add_file(repo, "deploy/web.yaml", web_deployment(), ref=sha)
    github.add_file(repo, ".preview.yml", preview_config(prefix=prefix, site=site), ref=default_branch)
    opened = pr_event("opened", sha=SHA_1)
    for part in (opened["repository"], opened["pull_request"]["base"]["repo"], opened["pull_request"]["head"]["repo"]):
        part["full_name"] = repo
        part["default_branch"] = default_branch
    name = naming.namespace_name(prefix=prefix, repo=repo, number=PR_NUMBER)
    server.start()
    deliver(server, "pull_request", opened)
    assert server.queue.wait_idle(90)
    assert core.read_namespace(name).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_1

    github.update_pull(repo, PR_NUMBER, head_sha=SHA_2)  # pushed while no delivery came through
    assert server.resync() == 2  # the repo's sweep, and the deploy of the push
    assert server.queue.wait_idle(90)
    assert core.read_namespace(name).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == SHA_2

    github.update_pull(repo, PR_NUMBER, state="closed")  # closed while no delivery came through
    server.resync()
    assert server.queue.wait_idle(90)
    assert namespace_phase(core, name) in (None, "Terminating")
    assert b"previewbot_active_previews 1.0" in server.metrics.exposition()  # as the last resync found them


@pytest.fixture
def capped(server: Server, github: Any, kube: Any, prefix: str, site: str) -> Iterator[OwnRepo]:
    # Its own repo: the cap counts every live preview of a repo, and a real cluster is shared.
    repo = OwnRepo(name=f"acme/{kube.unique('slots')}", prefix=prefix, site=site, github=github)
    _, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [repo.name]})
    repo.default_config()
    yield repo
    server.stop()
    coordination = k8s.CoordinationV1Api(kube.api_client())
    prefix_of_leases = naming.lease_name(PrRef(repo=repo.name, number=1))[:-1]
    for lease in coordination.list_namespaced_lease("default").items:
        if lease.metadata.name.startswith(prefix_of_leases):
            coordination.delete_namespaced_lease(lease.metadata.name, "default")


def test_a_slot_freed_by_a_close_deploys_the_pr_first_in_line_with_no_delivery_for_it(
    server: Server, github: Any, core: Any, capped: OwnRepo
) -> None:
    live, waiting = 2, 3
    capped.commit(SHA_1)
    capped.commit(SHA_2)
    server.start()
    for number, sha in ((live, SHA_1), (waiting, SHA_2)):
        assert deliver(server, "pull_request", pull_event(github, "opened", repo=capped.name, number=number, sha=sha))
        assert server.queue.wait_idle(90)
    assert naming.QUEUED_AT_ANNOTATION in core.read_namespace(capped.namespace(waiting)).metadata.annotations

    assert deliver(server, "pull_request", pull_event(github, "closed", repo=capped.name, number=live))
    assert server.queue.wait_idle(120)

    assert namespace_phase(core, capped.namespace(live)) in (None, "Terminating")
    deployed = core.read_namespace(capped.namespace(waiting)).metadata.annotations
    assert (deployed[naming.HEAD_SHA_ANNOTATION], deployed[naming.STATUS_ANNOTATION]) == (SHA_2, "ready")
    assert naming.QUEUED_AT_ANNOTATION not in deployed
    assert "Preview ready" in capped.sticky(waiting)


def test_the_deploy_of_the_pr_first_in_line_waits_for_the_builds_of_its_head(
    server: Server, github: Any, core: Any, capped: OwnRepo
) -> None:
    live, waiting, pushed = 2, 3, "3" * 40
    capped.commit(SHA_1)
    capped.commit(SHA_2)
    capped.commit(pushed, more="deploy:\n  after: [build]\n")
    server.start()
    for number, sha in ((live, SHA_1), (waiting, SHA_2)):
        assert deliver(server, "pull_request", pull_event(github, "opened", repo=capped.name, number=number, sha=sha))
        assert server.queue.wait_idle(90)
    github.update_pull(capped.name, waiting, head_sha=pushed)  # its build has not run yet

    assert deliver(server, "pull_request", pull_event(github, "closed", repo=capped.name, number=live))
    assert server.queue.wait_idle(120)

    assert naming.HEAD_SHA_ANNOTATION not in core.read_namespace(capped.namespace(waiting)).metadata.annotations
    assert "Waiting for build to succeed for 3333333" in capped.sticky(waiting)
    github.add_workflow_run(capped.name, pushed, name="build", status="completed", conclusion="success")
    finished = payload("workflow_run.completed")
    finished["repository"]["full_name"] = capped.name
    finished["workflow_run"]["head_sha"] = pushed
    [pull] = finished["workflow_run"]["pull_requests"]
    pull["number"], pull["head"]["sha"] = waiting, pushed
    assert deliver(server, "workflow_run", finished).status_code == 202
    assert server.queue.wait_idle(120)
    assert core.read_namespace(capped.namespace(waiting)).metadata.annotations[naming.HEAD_SHA_ANNOTATION] == pushed


def test_probes(server: Server) -> None:
    with InProcess(server.asgi) as client:  # type: ignore[arg-type]
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503  # not started
        server.start()
        assert client.get("/readyz").status_code == 200
        server.stop()
        assert client.get("/readyz").status_code == 503


def test_two_replicas_never_deploy_one_pr_at_once(
    make_server: ServerFactory, github: Any, core: Any, prefix: str
) -> None:
    """Both get a delivery for the PR at the same moment: the Lease lets one deploy, and the other then
    finds the preview already at that commit."""
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    replicas = [make_server(), make_server()]
    for replica in replicas:
        replica.start()
    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda r=r: answers.append(deliver(r, "pull_request", pr_event("opened", sha=SHA_1)).status_code)
        )
        for r in replicas
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [202, 202]
    for replica in replicas:
        assert replica.queue.wait_idle(120)
    assert head_of_preview(core, prefix) == SHA_1
    assert len(github.deployments(REPO)) == 1


def test_a_dead_replica_s_lease_is_taken_over(
    make_server: ServerFactory, github: Any, kube: Any, core: Any, prefix: str
) -> None:
    lease = naming.lease_name(PrRef(repo=REPO, number=PR_NUMBER))
    assert connect(kubeconfig=str(kube.kubeconfig)).take_lease("default", lease, holder="dead-replica", seconds=2)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    server = make_server(lease_seconds=3)
    server.start()
    assert deliver(server, "pull_request", pr_event("opened", sha=SHA_1)).status_code == 202
    assert server.queue.wait_idle(120)
    assert head_of_preview(core, prefix) == SHA_1
    spec = k8s.CoordinationV1Api(kube.api_client()).read_namespaced_lease(lease, "default").spec
    assert spec.lease_transitions == 1
    assert not spec.holder_identity, "released after the job"

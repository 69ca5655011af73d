"""What the scenario tests share: a repo checkout on disk, GitHub's payloads, and the wired core.

The core runs with the real adapters (PyGithub, kubernetes, httpx) against the emulated APIs,
or a real cluster when PREVIEWBOT_TEST_KUBECONFIG is set.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes.client import ApiException

from previewbot import events, naming, render
from previewbot.adapters.github import GitHubApi
from previewbot.adapters.http import HttpProbe
from previewbot.adapters.kubernetes import connect
from previewbot.adapters.shell import ShellRunner
from previewbot.core.previews import Outcome, Previews, Settings
from previewbot.core.reporting import Outbox
from previewbot.model import Intent
from tests.emulators.github import GitHubEmulator

FIXTURES = Path(__file__).parent / "fixtures" / "github"
REPO = "Codertocat/Hello-World"
PR_NUMBER = 2
DEFAULT_BRANCH = "master"  # as GitHub's example payloads name it
CONFIG = ".preview.yml"
PAUSE = "registry.k8s.io/pause:3.9"
PAUSE_NEXT = "registry.k8s.io/pause:3.10"


def git(folder: Path, *args: str) -> str:
    """Run git in folder, as a developer or actions/checkout would have; its output."""
    done = subprocess.run(
        ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def payload(name: str) -> dict[str, Any]:
    """One of GitHub's example payloads (tests/fixtures/github/NAME.json), as a fresh dict."""
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))


def pr_event(action: str, *, sha: str | None = None, merged: bool = False, fork: str | None = None) -> dict[str, Any]:
    """A pull_request event for PR #2, changed only where GitHub would change it."""
    name = {"closed": "pull_request.closed.unmerged"}.get(action, f"pull_request.{action}")
    event = payload(name if (FIXTURES / f"{name}.json").exists() else "pull_request.opened")
    event["action"] = action
    pull = event["pull_request"]
    if sha is not None:
        pull["head"]["sha"] = sha
    if action == "closed":
        pull["state"] = "closed"
        pull["merged"] = merged
    if fork is not None:
        pull["head"]["repo"] = {**pull["head"]["repo"], "full_name": fork, "fork": True}
    return event


def pull_event(
    github: Any, action: str, *, repo: str, number: int, sha: str = "", fork: str | None = None
) -> dict[str, Any]:
    """A pull_request event about PR `number` of `repo`, as the emulated GitHub has the PR after it.

    "opened" adds the PR (from `fork` when given), at head sha; "closed" closes it. GitHub's example
    payload, with the PR and the repository the emulated API serves.
    """
    if action == "opened":
        pull = github.add_pull(repo=repo, number=number, head_sha=sha, head_repo=fork)
    else:
        pull = github.update_pull(repo, number, state="closed")
    event = pr_event(action)
    event.update(number=number, pull_request=pull, repository=pull["base"]["repo"])
    return event


def comment_event(
    github: Any,
    body: str,
    *,
    user: str = "Codertocat",
    user_type: str = "User",
    repo: str = REPO,
    number: int = PR_NUMBER,
) -> tuple[int, dict[str, Any]]:
    """Someone comments on a PR (#2 of REPO unless told): the comment as GitHub stores it, and its event.

    GitHub's example payload is a comment on an issue; a PR comment adds issue.pull_request.
    """
    comment_id: int = github.add_comment(repo, number, body, user=user, user_type=user_type)
    event = payload("issue_comment.created.on_issue")
    event["issue"]["number"] = number
    event["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/{repo}/pulls/{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
    }
    if repo != REPO:
        event["repository"] = {**event["repository"], "full_name": repo, "name": repo.split("/")[1]}
    event["comment"]["id"] = comment_id
    event["comment"]["body"] = body
    event["comment"]["user"] = {**event["comment"]["user"], "login": user, "type": user_type}
    event["sender"] = {**event["sender"], "login": user, "type": user_type}
    return comment_id, event


def eventually(check: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Wait until check() holds, looking ten times a second; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def client_threads() -> set[threading.Thread]:
    """This process's threads but the emulators' (which serve each connection on one of its own) and
    the reports' sender, which lives as long as its Outbox: those a run could leave behind."""
    return {
        thread
        for thread in threading.enumerate()
        if "process_request_thread" not in thread.name and thread.name != "previewbot-reports"
    }


def namespace_of(prefix: str) -> str:
    """The namespace of PR #2's preview, under the test's own prefix."""
    return naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)


def sticky(github: Any, *, repo: str = REPO, number: int = PR_NUMBER) -> str:
    """previewbot's one sticky comment on the PR (PR #2 unless told)."""
    [body] = [c.body for c in github.comments(repo, number) if render.is_preview_comment(c.body)]
    return body


def replies(github: Any) -> list[str]:
    """What previewbot answered on PR #2, besides its sticky comment."""
    return [
        c.body
        for c in github.comments(REPO, PR_NUMBER)
        if c.user == github.login and not render.is_preview_comment(c.body)
    ]


def reactions(github: Any, comment_id: int) -> list[str]:
    return [r.content for r in github.reactions(REPO, comment_id)]


def namespace_phase(core: Any, name: str) -> str | None:
    """The namespace's phase (Active, Terminating), or None when it is gone."""
    try:
        return str(core.read_namespace(name).status.phase)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


@dataclass
class Checkout:
    """The PR head's working tree: .preview.yml and the manifests, rewritten as a PR would change them."""

    root: Path

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, path: str) -> None:
        (self.root / path).unlink()


@dataclass
class OwnRepo:
    """A repo of one test's own, on the emulated GitHub: gc, the cap and sweeps act on every preview of a
    repo, and a real cluster is shared with other tests' previews of REPO."""

    name: str
    prefix: str
    site: str
    github: GitHubEmulator

    def default_config(self, more: str = "", *, limit: int | None = 1, checkout: Checkout | None = None) -> str:
        """The default branch's .preview.yml (allowing `limit` live previews, queueing the rest), and the
        checkout's too when given; returns it."""
        capped = f"max_previews: {limit}\nwhen_full: queue\n" if limit is not None else ""
        config = preview_config(prefix=self.prefix, site=self.site, more=capped + more)
        self.github.add_file(self.name, CONFIG, config, ref="main")
        if checkout is not None:
            checkout.write(CONFIG, config)
            checkout.write("deploy/web.yaml", web_deployment())
        return config

    def commit(self, sha: str, *, more: str = "", checkout: Path | None = None) -> None:
        """The PR's files at sha on GitHub, and in the runner's checkout when given; `more` adds to its config."""
        for path, text in (
            (CONFIG, preview_config(prefix=self.prefix, site=self.site, more=more)),
            ("deploy/web.yaml", web_deployment()),
        ):
            self.github.add_file(self.name, path, text, ref=sha)
            if checkout is not None:
                Checkout(checkout).write(path, text)

    def opened(self, number: int) -> dict[str, Any]:
        return pull_event(self.github, "opened", repo=self.name, number=number, sha=f"{number:x}" * 40)

    def closed(self, number: int) -> dict[str, Any]:
        return pull_event(self.github, "closed", repo=self.name, number=number)

    def pushed(self, number: int, sha: str) -> dict[str, Any]:
        pull = self.github.update_pull(self.name, number, head_sha=sha)
        event = pr_event("synchronize")
        event.update(number=number, pull_request=pull, repository=pull["base"]["repo"])
        return event

    def comment(self, number: int, body: str, *, user: str = "Codertocat") -> dict[str, Any]:
        return comment_event(self.github, body, user=user, repo=self.name, number=number)[1]

    def namespace(self, number: int) -> str:
        return naming.namespace_name(prefix=self.prefix, repo=self.name, number=number)

    def sticky(self, number: int) -> str:
        return sticky(self.github, repo=self.name, number=number)

    def deploy_status(self, sha: str) -> str:
        return next(s.state for s in self.github.statuses(self.name, sha) if s.context == "previewbot/deploy")


def web_deployment(name: str = "web", *, image: str = PAUSE, command: str | None = None) -> str:
    """A Deployment of one pod hardened as Pod Security `restricted` asks, which forks' previews are held to."""
    container = (
        f"        - name: {name}\n          image: {image}\n"
        "          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n"
    )
    if command is not None:
        container += f"          command: [sh, -c, {json.dumps(command)}]\n"
    return (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata:\n  name: {name}\n  labels: {{app: {name}}}\n"
        f"spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n"
        f"  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
        "      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}\n"
        f"      containers:\n{container}"
    )


def preview_config(*, prefix: str, site: str | None = None, more: str = "", namespace_more: str = "") -> str:
    """A .preview.yml for the scenarios: deploy/ into the test's own namespace, no network policy.

    `more` adds top-level keys, `namespace_more` keys under namespace (each line indented two spaces).
    """
    url = f"url: {site}/pr-${{PR_NUMBER}}\n" if site else ""
    return (
        f"version: 1\nmanifests: [deploy/]\n{url}readiness:\n  timeout: 60s\n"
        f"namespace:\n  prefix: {prefix}\n  network_policy: none\n{namespace_more}{more}"
    )


def config_map(name: str, data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {json.dumps(data)}\n"


@contextmanager
def preview_site(status: int = 200) -> Iterator[str]:
    """A loopback web server that plays the preview's ingress; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Bot:
    """previewbot wired as the Action wires it, over the emulated (or real) APIs.

    The repo's default branch holds a .preview.yml, as a repo using previewbot does: the checkout's,
    unless the test committed one of its own there first.
    """

    github: GitHubEmulator
    kubeconfig: Path
    checkout: Checkout
    namespace_wait: float = 120.0  # a real cluster may take a while to finalize a namespace
    report_wait: float = 30.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rbac_name: str | None = None  # NAME of the RBAC previewbot runs under, when not previewbot's own

    def previews(self) -> Previews:
        return Previews(
            github=GitHubApi(self.github.token, api_url=self.github.url),
            cluster=connect(kubeconfig=str(self.kubeconfig), rbac_name=self.rbac_name),
            probe=HttpProbe(max_interval=0.2),
            settings=Settings(
                workspace=self.checkout.root, namespace_wait=self.namespace_wait, report_wait=self.report_wait
            ),
            runner=ShellRunner(),
            clock=self.clock,
            # What GitHub did not take within report_wait is not waited for again when the tests end.
            outbox=Outbox(exit_wait=self.report_wait),
        )

    def on(self, event_name: str, event: dict[str, Any]) -> list[Outcome]:
        """Run previewbot on one event, as one workflow run would."""
        return self.run(*events.intents_from_event(event_name, event, repository=REPO))

    def run(self, *intents: Intent) -> list[Outcome]:
        config = self.checkout.root / CONFIG
        if self.github.file_text(REPO, CONFIG, ref=DEFAULT_BRANCH) is None and config.is_file():
            self.github.add_file(REPO, CONFIG, config.read_text(), ref=DEFAULT_BRANCH)
        previews = self.previews()
        return [previews.handle(intent) for intent in intents]

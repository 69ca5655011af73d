"""An emulated GitHub REST API, served on loopback, for the parts of it previewbot uses.

It speaks GitHub's response shapes and status codes closely enough that PyGithub drives it
through its real HTTP stack: repos, pull requests and issues, issue comments (with the body
limit), reactions, collaborator permissions, deployments and their statuses, commit statuses,
the authenticated user (refused to installation tokens, as GitHub does), GraphQL's viewer login
and the rate limit. As a GitHub App's API it checks the App's JWT
(RS256, issued by the App id, at most ten minutes long) and hands out installation tokens that
expire, lists installations and their repositories, open pull requests, a commit's check runs
and workflow runs, and folders through the contents API. Tests seed it, read back what was written, and
inject failures (rate limits, 5xx, dropped connections) to prove previewbot's retries.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jwt

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
PUBLIC_API_URL = "https://api.github.com"
DOCS_URL = "https://docs.github.com/rest"
ENTERPRISE_PREFIX = "/api/v3"  # GitHub Enterprise Server serves the REST API under this path

COMMENT_BODY_LIMIT = 65536
DESCRIPTION_LIMIT = 140
RATE_LIMIT = 5000
REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})
COMMIT_STATES = frozenset({"error", "failure", "pending", "success"})
DEPLOYMENT_STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
ROLES = ("admin", "maintain", "write", "triage", "read", "none")
# The collaborator permission endpoint's legacy "permission" field knows only four levels.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PRIMARY_RATE_LIMIT_MESSAGE = "API rate limit exceeded for installation ID 1."
INSTALLATION_TOKEN_SECONDS = 3600  # GitHub's installation tokens last an hour
APP_PERMISSIONS = {
    "checks": "read",
    "actions": "read",
    "contents": "read",
    "deployments": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
APP_EVENTS = ("pull_request", "issue_comment", "check_suite", "workflow_run")
# What an App authenticates with its JWT rather than an installation token.
_APP_PATH = re.compile(r"/app(/installations(/\d+(/access_tokens)?)?)?|/repos/[^/]+/[^/]+/installation")


def load_event(name: str) -> dict[str, Any]:
    """One of GitHub's example webhook payloads in tests/fixtures/github, e.g. "pull_request.opened"."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    return f"{kind}_{number}"


# ---------------------------------------------------------------- records tests read back


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatedApp:
    app_id: int
    public_key: str
    slug: str
    installations: dict[int, list[str]]  # installation id -> the repos it covers


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    method: str
    path: str  # without the query and without an Enterprise prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # as sent, minus Authorization
    body: Any  # the decoded JSON body, or None
    at: float = 0.0  # time.monotonic() when it came in


@dataclass(slots=True, kw_only=True)
class EmulatedComment:
    id: int
    repo: str
    issue_number: int
    body: str
    user: str
    user_type: str = "User"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass(slots=True, kw_only=True)
class EmulatedReaction:
    id: int
    content: str
    user: str
    created_at: str = field(default_factory=_now)


@dataclass(slots=True, kw_only=True)
class EmulatedDeploymentStatus:
    id: int
    state: str
    description: str
    environment: str
    environment_url: str
    log_url: str
    created_at: str = field(default_factory=_now)


@dataclass(slots=True, kw_only=True)
class EmulatedDeployment:
    id: int
    repo: str
    sha: str
    ref: str
    task: str
    environment: str
    description: str | None
    payload: Any
    transient_environment: bool
    production_environment: bool
    auto_merge: bool
    required_contexts: list[str] | None
    creator: str
    created_at: str = field(default_factory=_now)
    statuses: list[EmulatedDeploymentStatus] = field(default_factory=list)  # oldest first

    @property
    def state(self) -> str | None:
        """The latest status's state, None before the first status."""
        return self.statuses[-1].state if self.statuses else None


@dataclass(slots=True, kw_only=True)
class EmulatedCommitStatus:
    id: int
    repo: str
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: str = field(default_factory=_now)


# ---------------------------------------------------------------- plumbing


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    served_path: str  # the path as the client asked, prefix included: Link headers point back to it
    query: dict[str, list[str]]
    body: Any
    credential: str = ""  # the Authorization header's token, for routes that answer per installation

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def field(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default) if isinstance(self.body, dict) else default


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


class _Refusal(Exception):
    """Ends a request with a GitHub-shaped error body."""

    def __init__(self, status: int, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        self.reply = _Reply(status, _error_body(status, message, errors=errors))
        super().__init__(message)


def _error_body(status: int, message: str, *, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS_URL, "status": str(status)}
    if errors:
        body["errors"] = errors
    return body


def _not_found() -> _Refusal:
    return _Refusal(404, "Not Found")


def _invalid(resource: str, field_name: str, message: str) -> _Refusal:
    error = {"resource": resource, "code": "custom", "field": field_name, "message": message}
    return _Refusal(422, "Validation Failed", errors=[error])


@dataclass(slots=True)
class _Injection:
    method: str
    path: re.Pattern[str]
    status: int  # 0 drops the connection without an answer
    headers: dict[str, str]
    body: Any
    times: int
    carried_out: bool = False  # the request is done first, and only its answer is lost


_DROP_CONNECTION = 0
_VIEWER_LOGIN = re.compile(r"^\s*(?:query\s*)?\{\s*viewer\s*\{\s*login\s*\}\s*\}\s*$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: GitHubEmulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; don't hold the second back
    timeout = 10  # an idle keep-alive connection a test forgot to close ends on its own
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        reply = self.server.emulator.handle(self.command, self.path, dict(self.headers.items()), raw)
        if reply is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator keeps its own record of requests."""


Route = Callable[[re.Match[str], _Request], _Reply]
_REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


# ---------------------------------------------------------------- the emulator


class GitHubEmulator:
    """GitHub's REST API for one token, on http://127.0.0.1:<port>; also under /api/v3 like Enterprise."""

    def __init__(
        self,
        *,
        token: str | None = None,
        login: str = "previewbot[bot]",
        user_type: str = "Bot",
    ) -> None:
        self.token = token or "ghs_" + secrets.token_urlsafe(27)
        self.login = login
        self.user_type = user_type
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.enterprise_url = self.url + ENTERPRISE_PREFIX
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._rate_remaining = RATE_LIMIT
        self._rate_reset = int(time.time()) + 3600
        self._repos: dict[str, dict[str, Any]] = {}
        self._pulls: dict[tuple[str, int], dict[str, Any]] = {}
        self._files: dict[tuple[str, str, str], str] = {}  # (repo, ref, path) -> text
        self._issues: dict[tuple[str, int], dict[str, Any]] = {}
        self._permissions: dict[tuple[str, str], str] = {}
        self._comments: dict[int, EmulatedComment] = {}
        self._reactions: dict[int, list[EmulatedReaction]] = {}
        self._deployments: dict[int, EmulatedDeployment] = {}
        self._commit_statuses: list[EmulatedCommitStatus] = []
        self._requests: list[RecordedRequest] = []
        self._injections: list[_Injection] = []
        self._holds: list[tuple[str, re.Pattern[str], threading.Event]] = []
        self.latency = 0.0  # seconds each answer takes, as over a network: GitHub's take 0.1 to 0.5 s
        self._app: EmulatedApp | None = None
        self._installation_tokens: dict[str, tuple[int, float]] = {}  # token -> (installation, expires at)
        self._check_runs: list[dict[str, Any]] = []
        self._workflow_runs: list[dict[str, Any]] = []
        self._routes: list[tuple[str, re.Pattern[str], Route]] = [
            (method, re.compile(pattern + r"/?"), route)
            for method, pattern, route in [
                ("GET", r"/user", self._get_user),
                # GraphQL lives at /graphql, and at /api/graphql beside Enterprise's /api/v3.
                ("POST", r"(?:/api)?/graphql", self._graphql),
                ("GET", r"/rate_limit", self._get_rate_limit),
                ("GET", r"/app", self._get_app),
                ("GET", r"/app/installations", self._list_installations),
                ("POST", r"/app/installations/(?P<id>\d+)/access_tokens", self._create_installation_token),
                ("GET", r"/installation/repositories", self._list_installation_repos),
                ("GET", _REPO + r"/installation", self._get_repo_installation),
                ("GET", _REPO + r"/commits/(?P<sha>[^/]+)/check-runs", self._list_check_runs),
                ("GET", _REPO + r"/actions/runs", self._list_workflow_runs),
                ("GET", _REPO, self._get_repo),
                ("GET", _REPO + r"/pulls", self._list_pulls),
                ("GET", _REPO + r"/pulls/(?P<number>\d+)", self._get_pull),
                ("GET", _REPO + r"/contents/(?P<path>.+?)", self._get_contents),
                ("GET", _REPO + r"/issues/(?P<number>\d+)", self._get_issue),
                ("GET", _REPO + r"/issues/(?P<number>\d+)/comments", self._list_comments),
                ("DELETE", _REPO + r"/issues/(?P<number>\d+)/labels/(?P<label>[^/]+)", self._remove_label),
                ("POST", _REPO + r"/issues/(?P<number>\d+)/comments", self._create_comment),
                ("GET", _REPO + r"/issues/comments/(?P<id>\d+)", self._get_comment),
                ("PATCH", _REPO + r"/issues/comments/(?P<id>\d+)", self._edit_comment),
                ("DELETE", _REPO + r"/issues/comments/(?P<id>\d+)", self._delete_comment),
                ("GET", _REPO + r"/issues/comments/(?P<id>\d+)/reactions", self._list_reactions),
                ("POST", _REPO + r"/issues/comments/(?P<id>\d+)/reactions", self._create_reaction),
                ("GET", _REPO + r"/collaborators/(?P<user>[^/]+)/permission", self._get_permission),
                ("GET", _REPO + r"/deployments", self._list_deployments),
                ("POST", _REPO + r"/deployments", self._create_deployment),
                ("GET", _REPO + r"/deployments/(?P<id>\d+)", self._get_deployment),
                ("DELETE", _REPO + r"/deployments/(?P<id>\d+)", self._delete_deployment),
                ("GET", _REPO + r"/deployments/(?P<id>\d+)/statuses", self._list_deployment_statuses),
                ("POST", _REPO + r"/deployments/(?P<id>\d+)/statuses", self._create_deployment_status),
                ("POST", _REPO + r"/statuses/(?P<sha>[^/]+)", self._create_commit_status),
                ("GET", _REPO + r"/statuses/(?P<sha>[^/]+)", self._list_commit_statuses),
                ("GET", _REPO + r"/commits/(?P<sha>[^/]+)/statuses", self._list_commit_statuses),
                ("GET", _REPO + r"/commits/(?P<sha>[^/]+)/status", self._combined_status),
            ]
        ]

    # ------------------------------------------------------------ lifecycle

    def start(self) -> GitHubEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="github-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        for connection in list(self._server.connections):
            # Unblocks handler threads waiting on keep-alive connections, so they close their sockets;
            # a client may have closed its end meanwhile.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ seeding

    def add_repo(self, full_name: str, *, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A repository (from an event's "repository" when given); its owner gets admin permission."""
        owner, name = full_name.split("/")
        repo = self._rebased(payload) if payload is not None else self._repo_json(owner, name)
        repo["full_name"] = full_name
        with self._lock:
            self._repos[full_name.lower()] = repo
            self._permissions.setdefault((full_name.lower(), owner.lower()), "admin")
        return copy.deepcopy(repo)

    def add_pull(
        self,
        pull: Mapping[str, Any] | None = None,
        *,
        repo: str | None = None,
        number: int | None = None,
        head_sha: str | None = None,
        head_ref: str | None = None,
        head_repo: str | None = None,
        base_ref: str | None = None,
        author: str | None = None,
        state: str | None = None,
        merged: bool | None = None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        """A pull request: an event's "pull_request" as given, or one made from repo and number.

        The other fields override what the payload says, so a fork or a later push is one call.
        """
        if pull is not None:
            stored = self._rebased(pull)
            repo, number = stored["base"]["repo"]["full_name"], int(stored["number"])
            if repo.lower() not in self._repos:
                self.add_repo(repo, payload=stored["base"]["repo"])
        elif repo is None or number is None:
            raise ValueError("add_pull needs a payload, or repo and number")
        else:
            if repo.lower() not in self._repos:
                self.add_repo(repo)
            stored = self._pull_json(repo, number)
        with self._lock:
            self._pulls[(repo.lower(), number)] = stored
        return self.update_pull(
            repo,
            number,
            head_sha=head_sha,
            head_ref=head_ref,
            head_repo=head_repo,
            base_ref=base_ref,
            author=author,
            state=state,
            merged=merged,
            labels=labels,
        )

    def update_pull(
        self,
        repo: str,
        number: int,
        *,
        head_sha: str | None = None,
        head_ref: str | None = None,
        head_repo: str | None = None,
        base_ref: str | None = None,
        author: str | None = None,
        state: str | None = None,
        merged: bool | None = None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change a seeded pull request the way a push, a close or a merge would; None keeps a field."""
        with self._lock:
            pull = self._pulls[(repo.lower(), number)]
            if head_sha is not None:
                pull["head"]["sha"] = head_sha
            if head_ref is not None:
                pull["head"]["ref"] = head_ref
                pull["head"]["label"] = f"{pull['head']['repo']['owner']['login']}:{head_ref}"
            if head_repo is not None:
                owner, name = head_repo.split("/")
                pull["head"]["repo"] = self._repo_json(owner, name, fork=head_repo.lower() != repo.lower())
                pull["head"]["user"] = pull["head"]["repo"]["owner"]
                pull["head"]["label"] = f"{owner}:{pull['head']['ref']}"
            if base_ref is not None:
                pull["base"]["ref"] = base_ref
            if author is not None:
                pull["user"] = self._user_json(author)
            if state is not None:
                pull["state"] = state
                pull["closed_at"] = None if state == "open" else _now()
            if merged is not None:
                pull["merged"] = merged
                pull["merged_at"] = _now() if merged else None
            if labels is not None:
                pull["labels"] = [self._label_json(repo, label) for label in labels]
            return copy.deepcopy(pull)

    def add_issue(self, issue: Mapping[str, Any]) -> dict[str, Any]:
        """An issue (an event's "issue"), so that comments can be made on it."""
        stored = self._rebased(issue)
        repo = "/".join(stored["repository_url"].rsplit("/", 2)[-2:])
        if repo.lower() not in self._repos:
            self.add_repo(repo)
        with self._lock:
            self._issues[(repo.lower(), int(stored["number"]))] = stored
        return copy.deepcopy(stored)

    def add_file(self, repo: str, path: str, text: str, *, ref: str) -> None:
        """A file committed on ref (a branch name or a commit SHA)."""
        with self._lock:
            self._files[(repo.lower(), ref, path)] = text

    def install_app(
        self, *, app_id: int, public_key: str, slug: str = "previewbot", installations: Mapping[int, list[str]]
    ) -> None:
        """Be GitHub for an App: its public key checks the JWTs; each installation covers its repos."""
        with self._lock:
            self._app = EmulatedApp(app_id=app_id, public_key=public_key, slug=slug, installations=dict(installations))
            for repos in installations.values():
                for repo in repos:
                    if repo.lower() not in self._repos:
                        self.add_repo(repo)

    def installation_tokens(self) -> dict[str, float]:
        """The installation tokens handed out, with when each expires."""
        with self._lock:
            return {token: expires for token, (_, expires) in self._installation_tokens.items()}

    def add_check_run(self, repo: str, sha: str, *, name: str, status: str, conclusion: str | None = None) -> None:
        """A check run on a commit, as a CI app reports it (status queued, in_progress or completed)."""
        self._add_run(self._check_runs, repo, sha, name=name, status=status, conclusion=conclusion)

    def add_workflow_run(self, repo: str, sha: str, *, name: str, status: str, conclusion: str | None = None) -> None:
        """A run of the workflow `name` on a commit."""
        self._add_run(self._workflow_runs, repo, sha, name=name, status=status, conclusion=conclusion)

    def _add_run(
        self, runs: list[dict[str, Any]], repo: str, sha: str, *, name: str, status: str, conclusion: str | None
    ) -> None:
        with self._lock:
            runs.append(
                {"repo": repo.lower(), "head_sha": sha, "name": name, "status": status, "conclusion": conclusion}
            )

    def file_text(self, repo: str, path: str, *, ref: str) -> str | None:
        """The text of a file committed on ref, None when there is none."""
        with self._lock:
            return self._files.get((repo.lower(), ref, path))

    def set_permission(self, repo: str, user: str, permission: str) -> None:
        """The user's role on repo: admin, maintain, write, triage, read or none."""
        if permission not in ROLES:
            raise ValueError(f"unknown permission {permission!r}; one of {', '.join(ROLES)}")
        with self._lock:
            self._permissions[(repo.lower(), user.lower())] = permission

    def add_comment(
        self, repo: str, number: int, body: str, *, user: str = "Codertocat", user_type: str = "User"
    ) -> int:
        """A comment by someone else on the PR or issue; returns its id."""
        with self._lock:
            self._require_issue(repo, number)
            return self._new_comment(repo, number, body, user=user, user_type=user_type).id

    # ------------------------------------------------------------ failure injection

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests of method to a path matching path_regex with status."""
        if body is None and status != _DROP_CONNECTION:
            body = _error_body(status, HTTPStatus(status).phrase)
        with self._lock:
            self._injections.append(
                _Injection(method.upper(), re.compile(path_regex), status, dict(headers or {}), body, times)
            )

    def fail_with_secondary_rate_limit(
        self, method: str, path_regex: str, *, retry_after: int = 60, times: int = 1
    ) -> None:
        """A 403 secondary rate limit, which says how long to wait in Retry-After."""
        body = _error_body(403, SECONDARY_RATE_LIMIT_MESSAGE)
        headers = {"Retry-After": str(retry_after)}
        self.fail_next(method, path_regex, 403, headers=headers, body=body, times=times)

    def fail_with_primary_rate_limit(self, method: str, path_regex: str, *, reset_at: int, times: int = 1) -> None:
        """A 403 with the hourly quota spent: x-ratelimit-remaining 0 until the epoch second reset_at."""
        body = _error_body(403, PRIMARY_RATE_LIMIT_MESSAGE)
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset_at)}
        self.fail_next(method, path_regex, 403, headers=headers, body=body, times=times)

    def fail_with_too_many_requests(
        self, method: str, path_regex: str, *, retry_after: int = 60, times: int = 1
    ) -> None:
        """A 429 with Retry-After."""
        body = _error_body(429, SECONDARY_RATE_LIMIT_MESSAGE)
        self.fail_next(method, path_regex, 429, headers={"Retry-After": str(retry_after)}, body=body, times=times)

    def fail_with_bad_gateway(self, method: str, path_regex: str, *, times: int = 1) -> None:
        self.fail_next(method, path_regex, 502, body=_error_body(502, "Server Error"), times=times)

    def lose_the_answer(self, method: str, path_regex: str, status: int = 502, *, times: int = 1) -> None:
        """Carry out the next `times` matching requests, then answer status (0: drop the connection) instead.

        GitHub does this under load: a comment or a deployment is made, and the client sees a 502
        or a timeout.
        """
        body = None if status == _DROP_CONNECTION else _error_body(status, HTTPStatus(status).phrase)
        with self._lock:
            self._injections.append(
                _Injection(method.upper(), re.compile(path_regex), status, {}, body, times, carried_out=True)
            )

    def drop_connection(self, method: str, path_regex: str, *, times: int = 1) -> None:
        """Close the connection without an answer, as a network failure would."""
        self.fail_next(method, path_regex, _DROP_CONNECTION, times=times)

    def hold(self, method: str, path_regex: str) -> threading.Event:
        """Answer requests of method to a path matching path_regex only once the returned event is set."""
        gate = threading.Event()
        with self._lock:
            self._holds.append((method.upper(), re.compile(path_regex), gate))
        return gate

    # ------------------------------------------------------------ reading back

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def comments(self, repo: str, number: int) -> list[EmulatedComment]:
        """The comments on a PR or issue, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._comments_on(repo, number)))

    def reactions(self, repo: str, comment_id: int) -> list[EmulatedReaction]:
        with self._lock:
            comment = self._comments.get(comment_id)
            if comment is None or comment.repo.lower() != repo.lower():
                return []
            return copy.deepcopy(self._reactions.get(comment_id, []))

    def deployments(self, repo: str) -> list[EmulatedDeployment]:
        """The repo's deployments, newest first, each with its statuses (oldest first)."""
        with self._lock:
            return copy.deepcopy(self._deployments_of(repo))

    def statuses(self, repo: str, sha: str) -> list[EmulatedCommitStatus]:
        """The commit statuses of sha, newest first."""
        with self._lock:
            return copy.deepcopy(self._statuses_of(repo, sha))

    # ------------------------------------------------------------ serving

    def handle(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> _Reply | None:
        """Answer one request; None means drop the connection without an answer."""
        parts = urlsplit(target)
        path = parts.path.removeprefix(ENTERPRISE_PREFIX) or "/"
        with self._lock:
            gates = [gate for m, pattern, gate in self._holds if m == method and pattern.search(path)]
        for gate in gates:
            gate.wait(timeout=60)
        time.sleep(self.latency)
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=method,
                    path=path,
                    query=query,
                    headers={k: v for k, v in headers.items() if k.lower() != "authorization"},
                    body=body,
                    at=time.monotonic(),
                )
            )
            refusal = self._authenticate(method, path, headers)
            if refusal is not None:
                return self._with_rate_headers(_Reply(401, _error_body(401, refusal)), {})
            self._rate_remaining = max(self._rate_remaining - 1, 0)
            injection = self._take_injection(method, path)
            if injection is not None and not injection.carried_out:
                return self._injected(injection)
            if isinstance(body, str):
                reply = _Reply(400, _error_body(400, "Problems parsing JSON"))
            else:
                credential = next((v for k, v in headers.items() if k.lower() == "authorization"), "").partition(" ")[2]
                reply = self._route(_Request(method, path, parts.path, query, body, credential))
            if injection is not None:
                return self._injected(injection)
            if parts.path.startswith(ENTERPRISE_PREFIX + "/"):
                reply = _Reply(reply.status, self._rebased(reply.body, onto=self.enterprise_url), reply.headers)
            return self._with_rate_headers(reply, {})

    def _injected(self, injection: _Injection) -> _Reply | None:
        if injection.status == _DROP_CONNECTION:
            return None
        return self._with_rate_headers(_Reply(injection.status, injection.body), injection.headers)

    def _authenticate(self, method: str, path: str, headers: Mapping[str, str]) -> str | None:
        """None when the request's credential may call path; else GitHub's message for the 401."""
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return "Requires authentication"
        if _APP_PATH.fullmatch(path) and not (method == "GET" and path.startswith("/app/installations/")):
            return self._app_jwt_problem(credential)
        if credential == self.token:
            return None
        installation = self._installation_tokens.get(credential)
        if installation is None or installation[1] <= time.time():
            return "Bad credentials"
        return None

    def _app_jwt_problem(self, credential: str) -> str | None:
        """GitHub's checks of an App's JWT: its signature by the App's key, its issuer, its ten-minute life."""
        if self._app is None:
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(
                credential,
                self._app.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            return "'Expiration time' claim ('exp') must be a numeric value representing the future time"
        except jwt.PyJWTError:
            return "A JSON web token could not be decoded"
        if str(claims["iss"]) != str(self._app.app_id):
            return "Integration not found"
        if int(claims["exp"]) - int(claims["iat"]) > 600 + 60:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        for injection in self._injections:
            if injection.method == method and injection.path.search(path):
                injection.times -= 1
                if injection.times <= 0:
                    self._injections.remove(injection)
                return injection
        return None

    def _with_rate_headers(self, reply: _Reply, overrides: Mapping[str, str]) -> _Reply:
        headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(self._rate_remaining),
            "x-ratelimit-reset": str(self._rate_reset),
            "x-ratelimit-used": str(RATE_LIMIT - self._rate_remaining),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": "2022-11-28",
        }
        # Header names are case-insensitive: an override replaces the default whatever its case.
        lowered = {name.lower() for name in overrides}
        merged = {k: v for k, v in headers.items() if k not in lowered}
        merged.update(reply.headers)
        merged.update(overrides)
        return _Reply(reply.status, reply.body, merged)

    def _route(self, request: _Request) -> _Reply:
        for method, pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                try:
                    return route(match, request)
                except _Refusal as refusal:
                    return refusal.reply
        return _not_found().reply

    # ------------------------------------------------------------ lookups

    def _repo(self, match: re.Match[str]) -> dict[str, Any]:
        repo = self._repos.get(f"{match['owner']}/{match['name']}".lower())
        if repo is None:
            raise _not_found()
        return repo

    def _repo_name(self, match: re.Match[str]) -> str:
        full_name: str = self._repo(match)["full_name"]
        return full_name

    def _require_issue(self, repo: str, number: int) -> None:
        key = (repo.lower(), number)
        if key not in self._pulls and key not in self._issues:
            raise _not_found()

    def _comment(self, match: re.Match[str]) -> EmulatedComment:
        comment = self._comments.get(int(match["id"]))
        if comment is None or comment.repo.lower() != self._repo_name(match).lower():
            raise _not_found()
        return comment

    def _deployment(self, match: re.Match[str]) -> EmulatedDeployment:
        deployment = self._deployments.get(int(match["id"]))
        if deployment is None or deployment.repo.lower() != self._repo_name(match).lower():
            raise _not_found()
        return deployment

    def _comments_on(self, repo: str, number: int) -> Iterator[EmulatedComment]:
        for comment in self._comments.values():
            if comment.repo.lower() == repo.lower() and comment.issue_number == number:
                yield comment

    def _deployments_of(self, repo: str) -> list[EmulatedDeployment]:
        mine = [d for d in self._deployments.values() if d.repo.lower() == repo.lower()]
        return sorted(mine, key=lambda d: d.id, reverse=True)

    def _statuses_of(self, repo: str, sha: str) -> list[EmulatedCommitStatus]:
        mine = [s for s in self._commit_statuses if s.sha == sha and s.repo.lower() == repo.lower()]
        return sorted(mine, key=lambda s: s.id, reverse=True)

    def _new_comment(self, repo: str, number: int, body: str, *, user: str, user_type: str) -> EmulatedComment:
        self._check_comment_body(body)
        comment = EmulatedComment(
            id=next(self._ids), repo=repo, issue_number=number, body=body, user=user, user_type=user_type
        )
        self._comments[comment.id] = comment
        return comment

    @staticmethod
    def _check_comment_body(body: Any) -> None:
        if not isinstance(body, str) or not body:
            raise _invalid("IssueComment", "body", "Body can't be blank")
        if len(body) > COMMENT_BODY_LIMIT:
            raise _invalid("IssueComment", "body", f"Body is too long (maximum is {COMMENT_BODY_LIMIT} characters)")

    def _page(self, request: _Request, items: list[Any]) -> _Reply:
        """One page of items, with the Link header GitHub sends (first, prev, next, last)."""
        try:
            per_page = min(max(int(request.arg("per_page", "30") or 30), 1), 100)
            page = max(int(request.arg("page", "1") or 1), 1)
        except ValueError as error:
            raise _Refusal(400, "Invalid page or per_page") from error
        last = max(math.ceil(len(items) / per_page), 1)
        neighbours = {"first": 1, "prev": page - 1} if page > 1 else {}
        if page < last:
            neighbours |= {"next": page + 1, "last": last}
        links = []
        for rel, number in neighbours.items():
            query = {k: v[0] for k, v in request.query.items()} | {
                "per_page": str(per_page),
                "page": str(number),
            }
            links.append(f'<{self.url}{request.served_path}?{urlencode(query)}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        return _Reply(200, items[(page - 1) * per_page : page * per_page], headers)

    # ------------------------------------------------------------ JSON shapes

    def _rebased(self, payload: Any, *, onto: str | None = None) -> Any:
        """A deep copy of payload whose API links point at this emulator (at onto, when given)."""
        text = json.dumps(payload)
        if onto is None:
            text = text.replace(f'"{PUBLIC_API_URL}/', f'"{self.url}/')
        else:
            # Enterprise clients are answered with links under their own prefix, as a real server would.
            text = text.replace(f'"{self.url}/', f'"{onto}/')
        return json.loads(text)

    def _user_json(self, login: str, user_type: str = "User") -> dict[str, Any]:
        number = zlib.crc32(login.encode())
        return {
            "login": login,
            "id": number,
            "node_id": _node_id("U", number),
            "type": user_type,
            "site_admin": False,
            "url": f"{self.url}/users/{quote(login)}",
            "html_url": f"https://github.com/{quote(login)}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
        }

    def _repo_json(self, owner: str, name: str, *, fork: bool = False) -> dict[str, Any]:
        number = zlib.crc32(f"{owner}/{name}".lower().encode())
        url = f"{self.url}/repos/{owner}/{name}"
        return {
            "id": number,
            "node_id": _node_id("R", number),
            "name": name,
            "full_name": f"{owner}/{name}",
            "owner": self._user_json(owner),
            "private": False,
            "fork": fork,
            "default_branch": "main",
            "url": url,
            "html_url": f"https://github.com/{owner}/{name}",
            "deployments_url": f"{url}/deployments",
            "statuses_url": f"{url}/statuses/{{sha}}",
            "visibility": "public",
        }

    def _label_json(self, repo: str, name: str) -> dict[str, Any]:
        number = zlib.crc32(f"{repo}:{name}".encode())
        url = f"{self.url}/repos/{repo}/labels/{quote(name)}"
        return {"id": number, "node_id": _node_id("LA", number), "url": url, "name": name, "color": "ededed"}

    def _pull_json(self, repo: str, number: int) -> dict[str, Any]:
        owner = repo.split("/")[0]
        base_repo = self._repos[repo.lower()]
        url = f"{self.url}/repos/{repo}/pulls/{number}"
        sha = f"{number:040x}"
        return {
            "url": url,
            "id": zlib.crc32(url.encode()),
            "node_id": _node_id("PR", number),
            "number": number,
            "state": "open",
            "title": f"Pull request {number}",
            "user": self._user_json(owner),
            "body": "",
            "labels": [],
            "draft": False,
            "merged": False,
            "merged_at": None,
            "closed_at": None,
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "issue_url": f"{self.url}/repos/{repo}/issues/{number}",
            "head": {"label": f"{owner}:pr-{number}", "ref": f"pr-{number}", "sha": sha, "repo": base_repo},
            "base": {"label": f"{owner}:main", "ref": "main", "sha": "0" * 40, "repo": base_repo},
        }

    def _issue_json(self, repo: str, number: int) -> dict[str, Any]:
        issue = self._issues.get((repo.lower(), number))
        if issue is not None:
            return issue
        pull = self._pulls[(repo.lower(), number)]
        return {
            "url": f"{self.url}/repos/{repo}/issues/{number}",
            "repository_url": f"{self.url}/repos/{repo}",
            "html_url": pull["html_url"],
            "id": pull["id"],
            "node_id": _node_id("I", number),
            "number": number,
            "title": pull["title"],
            "user": pull["user"],
            "labels": pull["labels"],
            "state": pull["state"],
            "comments": sum(1 for _ in self._comments_on(repo, number)),
            "body": pull.get("body"),
            "pull_request": {
                "url": pull["url"],
                "html_url": pull["html_url"],
                "merged_at": pull.get("merged_at"),
            },
        }

    def _comment_json(self, comment: EmulatedComment) -> dict[str, Any]:
        url = f"{self.url}/repos/{comment.repo}/issues/comments/{comment.id}"
        return {
            "id": comment.id,
            "node_id": _node_id("IC", comment.id),
            "url": url,
            "html_url": f"https://github.com/{comment.repo}/issues/{comment.issue_number}#issuecomment-{comment.id}",
            "issue_url": f"{self.url}/repos/{comment.repo}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": self._user_json(comment.user, comment.user_type),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": "NONE",
        }

    def _reaction_json(self, reaction: EmulatedReaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": _node_id("REA", reaction.id),
            "user": self._user_json(reaction.user, self.user_type if reaction.user == self.login else "User"),
            "content": reaction.content,
            "created_at": reaction.created_at,
        }

    def _deployment_json(self, deployment: EmulatedDeployment) -> dict[str, Any]:
        url = f"{self.url}/repos/{deployment.repo}/deployments/{deployment.id}"
        return {
            "url": url,
            "id": deployment.id,
            "node_id": _node_id("DE", deployment.id),
            "sha": deployment.sha,
            "ref": deployment.ref,
            "task": deployment.task,
            "payload": deployment.payload,
            "original_environment": deployment.environment,
            "environment": deployment.environment,
            "description": deployment.description,
            "creator": self._user_json(deployment.creator, self.user_type),
            "created_at": deployment.created_at,
            "updated_at": deployment.statuses[-1].created_at if deployment.statuses else deployment.created_at,
            "statuses_url": f"{url}/statuses",
            "repository_url": f"{self.url}/repos/{deployment.repo}",
            "transient_environment": deployment.transient_environment,
            "production_environment": deployment.production_environment,
        }

    def _deployment_status_json(
        self, deployment: EmulatedDeployment, status: EmulatedDeploymentStatus
    ) -> dict[str, Any]:
        deployment_url = f"{self.url}/repos/{deployment.repo}/deployments/{deployment.id}"
        return {
            "url": f"{deployment_url}/statuses/{status.id}",
            "id": status.id,
            "node_id": _node_id("DES", status.id),
            "state": status.state,
            "creator": self._user_json(self.login, self.user_type),
            "description": status.description,
            "environment": status.environment,
            "target_url": status.log_url,
            "log_url": status.log_url,
            "environment_url": status.environment_url,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "deployment_url": deployment_url,
            "repository_url": f"{self.url}/repos/{deployment.repo}",
        }

    def _commit_status_json(self, status: EmulatedCommitStatus) -> dict[str, Any]:
        return {
            "url": f"{self.url}/repos/{status.repo}/statuses/{status.sha}",
            "id": status.id,
            "node_id": _node_id("SC", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "avatar_url": None,
            "creator": self._user_json(status.creator, self.user_type),
        }

    # ------------------------------------------------------------ routes

    def _get_user(self, match: re.Match[str], request: _Request) -> _Reply:
        if self.user_type == "Bot":
            # An installation token (a GitHub App's, or Actions' GITHUB_TOKEN) is no user.
            raise _Refusal(403, "Resource not accessible by integration")
        return _Reply(200, self._user_json(self.login, self.user_type))

    def _graphql(self, match: re.Match[str], request: _Request) -> _Reply:
        """GraphQL, as far as previewbot asks it: `{ viewer { login } }`, which answers for any token."""
        query = request.field("query") or ""
        if not _VIEWER_LOGIN.match(query):
            return _Reply(200, {"errors": [{"message": "the emulator answers only { viewer { login } }"}]})
        return _Reply(200, {"data": {"viewer": {"login": self.login}}})

    def _get_rate_limit(self, match: re.Match[str], request: _Request) -> _Reply:
        core = {
            "limit": RATE_LIMIT,
            "remaining": self._rate_remaining,
            "reset": self._rate_reset,
            "used": RATE_LIMIT - self._rate_remaining,
            "resource": "core",
        }
        return _Reply(200, {"resources": {"core": core}, "rate": core})

    def _installed_app(self) -> EmulatedApp:
        if self._app is None:
            raise _not_found()
        return self._app

    def _installation_json(self, installation: int) -> dict[str, Any]:
        app = self._installed_app()
        owner = app.installations[installation][0].split("/")[0] if app.installations[installation] else "nobody"
        return {
            "id": installation,
            "app_id": app.app_id,
            "app_slug": app.slug,
            "account": self._user_json(owner),
            "target_type": "User",
            "repository_selection": "selected",
            "access_tokens_url": f"{self.url}/app/installations/{installation}/access_tokens",
            "permissions": dict(APP_PERMISSIONS),
            "events": list(APP_EVENTS),
        }

    def _get_app(self, match: re.Match[str], request: _Request) -> _Reply:
        app = self._installed_app()
        return _Reply(
            200,
            {
                "id": app.app_id,
                "slug": app.slug,
                "node_id": _node_id("A", app.app_id),
                "name": app.slug,
                "owner": self._user_json("acme"),
                "permissions": dict(APP_PERMISSIONS),
                "events": list(APP_EVENTS),
                "html_url": f"https://github.com/apps/{app.slug}",
            },
        )

    def _list_installations(self, match: re.Match[str], request: _Request) -> _Reply:
        return self._page(request, [self._installation_json(number) for number in self._installed_app().installations])

    def _get_repo_installation(self, match: re.Match[str], request: _Request) -> _Reply:
        repo = self._repo_name(match).lower()
        for installation, repos in self._installed_app().installations.items():
            if repo in (name.lower() for name in repos):
                return _Reply(200, self._installation_json(installation))
        raise _not_found()

    def _create_installation_token(self, match: re.Match[str], request: _Request) -> _Reply:
        installation = int(match["id"])
        if installation not in self._installed_app().installations:
            raise _not_found()
        token = "ghs_" + secrets.token_urlsafe(27)
        expires = time.time() + INSTALLATION_TOKEN_SECONDS
        self._installation_tokens[token] = (installation, expires)
        stamp = datetime.fromtimestamp(int(expires), UTC).isoformat().replace("+00:00", "Z")
        return _Reply(
            201,
            {
                "token": token,
                "expires_at": stamp,
                "permissions": dict(APP_PERMISSIONS),
                "repository_selection": "selected",
            },
        )

    def _list_installation_repos(self, match: re.Match[str], request: _Request) -> _Reply:
        installation = self._installation_tokens.get(request.credential)
        if installation is None:
            raise _Refusal(403, "This endpoint can only be accessed with an installation token")
        names = self._installed_app().installations[installation[0]]
        repos = [self._repos[name.lower()] for name in names]
        page = self._page(request, repos)
        return _Reply(200, {"total_count": len(repos), "repositories": page.body}, page.headers)

    def _list_check_runs(self, match: re.Match[str], request: _Request) -> _Reply:
        sha = self._resolve(self._repo_name(match), match["sha"])
        return self._runs(request, self._check_runs, repo=self._repo_name(match), sha=sha, key="check_runs")

    def _list_workflow_runs(self, match: re.Match[str], request: _Request) -> _Reply:
        sha = request.arg("head_sha")
        return self._runs(request, self._workflow_runs, repo=self._repo_name(match), sha=sha, key="workflow_runs")

    def _runs(self, request: _Request, runs: list[dict[str, Any]], *, repo: str, sha: str | None, key: str) -> _Reply:
        """A page of a repo's runs (of one commit, when sha is given), under key as GitHub wraps them."""
        listed = [
            {"id": index, **{field: run[field] for field in ("name", "head_sha", "status", "conclusion")}}
            for index, run in enumerate(runs, 1)
            if run["repo"] == repo.lower() and sha in (None, run["head_sha"])
        ]
        page = self._page(request, listed)
        return _Reply(200, {"total_count": len(listed), key: page.body}, page.headers)

    def _get_repo(self, match: re.Match[str], request: _Request) -> _Reply:
        return _Reply(200, self._repo(match))

    def _list_pulls(self, match: re.Match[str], request: _Request) -> _Reply:
        """The repo's pull requests in the state asked for (GitHub's default: open), newest first."""
        repo = self._repo(match)["full_name"].lower()
        state = request.arg("state", "open")
        if state not in ("open", "closed", "all"):
            raise _invalid("PullRequest", "state", f"{state} is not a valid state")
        pulls = sorted(
            (pull for (name, _), pull in self._pulls.items() if name == repo and state in ("all", pull["state"])),
            key=lambda pull: int(pull["number"]),
            reverse=True,
        )
        return self._page(request, pulls)

    def _get_pull(self, match: re.Match[str], request: _Request) -> _Reply:
        pull = self._pulls.get((self._repo_name(match).lower(), int(match["number"])))
        if pull is None:
            raise _not_found()
        return _Reply(200, pull)

    def _get_contents(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, path = self._repo(match), unquote(match["path"])
        ref = request.arg("ref") or repo["default_branch"]
        text = self._files.get((repo["full_name"].lower(), ref, path))
        if text is None:
            return self._folder(repo, ref, path.strip("/"))
        content = base64.b64encode(text.encode()).decode()
        url = f"{self.url}/repos/{repo['full_name']}/contents/{quote(path)}?ref={quote(ref)}"
        return _Reply(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(text.encode()),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": content,
                "sha": hashlib.sha1(text.encode()).hexdigest(),  # noqa: S324 - a git blob name, not security
                "url": url,
                "git_url": url,
                "html_url": url,
                "download_url": url,
            },
        )

    def _folder(self, repo: dict[str, Any], ref: str, folder: str) -> _Reply:
        """A folder's entries, one level deep, as the contents API lists them; 404 when there are none."""
        entries: dict[str, str] = {}
        for name, at, path in self._files:
            if name != repo["full_name"].lower() or at != ref or not path.startswith(folder + "/"):
                continue
            first, _, rest = path[len(folder) + 1 :].partition("/")
            entries[first] = "dir" if rest else "file"
        if not entries:
            raise _not_found()
        listed = []
        for entry, kind in sorted(entries.items()):
            path = f"{folder}/{entry}"
            url = f"{self.url}/repos/{repo['full_name']}/contents/{quote(path)}?ref={quote(ref)}"
            listed.append({"type": kind, "name": entry, "path": path, "sha": "0" * 40, "size": 0, "url": url})
        return _Reply(200, listed)

    def _get_issue(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, number = self._repo_name(match), int(match["number"])
        self._require_issue(repo, number)
        return _Reply(200, self._issue_json(repo, number))

    def _remove_label(self, match: re.Match[str], request: _Request) -> _Reply:
        pull = self._pulls.get((self._repo_name(match).lower(), int(match["number"])))
        name = unquote(match["label"])
        if pull is None or not any(label["name"] == name for label in pull["labels"]):
            raise _Refusal(404, "Label does not exist")
        pull["labels"] = [label for label in pull["labels"] if label["name"] != name]
        return _Reply(200, pull["labels"])

    def _list_comments(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, number = self._repo_name(match), int(match["number"])
        self._require_issue(repo, number)
        comments = list(self._comments_on(repo, number))
        since = request.arg("since")
        if since is not None:
            # Only comments updated at or after this ISO 8601 time.
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            comments = [c for c in comments if datetime.fromisoformat(c.updated_at.replace("Z", "+00:00")) >= moment]
        return self._page(request, [self._comment_json(c) for c in comments])

    def _create_comment(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, number = self._repo_name(match), int(match["number"])
        self._require_issue(repo, number)
        comment = self._new_comment(repo, number, request.field("body"), user=self.login, user_type=self.user_type)
        body = self._comment_json(comment)
        return _Reply(201, body, {"Location": body["url"]})

    def _get_comment(self, match: re.Match[str], request: _Request) -> _Reply:
        return _Reply(200, self._comment_json(self._comment(match)))

    def _edit_comment(self, match: re.Match[str], request: _Request) -> _Reply:
        comment = self._comment(match)
        body = request.field("body")
        self._check_comment_body(body)
        comment.body = body
        comment.updated_at = _now()
        return _Reply(200, self._comment_json(comment))

    def _delete_comment(self, match: re.Match[str], request: _Request) -> _Reply:
        comment = self._comment(match)
        del self._comments[comment.id]
        self._reactions.pop(comment.id, None)
        return _Reply(204)

    def _list_reactions(self, match: re.Match[str], request: _Request) -> _Reply:
        comment = self._comment(match)
        return self._page(request, [self._reaction_json(r) for r in self._reactions.get(comment.id, [])])

    def _create_reaction(self, match: re.Match[str], request: _Request) -> _Reply:
        comment = self._comment(match)
        content = request.field("content")
        if content not in REACTIONS:
            raise _invalid("Reaction", "content", f"content is not one of {', '.join(sorted(REACTIONS))}")
        reactions = self._reactions.setdefault(comment.id, [])
        for reaction in reactions:
            if reaction.user == self.login and reaction.content == content:
                return _Reply(200, self._reaction_json(reaction))
        reaction = EmulatedReaction(id=next(self._ids), content=content, user=self.login)
        reactions.append(reaction)
        return _Reply(201, self._reaction_json(reaction))

    def _get_permission(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, user = self._repo_name(match), match["user"]
        role = self._permissions.get((repo.lower(), user.lower()))
        if role is None:
            raise _not_found()
        body = {"permission": LEGACY_PERMISSION[role], "role_name": role, "user": self._user_json(user)}
        return _Reply(200, body)

    def _list_deployments(self, match: re.Match[str], request: _Request) -> _Reply:
        wanted = {name: request.arg(name) for name in ("sha", "ref", "task", "environment")}
        chosen = [
            self._deployment_json(d)
            for d in self._deployments_of(self._repo_name(match))
            if all(value is None or getattr(d, name) == value for name, value in wanted.items())
        ]
        return self._page(request, chosen)

    def _create_deployment(self, match: re.Match[str], request: _Request) -> _Reply:
        repo = self._repo_name(match)
        ref = request.field("ref")
        if not isinstance(ref, str) or not ref:
            raise _invalid("Deployment", "ref", "ref is missing")
        required_contexts = request.field("required_contexts")
        sha = self._resolve(repo, ref)
        failing = self._failing_contexts(repo, sha, required_contexts)
        if failing:
            raise _Refusal(409, f"Conflict: Commit status checks failed for {ref}.")
        environment = request.field("environment", "production")
        deployment = EmulatedDeployment(
            id=next(self._ids),
            repo=repo,
            sha=sha,
            ref=ref,
            task=request.field("task", "deploy"),
            environment=environment,
            description=request.field("description"),
            payload=request.field("payload", {}),
            transient_environment=bool(request.field("transient_environment", False)),
            production_environment=bool(request.field("production_environment", environment == "production")),
            auto_merge=bool(request.field("auto_merge", True)),
            required_contexts=required_contexts,
            creator=self.login,
        )
        self._deployments[deployment.id] = deployment
        return _Reply(201, self._deployment_json(deployment))

    def _resolve(self, repo: str, ref: str) -> str:
        """The commit a ref names: a PR's head branch resolves to its head SHA, anything else to itself."""
        for (pull_repo, _), pull in self._pulls.items():
            if pull_repo == repo.lower() and pull["head"]["ref"] == ref:
                sha: str = pull["head"]["sha"]
                return sha
        return ref

    def _failing_contexts(self, repo: str, sha: str, required: list[str] | None) -> list[str]:
        """Contexts that keep a deployment from being created; all contexts count unless some are named."""
        latest = self._latest_statuses(repo, sha)
        contexts = latest.keys() if required is None else required
        return [context for context in contexts if context not in latest or latest[context].state != "success"]

    def _get_deployment(self, match: re.Match[str], request: _Request) -> _Reply:
        return _Reply(200, self._deployment_json(self._deployment(match)))

    def _delete_deployment(self, match: re.Match[str], request: _Request) -> _Reply:
        deployment = self._deployment(match)
        alone = all(
            other.id == deployment.id or other.environment != deployment.environment
            for other in self._deployments_of(deployment.repo)
        )
        if deployment.state != "inactive" and not alone:
            raise _Refusal(
                422,
                "We cannot delete an active deployment unless it is the only deployment in a given environment.",
            )
        del self._deployments[deployment.id]
        return _Reply(204)

    def _list_deployment_statuses(self, match: re.Match[str], request: _Request) -> _Reply:
        deployment = self._deployment(match)
        newest_first = [self._deployment_status_json(deployment, s) for s in reversed(deployment.statuses)]
        return self._page(request, newest_first)

    def _create_deployment_status(self, match: re.Match[str], request: _Request) -> _Reply:
        deployment = self._deployment(match)
        state = request.field("state")
        if state not in DEPLOYMENT_STATES:
            raise _invalid("DeploymentStatus", "state", f"state is not included in the list: {state!r}")
        description = request.field("description") or ""
        if len(description) > DESCRIPTION_LIMIT:
            raise _invalid(
                "DeploymentStatus", "description", f"description is too long (maximum is {DESCRIPTION_LIMIT})"
            )
        if request.field("environment"):
            deployment.environment = request.field("environment")
        status = self._add_deployment_status(
            deployment,
            state=state,
            description=description,
            environment_url=request.field("environment_url") or "",
            log_url=request.field("log_url") or request.field("target_url") or "",
        )
        if state == "success" and request.field("auto_inactive", True):
            for earlier in self._deployments_of(deployment.repo):
                if (
                    earlier.id < deployment.id
                    and earlier.environment == deployment.environment
                    and earlier.state == "success"
                ):
                    self._add_deployment_status(earlier, state="inactive", description="")
        return _Reply(201, self._deployment_status_json(deployment, status))

    def _add_deployment_status(
        self,
        deployment: EmulatedDeployment,
        *,
        state: str,
        description: str,
        environment_url: str = "",
        log_url: str = "",
    ) -> EmulatedDeploymentStatus:
        status = EmulatedDeploymentStatus(
            id=next(self._ids),
            state=state,
            description=description,
            environment=deployment.environment,
            environment_url=environment_url,
            log_url=log_url,
        )
        deployment.statuses.append(status)
        return status

    def _create_commit_status(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, sha = self._repo_name(match), match["sha"]
        state = request.field("state")
        if state not in COMMIT_STATES:
            raise _invalid("Status", "state", f"state is not included in the list: {state!r}")
        description = request.field("description")
        if description is not None and len(description) > DESCRIPTION_LIMIT:
            raise _invalid("Status", "description", f"description is too long (maximum is {DESCRIPTION_LIMIT})")
        status = EmulatedCommitStatus(
            id=next(self._ids),
            repo=repo,
            sha=sha,
            state=state,
            context=request.field("context") or "default",
            description=description,
            target_url=request.field("target_url"),
            creator=self.login,
        )
        self._commit_statuses.append(status)
        return _Reply(201, self._commit_status_json(status))

    def _list_commit_statuses(self, match: re.Match[str], request: _Request) -> _Reply:
        statuses = self._statuses_of(self._repo_name(match), match["sha"])
        return self._page(request, [self._commit_status_json(s) for s in statuses])

    def _latest_statuses(self, repo: str, sha: str) -> dict[str, EmulatedCommitStatus]:
        latest: dict[str, EmulatedCommitStatus] = {}
        for status in self._statuses_of(repo, sha):
            latest.setdefault(status.context, status)
        return latest

    def _combined_status(self, match: re.Match[str], request: _Request) -> _Reply:
        repo, sha = self._repo_name(match), match["sha"]
        latest = list(self._latest_statuses(repo, sha).values())
        states = {status.state for status in latest}
        if states & {"error", "failure"}:
            combined = "failure"
        elif not latest or "pending" in states:
            combined = "pending"
        else:
            combined = "success"
        body = {
            "state": combined,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [self._commit_status_json(s) for s in latest],
            "repository": self._repos[repo.lower()],
            "commit_url": f"{self.url}/repos/{repo}/commits/{sha}",
            "url": f"{self.url}/repos/{repo}/commits/{sha}/status",
        }
        return _Reply(200, body)

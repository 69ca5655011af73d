"""GitHub over PyGithub (implements ports.GitHub).

previewbot decides its own retries here, at the one boundary where GitHub's answers come in:
rate limits wait as long as GitHub says (Retry-After, x-ratelimit-reset) but never longer than
`max_wait`; server errors and broken connections back off exponentially; any other 4xx is final.
Every failure leaves as a previewbot.errors.ApiError raised from PyGithub's exception, with
GitHub's message and never the token.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from github.GithubObject import NotSet, Opt
from github.IssueComment import IssueComment
from github.PullRequest import PullRequest as GithubPullRequest
from github.Repository import Repository
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from previewbot.errors import ApiError, Conflict, Forbidden, Invalid, NotFound, TemporaryError, UserError
from previewbot.model import Comment, CommitState, DeploymentState, PullRequest

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_URL = "https://api.github.com"
API_URL_ENV = "GITHUB_API_URL"  # set by Actions runners, and to https://HOST/api/v3 on Enterprise Server
DESCRIPTION_LIMIT = 140  # GitHub's limit on commit and deployment status descriptions
ELLIPSIS = "…"
ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})
# How far the runner's clock may be from GitHub's when previewbot looks for what a create made.
CLOCK_SKEW = 60.0
# Without Retry-After, GitHub asks clients that hit a secondary rate limit to wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
FILES_LIMIT = 1000  # files one download may write: a PR names its folders, and may name huge ones
BYTES_LIMIT = 20 * 1024 * 1024

_ERRORS_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: Invalid,
    401: Forbidden,  # a wrong or expired token: previewbot may not act, and trying again will not help
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    422: Invalid,
}


class RateLimited(TemporaryError):
    """GitHub's rate limit was hit; `delay` is how long GitHub asked previewbot to wait."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard previewbot tries before a GitHub call gives up."""

    attempts: int = 5  # calls in all, the first included
    backoff: float = 1.0  # the first wait after a server error; doubled each time
    max_backoff: float = 30.0
    max_wait: float = 300.0  # a rate limit that needs longer is not waited out but raised


def cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """text in at most limit characters, ending with an ellipsis when it had to be cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


class GitHubApi:
    """The GitHub port for one token, over PyGithub with its own retries turned off."""

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        seconds_between_writes: float | None = None,
        timeout: int = 15,
        login: str | None = None,
    ) -> None:
        """seconds_between_writes makes PyGithub wait that long before each write. The core's Outbox
        already keeps GitHub's pace where many writes queue up, so none is the default: a pause before
        every write would only slow a deploy's reports. sleep and clock serve the retries, so tests
        need not wait.
        login is the token's own login when the front door knows it (a GitHub App's `<slug>[bot]`);
        else it is asked of GitHub the first time it is needed."""
        self._token = token
        self._timeout = timeout
        self._login = login
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._client = Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            per_page=100,
            retry=None,
            lazy=True,  # objects are fetched when read, so every request happens inside a retried call
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes,
        )

    @classmethod
    def from_env(cls, token: str, *, api_url: str | None = None) -> GitHubApi:
        """The API at api_url, else at $GITHUB_API_URL (Enterprise Server sets it), else GitHub.com."""
        return cls(token, api_url=api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHubApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ the port

    def login(self) -> str:
        # GraphQL's viewer answers for every kind of token: a user's gives the user's login, an
        # installation's (a GitHub App's, or the Actions GITHUB_TOKEN) gives `<app slug>[bot]`.
        # REST's GET /user refuses installation tokens ("Resource not accessible by integration").
        if self._login is None:

            def read() -> str:
                _, data = self._client.requester.graphql_query("query { viewer { login } }", {})
                return str(data["data"]["viewer"]["login"])

            self._login = self._call(read, doing="reading previewbot's own login")
        return self._login

    def pull_request(self, repo: str, number: int) -> PullRequest:
        return self._call(
            lambda: _pull_request(repo, self._repo(repo).get_pull(number)),
            doing=f"reading pull request {repo}#{number}",
        )

    def open_pull_requests(self, repo: str) -> Sequence[PullRequest]:
        return self._call(
            lambda: [_pull_request(repo, pull) for pull in self._repo(repo).get_pulls(state="open")],
            doing=f"listing the open pull requests of {repo}",
        )

    def file_text(self, repo: str, path: str, *, ref: str) -> str | None:
        def read() -> str:
            contents = self._repo(repo).get_contents(path, ref=ref)
            if isinstance(contents, list):  # a folder
                raise NotFound(f"{path} is a folder in {repo}@{ref}")
            return contents.decoded_content.decode("utf-8", errors="replace")

        try:
            return self._call(read, doing=f"reading {path} of {repo} at {ref}")
        except NotFound:
            return None

    def download(self, repo: str, path: str, *, ref: str, into: Path) -> int:
        relative = _path_in_repo(path)

        def read() -> list[tuple[str, bytes]]:
            files: list[tuple[str, bytes]] = []
            size = 0
            for file in _walk(self._repo(repo), str(relative), ref):
                files.append(file)
                size += len(file[1])
                if len(files) > FILES_LIMIT or size > BYTES_LIMIT:
                    raise UserError(
                        f"{path} holds more than {FILES_LIMIT} files or {BYTES_LIMIT // 2**20} MB: too much to deploy"
                    )
            return files

        files = self._call(read, doing=f"reading {path} of {repo} at {ref[:7]}")
        for file_path, content in files:
            target = into / _path_in_repo(file_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return len(files)

    def comments(self, repo: str, number: int) -> Sequence[Comment]:
        def read() -> list[Comment]:
            return [
                Comment(id=comment.id, body=comment.body or "", author=comment.user.login if comment.user else "")
                for comment in self._repo(repo).get_issue(number).get_comments()
            ]

        return self._call(read, doing=f"listing the comments of {repo}#{number}")

    def create_comment(self, repo: str, number: int, body: str) -> int:
        def create() -> int:
            comment_id: int = self._repo(repo).get_issue(number).create_comment(body).id
            return comment_id

        since = datetime.fromtimestamp(self._clock() - CLOCK_SKEW, UTC)

        def made() -> int | None:
            own = self.login()
            for comment in self._repo(repo).get_issue(number).get_comments(since=since):
                if comment.user is not None and comment.user.login == own and comment.body == body:
                    found: int = comment.id
                    return found
            return None

        return self._call(create, doing=f"commenting on {repo}#{number}", made=made)

    def update_comment(self, repo: str, comment_id: int, body: str) -> None:
        self._call(
            lambda: self._issue_comment(repo, comment_id).edit(body),
            doing=f"updating comment {comment_id} in {repo}",
        )

    def react(self, repo: str, comment_id: int, content: str) -> None:
        # GitHub answers an existing reaction of ours with 200, so reacting twice changes nothing.
        self._call(
            lambda: self._issue_comment(repo, comment_id).create_reaction(content),
            doing=f"reacting {content} to comment {comment_id} in {repo}",
        )

    def remove_label(self, repo: str, number: int, label: str) -> None:
        try:
            self._call(
                lambda: self._repo(repo).get_issue(number).remove_from_labels(label),
                doing=f"removing label {label!r} from {repo}#{number}",
            )
        except NotFound:
            log.info("label %r was not on %s#%d", label, repo, number)

    def permission(self, repo: str, user: str) -> str:
        def read() -> str:
            url = f"{self._repo(repo).url}/collaborators/{quote(user, safe='')}/permission"
            _, data = self._client.requester.requestJsonAndCheck("GET", url)
            role = str(data.get("role_name") or "")
            # A custom role has its own name; the legacy "permission" field gives its base level.
            return role if role in ROLES else str(data.get("permission") or "none")

        try:
            return self._call(read, doing=f"reading {user}'s permission on {repo}")
        except NotFound:
            return "none"

    def create_deployment(
        self, repo: str, *, sha: str, environment: str, description: str, payload: Mapping[str, Any]
    ) -> int:
        def create() -> int:
            deployment = self._repo(repo).create_deployment(
                ref=sha,
                environment=environment,
                description=description,
                transient_environment=True,
                production_environment=False,
                auto_merge=False,
                # A preview must not wait for the PR's checks, which may well wait for the preview.
                required_contexts=[],
                payload=dict(payload),
            )
            deployment_id: int = deployment.id
            return deployment_id

        since = datetime.fromtimestamp(self._clock() - CLOCK_SKEW, UTC)

        def made() -> int | None:
            for deployment in self._repo(repo).get_deployments(sha=sha, environment=environment):
                if deployment.created_at >= since and deployment.payload == dict(payload):
                    found: int = deployment.id
                    return found
            return None

        return self._call(create, doing=f"creating a deployment of {sha[:7]} to {environment} in {repo}", made=made)

    def deployments(self, repo: str, *, environment: str) -> Sequence[int]:
        return self._call(
            lambda: [deployment.id for deployment in self._repo(repo).get_deployments(environment=environment)],
            doing=f"listing the deployments to {environment} in {repo}",
        )

    def set_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        *,
        state: DeploymentState,
        description: str,
        environment_url: str | None = None,
        log_url: str | None = None,
    ) -> None:
        def create_status() -> None:
            # PyGithub asks for the deployment previews GitHub needs to accept environment_url and
            # the inactive state; it calls log_url by its older name, target_url.
            self._repo(repo).get_deployment(deployment_id).create_status(
                state.value,
                description=cut(description),
                environment_url=_given(environment_url),
                target_url=_given(log_url),
            )

        self._call(create_status, doing=f"setting deployment {deployment_id} in {repo} to {state.value}")

    def set_commit_status(
        self,
        repo: str,
        sha: str,
        *,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        def create_status() -> None:
            self._repo(repo).get_commit(sha).create_status(
                state.value, description=cut(description), context=context, target_url=_given(target_url)
            )

        self._call(create_status, doing=f"setting status {context} of {sha[:7]} in {repo} to {state.value}")

    # ------------------------------------------------------------ PyGithub objects

    def _repo(self, repo: str) -> Repository:
        return self._client.get_repo(repo)

    def _issue_comment(self, repo: str, comment_id: int) -> IssueComment:
        url = f"{self._repo(repo).url}/issues/comments/{comment_id}"
        return IssueComment(self._client.requester, url=url)

    # ------------------------------------------------------------ retries and errors

    def _call(self, operation: Callable[[], T], *, doing: str, made: Callable[[], T | None] | None = None) -> T:
        """Run operation, retrying what is worth it; every failure leaves as an ApiError.

        A create is not safe to send twice: GitHub may have carried it out and lost only its
        answer (a 5xx, a timeout, a dropped connection). For one, `made` looks for what the
        create made, and before each new try it is asked first: what it finds is the result.
        """
        unsure = False

        def attempt() -> T:
            nonlocal unsure
            if unsure and made is not None:
                found = self._translated(made, f"looking for what {doing} made")
                if found is not None:
                    log.info("GitHub had carried out %s, though its answer was lost", doing)
                    return found
            try:
                return self._translated(operation, doing)
            except RateLimited:
                raise  # refused before it was carried out
            except TemporaryError:
                unsure = True
                raise

        retrying = Retrying(
            stop=stop_after_attempt(self._retry.attempts),
            retry=retry_if_exception(self._worth_waiting_for),
            wait=self._wait_before_retry,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _translated(self, operation: Callable[[], T], doing: str) -> T:
        try:
            return operation()
        except GithubException as error:
            raise self._api_error(error, doing=doing) from error
        except requests.Timeout as error:
            message = f"GitHub did not answer within {self._timeout}s while {doing}"
            raise TemporaryError(self._scrub(message), delay=self._retry.backoff) from error
        except requests.ConnectionError as error:
            message = self._scrub(f"GitHub could not be reached while {doing}: {type(error).__name__}")
            raise TemporaryError(message, delay=self._retry.backoff) from error

    def _api_error(self, error: GithubException, *, doing: str) -> ApiError:
        message = self._scrub(f"GitHub answered {error.status} while {doing}: {_github_message(error)}")
        delay = self._rate_limit_delay(error)
        if delay is not None:
            return RateLimited(message, status=error.status, delay=delay)
        if error.status >= 500:
            return TemporaryError(message, status=error.status, delay=self._retry.backoff)
        return _ERRORS_BY_STATUS.get(error.status, ApiError)(message, status=error.status)

    def _rate_limit_delay(self, error: GithubException) -> float | None:
        """Seconds GitHub asks to wait before trying again, or None when error is no rate limit."""
        if error.status not in (403, 429):
            return None
        headers = {name.lower(): value for name, value in (error.headers or {}).items()}
        if "retry-after" in headers:
            return self._seconds_until(headers["retry-after"])
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return max(float(headers["x-ratelimit-reset"]) - self._clock(), 0.0)
        if error.status == 429 or isinstance(error, RateLimitExceededException):
            return SECONDARY_LIMIT_WAIT
        return None

    def _seconds_until(self, retry_after: str) -> float:
        """Retry-After holds either seconds or an HTTP date; one that holds neither gets the default wait."""
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            pass
        try:
            return max(parsedate_to_datetime(retry_after).timestamp() - self._clock(), 0.0)
        except (TypeError, ValueError):
            return SECONDARY_LIMIT_WAIT

    def _worth_waiting_for(self, error: BaseException) -> bool:
        return isinstance(error, TemporaryError) and error.delay <= self._retry.max_wait

    def _wait_before_retry(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            return error.delay
        backoff = self._retry.backoff * 2.0 ** (state.attempt_number - 1)
        return min(backoff, self._retry.max_backoff)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; trying again in %.1fs (attempt %d)", error, wait, state.attempt_number + 1)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _pull_request(repo: str, pull: GithubPullRequest) -> PullRequest:
    """previewbot's record of a PyGithub pull request, whole or from a list."""
    head_repo = pull.head.repo
    return PullRequest(
        repo=repo,
        number=pull.number,
        head_sha=pull.head.sha,
        head_ref=pull.head.ref,
        base_ref=pull.base.ref,
        default_branch=pull.base.repo.default_branch,
        author=pull.user.login,
        # A fork deleted since the PR was opened leaves no head repo: it still counts as a fork.
        head_repo=head_repo.full_name if head_repo is not None else "",
        state=pull.state,
        # A list's entries lack `merged`, which PyGithub would fetch PR by PR; only a closed PR can have it.
        merged=pull.state == "closed" and bool(pull.merged),
        labels=tuple(label.name for label in pull.labels),
        html_url=pull.html_url,
    )


def _walk(repository: Repository, path: str, ref: str) -> Iterator[tuple[str, bytes]]:
    """Each file at path (a file, or a folder and its subfolders) at ref: its path in the repo, and its bytes."""
    contents = repository.get_contents(path, ref=ref)
    if not isinstance(contents, list):
        yield contents.path, contents.decoded_content
        return
    for entry in contents:
        if entry.type in ("dir", "file"):  # a symlink or submodule is not followed out of the repo
            yield from _walk(repository, entry.path, ref)


def _path_in_repo(path: str) -> PurePosixPath:
    """path as a relative path that stays inside the folder it is written under."""
    relative = PurePosixPath(path.strip())
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"{path!r} is not a path inside the repository")
    return relative


def _given(value: str | None) -> Opt[str]:
    """PyGithub leaves out of the request what is NotSet; None would be sent as null."""
    return NotSet if value is None else value


def _github_message(error: GithubException) -> str:
    """GitHub's own words: its message, and the details of a validation failure."""
    data = error.data if isinstance(error.data, dict) else {}
    message = str(data.get("message") or error.message or "no message")
    details = [
        str(item.get("message") or f"{item.get('field')} {item.get('code')}")
        for item in data.get("errors") or []
        if isinstance(item, dict)
    ]
    return f"{message}: {'; '.join(details)}" if details else message

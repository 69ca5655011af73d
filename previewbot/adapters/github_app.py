"""previewbot as a GitHub App, over PyGithub: the App's JWT, its installations' tokens, and what the
webhook server reads beyond the GitHub port (installed repos, builds).

An installation token lasts an hour; one is used while it has more than `refresh_margin` left, so a
job that starts with it never sees it expire. Every failure leaves as a previewbot.errors.ApiError.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException, GithubIntegration
from github.PaginatedList import PaginatedList
from github.Repository import Repository

from previewbot.adapters.github import _ERRORS_BY_STATUS, DEFAULT_API_URL, GitHubApi
from previewbot.errors import ApiError, TemporaryError
from previewbot.redact import redactor

log = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_MARGIN = 1800.0  # seconds of life a token must have left to be handed to a job


class GitHubApp:
    """One GitHub App, for every repo it is installed on."""

    def __init__(
        self,
        *,
        app_id: int | str,
        private_key: str,
        api_url: str = DEFAULT_API_URL,
        refresh_margin: float = REFRESH_MARGIN,
        seconds_between_writes: float | None = 1.0,
        timeout: int = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(app_id, private_key), base_url=self._api_url, timeout=timeout, retry=None, lazy=True
        )
        self._refresh_margin = refresh_margin
        self._seconds_between_writes = seconds_between_writes
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._installations: dict[str, int] = {}  # repo (lower-case) -> installation id
        self._tokens: dict[int, tuple[str, float]] = {}  # installation id -> (token, expires at)
        self._bot_login: str | None = None
        self.rate_remaining: int | None = None  # as GitHub last said to one of this App's own reads

    def close(self) -> None:
        self._integration.close()

    # ------------------------------------------------------------ identity and tokens

    def bot_login(self) -> str:
        """The login the App's comments carry: its slug and "[bot]"."""
        if self._bot_login is None:
            app = _translated(self._integration.get_app, doing="reading the App")
            self._bot_login = f"{app.slug}[bot]"
        return self._bot_login

    def token(self, repo: str) -> str:
        """An installation token for repo with at least refresh_margin seconds left."""
        installation = self._installation(repo)
        with self._lock:
            cached = self._tokens.get(installation)
            if cached is not None and cached[1] - self._clock() > self._refresh_margin:
                return cached[0]
        granted = _translated(
            lambda: self._integration.get_access_token(installation), doing=f"getting a token for {repo}"
        )
        expires = granted.expires_at.astimezone(UTC).timestamp() if granted.expires_at else self._clock() + 3600
        redactor.add(granted.token)
        with self._lock:
            self._tokens[installation] = (granted.token, expires)
        log.info("new installation token for %s, valid until %s", repo, datetime.fromtimestamp(expires, UTC))
        return str(granted.token)

    def github(self, repo: str) -> GitHubApi:
        """The GitHub port for repo, with its installation's token."""
        return GitHubApi(
            self.token(repo),
            api_url=self._api_url,
            seconds_between_writes=self._seconds_between_writes,
            login=self.bot_login(),  # the author of the App's comments: its sticky comment is found among them
        )

    def _installation(self, repo: str) -> int:
        key = repo.lower()
        with self._lock:
            if key in self._installations:
                return self._installations[key]
        owner, name = repo.split("/", 1)
        found = _translated(
            lambda: self._integration.get_repo_installation(owner, name), doing=f"finding the App's install on {repo}"
        )
        with self._lock:
            self._installations[key] = int(found.id)
        return int(found.id)

    # ------------------------------------------------------------ reads for the server

    def repositories(self) -> list[str]:
        """Every repo the App is installed on."""
        names: list[str] = []
        for installation in _translated(lambda: list(self._integration.get_installations()), doing="listing installs"):
            client = self._client(self._installation_token(int(installation.id)))
            listed: PaginatedList[Repository] = PaginatedList(
                Repository, client.requester, "/installation/repositories", None, list_item="repositories"
            )
            repositories: list[Repository] = _translated(
                functools.partial(list, listed), doing="listing installed repos"
            )
            for repository in repositories:
                names.append(repository.full_name)
                with self._lock:
                    self._installations[repository.full_name.lower()] = int(installation.id)
            self._note_rate(client)
        return names

    def builds(self, repo: str, sha: str) -> dict[str, str | None]:
        """The check runs and workflow runs of a commit by name: their conclusion, None while one runs.

        When several runs share a name (a re-run), the newest counts.
        """
        client = self._client(self.token(repo))

        def read() -> dict[str, str | None]:
            repository = client.get_repo(repo)
            found: dict[str, str | None] = {}
            runs = [*repository.get_commit(sha).get_check_runs(), *repository.get_workflow_runs(head_sha=sha)]
            for run in sorted(runs, key=lambda run: run.id):
                found[run.name] = run.conclusion if run.status == "completed" else None
            return found

        result = _translated(read, doing=f"reading the builds of {repo} at {sha[:7]}")
        self._note_rate(client)
        return result

    # ------------------------------------------------------------ plumbing

    def _installation_token(self, installation: int) -> str:
        granted = _translated(
            lambda: self._integration.get_access_token(installation), doing="getting an installation token"
        )
        redactor.add(granted.token)
        return str(granted.token)

    def _client(self, token: str) -> Github:
        return Github(
            auth=Auth.Token(token), base_url=self._api_url, timeout=self._timeout, retry=None, per_page=100, lazy=True
        )

    def _note_rate(self, client: Github) -> None:
        remaining, _limit = client.rate_limiting
        if remaining >= 0:
            self.rate_remaining = remaining


def _translated(operation: Callable[[], T], *, doing: str) -> T:
    try:
        return operation()
    except GithubException as error:
        message = f"{doing}: GitHub answered {error.status}: {_message(error)}"
        if error.status in (429,) or error.status >= 500:
            raise TemporaryError(message, status=error.status) from error
        raise _ERRORS_BY_STATUS.get(error.status, ApiError)(message, status=error.status) from error
    except requests.RequestException as error:
        raise TemporaryError(f"{doing}: cannot reach GitHub ({type(error).__name__})") from error


def _message(error: GithubException) -> str:
    data: Any = error.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""

"""The GitHub adapter against the emulated API: every port method, its retries and its errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from previewbot.adapters.github import FILES_LIMIT, GitHubApi, RateLimited, RetryPolicy
from previewbot.errors import ApiError, Forbidden, Invalid, NotFound, TemporaryError, UserError
from previewbot.model import Comment, CommitState, DeploymentState, PullRequest
from tests.emulators.github import COMMENT_BODY_LIMIT, SECONDARY_RATE_LIMIT_MESSAGE, GitHubEmulator
from tests.emulators.github_plugin import SEEDED_PR, SEEDED_REPO
from tests.emulators.silent import silent_server

HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NOW = 1_700_000_000.0
ENVIRONMENT = "preview/pr-2"
POLICY = RetryPolicy(attempts=4, backoff=1.0, max_backoff=30.0, max_wait=120.0)


@pytest.fixture
def sleeps() -> list[float]:
    """What the adapter asked to sleep, in order: tests never wait."""
    return []


def make_api(github: GitHubEmulator, sleeps: list[float], *, token: str | None = None) -> GitHubApi:
    return GitHubApi(
        token or github.token,
        api_url=github.url,
        retry=POLICY,
        sleep=sleeps.append,
        clock=lambda: NOW,
        seconds_between_writes=None,
    )


@pytest.fixture
def api(github: GitHubEmulator, sleeps: list[float]) -> Iterator[GitHubApi]:
    with make_api(github, sleeps) as adapter:
        yield adapter


def requests_to(github: GitHubEmulator, method: str, suffix: str) -> int:
    return sum(1 for r in github.requests if r.method == method and r.path.endswith(suffix))


# ---------------------------------------------------------------- reading the pull request


def test_pull_request_reads_the_fields_previewbot_needs(api: GitHubApi) -> None:
    assert api.pull_request(SEEDED_REPO, SEEDED_PR) == PullRequest(
        repo=SEEDED_REPO,
        number=SEEDED_PR,
        head_sha=HEAD_SHA,
        head_ref="changes",
        base_ref="master",
        default_branch="master",
        author="Codertocat",
        head_repo=SEEDED_REPO,
        state="open",
        merged=False,
        labels=("bug",),
        html_url="https://github.com/Codertocat/Hello-World/pull/2",
    )


def test_pull_request_from_a_fork_says_so(api: GitHubApi, github: GitHubEmulator) -> None:
    github.add_pull(repo=SEEDED_REPO, number=9, head_repo="mallory/Hello-World", author="mallory")
    pull = api.pull_request(SEEDED_REPO, 9)
    assert pull.head_repo == "mallory/Hello-World"
    assert pull.from_fork


def test_pull_request_that_was_merged(api: GitHubApi, github: GitHubEmulator) -> None:
    github.update_pull(SEEDED_REPO, SEEDED_PR, state="closed", merged=True)
    pull = api.pull_request(SEEDED_REPO, SEEDED_PR)
    assert (pull.state, pull.merged) == ("closed", True)


def test_an_unknown_pull_request_is_not_found(api: GitHubApi) -> None:
    with pytest.raises(NotFound) as caught:
        api.pull_request(SEEDED_REPO, 404)
    assert caught.value.status == 404
    assert f"{SEEDED_REPO}#404" in str(caught.value)


def test_open_pull_requests_reads_a_page_of_a_hundred_a_request(api: GitHubApi, github: GitHubEmulator) -> None:
    for number in range(10, 260):
        github.add_pull(repo=SEEDED_REPO, number=number, state="closed" if number % 5 == 0 else "open")
    before = len(github.requests)
    found = api.open_pull_requests(SEEDED_REPO)
    assert sorted(pull.number for pull in found) == sorted(
        [SEEDED_PR, *(number for number in range(10, 260) if number % 5)]
    )
    assert all(pull.state == "open" and not pull.merged for pull in found)
    assert len(github.requests) - before == 3  # 201 open PRs: three pages, and no request per PR


def test_open_pull_requests_of_a_repo_that_is_gone_is_not_found(api: GitHubApi) -> None:
    with pytest.raises(NotFound):
        api.open_pull_requests("Codertocat/Gone")


# ---------------------------------------------------------------- comments and reactions


def test_comments_reads_every_page_oldest_first(api: GitHubApi, github: GitHubEmulator) -> None:
    for index in range(230):
        github.add_comment(SEEDED_REPO, SEEDED_PR, f"comment {index}", user="octocat")
    comments = api.comments(SEEDED_REPO, SEEDED_PR)
    assert len(comments) == 230
    assert comments[0] == Comment(id=comments[0].id, body="comment 0", author="octocat")
    assert [c.body for c in comments] == [f"comment {index}" for index in range(230)]
    assert requests_to(github, "GET", "/comments") == 3  # 100 a page


def test_create_comment_returns_its_id(api: GitHubApi, github: GitHubEmulator) -> None:
    comment_id = api.create_comment(SEEDED_REPO, SEEDED_PR, "Deploying the preview…")
    [stored] = github.comments(SEEDED_REPO, SEEDED_PR)
    assert (stored.id, stored.body, stored.user) == (comment_id, "Deploying the preview…", github.login)


@pytest.mark.parametrize("lost", [502, 0], ids=["bad-gateway", "dropped-connection"])
def test_a_comment_github_made_but_never_confirmed_is_not_made_twice(
    github: GitHubEmulator, sleeps: list[float], lost: int
) -> None:
    body = "Deploying the preview…"
    github.add_comment(SEEDED_REPO, SEEDED_PR, body, user="mallory")  # the same words, not previewbot's
    github.lose_the_answer("POST", r"/issues/2/comments$", lost)

    with GitHubApi(github.token, api_url=github.url, retry=POLICY, sleep=sleeps.append) as api:
        comment_id = api.create_comment(SEEDED_REPO, SEEDED_PR, body)

    ours = [c for c in github.comments(SEEDED_REPO, SEEDED_PR) if c.user == github.login]
    assert [(c.id, c.body) for c in ours] == [(comment_id, body)]
    assert requests_to(github, "POST", "/issues/2/comments") == 1


def test_a_comment_github_refused_with_a_502_is_made_on_the_next_try(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_bad_gateway("POST", r"/issues/2/comments$")

    comment_id = api.create_comment(SEEDED_REPO, SEEDED_PR, "Deploying the preview…")

    [made] = github.comments(SEEDED_REPO, SEEDED_PR)
    assert made.id == comment_id
    assert sleeps == [1.0]


def test_a_comment_over_githubs_limit_is_invalid_and_not_retried(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    api.create_comment(SEEDED_REPO, SEEDED_PR, "x" * COMMENT_BODY_LIMIT)
    with pytest.raises(Invalid) as caught:
        api.create_comment(SEEDED_REPO, SEEDED_PR, "x" * (COMMENT_BODY_LIMIT + 1))
    assert caught.value.status == 422
    assert "Body is too long (maximum is 65536 characters)" in str(caught.value)
    assert requests_to(github, "POST", "/comments") == 2
    assert sleeps == []


def test_update_comment_edits_it(api: GitHubApi, github: GitHubEmulator) -> None:
    comment_id = api.create_comment(SEEDED_REPO, SEEDED_PR, "deploying")
    api.update_comment(SEEDED_REPO, comment_id, "ready")
    assert [c.body for c in github.comments(SEEDED_REPO, SEEDED_PR)] == ["ready"]


def test_update_comment_of_a_deleted_comment_is_not_found(api: GitHubApi, github: GitHubEmulator) -> None:
    with pytest.raises(NotFound):
        api.update_comment(SEEDED_REPO, 123, "ready")


def test_react_is_idempotent(api: GitHubApi, github: GitHubEmulator) -> None:
    comment_id = github.add_comment(SEEDED_REPO, SEEDED_PR, "/preview redeploy", user="octocat")
    api.react(SEEDED_REPO, comment_id, "eyes")
    api.react(SEEDED_REPO, comment_id, "eyes")
    api.react(SEEDED_REPO, comment_id, "rocket")
    assert [r.content for r in github.reactions(SEEDED_REPO, comment_id)] == ["eyes", "rocket"]


# ---------------------------------------------------------------- permissions


@pytest.mark.parametrize("role", ["admin", "maintain", "write", "triage", "read", "none"])
def test_permission_is_the_users_role(api: GitHubApi, github: GitHubEmulator, role: str) -> None:
    github.set_permission(SEEDED_REPO, "octocat", role)
    assert api.permission(SEEDED_REPO, "octocat") == role


def test_permission_of_an_unknown_user_is_none(api: GitHubApi) -> None:
    assert api.permission(SEEDED_REPO, "nobody-at-all") == "none"


def test_permission_of_a_custom_role_is_its_base_level(api: GitHubApi, github: GitHubEmulator) -> None:
    custom = {"permission": "write", "role_name": "release-manager"}
    github.fail_next("GET", r"/collaborators/octocat/permission$", 200, body=custom)
    assert api.permission(SEEDED_REPO, "octocat") == "write"


# ---------------------------------------------------------------- deployments


def test_create_deployment_is_a_transient_preview_that_does_not_wait_for_checks(
    api: GitHubApi, github: GitHubEmulator
) -> None:
    # A failing check would hold back a deployment that waits for the commit's checks.
    api.set_commit_status(SEEDED_REPO, HEAD_SHA, state=CommitState.FAILURE, context="ci", description="red")
    deployment_id = api.create_deployment(
        SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="PR #2", payload={"pr": 2}
    )
    [deployment] = github.deployments(SEEDED_REPO)
    assert deployment.id == deployment_id
    assert (deployment.sha, deployment.ref, deployment.environment) == (HEAD_SHA, HEAD_SHA, ENVIRONMENT)
    assert (deployment.transient_environment, deployment.production_environment) == (True, False)
    assert (deployment.auto_merge, deployment.required_contexts) == (False, [])
    assert (deployment.description, deployment.payload) == ("PR #2", {"pr": 2})


@pytest.mark.parametrize("lost", [502, 0], ids=["bad-gateway", "dropped-connection"])
def test_a_deployment_github_made_but_never_confirmed_is_not_made_twice(
    api: GitHubApi, github: GitHubEmulator, lost: int
) -> None:
    earlier = api.create_deployment(SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="", payload={})
    github.lose_the_answer("POST", r"/deployments$", lost)

    deployment_id = api.create_deployment(
        SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="PR #2", payload={"pr": 2}
    )

    made, _ = github.deployments(SEEDED_REPO)
    assert deployment_id == made.id != earlier
    assert made.payload == {"pr": 2}
    assert requests_to(github, "POST", "/deployments") == 2


def test_a_deployment_github_refused_with_a_502_is_made_on_the_next_try(api: GitHubApi, github: GitHubEmulator) -> None:
    github.fail_with_bad_gateway("POST", r"/deployments$")

    deployment_id = api.create_deployment(
        SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="", payload={}
    )

    [made] = github.deployments(SEEDED_REPO)
    assert made.id == deployment_id


def test_deployments_lists_the_environments_newest_first(api: GitHubApi) -> None:
    def deploy(environment: str) -> int:
        return api.create_deployment(SEEDED_REPO, sha=HEAD_SHA, environment=environment, description="", payload={})

    first, _, second = deploy(ENVIRONMENT), deploy("preview/pr-3"), deploy(ENVIRONMENT)
    assert api.deployments(SEEDED_REPO, environment=ENVIRONMENT) == [second, first]
    assert api.deployments(SEEDED_REPO, environment="preview/pr-4") == []


def test_set_deployment_status_with_urls(api: GitHubApi, github: GitHubEmulator) -> None:
    deployment_id = api.create_deployment(
        SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="", payload={}
    )
    api.set_deployment_status(SEEDED_REPO, deployment_id, state=DeploymentState.IN_PROGRESS, description="deploying")
    api.set_deployment_status(
        SEEDED_REPO,
        deployment_id,
        state=DeploymentState.SUCCESS,
        description="d" * 200,
        environment_url="https://pr-2.preview.example",
        log_url="https://github.com/Codertocat/Hello-World/actions/runs/1",
    )
    [deployment] = github.deployments(SEEDED_REPO)
    progress, success = deployment.statuses
    assert (progress.state, progress.environment_url, progress.log_url) == ("in_progress", "", "")
    assert success.state == "success"
    assert success.environment_url == "https://pr-2.preview.example"
    assert success.log_url == "https://github.com/Codertocat/Hello-World/actions/runs/1"
    assert len(success.description) == 140
    accept = next(r for r in reversed(github.requests) if r.method == "POST").headers["Accept"]
    assert "ant-man-preview" in accept
    assert "flash-preview" in accept


def test_set_deployment_status_inactive_on_teardown(api: GitHubApi, github: GitHubEmulator) -> None:
    deployment_id = api.create_deployment(
        SEEDED_REPO, sha=HEAD_SHA, environment=ENVIRONMENT, description="", payload={}
    )
    api.set_deployment_status(SEEDED_REPO, deployment_id, state=DeploymentState.INACTIVE, description="destroyed")
    assert github.deployments(SEEDED_REPO)[0].state == "inactive"


def test_set_deployment_status_of_an_unknown_deployment_is_not_found(api: GitHubApi) -> None:
    with pytest.raises(NotFound):
        api.set_deployment_status(SEEDED_REPO, 1, state=DeploymentState.FAILURE, description="failed")


# ---------------------------------------------------------------- commit statuses


def test_set_commit_status(api: GitHubApi, github: GitHubEmulator) -> None:
    api.set_commit_status(
        SEEDED_REPO,
        HEAD_SHA,
        state=CommitState.PENDING,
        context="previewbot",
        description="Deploying",
        target_url="https://github.com/Codertocat/Hello-World/pull/2",
    )
    [status] = github.statuses(SEEDED_REPO, HEAD_SHA)
    assert (status.state, status.context, status.description) == ("pending", "previewbot", "Deploying")
    assert status.target_url == "https://github.com/Codertocat/Hello-World/pull/2"


def test_set_commit_status_cuts_a_long_description_with_an_ellipsis(api: GitHubApi, github: GitHubEmulator) -> None:
    api.set_commit_status(
        SEEDED_REPO, HEAD_SHA, state=CommitState.FAILURE, context="previewbot", description="why " * 100
    )
    [status] = github.statuses(SEEDED_REPO, HEAD_SHA)
    assert status.description is not None
    assert len(status.description) == 140
    assert status.description.endswith("…")
    assert status.target_url is None


# ---------------------------------------------------------------- retries


def test_a_secondary_rate_limit_waits_as_long_as_retry_after_says(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_secondary_rate_limit("POST", r"/comments$", retry_after=30)
    api.create_comment(SEEDED_REPO, SEEDED_PR, "hello")
    assert sleeps == [30.0]
    assert len(github.comments(SEEDED_REPO, SEEDED_PR)) == 1


def test_a_primary_rate_limit_waits_until_the_reset(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_primary_rate_limit("GET", r"/pulls/2$", reset_at=int(NOW) + 42)
    assert api.pull_request(SEEDED_REPO, SEEDED_PR).number == SEEDED_PR
    assert sleeps == [42.0]


def test_too_many_requests_waits_as_long_as_retry_after_says(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_too_many_requests("GET", r"/comments$", retry_after=7, times=2)
    assert api.comments(SEEDED_REPO, SEEDED_PR) == []
    assert sleeps == [7.0, 7.0]


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [
        (formatdate(NOW + 90, usegmt=True), 90.0),  # Retry-After may be an HTTP date
        (None, 60.0),  # without a header GitHub asks for at least a minute
        ("soon", 60.0),
    ],
)
def test_a_secondary_rate_limit_without_seconds_to_wait(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float], retry_after: str | None, expected_wait: float
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"message": SECONDARY_RATE_LIMIT_MESSAGE}
    github.fail_next("POST", r"/comments$", 403, headers=headers, body=body)
    api.create_comment(SEEDED_REPO, SEEDED_PR, "hello")
    assert sleeps == [expected_wait]


def test_a_rate_limit_longer_than_max_wait_is_not_waited_out(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_primary_rate_limit("GET", r"/pulls/2$", reset_at=int(NOW) + 3000)
    with pytest.raises(RateLimited) as caught:
        api.pull_request(SEEDED_REPO, SEEDED_PR)
    assert isinstance(caught.value, TemporaryError)
    assert caught.value.delay == 3000.0
    assert caught.value.status == 403
    assert sleeps == []
    assert requests_to(github, "GET", "/pulls/2") == 1


def test_a_bad_gateway_is_retried_with_exponential_backoff(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_bad_gateway("POST", r"/statuses/", times=2)
    api.set_commit_status(SEEDED_REPO, HEAD_SHA, state=CommitState.SUCCESS, context="previewbot", description="ok")
    assert sleeps == [1.0, 2.0]
    assert len(github.statuses(SEEDED_REPO, HEAD_SHA)) == 1


def test_server_errors_give_up_after_the_last_attempt(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float]
) -> None:
    github.fail_with_bad_gateway("GET", r"/pulls/2$", times=10)
    with pytest.raises(TemporaryError) as caught:
        api.pull_request(SEEDED_REPO, SEEDED_PR)
    assert caught.value.status == 502
    assert sleeps == [1.0, 2.0, 4.0]
    assert requests_to(github, "GET", "/pulls/2") == POLICY.attempts


def test_a_dropped_connection_is_retried(api: GitHubApi, github: GitHubEmulator, sleeps: list[float]) -> None:
    github.drop_connection("GET", r"/pulls/2$")
    assert api.pull_request(SEEDED_REPO, SEEDED_PR).head_sha == HEAD_SHA
    assert sleeps == [1.0]


def test_an_unreachable_github_is_a_temporary_error(sleeps: list[float]) -> None:
    with GitHubEmulator() as stopped:
        url, token = stopped.url, stopped.token
    with (
        GitHubApi(token, api_url=url, retry=POLICY, sleep=sleeps.append) as unreachable,
        pytest.raises(TemporaryError) as caught,
    ):
        unreachable.pull_request(SEEDED_REPO, SEEDED_PR)
    assert caught.value.status is None
    assert len(sleeps) == POLICY.attempts - 1


def test_a_github_that_never_answers_fails_within_the_timeout(sleeps: list[float]) -> None:
    with (
        silent_server() as url,
        GitHubApi("ghs_token", api_url=url, retry=POLICY, sleep=sleeps.append, timeout=1) as silent,
        pytest.raises(TemporaryError, match=r"^GitHub did not answer within 1s while reading pull request "),
    ):
        silent.pull_request(SEEDED_REPO, SEEDED_PR)
    assert len(sleeps) == POLICY.attempts - 1


@pytest.mark.parametrize(("status", "error"), [(404, NotFound), (422, Invalid), (403, Forbidden), (418, ApiError)])
def test_other_client_errors_are_never_retried(
    api: GitHubApi, github: GitHubEmulator, sleeps: list[float], status: int, error: type[ApiError]
) -> None:
    github.fail_next("GET", r"/pulls/2$", status, times=2)
    with pytest.raises(error) as caught:
        api.pull_request(SEEDED_REPO, SEEDED_PR)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert sleeps == []
    assert requests_to(github, "GET", "/pulls/2") == 1


def test_an_error_is_raised_from_pygithubs_exception(api: GitHubApi) -> None:
    with pytest.raises(NotFound) as caught:
        api.pull_request(SEEDED_REPO, 404)
    assert type(caught.value.__cause__).__module__.startswith("github")


# ---------------------------------------------------------------- the token stays secret


def test_the_token_appears_in_no_error_and_no_log(
    github: GitHubEmulator, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="github")  # PyGithub logs each request and its headers
    wrong_token = "ghp_" + "s3cr3t" * 6
    raised: list[BaseException] = []
    with make_api(github, sleeps, token=wrong_token) as stranger:
        try:
            stranger.create_comment(SEEDED_REPO, SEEDED_PR, "hello")
        except Forbidden as error:
            raised.append(error)
    with make_api(github, sleeps) as api:
        github.fail_with_bad_gateway("GET", r"/pulls/2$", times=10)
        github.fail_with_secondary_rate_limit("POST", r"/comments$")
        api.create_comment(SEEDED_REPO, SEEDED_PR, "hello")
        for call in (
            lambda: api.pull_request(SEEDED_REPO, SEEDED_PR),
            lambda: api.pull_request(SEEDED_REPO, 404),
        ):
            try:
                call()
            except ApiError as error:
                raised.append(error)
    assert [type(error) for error in raised] == [Forbidden, TemporaryError, NotFound]
    assert "Bad credentials" in str(raised[0])
    assert any("trying again" in record.getMessage() for record in caplog.records)
    assert any(record.name.startswith("github") for record in caplog.records)
    for secret in (wrong_token, github.token):
        for error in raised:
            assert secret not in f"{error} {error!r} {error.__cause__} {error.__cause__!r}"
        for record in caplog.records:
            assert secret not in record.getMessage()


# ---------------------------------------------------------------- where the API is


def test_from_env_uses_github_api_url(
    github: GitHubEmulator, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", github.enterprise_url)
    with GitHubApi.from_env(github.token) as enterprise:
        assert enterprise.pull_request(SEEDED_REPO, SEEDED_PR).head_sha == HEAD_SHA
        enterprise.create_comment(SEEDED_REPO, SEEDED_PR, "on Enterprise Server")
    assert len(github.comments(SEEDED_REPO, SEEDED_PR)) == 1


def test_from_env_prefers_the_given_url(github: GitHubEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9/unused")
    with GitHubApi.from_env(github.token, api_url=github.url) as given:
        assert given.permission(SEEDED_REPO, "Codertocat") == "admin"


def test_remove_label_takes_it_off_and_tolerates_its_absence(api: GitHubApi, github: GitHubEmulator) -> None:
    github.update_pull(SEEDED_REPO, SEEDED_PR, labels=["preview-approved", "bug"])

    api.remove_label(SEEDED_REPO, SEEDED_PR, "preview-approved")
    api.remove_label(SEEDED_REPO, SEEDED_PR, "preview-approved")

    assert api.pull_request(SEEDED_REPO, SEEDED_PR).labels == ("bug",)


def test_file_text_reads_a_file_on_a_branch_and_none_when_absent(api: GitHubApi, github: GitHubEmulator) -> None:
    github.add_file(SEEDED_REPO, ".preview.yml", "version: 1\nmanifests: [deploy/]\n", ref="master")

    assert api.file_text(SEEDED_REPO, ".preview.yml", ref="master") == "version: 1\nmanifests: [deploy/]\n"
    assert api.file_text(SEEDED_REPO, ".preview.yml", ref="other-branch") is None
    assert api.file_text(SEEDED_REPO, "missing.yml", ref="master") is None


def test_a_folder_is_downloaded_with_its_subfolders(api: GitHubApi, github: GitHubEmulator, tmp_path: Path) -> None:
    sha = "c" * 40
    github.add_file(SEEDED_REPO, "deploy/web.yaml", "kind: Deployment\n", ref=sha)
    github.add_file(SEEDED_REPO, "deploy/db/db.yaml", "kind: StatefulSet\n", ref=sha)
    github.add_file(SEEDED_REPO, "deploy/db/db.yaml", "kind: Old\n", ref="master")
    assert api.download(SEEDED_REPO, "./deploy", ref=sha, into=tmp_path) == 2
    assert (tmp_path / "deploy" / "db" / "db.yaml").read_text() == "kind: StatefulSet\n"
    assert api.download(SEEDED_REPO, "deploy/web.yaml", ref=sha, into=tmp_path / "one") == 1
    with pytest.raises(NotFound):
        api.download(SEEDED_REPO, "deploy/missing.yaml", ref=sha, into=tmp_path)


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "deploy/../../x", ""])
def test_a_path_out_of_the_repository_is_refused(api: GitHubApi, tmp_path: Path, path: str) -> None:
    with pytest.raises(UserError, match="not a path inside the repository"):
        api.download(SEEDED_REPO, path, ref="master", into=tmp_path)


def test_a_folder_of_more_files_than_a_deploy_may_read_is_refused_and_nothing_written(
    api: GitHubApi, github: GitHubEmulator, tmp_path: Path
) -> None:
    sha = "d" * 40
    for number in range(FILES_LIMIT + 1):
        github.add_file(SEEDED_REPO, f"huge/{number}.yaml", "kind: ConfigMap\n", ref=sha)
    with pytest.raises(UserError, match=f"huge holds more than {FILES_LIMIT} files"):
        api.download(SEEDED_REPO, "huge", ref=sha, into=tmp_path)
    assert list(tmp_path.iterdir()) == []
